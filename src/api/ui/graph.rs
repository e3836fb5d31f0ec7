//! The step graph page (`/ui/graph`): the DAG drawn as SVG on the server, left to right, each
//! node coloured by its step's last status and linked to the table it writes; `?focus=TABLE`
//! keeps only that step's upstream and downstream and charts the step's duration and rows over
//! its last attempts.
//!
//! The layout is a plain layering: a step's column is one more than its deepest upstream step's,
//! and each column is ordered by the mean row of the steps it reads (one barycentre sweep), which
//! keeps the pipelines this tool runs (tens of steps) readable without a layout crate.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::chart::BarChart;
use super::html::{
    STYLE_HREF, api_error_page, cached_page, definitions_key, html, pinned_run_log, text,
    versions_key,
};
use crate::api::error::{ApiError, ApiResult};
use crate::api::state::AppState;
use crate::catalog::TableName;
use crate::pipeline::dag::Dag;
use crate::pipeline::run_log;
use crate::pipeline::step::Step;

const NODE_WIDTH: f64 = 210.0;
const NODE_HEIGHT: f64 = 36.0;
const COLUMN_GAP: f64 = 60.0;
const ROW_GAP: f64 = 16.0;
/// Longest label drawn in a node; the full name is in its title.
const LABEL_CHARS: usize = 25;

#[derive(Template)]
#[template(path = "graph.html")]
struct GraphPage {
    css_href: &'static str,
    focus: Option<String>,
    /// With a focus: its step's duration and rows over its last attempts (SVG).
    step_charts: Vec<String>,
    width: f64,
    height: f64,
    node_width: f64,
    node_height: f64,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

struct Node {
    step: String,
    label: String,
    kind: String,
    status: String,
    run_id: String,
    href: String,
    x: f64,
    y: f64,
    upstream: Vec<String>,
    downstream: Vec<String>,
}

/// A cubic curve from the right edge of one node to the left edge of another.
struct Edge {
    path: String,
    title: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct GraphParams {
    focus: Option<String>,
}

pub(super) async fn graph_page(
    State(state): State<Arc<AppState>>,
    Query(params): Query<GraphParams>,
    headers: HeaderMap,
) -> Response {
    let focus = params.focus.filter(|f| !f.trim().is_empty());
    let versions = match versions_key(&state, &[run_log::step_runs_table()]).await {
        Ok(versions) => versions,
        Err(e) => return api_error_page(e),
    };
    let key = format!(
        "graph|{}{}{versions}",
        focus.clone().unwrap_or_default(),
        definitions_key(&state)
    );
    cached_page(&state, &headers, "ui_graph", key, graph_view(&state, focus)).await
}

async fn graph_view(state: &AppState, focus: Option<String>) -> ApiResult<String> {
    let dag = Dag::build(&state.config, &state.lake).await?;
    let log = pinned_run_log(state).await?;
    let statuses = log.last_step_statuses().await?;
    let tables: BTreeSet<TableName> = state.lake.list().await?.into_iter().collect();
    let focused = match &focus {
        None => None,
        Some(name) => match name.parse().ok().and_then(|t| focus_step(&dag, &t)) {
            Some(step) => Some(step),
            None => {
                return Err(ApiError::not_found(
                    "step_not_found",
                    format!("Step not found: no step of the pipeline writes {name}."),
                ));
            }
        },
    };
    let steps: Vec<&Step> = match focused {
        None => dag.ordered().collect(),
        Some(step) => {
            let keep = lineage_of(&dag, &step.table);
            dag.ordered().filter(|s| keep.contains(&s.table)).collect()
        }
    };
    let last: HashMap<String, (String, String)> = statuses
        .iter()
        .map(|s| (text(s, "step"), (text(s, "status"), text(s, "run_id"))))
        .collect();
    let mut page = layout(focus, &steps, &last, &tables);
    if let Some(step) = focused {
        page.step_charts = step_charts(state, &step.table.to_string()).await?;
    }
    html(&page)
}

/// Attempts a step's charts cover.
const CHART_ATTEMPTS: usize = 30;

/// How long the step's last attempts took and how many rows they wrote, oldest first, each bar
/// coloured by the attempt's status, the median marked.
async fn step_charts(state: &AppState, step: &str) -> ApiResult<Vec<String>> {
    let attempts = pinned_run_log(state)
        .await?
        .step_attempts(step, CHART_ATTEMPTS)
        .await?;
    if attempts.is_empty() {
        return Ok(Vec::new());
    }
    let mut durations = Vec::new();
    let mut rows = Vec::new();
    for attempt in attempts.iter().rev() {
        let status = text(attempt, "status");
        let started = text(attempt, "started_at");
        let seconds = match (
            run_log::parse_timestamp(&started),
            run_log::parse_timestamp(&text(attempt, "ended_at")),
        ) {
            (Some(start), Some(end)) => (end - start).num_milliseconds().max(0) as f64 / 1000.0,
            _ => 0.0,
        };
        durations.push((
            seconds,
            status.clone(),
            format!("{started}: {seconds:.2} s, {status}"),
        ));
        if let Some(count) = attempt.get("rows").and_then(Value::as_f64) {
            rows.push((
                count,
                status.clone(),
                format!("{started}: {count} rows, {status}"),
            ));
        }
    }
    let n = durations.len();
    let mut charts = vec![
        BarChart::new(
            &format!("{step}: seconds per attempt, last {n}"),
            &durations,
            " s",
        )
        .render()
        .map_err(|e| ApiError::internal(format!("drawing a chart: {e}")))?,
    ];
    if !rows.is_empty() {
        charts.push(
            BarChart::new(
                &format!("{step}: rows per attempt, last {}", rows.len()),
                &rows,
                "",
            )
            .render()
            .map_err(|e| ApiError::internal(format!("drawing a chart: {e}")))?,
        );
    }
    Ok(charts)
}

/// The step that is `table` or writes it (an ALS step writes several gold tables).
fn focus_step<'a>(dag: &'a Dag, table: &TableName) -> Option<&'a Step> {
    dag.step(table)
        .or_else(|| dag.ordered().find(|s| s.writes().contains(table)))
}

