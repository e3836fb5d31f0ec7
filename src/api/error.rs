//! The API's one error type: an HTTP status, a stable machine code and a message, rendered as
//! `{"error":{"code":"table_not_found","message":"..."}}`.
//!
//! Client faults carry their message back; internal failures answer a generic message and log the
//! detail, so nothing about the server's files leaks to a caller.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::error;
use utoipa::ToSchema;

use crate::error::Error;

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
            Error::Query(e) => ApiError::from(e),
            Error::DataFusion(e) => ApiError::from(e),
            other => ApiError::internal(crate::error::error_chain(&other)),
        }
    }
}

impl From<datafusion::error::DataFusionError> for ApiError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as Df;
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
            _ => ApiError::internal(e),
        }
    }
}

/// Handler result.
pub type ApiResult<T> = std::result::Result<T, ApiError>;
