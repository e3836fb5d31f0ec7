//! The runs pages: the runs × steps grid (newest first, paginated) with the form that starts a
//! run, and one run's step attempts with its timeline, refreshing itself while the run goes on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

use super::html::{
    STYLE_HREF, api_error_page, cached_page, definitions_key, error_page, html, internal,
    pinned_run_log, text, versions_key,
};
use super::session::Viewer;
use crate::api::error::{ApiError, ApiResult};
use crate::api::state::AppState;
use crate::catalog::TableName;
use crate::error::{Error, Fault};
use crate::pipeline::dag::Dag;
use crate::pipeline::run_log;
use crate::run_options::{RunOptions, Trigger};
use crate::variables::RunVars;

/// Runs per page of the grid.
const RUNS_PER_PAGE: usize = 25;

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    css_href: &'static str,
    /// Whether to offer the form that starts a run (admins, or everyone with auth off).
    can_trigger: bool,
    steps: Vec<String>,
    runs: Vec<RunRow>,
    page: usize,
    has_next: bool,
}

struct RunRow {
    run_id: String,
    started_at: String,
    status: String,
    trigger: String,
    /// One per column of `steps`: the status of the step's last attempt, if it ran.
    cells: Vec<Option<String>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct PageParams {
    page: Option<usize>,
}

pub(super) async fn runs_page(
    State(state): State<Arc<AppState>>,
    Extension(viewer): Extension<Viewer>,
    Query(params): Query<PageParams>,
    headers: HeaderMap,
) -> Response {
    let page = params.page.unwrap_or(1).max(1);
    let can_trigger = viewer.is_admin();
    let versions = match versions_key(&state, RUN_LOG.as_slice()).await {
        Ok(versions) => versions,
        Err(e) => return api_error_page(e),
    };
    // The grid's columns are the step graph's steps.
    let key = format!(
        "runs|{page}|{can_trigger}{versions}{}",
        definitions_key(&state)
    );
    let grid = runs_grid(&state, page, can_trigger);
    cached_page(&state, &headers, "ui_runs", key, grid).await
}

/// The tables the runs pages read.
static RUN_LOG: LazyLock<[TableName; 2]> =
    LazyLock::new(|| [run_log::runs_table(), run_log::step_runs_table()]);

async fn runs_grid(state: &AppState, page: usize, can_trigger: bool) -> ApiResult<String> {
    // One more than a page: whether an older page exists.
    let wanted = page * RUNS_PER_PAGE + 1;
    let log = pinned_run_log(state).await?;
    let all = log.list_runs(wanted).await?;
    let has_next = all.len() == wanted;
    let runs: Vec<&Value> = all
        .iter()
        .skip((page - 1) * RUNS_PER_PAGE)
        .take(RUNS_PER_PAGE)
        .collect();
    let ids: Vec<String> = runs.iter().map(|r| text(r, "run_id")).collect();
    let attempts = log.last_attempts(&ids).await?;
    // Columns: the steps in DAG order, then any step a listed run ran that the DAG no longer has.
    let mut steps: Vec<String> = match Dag::build(&state.config, &state.lake).await {
        Ok(dag) => dag.ordered().map(|s| s.table.to_string()).collect(),
        Err(_) => Vec::new(),
    };
    for attempt in &attempts {
        let step = text(attempt, "step");
        if !steps.contains(&step) {
            steps.push(step);
        }
    }
    let mut status: HashMap<(String, String), String> = HashMap::new();
    for attempt in &attempts {
        let key = (text(attempt, "run_id"), text(attempt, "step"));
        status.insert(key, text(attempt, "status"));
    }
    let rows = runs
        .iter()
        .map(|run| {
            let run_id = text(run, "run_id");
            let cells = steps
                .iter()
                .map(|step| status.get(&(run_id.clone(), step.clone())).cloned())
                .collect();
            RunRow {
                started_at: text(run, "started_at"),
                status: text(run, "status"),
                trigger: text(run, "trigger"),
                run_id,
                cells,
            }
        })
        .collect();
    html(&RunsPage {
        css_href: &STYLE_HREF,
        can_trigger,
        steps,
        runs: rows,
        page,
        has_next,
    })
}

/// `POST /ui/runs` from the grid's form: `select` (repeatable), `downstream`, `full_refresh`,
/// `variables` (`ds=2026-11-30 region=eu`), or `resume=last`; answers with the new run's page,
/// which follows it until it ends.
pub(super) async fn trigger_post(State(state): State<Arc<AppState>>, body: String) -> Response {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let flag = |name: &str| {
        pairs
            .iter()
            .any(|(key, value)| key == name && value == "on")
    };
    let select: Result<Vec<TableName>, _> = pairs
        .iter()
        .filter(|(key, _)| key == "select")
        .map(|(_, table)| table.parse::<TableName>())
        .collect();
    let select = match select {
        Ok(select) => select,
        Err(e) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Cannot start this run",
                &e.to_string(),
            );
        }
    };
    let resume = pairs
        .iter()
        .find(|(key, _)| key == "resume")
        .map(|(_, value)| value.clone());
    let variables = pairs
        .iter()
        .filter(|(key, _)| key == "variables")
        .flat_map(|(_, value)| value.split_whitespace());
    let vars = match RunVars::parse(variables) {
        Ok(vars) => vars,
        Err(message) => {
            return error_page(StatusCode::BAD_REQUEST, "Cannot start this run", &message);
        }
    };
    let options = RunOptions {
        trigger: Trigger::Ui,
        select,
        downstream: flag("downstream"),
        full_refresh: flag("full_refresh"),
        resume,
        vars,
    };
    match state.runner.start(options).await {
        Ok(run_id) => Redirect::to(&format!("/ui/runs/{run_id}")).into_response(),
        Err(Error::LakeBusy { holder, .. }) => error_page(
            StatusCode::CONFLICT,
            "A run is in progress",
            &format!("The lake is busy: {holder}. Try again when it ends."),
        ),
        Err(e) if e.fault() == Fault::User => error_page(
            StatusCode::BAD_REQUEST,
            "Cannot start this run",
            &crate::error::error_chain(&e),
        ),
        Err(e) => internal(e),
    }
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    css_href: &'static str,
    run_id: String,
    status: String,
    trigger: String,
    selection: String,
    /// The run's variables, `ds=2026-11-03` (empty for none).
    variables: String,
    started_at: String,
    ended_at: Option<String>,
    duration: String,
    error: Option<String>,
    steps: Vec<StepRow>,
    timeline: Timeline,
}

