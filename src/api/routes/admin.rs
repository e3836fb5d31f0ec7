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
    let moved = state.refresh().await;
    Json(Refreshed {
        moved: moved
            .into_iter()
            .map(|(table, version)| MovedTable {
                table: table.to_string(),
                version,
            })
            .collect(),
    })
}
