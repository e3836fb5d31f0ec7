//! The web dashboard at `/ui`: HTML rendered on the server from askama templates
//! (`src/api/ui/templates/`, checked at compile time) over the data the JSON API serves. Pages
//! read without JavaScript (there is none); charts, the timeline and the step graph are SVG drawn
//! on the server; the one stylesheet is embedded in the binary and served under a content hash
//! with a year-long cache. Errors under `/ui` are HTML pages, not the API's JSON.
//!
//! Pages: runs (`runs`: the runs × steps grid with the form that starts a run, one run with its
//! timeline), the step graph (`graph`), tables (`tables`: catalog, preview at any version, history,
//! lineage, diffs) and models (`models`: runs, comparisons, trying a model). `session` signs users
//! in when JWT auth is on; `html` holds what every page shares and `chart` the SVG charts.
//!
//! Direction: these modules read through the API's own pieces (snapshots, the response cache,
//! `routes::*` helpers, `run_log`, `inspect`); nothing outside `ui` depends on them but the router.

mod chart;
mod graph;
mod html;
mod models;
mod runs;
mod session;
mod tables;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::routing::{get, post};

use crate::api::state::AppState;

/// Whether a request path is the dashboard's (`/ui` and below): it signs users in itself and
/// gets the dashboard's headers.
pub fn is_dashboard_path(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// The dashboard's routes, nested under `/ui` by [`crate::api::router`]; [`session`] guards them.
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/runs") }))
        .route("/login", get(session::login_form).post(session::login_post))
        .route("/logout", post(session::logout_post))
        .route("/runs", get(runs::runs_page).post(runs::trigger_post))
        .route("/runs/{run_id}", get(runs::run_page))
        .route("/graph", get(graph::graph_page))
        .route("/tables", get(tables::tables_page))
        .route("/tables/{table}", get(tables::table_page))
        .route("/tables/{table}/rows", get(tables::rows_download))
        .route("/tables/{table}/diff", get(tables::diff_page))
        .route("/tables/{table}/lineage", get(tables::lineage_page))
        .route("/models", get(models::models_page))
        .route("/models/{name}", get(models::model_page))
        .route("/models/{name}/compare", get(models::compare_page))
        .route("/assets/{file}", get(html::asset))
        .fallback(|| async {
            html::error_page(StatusCode::NOT_FOUND, "Not found", "No such page.")
        })
        .layer(axum::middleware::from_fn_with_state(
            state,
            session::require_session,
        ))
}
