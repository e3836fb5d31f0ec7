//! `POST /v1/query`: one read-only SQL query over the lake.
//!
//! Only a single `SELECT` / `WITH` query is accepted (checked on the parsed statement, then again
//! by DataFusion's read-only planning options): DDL, DML, `COPY`, `SET`, `EXPLAIN` and several
//! statements get 400 `read_only`. The query runs in its own session with a memory pool
//! (`serve.query_memory_limit_mb`), at most `serve.query_max_rows` rows come back, and it is
//! cancelled after `serve.query_timeout_ms` (408 `timeout`). At most
//! `serve.max_concurrent_queries` run at once; the next waits for a slot (429 `too_many_queries`
//! after `serve.query_timeout_ms`).

use std::future::Future;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::api::encode::{Encoding, type_name};
use crate::api::error::{ApiError, ApiResult};
use crate::api::state::AppState;
use crate::query::read_only;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// One SELECT or WITH query; `table_version('t', N)` and `table_as_of('t', ts)` time travel.
    pub sql: String,
    /// Rows to return at most (capped at serve.query_max_rows).
    pub limit: Option<usize>,
}

/// Run a read-only query.
#[utoipa::path(post, path = "/v1/query", tag = "query", request_body = QueryRequest,
    responses(
        (status = 200, description = "`{columns: [{name, type}], rows: [...], row_count, truncated}`"),
        (status = 400, description = "read_only, bad_sql, bad_json", body = crate::api::error::ErrorBody),
        (status = 408, description = "timeout", body = crate::api::error::ErrorBody),
        (status = 413, description = "body too large", body = crate::api::error::ErrorBody),
        (status = 422, description = "memory_limit", body = crate::api::error::ErrorBody),
        (status = 429, description = "too_many_queries: serve.max_concurrent_queries were running for serve.query_timeout_ms", body = crate::api::error::ErrorBody),
    ))]
pub async fn query_run(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_body"
        };
        ApiError::new(status, code, rejection.body_text())
    })?;
    let request: QueryRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("expected {{\"sql\": \"...\", \"limit\": N}}: {e}"),
        )
    })?;
    check_read_only(&request.sql)?;

    let serve = &state.config.serve;
    let cap = request
        .limit
        .unwrap_or(serve.query_max_rows)
        .min(serve.query_max_rows);
    // Waiting for a slot is not running: the query's own time starts once it has one.
    let _slot = state.query_slot().await?;
    let run = async {
        let ctx = state.lake.session(&state.query_session_options()?)?;
        let frame = ctx
            .sql_with_options(&request.sql, read_only())
            .await
            .map_err(|e| match e.find_root() {
                datafusion::error::DataFusionError::Plan(m) if m.contains("not supported") => {
                    ApiError::bad_request("read_only", m.clone())
                }
                _ => ApiError::from(e),
            })?;
        // One row past the cap tells whether the result was cut.
        let frame = frame.limit(0, Some(cap + 1))?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await?;
        Ok::<_, ApiError>((schema, batches))
    };
    let body = answer(state.as_ref(), "the query", cap, Map::new(), run).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// Awaits `run` (a query that collects at most `cap + 1` rows) for at most
/// `serve.query_timeout_ms` (408 `timeout` naming `what`), and encodes its first `cap` rows as
/// JSON: the `envelope` fields, then `columns`, `row_count`, `truncated` and `rows`.
pub(crate) async fn answer(
    state: &AppState,
    what: &str,
    cap: usize,
    mut envelope: Map<String, Value>,
    run: impl Future<Output = ApiResult<(SchemaRef, Vec<RecordBatch>)>>,
) -> ApiResult<Vec<u8>> {
    let timeout = state.config.serve.query_timeout;
    let (schema, mut batches) = tokio::time::timeout(timeout, run).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "{what} ran longer than serve.query_timeout_ms ({} ms) and was cancelled",
                timeout.as_millis()
            ),
        )
    })??;
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let truncated = total > cap;
    if truncated {
        batches = truncate(batches, cap);
    }
    envelope.insert(
        "columns".into(),
        Value::Array(
            schema
                .fields()
                .iter()
                .map(|f| serde_json::json!({"name": f.name(), "type": type_name(f.data_type())}))
                .collect(),
        ),
    );
    envelope.insert("row_count".into(), Value::from(total.min(cap)));
    envelope.insert("truncated".into(), Value::from(truncated));
    Encoding::Json.encode(&schema, &batches, envelope)
}

/// The first `cap` rows of `batches`.
fn truncate(batches: Vec<arrow::array::RecordBatch>, cap: usize) -> Vec<arrow::array::RecordBatch> {
    let mut left = cap;
    let mut out = Vec::new();
    for batch in batches {
        if left == 0 {
            break;
        }
        let take = batch.num_rows().min(left);
        out.push(batch.slice(0, take));
        left -= take;
    }
    out
}

/// Accepts exactly one `SELECT`/`WITH` query.
pub fn check_read_only(sql: &str) -> ApiResult<()> {
    let statements =
        DFParser::parse_sql(sql).map_err(|e| ApiError::bad_request("bad_sql", e.to_string()))?;
    let refuse = |what: String| {
        ApiError::bad_request(
            "read_only",
            format!("only a single SELECT or WITH query is accepted, got {what}"),
        )
    };
    if statements.len() != 1 {
        return Err(refuse(format!("{} statements", statements.len())));
    }
    match &statements[0] {
        Statement::Statement(inner) if matches!(inner.as_ref(), SqlStatement::Query(_)) => Ok(()),
        other => Err(refuse(
            other
                .to_string()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_select_or_with_passes() {
        assert!(check_read_only("SELECT 1").is_ok());
        assert!(check_read_only("WITH a AS (SELECT 1 AS x) SELECT x FROM a").is_ok());
        for sql in [
            "INSERT INTO gold.x VALUES (1)",
            "DELETE FROM gold.x",
            "UPDATE gold.x SET a = 1",
            "CREATE TABLE t AS SELECT 1",
            "DROP TABLE gold.x",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "SET datafusion.execution.batch_size = 1",
            "SELECT 1; SELECT 2",
            "SELECT 1; DROP TABLE gold.x",
            "EXPLAIN SELECT 1",
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
        ] {
            let err = check_read_only(sql).unwrap_err();
            assert_eq!(err.code, "read_only", "{sql}: {}", err.message);
        }
    }
}
