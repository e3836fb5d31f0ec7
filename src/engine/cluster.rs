//! `strata cluster scheduler` and `strata cluster executor`: Ballista's scheduler and executor,
//! started from the Strata binary so one image serves every role.
//!
//! What Strata adds to Ballista's own processes: each registers the lake's object store from its
//! own configuration (`--lake`, `[lake.storage_options]`, `AWS_*`), so plain Parquet scans of an
//! S3 lake resolve on every node and no secret travels in a query or appears in a log; and each
//! prints one line saying where it listens.
//!
//! Both run until they are stopped (Ctrl-C or SIGTERM for the executor, which then deregisters).

use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use object_store::ObjectStore;
use url::Url;

use super::ClusterUrl;
use crate::error::{Error, Result};
use crate::storage::RemoteLake;

/// The lake's store as every node registers it (`None` for a lake on local disk, which
/// DataFusion's default local file system already reads).
#[derive(Clone)]
pub struct LakeStore(Option<(Url, Arc<dyn ObjectStore>)>);

impl LakeStore {
    pub fn of(remote: Option<&RemoteLake>) -> LakeStore {
        LakeStore(remote.map(RemoteLake::bucket_store))
    }

    /// A runtime that reads the lake, spilling into `temp_dir` when given.
    fn runtime(&self, temp_dir: Option<&str>) -> datafusion::error::Result<Arc<RuntimeEnv>> {
        let mut builder = RuntimeEnvBuilder::new();
        if let Some(dir) = temp_dir {
            builder = builder.with_temp_file_path(dir);
        }
        let runtime = builder.build()?;
        if let Some((url, store)) = &self.0 {
            runtime.register_object_store(url, Arc::clone(store));
        }
        Ok(Arc::new(runtime))
    }
}

/// How the scheduler is started.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The host executors and clients use to reach this scheduler (advertised to them).
    pub external_host: String,
    /// Seconds without a heartbeat after which an executor is presumed lost and its tasks run
    /// elsewhere.
    pub executor_timeout_seconds: u64,
}

/// Runs a scheduler on `listener` until the process is stopped.
pub async fn run_scheduler(
    listener: tokio::net::TcpListener,
    options: SchedulerOptions,
    lake: LakeStore,
) -> Result<()> {
    let address = listener
        .local_addr()
        .map_err(|e| Error::Cluster(format!("the scheduler's socket: {e}")))?;
    let runtime = lake
        .runtime(None)
        .map_err(|e| Error::Cluster(format!("the scheduler's runtime: {e}")))?;
    // Ballista's own session, with the lake's store: the scheduler lists and plans the scans.
    let session_builder = Arc::new(move |config: SessionConfig| {
        Ok(
            SessionStateBuilder::new_from_existing(default_session_builder(config)?)
                .with_runtime_env(Arc::clone(&runtime))
                .build(),
        )
    });
    // Executors pull their tasks. With Ballista 55's push policy, an executor lost after a map
    // stage finished makes the scheduler roll the next stage back, ignore the status of that
    // stage's task still running on a healthy executor and never give back its task slot: the
    // job, and every later one, waits forever. Pulling executors report their own free slots,
    // and the job recovers (the map stage runs again on the executor left).
    let mut config = SchedulerConfig::default()
        .with_hostname(options.external_host.clone())
        .with_port(address.port())
        .with_scheduler_policy(TaskSchedulingPolicy::PullStaged)
        .with_override_session_builder(session_builder);
    config.bind_host = address.ip().to_string();
    config.executor_timeout_seconds = options.executor_timeout_seconds;
    config.no_executors_grace_period_seconds = options.executor_timeout_seconds;
    let config = Arc::new(config);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(cluster_error)?;
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config)
        .await
        .map_err(cluster_error)?;
    println!(
        "ballista scheduler {} listening on {address} (clients: [engine] url = \"df://{}:{}\")",
        ballista_core::BALLISTA_VERSION,
        options.external_host,
        address.port()
    );
    start_grpc_service_with_listener(listener, scheduler)
        .await
        .map_err(cluster_error)
}

/// How an executor is started.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub scheduler: ClusterUrl,
    /// The address the executor's services bind to.
    pub bind_host: String,
    /// The host the scheduler and other executors use to reach this one.
    pub external_host: Option<String>,
    /// Arrow Flight port: shuffle data and results are fetched from here.
    pub flight_port: u16,
    /// gRPC port: the executor's own service (the scheduler cancels tasks and removes job data
    /// through it).
    pub grpc_port: u16,
    /// Tasks run at once (0: one per core).
    pub concurrent_tasks: usize,
    /// Shuffle files and spills (a fresh temporary directory when `None`).
    pub work_dir: Option<PathBuf>,
    /// The memory pool shared by this executor's tasks; `None` lets Ballista take a share of the
    /// machine's memory (it prints which).
    pub memory_limit_mb: Option<u64>,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat_seconds: u64,
}

/// Runs an executor until it is stopped (Ctrl-C or SIGTERM), registered with the scheduler.
pub async fn run_executor(options: ExecutorOptions, lake: LakeStore) -> Result<()> {
    let work_dir = options
        .work_dir
        .as_ref()
        .map(|dir| {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            Ok::<_, Error>(dir.display().to_string())
        })
        .transpose()?;
    let producer_dir = work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: options.bind_host.clone(),
        external_host: options.external_host.clone(),
        port: options.flight_port,
        grpc_port: options.grpc_port,
        scheduler_host: options.scheduler.host.clone(),
        scheduler_port: options.scheduler.port,
        // Wait for a scheduler that starts after the executor (compose starts both at once).
        scheduler_connect_timeout_seconds: 30,
        vcores: options.concurrent_tasks,
        // Must match the scheduler's (see `run_scheduler`).
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        work_dir: work_dir.clone(),
        print_thread_info: false,
        memory_pool_size: options.memory_limit_mb.map(|mb| mb << 20),
        executor_heartbeat_interval_seconds: options.heartbeat_seconds,
        override_runtime_producer: Some(Arc::new(move |_config: &SessionConfig| {
            lake.runtime(producer_dir.as_deref())
        })),
        override_config_producer: Some(Arc::new(SessionConfig::new_with_ballista)),
        // Every function a Strata session plans with: Ballista's default registry lacks the
        // nested ones (array_element, make_array, string_to_array ...); its default session
        // state (DataFusion's defaults and Ballista's own functions) has them all.
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(
            &default_session_builder(SessionConfig::new_with_ballista())
                .map_err(|e| Error::Cluster(format!("the executor's functions: {e}")))?,
        ))),
        ..Default::default()
    };
    println!(
        "ballista executor {} serving on {}:{} (tasks on {}), registering with {}",
        ballista_core::BALLISTA_VERSION,
        options.bind_host,
        options.flight_port,
        options.grpc_port,
        options.scheduler
    );
    start_executor_process(Arc::new(config))
        .await
        .map_err(cluster_error)
}

fn cluster_error(e: ballista_core::error::BallistaError) -> Error {
    Error::Cluster(format!("ballista: {e}"))
}
