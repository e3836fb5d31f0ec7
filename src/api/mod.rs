//! `strata serve`: the HTTP API over the lake (axum).
//!
//! Gold and every other table page by page with filters and time travel, version history and
//! schemas, read-only SQL, named queries with typed parameters (`sql/api/<name>.sql` at
//! `/v1/q/<name>`, `named_queries`), recommendations and similar items from the ALS step's gold tables,
//! the trained models (`system.model_runs`) and predictions from classifier models,
//! pipeline runs (started by admins or the `[schedule]`), Prometheus metrics and an OpenAPI 3.1
//! document generated from the handlers; diffs of two table versions; and the `/ui` dashboard
//! (`ui`), HTML pages over the same data.
//!
//! Invariants: every response is computed from pinned Delta snapshots and cached under the versions
//! it read, so nothing stale is served once the refresher (or `POST /v1/admin/refresh`) has seen a
//! new version; errors are `{"error":{"code","message"}}` with stable codes; with auth on, only
//! `serve.open_paths` answer without a valid token; every answer carries the security headers
//! (`headers`) and connections are capped in all and per client (`listener`).

pub mod auth;
pub mod cache;
pub mod encode;
pub mod error;
pub mod headers;
pub mod index;
pub mod listener;
pub mod metrics;
pub mod models;
pub mod named_queries;
pub mod page;
pub mod routes;
pub mod snapshots;
pub mod state;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::{info, warn};
use utoipa::OpenApi;

use crate::config::Config;
use crate::error::{Error, Result};
use error::ApiError;
use routes::models as model_routes;
use routes::{admin, health, named, query, recommendations, rows, runs, tables};
use state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Strata", description = "Lakehouse tables, read-only SQL, recommendations and model predictions over Delta Lake."),
    paths(
        health::health_get,
        health::ready_get,
        tables::tables_list,
        tables::table_read,
        tables::table_history,
        tables::table_schema,
        tables::table_diff,
        rows::rows_post,
        query::query_run,
        recommendations::recommendations_get,
        recommendations::similar_get,
        model_routes::models_list,
        model_routes::model_get,
        model_routes::predict_post,
        admin::refresh_post,
        runs::runs_post,
        runs::runs_list,
        runs::run_get,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The router with every route and layer.
pub fn router(state: Arc<AppState>) -> Router {
    let serve = &state.config.serve;
    let mut app = Router::new()
        .route("/health", get(health::health_get))
        .route("/ready", get(health::ready_get))
        .route("/metrics", get(metrics_get))
        .route("/openapi.json", get(openapi_get))
        .route("/v1/tables", get(tables::tables_list))
        .route("/v1/tables/{table}", get(tables::table_read))
        .route("/v1/tables/{table}/history", get(tables::table_history))
        .route("/v1/tables/{table}/schema", get(tables::table_schema))
        .route("/v1/tables/{table}/diff", get(tables::table_diff))
        .route("/v1/tables/{table}/rows", post(rows::rows_post))
        .route("/v1/query", post(query::query_run))
        .route("/v1/q/{name}", get(named::named_query_get))
        .route(
            "/v1/users/{user_id}/recommendations",
            get(recommendations::recommendations_get),
        )
        .route(
            "/v1/items/{item_id}/similar",
            get(recommendations::similar_get),
        )
        .route("/v1/models", get(model_routes::models_list))
        .route("/v1/models/{name}", get(model_routes::model_get))
        .route(
            "/v1/models/{name}/predict",
            post(model_routes::predict_post),
        )
        .route("/v1/admin/refresh", post(admin::refresh_post))
        .route("/v1/runs", get(runs::runs_list).post(runs::runs_post))
        .route("/v1/runs/{run_id}", get(runs::run_get));
    // Named queries that declare a path of their own answer there too.
    for query in state.named.iter() {
        if let Some(path) = &query.path {
            let name = query.name.clone();
            app = app.route(
                path,
                get(move |state, in_path, given, headers| {
                    named::named_path_get(state, name.clone(), in_path, given, headers)
                }),
            );
        }
    }
    let mut app = app
        .nest("/ui", ui::routes(Arc::clone(&state)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.gate),
            auth::require_token,
        ))
        .layer(RequestBodyLimitLayer::new(serve.max_body_bytes))
        .layer(axum::extract::DefaultBodyLimit::max(serve.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            serve.request_timeout,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn(headers::security_headers))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.metrics),
            metrics::track,
        ))
        .layer(TraceLayer::new_for_http());
    if let Some(cors) = cors_layer(&serve.cors_origins) {
        app = app.layer(cors);
    }
    app.with_state(state)
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_NONE_MATCH,
            ])
            .expose_headers([
                header::ETAG,
                "x-strata-version".parse().expect("header name"),
            ]),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "not_found",
        "no such endpoint (GET /openapi.json lists them)",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

async fn metrics_get(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// The handlers' document, plus one entry per named query of this server.
async fn openapi_get(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let mut document = ApiDoc::openapi();
    named::document(&mut document, &state.named);
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.to_pretty_json().unwrap_or_default(),
    )
}

/// A bound, not yet serving, server: lets callers (and tests) learn the port before serving.
pub struct Server {
    listener: listener::CappedListener,
    state: Arc<AppState>,
}

impl Server {
    /// Builds the state and binds `addr` (port 0 picks a free port).
    pub async fn bind(config: Arc<Config>, addr: SocketAddr) -> Result<Server> {
        let state = AppState::try_new(config)?;
        // A scheduled server writes by itself: check the store can commit safely before accepting
        // requests. Otherwise the check waits for the first write (POST /v1/runs, rows), so a
        // server with read-only credentials still serves.
        let writes_on_its_own = state.config.schedule.is_some();
        state.lake.check_access(writes_on_its_own).await?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Serve {
                what: format!("cannot listen on {addr}"),
                source,
            })?;
        let serve = &state.config.serve;
        if serve.auth.is_none() && !addr.ip().is_loopback() {
            warn!(%addr, "auth is off and the server listens beyond this machine: anyone who \
                can reach the port can read every table and start runs (set [serve.auth])");
        }
        let listener = listener::CappedListener::new(
            listener,
            serve.max_connections,
            serve.max_connections_per_client,
        );
        Ok(Server { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        axum::serve::Listener::local_addr(&self.listener).expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let state = Arc::clone(&self.state);
        let interval = state.config.serve.refresh_interval;
        let refresher = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                state.refresh().await;
            }
        });
        let scheduler = self.state.config.schedule.clone().map(|schedule| {
            info!(cron = %schedule.cron.pattern.to_string(), "scheduler on");
            tokio::spawn(crate::pipeline::trigger::drive(
                schedule,
                Arc::clone(&self.state.runner),
            ))
        });
        info!(addr = %self.local_addr(), lake = %self.state.lake.root(), "serving");
        let result = axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| Error::Serve {
                what: "the server failed".into(),
                source,
            });
        refresher.abort();
        if let Some(scheduler) = scheduler {
            scheduler.abort();
        }
        result
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    info!("shutting down: finishing requests in flight");
}
