//! The API's one error type: an HTTP status, a stable machine code and a message, rendered as
//! `{"error":{"code":"table_not_found","message":"..."}}`.
//!
//! Status follows [`crate::error::Fault`]: the client's faults (400) and the data's (422) carry
//! their message back; system failures answer 500 with a generic message and log the detail, so
//! nothing about the server's files leaks to a caller.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::error;
use utoipa::ToSchema;

use crate::error::{Error, Fault};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `table_not_found`, `bad_filter`, `read_only`, `timeout`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A server-side failure: the caller gets a generic message, the log gets the detail.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        error!(error = %detail, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::TableNotFound(table) => {
                ApiError::not_found("table_not_found", format!("table {table} does not exist"))
            }
            Error::VersionNotFound { table, version } => ApiError::not_found(
                "version_not_found",
                format!("table {table} has no version {version}"),
            ),
            Error::Usage(message) => ApiError::bad_request("bad_request", message),
            // Names the lake URL and what to check, never a secret: safe to show.
            Error::Storage(message) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                message,
            ),
            Error::Delta { table, source } if lost_the_commit_race(&source) => ApiError::new(
                StatusCode::CONFLICT,
                "commit_conflict",
                format!(
                    "{table}: other writers kept committing to this table and this write could \
                     not find a free version; nothing from this request was written: retry"
                ),
            ),
            e @ Error::StaleListing { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                e.to_string(),
            ),
            Error::Query(e) => ApiError::from(e),
            Error::DataFusion(e) => ApiError::from(e),
            other => match other.fault() {
                Fault::User => ApiError::bad_request("bad_request", other.to_string()),
                Fault::Data => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unprocessable",
                    crate::error::error_chain(&other),
                ),
                Fault::System => ApiError::internal(crate::error::error_chain(&other)),
            },
        }
    }
}

impl From<datafusion::error::DataFusionError> for ApiError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as Df;
        // A data file the store would not give (down, throttling, unreachable): the query is
        // fine and worth retrying later, so 503 like every other storage failure, not 500.
        if let Some(failure) = storage_failure(&e) {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                format!("the lake's object store failed while reading: {failure}"),
            );
        }
        match e.find_root() {
            Df::ResourcesExhausted(message) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "memory_limit",
                format!(
                    "the query needs more memory than serve.query_memory_limit_mb allows: {message}"
                ),
            ),
            Df::SQL(..) | Df::Plan(..) | Df::SchemaError(..) | Df::NotImplemented(..) => {
                ApiError::bad_request("bad_sql", e.to_string())
            }
            // Casts of user data and similar failures while executing: the query's fault.
            Df::ArrowError(..) | Df::Execution(..) => {
                ApiError::bad_request("query_failed", e.to_string())
            }
            // Functions report what is wrong with their arguments as external errors (an invalid
            // pattern in `regexp_replace`); any other external error stays internal.
            Df::External(inner) if caused_by_the_query(inner.as_ref()) => {
                ApiError::bad_request("query_failed", e.to_string())
            }
            _ => ApiError::internal(e),
        }
    }
}

/// Whether a Delta commit gave up because other writers kept taking the version it tried:
/// nothing of it is visible (its data files are written but no log entry names them).
fn lost_the_commit_race(error: &deltalake::DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    matches!(
        error,
        deltalake::DeltaTableError::Transaction {
            source: TransactionError::MaxCommitAttempts(_)
        } | deltalake::DeltaTableError::VersionAlreadyExists(_)
    )
}

/// What the object store said, when a query failed because it could not read a file.
fn storage_failure(error: &datafusion::error::DataFusionError) -> Option<String> {
    if let Some(store_error) = crate::storage::find_object_store_error(error) {
        return Some(crate::storage::summary(store_error));
    }
    // Reading a Parquet footer, DataFusion turns the store's error into the text of a Parquet
    // error ("Failed to fetch metadata for file ...: Object Store error: ..."): only its
    // wording is left to recognise it by.
    const STORE_ERROR: &str = "Object Store error: ";
    match error.find_root() {
        datafusion::error::DataFusionError::ParquetError(parquet) => {
            let text = parquet.to_string();
            let at = text.find(STORE_ERROR)?;
            Some(text[at + STORE_ERROR.len()..].to_string())
        }
        _ => None,
    }
}

/// Whether an external error inside a query is the query's own fault: an argument a function
/// refused (a regular expression, a value Arrow cannot convert).
fn caused_by_the_query(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    error.downcast_ref::<regex::Error>().is_some()
        || error.downcast_ref::<arrow::error::ArrowError>().is_some()
}

/// Handler result.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// Middleware: gives every error response the JSON shape, including those produced outside the
/// handlers (axum's extractor rejections such as `?k=abc`, tower's body-limit 413).
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    // JSON errors pass as they are, and so do the dashboard's HTML error pages.
    let already_rendered = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || already_rendered {
        return response;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string()
    } else {
        text
    };
    ApiError::new(status, code, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::kernel::transaction::TransactionError;

    #[test]
    fn a_write_that_lost_every_commit_race_is_a_conflict_to_retry_not_a_server_fault() {
        let gave_up = Error::delta(
            "bronze.ratings",
            deltalake::DeltaTableError::Transaction {
                source: TransactionError::MaxCommitAttempts(15),
            },
        );
        let answer = ApiError::from(gave_up);
        assert_eq!(answer.status, StatusCode::CONFLICT);
        assert_eq!(answer.code, "commit_conflict");
        assert!(
            answer.message.contains("bronze.ratings"),
            "{}",
            answer.message
        );
        let broken = Error::delta(
            "bronze.ratings",
            deltalake::DeltaTableError::Generic("log unreadable".into()),
        );
        assert_eq!(
            ApiError::from(broken).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
