//! What every handler shares: the lake, the configuration, the served snapshots, the response
//! cache, the recommendation indexes, the loaded classifier models, metrics and the token verifier.

use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::auth::{Gate, Verifier};
use crate::api::cache::ResponseCache;
use crate::api::error::{ApiError, ApiResult};
use crate::api::index::Indexes;
use crate::api::metrics::Metrics;
use crate::api::models::Models;
use crate::api::named_queries::NamedQueries;
use crate::api::snapshots::Snapshots;
use crate::catalog::{Lake, SessionOptions};
use crate::config::Config;
use crate::error::Result;
use crate::memory::{MemoryLimit, SpillArea};
use crate::pipeline::trigger::Runner;

#[derive(Debug)]
pub struct AppState {
    pub lake: Arc<Lake>,
    pub config: Arc<Config>,
    pub snapshots: Snapshots,
    pub cache: ResponseCache,
    pub indexes: Indexes,
    /// Classifier models loaded for predictions.
    pub models: Models,
    pub metrics: Arc<Metrics>,
    /// Who may call what (`None` verifier: auth is off).
    pub gate: Arc<Gate>,
    /// Starts pipeline runs (`POST /v1/runs`, the schedule).
    pub runner: Arc<Runner>,
    /// The named queries of `sql/api/`, read when the server starts.
    pub named: NamedQueries,
    /// Where `POST /v1/query` spills (under `run.spill_dir`), for the server's lifetime.
    pub spill: Arc<SpillArea>,
    /// Queries (SQL, diffs) running at once, each with its own memory pool: together they hold at
    /// most `serve.max_concurrent_queries` x `serve.query_memory_limit_mb`.
    query_slots: Arc<Semaphore>,
}

impl AppState {
    pub fn try_new(config: Arc<Config>) -> Result<Arc<AppState>> {
        let lake = Arc::new(Lake::from_config(&config.lake)?);
        let metrics = Arc::new(Metrics::new());
        let verifier = config
            .serve
            .auth
            .as_ref()
            .map(Verifier::try_new)
            .transpose()?;
        Ok(Arc::new(AppState {
            spill: Arc::new(SpillArea::open(&config.spill_root())?),
            query_slots: Arc::new(Semaphore::new(config.serve.max_concurrent_queries)),
            runner: Arc::new(Runner::new(Arc::clone(&config), Arc::clone(&lake))),
            snapshots: Snapshots::new(Arc::clone(&lake)),
            cache: ResponseCache::new(
                config.serve.cache_entries,
                config.serve.cache_max_bytes,
                Arc::clone(&metrics),
            ),
            indexes: Indexes::default(),
            named: NamedQueries::load(&config.sql_dir)?,
            models: Models::default(),
            lake,
            gate: Arc::new(Gate {
                verifier,
                open_paths: config.serve.open_paths.clone(),
            }),
            config,
            metrics,
        }))
    }

    /// Session settings for one `POST /v1/query`: the config's DataFusion options and a pool of
    /// its own (one query cannot starve another). Hold a [`Self::query_slot`] while it runs.
    pub fn query_session_options(&self) -> Result<SessionOptions> {
        let limit = MemoryLimit::configured(
            "serve.query_memory_limit_mb",
            (self.config.serve.query_memory_limit_bytes >> 20) as u64,
        );
        SessionOptions::new(
            self.config.datafusion.clone(),
            limit,
            Some(Arc::clone(&self.spill)),
        )
    }

    /// Waits (at most `serve.query_timeout_ms`) until fewer than `serve.max_concurrent_queries`
    /// queries run; the slot is given back when the permit is dropped. A query that cannot start
    /// in time gets 429 `too_many_queries`.
    pub async fn query_slot(&self) -> ApiResult<OwnedSemaphorePermit> {
        let serve = &self.config.serve;
        let slot = Arc::clone(&self.query_slots).acquire_owned();
        match tokio::time::timeout(serve.query_timeout, slot).await {
            Ok(permit) => Ok(permit.expect("the semaphore is never closed")),
            Err(_) => Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_queries",
                format!(
                    "{} queries were running for serve.query_timeout_ms ({} ms); retry later",
                    serve.max_concurrent_queries,
                    serve.query_timeout.as_millis()
                ),
            )),
        }
    }

    /// Picks up new table versions now; publishes the served versions to `/metrics`.
    pub async fn refresh(&self) -> crate::api::snapshots::Refresh {
        let refresh = self.snapshots.refresh().await;
        for (table, version) in self.snapshots.versions() {
            self.metrics.set_table_version(&table.to_string(), version);
        }
        refresh
    }
}
