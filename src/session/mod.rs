//! The one place DataFusion sessions are made.
//!
//! Every `SessionContext` in Strata comes from [`new_session`]: sessions over the lake
//! ([`crate::catalog::Lake::session`] adds the lake's tables to one), sessions that write batches
//! to Delta, and scratch sessions that query batches already in memory (expectations, API
//! indexes), and sessions whose queries run on a Ballista cluster ([`on_cluster`]). Settings that
//! must hold everywhere (the memory pool, spilling, yield points that let any query be cancelled:
//! `yield_points`) are set here and nowhere else.
//!
//! Invariant: a session's planner knows deltalake's write nodes, so a Delta write can be planned
//! in any session.

mod yield_points;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::DataFusionError;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SendableRecordBatchStream, SessionStateBuilder, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use deltalake::delta_datafusion::planner::DeltaPlanner;

use crate::error::Result;
use crate::memory::{HeadroomPool, MemoryLimit, SpillArea};

/// DataFusion settings Strata changes from DataFusion's defaults (a user's `[datafusion]` wins).
///
/// - Join selection through the statistics registry: without distinct counts (Delta keeps none)
///   the default estimator guesses a fact table joined to a dimension is as small as the
///   dimension, and then builds the next hash join, which cannot spill, on the fact side.
///   The registry assumes the worst and builds on the side known to be small.
/// - Spill files compressed: spilling is disk-bound on small machines.
const DEFAULT_SETTINGS: [(&str, &str); 2] = [
    ("datafusion.optimizer.use_statistics_registry", "true"),
    ("datafusion.execution.spill_compression", "lz4_frame"),
];

/// Each sort keeps this share of the pool back for merging its spills (DataFusion's 10 MiB default
/// is too much when a step sorts in several partitions inside a pool of tens of MiB).
const SORT_RESERVATION_DIVISOR: usize = 32;

/// DataFusion's (and deltalake's) default Parquet row group, in rows.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 1024 * 1024;

/// How a DataFusion session is configured. Sessions made from one `SessionOptions` (and its
/// clones) share one memory pool and spill area: the limit holds for everything they run at once.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// DataFusion settings passed through verbatim (`datafusion.execution.batch_size` ...).
    pub datafusion: BTreeMap<String, String>,
    /// The pool's size, and where it came from, for error messages.
    pub memory: MemoryLimit,
    runtime: Arc<RuntimeEnv>,
    /// Kept alive as long as sessions may spill into it.
    _spill: Option<Arc<SpillArea>>,
}

impl SessionOptions {
    /// Options whose sessions share a pool of `memory` and spill into `spill` (the operating
    /// system's temp directory when `None`).
    pub fn new(
        datafusion: BTreeMap<String, String>,
        memory: MemoryLimit,
        spill: Option<Arc<SpillArea>>,
    ) -> Result<SessionOptions> {
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(bytes) = memory.bytes {
            // Sorts, aggregations and sort-merge joins spill to disk instead of growing past the
            // pool, and leave room for the operators that cannot (writers, hash-join builds).
            runtime = runtime.with_memory_pool(Arc::new(HeadroomPool::new(bytes)));
        }
        if let Some(area) = &spill {
            runtime = runtime.with_temp_file_path(area.path());
        }
        Ok(SessionOptions {
            datafusion,
            memory,
            runtime: runtime.build_arc()?,
            _spill: spill,
        })
    }
}

impl Default for SessionOptions {
    /// No pool limit, DataFusion's own settings and temp directory: for reading Strata's small
    /// system tables.
    fn default() -> Self {
        SessionOptions {
            datafusion: BTreeMap::new(),
            memory: MemoryLimit::resolve(crate::memory::MemoryLimitSetting::Unbounded),
            runtime: Arc::new(RuntimeEnv::default()),
            _spill: None,
        }
    }
}