/// `table`'s step with every step upstream and downstream of it.
fn lineage_of(dag: &Dag, table: &TableName) -> BTreeSet<TableName> {
    let mut keep = BTreeSet::from([table.clone()]);
    let mut stack = vec![table.clone()];
    while let Some(current) = stack.pop() {
        if let Some(step) = dag.step(&current) {
            for up in &step.after {
                if keep.insert(up.clone()) {
                    stack.push(up.clone());
                }
            }
        }
    }
    let mut down = vec![table.clone()];
    while let Some(current) = down.pop() {
        for step in dag.ordered() {
            if step.after.contains(&current) && keep.insert(step.table.clone()) {
                down.push(step.table.clone());
            }
        }
    }
    keep
}

/// Places `steps` (in the graph's order, so every step comes after those it reads) in columns
/// and rows and draws the edges between them.
fn layout(
    focus: Option<String>,
    steps: &[&Step],
    last: &HashMap<String, (String, String)>,
    tables: &BTreeSet<TableName>,
) -> GraphPage {
    let shown: BTreeSet<&TableName> = steps.iter().map(|s| &s.table).collect();
    let upstream = |step: &Step| -> Vec<TableName> {
        step.after
            .iter()
            .filter(|t| shown.contains(t))
            .cloned()
            .collect()
    };
    let mut column: HashMap<TableName, usize> = HashMap::new();
    for step in steps {
        let depth = upstream(step)
            .iter()
            .map(|t| column[t] + 1)
            .max()
            .unwrap_or(0);
        column.insert(step.table.clone(), depth);
    }
    let mut columns: BTreeMap<usize, Vec<&Step>> = BTreeMap::new();
    for step in steps {
        columns.entry(column[&step.table]).or_default().push(step);
    }
    let mut row: HashMap<TableName, usize> = HashMap::new();
    for members in columns.values_mut() {
        let barycentre = |step: &Step| -> f64 {
            let rows: Vec<f64> = upstream(step).iter().map(|t| row[t] as f64).collect();
            if rows.is_empty() {
                0.0
            } else {
                rows.iter().sum::<f64>() / rows.len() as f64
            }
        };
        members.sort_by(|a, b| {
            barycentre(a)
                .total_cmp(&barycentre(b))
                .then_with(|| a.table.cmp(&b.table))
        });
        for (i, step) in members.iter().enumerate() {
            row.insert(step.table.clone(), i);
        }
    }
    let position = |table: &TableName| -> (f64, f64) {
        (
            column[table] as f64 * (NODE_WIDTH + COLUMN_GAP) + 1.0,
            row[table] as f64 * (NODE_HEIGHT + ROW_GAP) + 1.0,
        )
    };
    let mut edges = Vec::new();
    for step in steps {
        let (x2, y2) = position(&step.table);
        for up in upstream(step) {
            let (x1, y1) = position(&up);
            let (from_x, from_y) = (x1 + NODE_WIDTH, y1 + NODE_HEIGHT / 2.0);
            let (to_x, to_y) = (x2 - 6.0, y2 + NODE_HEIGHT / 2.0);
            let bend = (to_x - from_x) / 2.0;
            edges.push(Edge {
                path: format!(
                    "M{from_x:.1},{from_y:.1} C{:.1},{from_y:.1} {:.1},{to_y:.1} {to_x:.1},{to_y:.1}",
                    from_x + bend,
                    to_x - bend
                ),
                title: format!("{} reads {up}", step.table),
            });
        }
    }
    let nodes: Vec<Node> = steps
        .iter()
        .map(|step| {
            let (x, y) = position(&step.table);
            let name = step.table.to_string();
            let (status, run_id) = last.get(&name).cloned().unwrap_or_default();
            // The step's own table when it has one, else the first table it wrote.
            let href = std::iter::once(&step.table)
                .chain(step.writes().iter())
                .find(|t| tables.contains(t))
                .map(|t| format!("/ui/tables/{t}"))
                .unwrap_or_else(|| format!("/ui/graph?focus={name}"));
            let downstream = steps
                .iter()
                .filter(|s| s.after.contains(&step.table))
                .map(|s| s.table.to_string())
                .collect();
            Node {
                label: if name.chars().count() > LABEL_CHARS {
                    let cut: String = name.chars().take(LABEL_CHARS - 1).collect();
                    format!("{cut}…")
                } else {
                    name.clone()
                },
                kind: step.label(),
                status: if status.is_empty() {
                    "never_run".into()
                } else {
                    status
                },
                run_id,
                href,
                x,
                y,
                upstream: step.after.iter().map(|t| t.to_string()).collect(),
                downstream,
                step: name,
            }
        })
        .collect();
    let width = nodes.iter().map(|n| n.x + NODE_WIDTH).fold(0.0, f64::max) + 2.0;
    let height = nodes.iter().map(|n| n.y + NODE_HEIGHT).fold(0.0, f64::max) + 2.0;
    GraphPage {
        css_href: &STYLE_HREF,
        focus,
        step_charts: Vec::new(),
        width,
        height,
        node_width: NODE_WIDTH,
        node_height: NODE_HEIGHT,
        nodes,
        edges,
    }
}
