//! Admin endpoints (role `admin` when auth is on).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Refreshed {
    /// Tables whose served version moved, with the new version.
    pub moved: Vec<MovedTable>,
    /// Tables whose latest version could not be read (the store is down, say): they are still
    /// served at their last version.
    pub failed: Vec<FailedTable>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailedTable {
    pub table: String,
    pub error: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MovedTable {
    pub table: String,
    pub version: u64,
}

/// Pick up new Delta versions now instead of at the next refresh tick (e.g. right after a
/// pipeline run).
#[utoipa::path(post, path = "/v1/admin/refresh", tag = "admin",
    responses((status = 200, body = Refreshed), (status = 401), (status = 403)))]
pub async fn refresh_post(State(state): State<Arc<AppState>>) -> Json<Refreshed> {
    let refresh = state.refresh().await;
    Json(Refreshed {
        moved: refresh
            .moved
            .into_iter()
            .map(|(table, version)| MovedTable {
                table: table.to_string(),
                version,
            })
            .collect(),
        failed: refresh
            .failed
            .into_iter()
            .map(|(table, error)| FailedTable {
                table: table.to_string(),
                error,
            })
            .collect(),
    })
}
