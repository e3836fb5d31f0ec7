//! The one place DataFusion sessions are made.
//!
//! Every `SessionContext` in Strata comes from [`new_session`]: sessions over the lake
//! ([`crate::catalog::Lake::session`] adds the lake's tables to one), sessions that write batches
//! to Delta, and scratch sessions that query batches already in memory (expectations, API
//! indexes). Settings that must hold everywhere (the memory pool, spilling, later a distributed
//! engine) are set here and nowhere else.
//!
//! Invariant: a session's planner knows deltalake's write nodes, so a Delta write can be planned
//! in any session.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::delta_datafusion::planner::DeltaPlanner;

use crate::error::Result;

/// How a DataFusion session is configured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionOptions {
    /// DataFusion settings passed through verbatim (`datafusion.execution.batch_size` ...).
    pub datafusion: BTreeMap<String, String>,
    /// Memory pool size; `None` is unbounded.
    pub memory_limit_bytes: Option<usize>,
}

/// A session configured by `options`. Fails only when a DataFusion setting is refused (the config
/// checks them at load, so in practice never for the config's own options).
pub fn new_session(options: &SessionOptions) -> Result<SessionContext> {
    let mut config = SessionConfig::new().with_information_schema(true);
    for (key, value) in &options.datafusion {
        config.options_mut().set(key, value)?;
    }
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(bytes) = options.memory_limit_bytes {
        // Fair spilling: sorts and aggregations spill to disk instead of growing past the pool.
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(bytes)));
    }
    let runtime = runtime.build_arc()?;
    // deltalake's planner is needed for Delta writes planned in this session (MetricObserver nodes).
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_query_planner(DeltaPlanner::new())
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// A session with default options, for writing batches to Delta or querying batches in memory.
pub fn scratch_session() -> SessionContext {
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_query_planner(DeltaPlanner::new())
        .build();
    SessionContext::new_with_state(state)
}
