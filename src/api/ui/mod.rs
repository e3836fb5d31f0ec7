//! The web dashboard at `/ui`: HTML rendered on the server from askama templates
//! (`src/api/ui/templates/`, checked at compile time) over the data the JSON API serves. Pages
//! read without JavaScript; the one stylesheet is embedded in the binary and served under a
//! content hash with a year-long cache. Errors under `/ui` are HTML pages, not the API's JSON.
//!
//! Pages so far: the runs × steps grid (`/ui/runs`, newest first, paginated), one run's step
//! attempts (`/ui/runs/{run_id}`), the catalog (`/ui/tables`), a table's schema and history with
//! its runs (`/ui/tables/{table}`), and the diff of two versions (`/ui/tables/{table}/diff`, the
//! changed cells marked). Auth is the API's: with JWT on, every page needs the bearer
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
use crate::catalog::TableName;
use crate::diff::TableDiff;
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
        .route("/tables", get(tables_page))
        .route("/tables/{table}", get(table_page))
        .route("/tables/{table}/diff", get(diff_page))
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
        let Some(run) = run_log::find_run(&state.lake, &run_id).await? else {
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

#[derive(Template)]
#[template(path = "tables.html")]
struct TablesPage {
    css_href: &'static str,
    tables: Vec<TableRow>,
}

struct TableRow {
    layer: String,
    table: String,
    version: u64,
    rows: String,
    last_commit: String,
}

async fn tables_page(State(state): State<Arc<AppState>>) -> Response {
    match crate::inspect::tables(&state.lake).await {
        Ok(tables) => page_response(&TablesPage {
            css_href: &STYLE_HREF,
            tables: tables
                .into_iter()
                .map(|t| TableRow {
                    layer: t.layer,
                    table: t.table,
                    version: t.version,
                    rows: t.rows.map(|r| r.to_string()).unwrap_or_default(),
                    last_commit: t.last_commit.unwrap_or_default(),
                })
                .collect(),
        }),
        Err(e) => internal(e),
    }
}

#[derive(Template)]
#[template(path = "table.html")]
struct TablePage {
    css_href: &'static str,
    table: String,
    version: u64,
    /// The version the diff form starts from: the one before the latest.
    previous: u64,
    columns: Vec<ColumnRow>,
    history: Vec<HistoryRow>,
}

struct ColumnRow {
    name: String,
    data_type: String,
    nullable: bool,
}

struct HistoryRow {
    version: u64,
    timestamp: String,
    operation: String,
    rows_written: String,
    run_id: String,
}

/// The table named in a `/ui` path, or the page to answer instead.
async fn ui_table(state: &AppState, text: &str) -> Result<TableName, Response> {
    let not_found = || {
        error_page(
            StatusCode::NOT_FOUND,
            "Table not found",
            &format!("There is no table {text} in the lake."),
        )
    };
    let table: TableName = text.parse().map_err(|_| not_found())?;
    match state.snapshots.latest_if_exists(&table).await {
        Ok(Some(_)) => Ok(table),
        Ok(None) => Err(not_found()),
        Err(e) => Err(internal(e)),
    }
}

async fn table_page(State(state): State<Arc<AppState>>, Path(table): Path<String>) -> Response {
    let table = match ui_table(&state, &table).await {
        Ok(table) => table,
        Err(page) => return page,
    };
    let loaded = async {
        let snapshot = state.snapshots.latest(&table).await?;
        let history = crate::inspect::history(&state.lake, &table).await?;
        crate::error::Result::Ok((snapshot, history))
    };
    let (snapshot, history) = match loaded.await {
        Ok(loaded) => loaded,
        Err(e) => return internal(e),
    };
    let columns = snapshot
        .provider
        .schema()
        .fields()
        .iter()
        .map(|f| ColumnRow {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect();
    let optional = |v: Option<String>| v.unwrap_or_default();
    page_response(&TablePage {
        css_href: &STYLE_HREF,
        table: table.to_string(),
        version: snapshot.version,
        previous: snapshot.version.saturating_sub(1),
        columns,
        history: history
            .into_iter()
            .map(|h| HistoryRow {
                version: h.version,
                timestamp: optional(h.timestamp),
                operation: optional(h.operation),
                rows_written: h.rows_written.map(|r| r.to_string()).unwrap_or_default(),
                run_id: optional(h.run_id),
            })
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "diff.html")]
struct DiffPage {
    css_href: &'static str,
    diff: TableDiff,
    schema_lines: Vec<String>,
    columns: Vec<String>,
    sections: Vec<RowsSection>,
    changed_columns: Vec<String>,
    changed: Vec<Vec<ChangedCellView>>,
}

struct RowsSection {
    title: &'static str,
    total: u64,
    rows: Vec<Vec<String>>,
}

struct ChangedCellView {
    value: String,
    change: Option<(String, String)>,
}

#[derive(Debug, Deserialize)]
struct DiffParams {
    from: Option<u64>,
    to: Option<u64>,
    key: Option<String>,
}

async fn diff_page(
    State(state): State<Arc<AppState>>,
    Path(table): Path<String>,
    Query(params): Query<DiffParams>,
) -> Response {
    let table = match ui_table(&state, &table).await {
        Ok(table) => table,
        Err(page) => return page,
    };
    let Some(from) = params.from else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Which versions?",
            "Choose the version to compare from on the table's page.",
        );
    };
    let computed = async {
        let key: Vec<String> = match params.key.as_deref().map(str::trim) {
            Some(list) if !list.is_empty() => {
                list.split(',').map(|c| c.trim().to_string()).collect()
            }
            _ => Dag::build(&state.config, &state.lake)
                .await?
                .natural_key(&table),
        };
        let options = state.query_session_options()?;
        let limit = crate::diff::DEFAULT_SAMPLE_ROWS;
        crate::diff::diff(&state.lake, &options, &table, from, params.to, &key, limit).await
    };
    match computed.await {
        Ok(diff) => page_response(&diff_view(diff)),
        Err(e) if matches!(e.fault(), crate::error::Fault::User) => error_page(
            StatusCode::BAD_REQUEST,
            "Cannot compare these versions",
            &crate::error::error_chain(&e),
        ),
        Err(crate::error::Error::VersionNotFound { table, version }) => error_page(
            StatusCode::NOT_FOUND,
            "Version not found",
            &format!("{table} has no version {version}."),
        ),
        Err(e) => internal(e),
    }
}

/// A diff laid out for the page: rows as cells in the shared columns' order, changed rows as the
/// key and the columns that changed in any of them.
fn diff_view(diff: TableDiff) -> DiffPage {
    let as_cells = |rows: &[Value]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|row| diff.columns.iter().map(|c| text(row, c)).collect())
            .collect()
    };
    let sections = vec![
        RowsSection {
            title: "Added",
            total: diff.counts.added,
            rows: as_cells(&diff.added),
        },
        RowsSection {
            title: "Removed",
            total: diff.counts.removed,
            rows: as_cells(&diff.removed),
        },
    ];
    let mut changed_columns = diff.key.clone();
    for column in &diff.columns {
        let changes = diff
            .changed
            .iter()
            .any(|r| r.cells.iter().any(|c| &c.column == column));
        if changes && !changed_columns.contains(column) {
            changed_columns.push(column.clone());
        }
    }
    let changed = diff
        .changed
        .iter()
        .map(|row| {
            changed_columns
                .iter()
                .map(
                    |column| match row.cells.iter().find(|c| &c.column == column) {
                        Some(cell) => ChangedCellView {
                            value: String::new(),
                            change: Some((
                                crate::output::cell_text(&cell.from),
                                crate::output::cell_text(&cell.to),
                            )),
                        },
                        None => ChangedCellView {
                            value: row
                                .key
                                .get(column)
                                .map(crate::output::cell_text)
                                .unwrap_or_default(),
                            change: None,
                        },
                    },
                )
                .collect()
        })
        .collect();
    let schema = &diff.schema;
    let mut schema_lines = Vec::new();
    schema_lines.extend(
        schema
            .added
            .iter()
            .map(|c| format!("added {} ({})", c.name, c.data_type)),
    );
    schema_lines.extend(
        schema
            .removed
            .iter()
            .map(|c| format!("removed {} ({})", c.name, c.data_type)),
    );
    schema_lines.extend(
        schema
            .retyped
            .iter()
            .map(|c| format!("{}: {} → {}", c.name, c.from, c.to)),
    );
    DiffPage {
        css_href: &STYLE_HREF,
        columns: diff.columns.clone(),
        schema_lines,
        sections,
        changed_columns,
        changed,
        diff,
    }
}

fn page_response(page: &impl Template) -> Response {
    match render(page) {
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
        Some(value) => crate::output::cell_text(value),
    }
}
