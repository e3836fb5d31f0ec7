//! `GET /health` (the process answers) and `GET /ready` (the lake can be read).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::error::{ApiError, ApiResult};
use crate::api::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub status: &'static str,
    /// Tables in the lake.
    pub tables: usize,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Health)))]
pub async fn health_get() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the lake can be listed (its directory, or its bucket and prefix).
#[utoipa::path(get, path = "/ready", tag = "health", responses(
    (status = 200, body = Ready),
    (status = 503, body = crate::api::error::ErrorBody)
))]
pub async fn ready_get(State(state): State<Arc<AppState>>) -> ApiResult<Json<Ready>> {
    let unavailable = |detail: String| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "lake_unavailable",
            format!("the lake at {} cannot be read: {detail}", state.lake.root()),
        )
    };
    if let Some(root) = state.lake.local_root()
        && let Err(e) = std::fs::read_dir(root)
    {
        return Err(unavailable(e.to_string()));
    }
    let tables = state
        .lake
        .list()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(Json(Ready {
        status: "ready",
        tables: tables.len(),
    }))
}
