//! `strata fixtures serve`: a local stand-in for a JSON API, serving recorded fixture files, so an
//! `http` source can be tried and tested offline.
//!
//! Every `<dir>/<resource>.json` (a JSON array) is served the way the SpaceX v4 API serves its
//! collections: `GET /v4/<resource>` returns the whole array, and `POST /v4/<resource>/query` with
//! `{"options": {"page": N, "limit": M}}` returns one page in the mongoose-paginate shape
//! (`docs`, `totalDocs`, `page`, `hasNextPage`, `nextPage`, ...). Files are read on every request,
//! so editing a fixture is visible to the next fetch. `failures` (e.g. `[429, 500]`) are answered,
//! in order, to the first requests, to exercise a client's retries.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// Page size when a query names none (the SpaceX API's default is 10).
const DEFAULT_LIMIT: usize = 10;

#[derive(Debug)]
struct Fixtures {
    dir: PathBuf,
    failures: Mutex<VecDeque<u16>>,
}

/// The fixture API's routes over `dir`.
pub fn router(dir: &Path, failures: Vec<u16>) -> Router {
    let state = Arc::new(Fixtures {
        dir: dir.to_path_buf(),
        failures: Mutex::new(failures.into()),
    });
    Router::new()
        .route("/v4/{resource}", get(list))
        .route("/v4/{resource}/query", post(query))
        .with_state(state)
}

/// Binds `addr` and serves until the process ends; returns the bound address first.
pub async fn bind(
    dir: &Path,
    addr: SocketAddr,
    failures: Vec<u16>,
) -> Result<(SocketAddr, impl std::future::Future<Output = ()>)> {
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory of <resource>.json fixtures",
            dir.display()
        )));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Serve {
            what: format!("cannot listen on {addr}"),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| Error::Serve {
        what: format!("cannot listen on {addr}"),
        source,
    })?;
    let app = router(dir, failures);
    Ok((bound, async move {
        let _ = axum::serve(listener, app).await;
    }))
}

impl Fixtures {
    /// The next injected failure, if any is left.
    fn failure(&self) -> Option<Response> {
        let status = self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()?;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Some((status, Json(json!({"error": "injected failure"}))).into_response())
    }

    fn records(&self, resource: &str) -> std::result::Result<Vec<Value>, (StatusCode, String)> {
        let not_found = || (StatusCode::NOT_FOUND, format!("no fixture {resource}.json"));
        if !resource
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(not_found());
        }
        let text = std::fs::read_to_string(self.dir.join(format!("{resource}.json")))
            .map_err(|_| not_found())?;
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(records)) => Ok(records),
            _ => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{resource}.json is not a JSON array"),
            )),
        }
    }
}

fn error_response((status, message): (StatusCode, String)) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn list(
    State(fixtures): State<Arc<Fixtures>>,
    UrlPath(resource): UrlPath<String>,
) -> Response {
    if let Some(failure) = fixtures.failure() {
        return failure;
    }
    match fixtures.records(&resource) {
        Ok(records) => Json(Value::Array(records)).into_response(),
        Err(error) => error_response(error),
    }
}

async fn query(
    State(fixtures): State<Arc<Fixtures>>,
    UrlPath(resource): UrlPath<String>,
    body: Option<Json<Value>>,
) -> Response {
    if let Some(failure) = fixtures.failure() {
        return failure;
    }
    let records = match fixtures.records(&resource) {
        Ok(records) => records,
        Err(error) => return error_response(error),
    };
    let options = body
        .map(|Json(b)| b["options"].clone())
        .unwrap_or(Value::Null);
    let limit = options["limit"]
        .as_u64()
        .map(|l| l as usize)
        .filter(|l| *l > 0)
        .unwrap_or(DEFAULT_LIMIT);
    let page = options["page"].as_u64().unwrap_or(1).max(1) as usize;
    Json(paginate(&records, page, limit)).into_response()
}

/// One page of `records` in the mongoose-paginate shape the SpaceX query API answers with.
pub fn paginate(records: &[Value], page: usize, limit: usize) -> Value {
    let total = records.len();
    let total_pages = total.div_ceil(limit).max(1);
    let start = (page - 1).saturating_mul(limit).min(total);
    let docs: Vec<Value> = records[start..(start + limit).min(total)].to_vec();
    json!({
        "docs": docs,
        "totalDocs": total,
        "limit": limit,
        "totalPages": total_pages,
        "page": page,
        "pagingCounter": start + 1,
        "hasPrevPage": page > 1,
        "hasNextPage": page < total_pages,
        "prevPage": if page > 1 { json!(page - 1) } else { Value::Null },
        "nextPage": if page < total_pages { json!(page + 1) } else { Value::Null },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_spacex_query_shape() {
        let records: Vec<Value> = (1..=5).map(|i| json!({"id": i})).collect();
        let first = paginate(&records, 1, 2);
        assert_eq!(first["docs"], json!([{"id": 1}, {"id": 2}]));
        assert_eq!(
            (first["totalPages"].as_u64(), first["hasNextPage"].as_bool()),
            (Some(3), Some(true))
        );
        let last = paginate(&records, 3, 2);
        assert_eq!(last["docs"], json!([{"id": 5}]));
        assert_eq!(last["hasNextPage"], false);
        assert_eq!(paginate(&records, 9, 2)["docs"], json!([]));
    }
}