struct StepRow {
    step: String,
    /// Whether `step` names a table of the lake (an ALS step's name does not), so it can link.
    is_table: bool,
    attempt: String,
    status: String,
    rows: String,
    version: String,
    started_at: String,
    duration: String,
    /// The table versions the attempt read, each linked to the table at that version.
    inputs: Vec<(String, u64)>,
    detail: String,
    error: String,
}

/// The run's Gantt chart: one bar per step attempt on a shared time axis, in SVG user units
/// (the drawing is `TIMELINE_WIDTH` wide and scales to the page).
struct Timeline {
    height: usize,
    bars: Vec<TimelineBar>,
    /// Tick marks along the axis: x, label and its `text-anchor` (the last one ends at its mark,
    /// so it stays inside the drawing).
    ticks: Vec<(f64, String, &'static str)>,
}

struct TimelineBar {
    label: String,
    status: String,
    y: usize,
    x: f64,
    width: f64,
    title: String,
}

const TIMELINE_WIDTH: f64 = 1000.0;
/// Where the bars start: the left part holds the step names.
const TIMELINE_LABELS: f64 = 230.0;
const TIMELINE_ROW: usize = 22;

pub(super) async fn run_page(
    State(state): State<Arc<AppState>>,
    Path(run_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let versions = match versions_key(&state, RUN_LOG.as_slice()).await {
        Ok(versions) => versions,
        Err(e) => return api_error_page(e),
    };
    let key = format!("run|{run_id}{versions}");
    cached_page(&state, &headers, "ui_run", key, run_view(&state, run_id)).await
}

async fn run_view(state: &AppState, run_id: String) -> ApiResult<String> {
    let log = pinned_run_log(state).await?;
    let found = async {
        let Some(run) = log.find_run(&run_id).await? else {
            return Ok::<_, crate::error::Error>(None);
        };
        let steps = log.run_steps(&run_id).await?;
        let tables = state.lake.list().await?;
        Ok(Some((run, steps, tables)))
    };
    let (run, steps, tables) = match found.await? {
        Some(found) => found,
        // Just started from the form: the run exists before its first row is committed.
        None if state.runner.current().as_deref() == Some(run_id.as_str()) => (
            serde_json::json!({"run_id": run_id, "status": "running", "trigger": "ui"}),
            Vec::new(),
            Vec::new(),
        ),
        None => {
            return Err(ApiError::not_found(
                "run_not_found",
                format!("Run not found: there is no run {run_id} in system.runs."),
            ));
        }
    };
    let optional = |key: &str| Some(text(&run, key)).filter(|v| !v.is_empty());
    let run_start = run_log::parse_timestamp(&text(&run, "started_at"));
    let run_end = run_log::parse_timestamp(&text(&run, "ended_at"));
    let page = RunPage {
        css_href: &STYLE_HREF,
        status: text(&run, "status"),
        trigger: text(&run, "trigger"),
        selection: text(&run, "selection"),
        variables: run["variables"]
            .as_str()
            .and_then(|text| RunVars::from_json(text).ok())
            .map(|vars| vars.to_string())
            .unwrap_or_default(),
        started_at: text(&run, "started_at"),
        ended_at: optional("ended_at"),
        duration: match (run_start, run_end) {
            (Some(start), Some(end)) => human_duration((end - start).num_milliseconds()),
            _ => String::new(),
        },
        error: optional("error"),
        timeline: timeline(run_start, run_end, &steps),
        steps: steps
            .iter()
            .map(|s| {
                let step = text(s, "step");
                StepRow {
                    is_table: tables.iter().any(|t| t.to_string() == step),
                    attempt: text(s, "attempt"),
                    status: text(s, "status"),
                    rows: text(s, "rows"),
                    version: text(s, "version"),
                    started_at: text(s, "started_at"),
                    duration: attempt_span(s)
                        .map(|(start, end)| human_duration((end - start).num_milliseconds()))
                        .unwrap_or_default(),
                    inputs: serde_json::from_str::<BTreeMap<String, u64>>(&text(s, "inputs"))
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                    detail: text(s, "detail"),
                    error: text(s, "error"),
                    step,
                }
            })
            .collect(),
        run_id,
    };
    html(&page)
}

type Instant = chrono::DateTime<chrono::Utc>;

/// When a step attempt started and ended.
fn attempt_span(attempt: &Value) -> Option<(Instant, Instant)> {
    let start = run_log::parse_timestamp(&text(attempt, "started_at"))?;
    let end = run_log::parse_timestamp(&text(attempt, "ended_at"))?;
    Some((start, end))
}

/// Lays the attempts out on the run's time axis: from the run's start (or the first attempt's)
/// to its end (or the last attempt's, while it runs).
fn timeline(run_start: Option<Instant>, run_end: Option<Instant>, steps: &[Value]) -> Timeline {
    let spans: Vec<(&Value, Instant, Instant)> = steps
        .iter()
        .filter_map(|s| attempt_span(s).map(|(start, end)| (s, start, end)))
        .collect();
    let first = spans.iter().map(|(_, start, _)| *start).min();
    let last = spans.iter().map(|(_, _, end)| *end).max();
    let (Some(origin), Some(finish)) = (run_start.or(first), run_end.max(last)) else {
        return Timeline {
            height: 0,
            bars: Vec::new(),
            ticks: Vec::new(),
        };
    };
    // At least a millisecond, so a run of instant steps still draws.
    let span_ms = (finish - origin).num_milliseconds().max(1) as f64;
    let scale = (TIMELINE_WIDTH - TIMELINE_LABELS - 10.0) / span_ms;
    let bars = spans
        .iter()
        .enumerate()
        .map(|(row, (attempt, start, end))| {
            let offset = (*start - origin).num_milliseconds().max(0) as f64;
            let length = (*end - *start).num_milliseconds().max(0) as f64;
            let step = text(attempt, "step");
            let attempt_no = text(attempt, "attempt");
            let label = if attempt_no == "1" {
                step.clone()
            } else {
                format!("{step} (attempt {attempt_no})")
            };
            TimelineBar {
                title: format!(
                    "{label}: {} from +{} to +{}",
                    text(attempt, "status"),
                    human_duration(offset as i64),
                    human_duration((offset + length) as i64)
                ),
                label,
                status: text(attempt, "status"),
                y: row * TIMELINE_ROW,
                x: TIMELINE_LABELS + offset * scale,
                // Instant steps still show as a sliver.
                width: (length * scale).max(2.0),
            }
        })
        .collect::<Vec<_>>();
    let ticks = (0..=4)
        .map(|i| {
            let at = span_ms * f64::from(i) / 4.0;
            let anchor = match i {
                0 => "start",
                4 => "end",
                _ => "middle",
            };
            (
                TIMELINE_LABELS + at * scale,
                human_duration(at as i64),
                anchor,
            )
        })
        .collect();
    Timeline {
        height: bars.len() * TIMELINE_ROW + 24,
        bars,
        ticks,
    }
}

/// `850 ms`, `12.3 s`, `4 min 05 s`.
pub(super) fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human_duration(850), "850 ms");
        assert_eq!(human_duration(12_345), "12.3 s");
        assert_eq!(human_duration(245_000), "4 min 05 s");
    }

    #[test]
    fn timeline_places_each_attempt_by_its_start_and_length() {
        let at = |s: &str| run_log::parse_timestamp(s);
        let steps = [
            json!({"step": "bronze.a", "attempt": 1, "status": "committed",
                   "started_at": "2026-12-05T10:00:00", "ended_at": "2026-12-05T10:00:01"}),
            json!({"step": "silver.b", "attempt": 2, "status": "failed",
                   "started_at": "2026-12-05T10:00:01", "ended_at": "2026-12-05T10:00:02"}),
        ];
        let chart = timeline(
            at("2026-12-05T10:00:00Z"),
            at("2026-12-05T10:00:02Z"),
            &steps,
        );
        let [a, b] = &chart.bars[..] else {
            panic!("two bars")
        };
        let half = (TIMELINE_WIDTH - TIMELINE_LABELS - 10.0) / 2.0;
        assert!((a.x - TIMELINE_LABELS).abs() < 1e-9 && (a.width - half).abs() < 1e-9);
        assert!((b.x - (TIMELINE_LABELS + half)).abs() < 1e-9);
        assert_eq!(b.label, "silver.b (attempt 2)");
        assert_eq!((a.y, b.y), (0, TIMELINE_ROW));
    }
}
