//! What every dashboard page shares: the embedded stylesheet under its content-hashed URL,
//! rendering a template, the HTML error pages and how a JSON cell is printed.

use std::sync::LazyLock;

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;

use askama::Template;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::cache::Cached;
use crate::api::error::{ApiError, ApiResult};
use crate::api::snapshots::Snapshot;
use crate::api::state::AppState;
use crate::catalog::TableName;
use crate::pipeline::run_log::{self, RunLogReader};

const STYLE: &str = include_str!("assets/style.css");

/// `/ui/assets/style.<first 12 hex digits of its SHA-256>.css`: a new build with a changed
/// stylesheet gets a new URL, so the old one may be cached for good.
pub(super) static STYLE_HREF: LazyLock<String> = LazyLock::new(|| {
    let hash = format!("{:x}", Sha256::digest(STYLE.as_bytes()));
    format!("/ui/assets/style.{}.css", &hash[..12])
});

pub(super) fn page_response(page: &impl Template) -> Response {
    match html(page) {
        Ok(page) => Html(page).into_response(),
        Err(e) => api_error_page(e),
    }
}

pub(super) async fn asset(Path(file): Path<String>) -> Response {
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

pub(super) fn error_page(status: StatusCode, heading: &str, message: &str) -> Response {
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

/// `table@version` of each table as the server pins it (`@none` before it exists): the part of a
/// page's cache key that moves when anything the page read moves.
pub(super) async fn versions_key(state: &AppState, tables: &[TableName]) -> ApiResult<String> {
    let mut key = String::new();
    for table in tables {
        let version = state.snapshots.latest_if_exists(table).await?;
        let _ = write!(key, "|{table}@");
        match version {
            Some(snapshot) => {
                let _ = write!(key, "{}", snapshot.version);
            }
            None => key.push_str("none"),
        }
    }
    Ok(key)
}

/// The run log at the versions the server serves: what the runs pages' cache keys name, read
/// without opening anything from storage.
pub(super) async fn pinned_run_log(state: &AppState) -> ApiResult<RunLogReader> {
    let runs = state
        .snapshots
        .latest_if_exists(&run_log::runs_table())
        .await?;
    let step_runs = state
        .snapshots
        .latest_if_exists(&run_log::step_runs_table())
        .await?;
    let provider = |snapshot: Option<Arc<Snapshot>>| snapshot.map(|s| Arc::clone(&s.provider));
    Ok(RunLogReader::pinned(provider(runs), provider(step_runs))?)
}

/// A stamp of the step definitions under `sql/` (each file's path, size and modification time):
/// the part of a page's cache key that moves when the step graph may have changed. The config
/// file is read once when the server starts, so it cannot move under a running server.
pub(super) fn definitions_key(state: &AppState) -> String {
    let mut hasher = Sha256::new();
    for file in crate::pipeline::step::step_files(&state.config.sql_dir).unwrap_or_default() {
        hasher.update(file.path.to_string_lossy().as_bytes());
        if let Ok(meta) = std::fs::metadata(&file.path) {
            hasher.update(meta.len().to_le_bytes());
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            hasher.update(modified.to_le_bytes());
        }
    }
    format!("|sql:{:x}", hasher.finalize())
}

/// Answers with the page cached under `key`, rendering it with `make` on a miss, like the API
/// caches its responses: `key` names every version the page read, so a new version is a new key
/// and a page is never served stale; `If-None-Match` gets 304 while the key holds.
pub(super) async fn cached_page<F>(
    state: &AppState,
    headers: &HeaderMap,
    cache: &'static str,
    key: String,
    make: F,
) -> Response
where
    F: Future<Output = ApiResult<String>>,
{
    let key = format!("ui|{key}");
    let made = state
        .cache
        .get_or_make(cache, key.clone(), async {
            make.await
                .map(|html| Cached::new(&key, "text/html; charset=utf-8", html))
        })
        .await;
    match made {
        Ok(page) => page.respond(headers),
        Err(e) => api_error_page(e),
    }
}

/// A rendered page, or the error for it.
pub(super) fn html(page: &impl Template) -> ApiResult<String> {
    page.render()
        .map_err(|e| ApiError::internal(format!("rendering a dashboard page: {e}")))
}

/// The page for an error the JSON API would answer with: same status, its message.
pub(super) fn api_error_page(e: crate::api::error::ApiError) -> Response {
    let heading = match e.status {
        StatusCode::NOT_FOUND => "Not found",
        status if status.is_client_error() => "Cannot show this",
        _ => "Something went wrong",
    };
    if e.status.is_server_error() {
        tracing::error!(error = %e.message, "dashboard page failed");
    }
    error_page(e.status, heading, &e.message)
}

pub(super) fn internal(e: crate::error::Error) -> Response {
    tracing::error!(error = %crate::error::error_chain(&e), "dashboard page failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        &crate::error::error_chain(&e),
    )
}

/// A field of a JSON row as text (`""` for null or missing; numbers as written).
pub(super) fn text(row: &Value, key: &str) -> String {
    match row.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(value) => crate::output::cell_text(value),
    }
}
