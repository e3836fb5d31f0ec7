//! The web dashboard at `/ui`: HTML rendered on the server from askama templates
//! (`src/api/ui/templates/`, checked at compile time) over the data the JSON API serves. Pages
//! read without JavaScript; the one stylesheet is embedded in the binary and served under a
//! content hash with a year-long cache. Errors under `/ui` are HTML pages, not the API's JSON.
//!
//! Pages so far: the runs × steps grid (`/ui/runs`, newest first, paginated) and one run's step
//! attempts (`/ui/runs/{run_id}`). Auth is the API's: with JWT on, every page needs the bearer
//! token like any endpoint.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::state::AppState;
use crate::pipeline::dag::Dag;
use crate::pipeline::run_log;

/// Runs per page of the grid.
const RUNS_PER_PAGE: usize = 25;

const STYLE: &str = include_str!("assets/style.css");

/// `/ui/assets/style.<first 12 hex digits of its SHA-256>.css`: a new build with a changed
/// stylesheet gets a new URL, so the old one may be cached for good.
static STYLE_HREF: LazyLock<String> = LazyLock::new(|| {
    let hash = format!("{:x}", Sha256::digest(STYLE.as_bytes()));
    format!("/ui/assets/style.{}.css", &hash[..12])
});

/// The dashboard's routes, nested under `/ui` by [`crate::api::router`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/runs") }))
        .route("/runs", get(runs_page))
        .route("/runs/{run_id}", get(run_page))
        .route("/assets/{file}", get(asset))
        .fallback(|| async { error_page(StatusCode::NOT_FOUND, "Not found", "No such page.") })
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    css_href: &'static str,
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
struct PageParams {
    page: Option<usize>,
}

async fn runs_page(
    State(state): State<Arc<AppState>>,
    Query(params): Query<PageParams>,
) -> Response {
    let page = params.page.unwrap_or(1).max(1);
    match runs_grid(&state, page).await {
        Ok(html) => html.into_response(),
        Err(e) => internal(e),
    }
}

async fn runs_grid(state: &AppState, page: usize) -> crate::error::Result<Html<String>> {
    // One more than a page: whether an older page exists.
    let wanted = page * RUNS_PER_PAGE + 1;
    let all = run_log::list_runs(&state.lake, wanted).await?;
    let has_next = all.len() == wanted;
    let runs: Vec<&Value> = all
        .iter()
        .skip((page - 1) * RUNS_PER_PAGE)
        .take(RUNS_PER_PAGE)
        .collect();
    let ids: Vec<String> = runs.iter().map(|r| text(r, "run_id")).collect();
    let attempts = run_log::last_attempts(&state.lake, &ids).await?;
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
    render(&RunsPage {
        css_href: &STYLE_HREF,
        steps,
        runs: rows,
        page,
        has_next,
    })
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    css_href: &'static str,
    run_id: String,
    status: String,
    trigger: String,
    selection: String,
    started_at: String,
    ended_at: Option<String>,
    error: Option<String>,
    steps: Vec<StepRow>,
}

struct StepRow {
    step: String,
    attempt: String,
    status: String,
    rows: String,
    version: String,
    ended_at: String,
    detail: String,
    error: String,
}

async fn run_page(State(state): State<Arc<AppState>>, Path(run_id): Path<String>) -> Response {
    let found = async {
        let runs = run_log::list_runs(&state.lake, usize::MAX >> 1).await?;
        let Some(run) = runs.into_iter().find(|r| r["run_id"] == run_id.as_str()) else {
            return Ok(None);
        };
        let steps = run_log::run_steps(&state.lake, &run_id).await?;
        crate::error::Result::Ok(Some((run, steps)))
    };
    let (run, steps) = match found.await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "Run not found",
                &format!("There is no run {run_id} in system.runs."),
            );
        }
        Err(e) => return internal(e),
    };
    let optional = |key: &str| Some(text(&run, key)).filter(|v| !v.is_empty());
    let page = RunPage {
        css_href: &STYLE_HREF,
        status: text(&run, "status"),
        trigger: text(&run, "trigger"),
        selection: text(&run, "selection"),
        started_at: text(&run, "started_at"),
        ended_at: optional("ended_at"),
        error: optional("error"),
        steps: steps
            .iter()
            .map(|s| StepRow {
                step: text(s, "step"),
                attempt: text(s, "attempt"),
                status: text(s, "status"),
                rows: text(s, "rows"),
                version: text(s, "version"),
                ended_at: text(s, "ended_at"),
                detail: text(s, "detail"),
                error: text(s, "error"),
            })
            .collect(),
        run_id,
    };
    match render(&page) {
        Ok(html) => html.into_response(),
        Err(e) => internal(e),
    }
}

async fn asset(Path(file): Path<String>) -> Response {
    if format!("/ui/assets/{file}") != *STYLE_HREF {
        return error_page(StatusCode::NOT_FOUND, "Not found", "No such asset.");
    }
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        STYLE,
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    css_href: &'static str,
    heading: &'a str,
    message: &'a str,
}

fn error_page(status: StatusCode, heading: &str, message: &str) -> Response {
    let page = ErrorPage {
        css_href: &STYLE_HREF,
        heading,
        message,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => (status, format!("{heading}: {message} ({e})")).into_response(),
    }
}

fn internal(e: crate::error::Error) -> Response {
    tracing::error!(error = %crate::error::error_chain(&e), "dashboard page failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        &crate::error::error_chain(&e),
    )
}

fn render(page: &impl Template) -> crate::error::Result<Html<String>> {
    page.render()
        .map(Html)
        .map_err(|e| crate::error::Error::Internal(format!("rendering a dashboard page: {e}")))
}

/// A field of a JSON row as text (`""` for null or missing; numbers as written).
fn text(row: &Value, key: &str) -> String {
    match row.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