impl SessionOptions {
    /// A reservation in the run's memory pool for memory Strata holds itself (a model being
    /// trained), so it counts against the limit together with DataFusion's operators. It cannot
    /// spill; name it with [`crate::memory::held_in_memory`].
    pub fn reservation(&self, consumer: String) -> MemoryReservation {
        MemoryConsumer::new(consumer).register(&self.runtime.memory_pool)
    }
}

/// A session configured by `options`. Fails only when a DataFusion setting is refused (the config
/// checks them at load, so in practice never for the config's own options).
pub fn new_session(options: &SessionOptions) -> Result<SessionContext> {
    let mut config = SessionConfig::new().with_information_schema(true);
    let mut settings: BTreeMap<String, String> = DEFAULT_SETTINGS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(bytes) = options.memory.bytes {
        let reservation = (bytes / SORT_RESERVATION_DIVISOR).min(10 << 20);
        settings.insert(
            "datafusion.execution.sort_spill_reservation_bytes".into(),
            reservation.to_string(),
        );
        // A Parquet writer (a SQL step's staged result, a Delta commit) holds a whole row group
        // in memory and cannot spill it: keep a row group within an eighth of the pool, at ~128
        // bytes a row.
        let rows = (bytes / 8 / 128).clamp(8192, DEFAULT_ROW_GROUP_ROWS);
        settings.insert(
            "datafusion.execution.parquet.max_row_group_size".into(),
            rows.to_string(),
        );
    }
    settings.extend(options.datafusion.clone());
    for (key, value) in &settings {
        config.options_mut().set(key, value)?;
    }
    // deltalake's planner is needed for Delta writes planned in this session (MetricObserver nodes).
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(Arc::clone(&options.runtime))
        .with_query_planner(DeltaPlanner::new())
        .with_physical_optimizer_rule(Arc::new(yield_points::YieldAboveRowMultipliers))
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// `ctx` with its queries planned and run on the Ballista scheduler at `scheduler_endpoint`
/// (`http://host:port`): the logical plan is serialized and sent there, the rows stream back.
/// Its tables must serialize (plain scans, see [`crate::catalog::file_scan`]); it cannot write.
pub fn on_cluster(ctx: &SessionContext, scheduler_endpoint: String) -> Result<SessionContext> {
    // Ballista rebuilds the state from its config, and a config that asks for a default catalog
    // gets a fresh, empty one over the session's (the lake's tables would vanish). Rebuilding
    // once first records in the config that the default catalog exists.
    let state = SessionStateBuilder::new_from_existing(ctx.state()).build();
    let state = state.upgrade_for_ballista(scheduler_endpoint)?;
    // Ballista 55's adaptive planner (on by default) never finishes a job whose stage reads an
    // empty input (a filter that keeps no rows under UNION ALL and a window: it creates tasks
    // without end); the static planner runs the same plans. See BENCHMARKS.md and issue 16's note.
    let config = state
        .config()
        .clone()
        .with_ballista_adaptive_query_planner(false);
    let state = SessionStateBuilder::new_from_existing(state)
        .with_config(config)
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

/// A DataFrame over rows that arrive as a stream and can be read once: an ingest's parser sends
/// batches from its own thread and the Delta writer consumes them as they come, so no more than
/// the stream's buffered batches are in memory, whatever the file's size.
pub fn read_stream(ctx: &SessionContext, stream: SendableRecordBatchStream) -> Result<DataFrame> {
    let schema = stream.schema();
    let once = OnceStream {
        schema: Arc::clone(&schema),
        stream: Mutex::new(Some(stream)),
    };
    let table = StreamingTable::try_new(schema, vec![Arc::new(once)])?;
    Ok(ctx.read_table(Arc::new(table))?)
}

/// One partition whose stream is handed out to the first execution; a second one fails.
struct OnceStream {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for OnceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnceStream").finish_non_exhaustive()
    }
}

impl PartitionStream for OnceStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().map(|mut s| s.take()).unwrap_or(None);
        taken.unwrap_or_else(|| {
            let again = futures::stream::once(async {
                Err(DataFusionError::Internal(
                    "a stream of rows was read twice; it can be read once".into(),
                ))
            });
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                again,
            ))
        })
    }
}
