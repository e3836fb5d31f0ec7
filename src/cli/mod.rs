//! The command line: argument definitions (clap derive) and one function per command.
//!
//! Command output goes to stdout, logs and errors to stderr; `run_output` is what `strata run` shows
//! while it runs. Exit codes are decided in [`main`] from
//! [`crate::Error::exit_code`]: 0 ok, 1 a step/ingest/expectation failed, 2 usage or config error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::catalog::{Lake, TableName};
use crate::config::{Config, DEFAULT_CONFIG_PATH, Overrides};
use crate::engine::ClusterUrl;
use crate::engine::cluster::{self, ExecutorOptions, LakeStore, SchedulerOptions};
use crate::error::{Error, Result};
use crate::inspect;
use crate::ml::als;
use crate::output::{self, Format};
use crate::pipeline::backfill::{self, BackfillRequest};
use crate::pipeline::dag::{Dag, DagFormat};
use crate::pipeline::run::{self, RunOptions, StepReport};
use crate::pipeline::run_log::{self, Trigger};
use crate::query;
use crate::sample::{self, SampleSpec};
use crate::variables::{self, RunVars};

/// Writes a line to stdout, ignoring a closed pipe (`strata tables | head` must not panic).
macro_rules! emit {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod backfill_output;
mod diff_output;
mod run_output;

use backfill_output::BackfillOutput;
use run_output::RunOutput;

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Raw files to bronze/silver/gold Delta tables by SQL steps"
)]
pub struct Cli {
    /// Config file (default: config/strata.toml when it exists in the working directory).
    #[arg(long, global = true, env = "STRATA_CONFIG")]
    pub config: Option<PathBuf>,

    /// Lake root: a directory or an s3://bucket/prefix URL (overrides lake.root).
    #[arg(long, global = true)]
    pub lake: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest raw files and run every SQL step (or a selection) into Delta tables.
    Run {
        /// Only these tables' steps (layer.name); repeatable.
        #[arg(long, num_args = 1..)]
        select: Vec<String>,
        /// Also run every step downstream of the selection.
        #[arg(long)]
        downstream: bool,
        /// Rebuild from scratch: re-ingest every file and overwrite every table.
        #[arg(long)]
        full_refresh: bool,
        /// Re-run only the steps that failed, were skipped or never ran in RUN_ID (or `last`);
        /// what that run committed is kept.
        #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["select", "downstream"])]
        resume: Option<String>,
        /// A run variable, bound in SQL steps as `$NAME` and filled into source paths as
        /// `{NAME}`; `ds` is the run's date (YYYY-MM-DD). Repeatable.
        #[arg(long = "var", value_name = "NAME=VALUE", conflicts_with = "resume")]
        vars: Vec<String>,
    },
    /// Run every day of a date range, one run per day with `ds` set to it (days already done
    /// are skipped); `--resume last` runs the days an earlier backfill did not get done.
    Backfill {
        /// First day, YYYY-MM-DD.
        #[arg(long, required_unless_present = "resume")]
        from: Option<String>,
        /// Last day, YYYY-MM-DD (included).
        #[arg(long, required_unless_present = "resume")]
        to: Option<String>,
        /// Only these tables' steps (layer.name); repeatable.
        #[arg(long, num_args = 1..)]
        select: Vec<String>,
        /// Also run every step downstream of the selection.
        #[arg(long)]
        downstream: bool,
        /// Run every day again, done or not (each day's steps replace only that day).
        #[arg(long)]
        full_refresh: bool,
        /// Days run at once (started in order).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Run the days BACKFILL_ID (or `last`) did not get done, with its range and steps.
        #[arg(long, value_name = "BACKFILL_ID",
              conflicts_with_all = ["from", "to", "select", "downstream", "full_refresh"])]
        resume: Option<String>,
    },
    /// List every table with layer, current version, rows and last commit time.
    Tables {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Every version of a table: timestamp, operation, rows written, the run that wrote it.
    History {
        table: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Run read-only SQL over the lake (time travel: table_version('t', N), table_as_of('t', 'ts')).
    Query {
        sql: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// What changed in TABLE between two versions: schema, then rows added, removed and changed.
    Diff {
        table: String,
        /// The older version.
        #[arg(long)]
        from: u64,
        /// The newer version (default: the latest).
        #[arg(long)]
        to: Option<u64>,
        /// Columns that identify a row (default: the step's unique_key, else its first unique
        /// expectation, else every column); repeatable.
        #[arg(long, num_args = 1..)]
        key: Vec<String>,
        /// Rows shown per kind of change.
        #[arg(long, default_value_t = crate::diff::DEFAULT_SAMPLE_ROWS)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Commit a new version of TABLE equal to an older version (Delta RESTORE).
    Restore {
        table: String,
        #[arg(long)]
        version: u64,
    },
    /// Serve the lake over HTTP: tables, time travel, read-only SQL, recommendations, metrics.
    Serve {
        /// Address to listen on (overrides serve.bind), e.g. 0.0.0.0:8080.
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
    },
    /// Exit 0 when a `strata serve` answers `GET /health` with 200, else 1 (the container
    /// HEALTHCHECK: no curl needed in the image).
    Healthcheck {
        /// The URL to check (default: /health on 127.0.0.1 at the port of serve.bind).
        #[arg(long)]
        url: Option<String>,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// The run history: runs newest first (`strata runs`), or one run's steps
    /// (`strata runs show RUN_ID`, or `last`).
    Runs {
        #[command(subcommand)]
        show: Option<RunsCommand>,
        /// How many runs to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Print the step graph.
    Dag {
        #[arg(long, value_enum, default_value_t = DagFormat::Text)]
        format: DagFormat,
    },
    /// Measure components against their peers.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Local stand-ins for external systems, to try the examples offline.
    #[command(subcommand)]
    Fixtures(FixturesCommand),
    /// A node of an Apache DataFusion Ballista cluster, for `[engine] kind = "ballista"`: SQL
    /// steps then run there. Each node reads the lake with this config's storage settings.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Write seeded sample data: MovieLens-1M-format files (ratings.dat, movies.dat, users.dat),
    /// or with `--kind adtech` daily ad-tech logs (ads_views/<day>.csv, product_views/<day>.csv,
    /// advertiser_ids.csv) for examples/adtech.
    Sample {
        /// What to generate.
        #[arg(long, value_enum, default_value_t = SampleKind::Movielens)]
        kind: SampleKind,
        /// Users (default 6,040, or scaled with --ratings).
        #[arg(long)]
        users: Option<u32>,
        /// Movies (default 3,706, or scaled with --ratings).
        #[arg(long)]
        items: Option<u32>,
        /// Ratings (default 1,000,209).
        #[arg(long)]
        ratings: Option<u64>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output directory (default: the configured raw directory).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        adtech: AdtechFlags,
    },
}

/// What `strata sample` generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SampleKind {
    Movielens,
    Adtech,
}

/// `strata sample --kind adtech` settings (defaults: the example's committed week).
#[derive(Debug, clap::Args)]
pub struct AdtechFlags {
    /// Days of logs (adtech).
    #[arg(long)]
    days: Option<u32>,
    /// First day, YYYY-MM-DD (adtech; default 2026-11-01).
    #[arg(long)]
    start: Option<String>,
    /// Advertisers (adtech; default 10).
    #[arg(long)]
    advertisers: Option<u32>,
    /// Products per advertiser (adtech; default 40).
    #[arg(long)]
    products: Option<u32>,
    /// Ads shown per day over every advertiser (adtech; default 2,000).
    #[arg(long)]
    impressions_per_day: Option<u64>,
    /// Product pages viewed per day (adtech; default 1,000).
    #[arg(long)]
    views_per_day: Option<u64>,
    /// Typical click-through rate (adtech; default 0.01).
    #[arg(long)]
    ctr: Option<f64>,
}

impl AdtechFlags {
    fn any(&self) -> bool {
        self.days.is_some()
            || self.start.is_some()
            || self.advertisers.is_some()
            || self.products.is_some()
            || self.impressions_per_day.is_some()
            || self.views_per_day.is_some()
            || self.ctr.is_some()
    }

    fn spec(&self, seed: u64) -> Result<sample::adtech::AdtechSpec> {
        let defaults = sample::adtech::AdtechSpec::default();
        let start = match &self.start {
            Some(text) => variables::parse_date(text)
                .map_err(|e| Error::Usage(format!("--start {text}: {e}")))?,
            None => defaults.start,
        };
        let spec = sample::adtech::AdtechSpec {
            days: self.days.unwrap_or(defaults.days),
            start,
            advertisers: self.advertisers.unwrap_or(defaults.advertisers),
            products: self.products.unwrap_or(defaults.products),
            impressions_per_day: self
                .impressions_per_day
                .unwrap_or(defaults.impressions_per_day),
            views_per_day: self.views_per_day.unwrap_or(defaults.views_per_day),
            ctr: self.ctr.unwrap_or(defaults.ctr),
            seed,
            ..defaults
        };
        spec.validate().map_err(Error::Usage)?;
        Ok(spec)
    }
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Every step attempt of one run: status, rows, version written, input versions, error.
    Show {
        /// A run id from `strata runs`, or `last`.
        run_id: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The scheduler: plans each query it receives into stages and hands their tasks to the
    /// executors. Clients name it as [engine] url = "df://HOST:PORT".
    Scheduler {
        /// Address to listen on (port 0: any free port, printed at start).
        #[arg(long, default_value = "0.0.0.0:50050")]
        bind: std::net::SocketAddr,
        /// The host executors and clients reach this scheduler by (default: the bind address,
        /// or localhost when it binds every interface).
        #[arg(long)]
        external_host: Option<String>,
        /// Seconds without a heartbeat after which an executor counts as lost and its tasks
        /// run on the others.
        #[arg(long, default_value_t = 180)]
        executor_timeout_s: u64,
    },
    /// An executor: runs tasks the scheduler sends and serves their results to other nodes.
    Executor {
        /// The scheduler: HOST:PORT or df://HOST:PORT.
        #[arg(long)]
        scheduler: String,
        /// Address the executor's two services bind to.
        #[arg(long, default_value = "0.0.0.0")]
        bind_host: String,
        /// The host the scheduler and other executors reach this one by (default: its IP).
        #[arg(long)]
        external_host: Option<String>,
        /// Arrow Flight port (shuffle data and results).
        #[arg(long, default_value_t = 50051)]
        flight_port: u16,
        /// gRPC port (the scheduler cancels tasks and removes job data through it).
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks at once (default: one per core).
        #[arg(long, default_value_t = 0)]
        concurrent_tasks: usize,
        /// Shuffle files and spills (default: a fresh temporary directory).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Memory shared by this executor's tasks, in MiB; beyond it they spill (default:
        /// Ballista's share of the machine's memory, printed at start).
        #[arg(long)]
        memory_limit_mb: Option<u64>,
        /// Seconds between heartbeats to the scheduler.
        #[arg(long, default_value_t = 60)]
        heartbeat_s: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum FixturesCommand {
    /// Serve recorded JSON fixtures like the SpaceX v4 API: GET /v4/<name> (everything) and
    /// POST /v4/<name>/query (paginated), from DIR/<name>.json.
    Serve {
        /// Directory of <resource>.json files (a JSON array each).
        #[arg(long, default_value = "examples/launches/fixtures")]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8700")]
        bind: std::net::SocketAddr,
        /// Answer the first requests with these statuses (repeatable, e.g. --fail 429 --fail 500),
        /// to watch a client retry.
        #[arg(long)]
        fail: Vec<u16>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Train ALS on a TAB-separated `user item rating` train file, evaluate on a test file and print
    /// one JSON object (rmse, precision/recall/ndcg/map@10, most-popular baseline, timings).
    Als(als::BenchArgs),
    /// Time a classifier model from the lake predicting the rows of its input table in-process, the
    /// way the API does (JSON record -> features -> every tree's vote), and print one JSON object
    /// (median / p90 / p99 microseconds per record, back-to-back throughput).
    Predict {
        /// The classifier step, e.g. gold.penguin_species (its model is <step>_model).
        #[arg(long)]
        model: String,
        /// A model version (a version of the model table); default: the latest.
        #[arg(long)]
        version: Option<u64>,
        /// Single-record predictions to time.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
        iterations: u64,
    },
}

/// Runs a parsed command line. `env` is the process environment (passed in for testability).
/// The whole process: parse the command line, set up logging, run, map errors to exit codes.
///
/// It lives in the library, not in `src/main.rs`, for the first build's sake: the binary crate
/// would otherwise be the first to poll [`run`]'s future and codegen every async function under it
/// a second time (about two minutes of a cold release build on 2 cores).
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let cluster_node = matches!(cli.command, Command::Cluster(_));
    // deltalake warns on every MERGE that a metric is missing (it derives it), and on every write
    // of a binary column (a classifier's model artifact) that it keeps no statistics for it; both
    // are noise for users. A cluster node logs what Ballista says about executors and jobs.
    let default_filter = if cluster_node {
        "warn,ballista_scheduler=info,ballista_executor=info"
    } else {
        "warn,deltalake_core::operations::merge=error,deltalake_core::writer::stats=error"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if cluster_node {
        // Ballista's own binaries: planning and (de)serializing deep plans recurses deeply.
        runtime.thread_stack_size(32 << 20);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli, &env)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::error::error_chain(&e));
            std::process::ExitCode::from(e.exit_code() as u8)
        }
    }
}

pub async fn run(cli: Cli, env: &[(String, String)]) -> Result<()> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    // The ALS benchmark reads only its own files: no lake, no config needed.
    if let Command::Bench(BenchCommand::Als(args)) = cli.command {
        return run_als_bench(args).await;
    }
    if let Command::Fixtures(FixturesCommand::Serve { dir, bind, fail }) = cli.command {
        let (bound, serving) = crate::fixtures::bind(&dir, bind, fail).await?;
        eprintln!(
            "serving {} on http://{bound} (GET /v4/<name>, POST /v4/<name>/query)",
            dir.display()
        );
        serving.await;
        return Ok(());
    }
    let config = load_config(&cli, env, &cwd)?;
    match cli.command {
        Command::Run {
            select,
            downstream,
            full_refresh,
            resume,
            vars,
        } => {
            let options = RunOptions {
                trigger: Trigger::Cli,
                select: parse_tables(&select)?,
                downstream,
                full_refresh,
                resume,
                vars: RunVars::parse(vars.iter().map(String::as_str)).map_err(Error::Usage)?,
            };
            let mut output = RunOutput::new(config.spill_root());
            let summary = run::run(Arc::new(config), &options, &mut output).await;
            // Live lines off the screen before the closing lines.
            drop(output);
            let summary = summary?;
            let failures: Vec<&StepReport> =
                summary.steps.iter().filter(|s| s.error.is_some()).collect();
            for failed in &failures {
                eprintln!("error: {}", failed.error.as_deref().unwrap_or_default());
            }
            if let Some(peak) = crate::memory::peak_resident() {
                eprintln!("peak memory {}", crate::memory::human_bytes(peak));
            }
            if summary.failed() > 0 {
                return Err(Error::RunFailed {
                    failed: summary.failed(),
                    skipped: summary.skipped(),
                });
            }
            Ok(())
        }
        Command::Backfill {
            from,
            to,
            select,
            downstream,
            full_refresh,
            concurrency,
            resume,
        } => {
            let request = match resume {
                Some(backfill) => BackfillRequest::Resume {
                    backfill,
                    concurrency,
                },
                None => {
                    let date = |flag: &str, text: Option<String>| {
                        let text = text.unwrap_or_default();
                        variables::parse_date(&text)
                            .map_err(|e| Error::Usage(format!("--{flag} {text}: {e}")))
                    };
                    BackfillRequest::New {
                        from: date("from", from)?,
                        to: date("to", to)?,
                        select: parse_tables(&select)?,
                        downstream,
                        full_refresh,
                        concurrency: concurrency.unwrap_or(1),
                    }
                }
            };
            let summary =
                backfill::backfill(Arc::new(config), &request, &mut BackfillOutput).await?;
            if let Some(peak) = crate::memory::peak_resident() {
                eprintln!("peak memory {}", crate::memory::human_bytes(peak));
            }
            let failed = summary.failed_days();
            if failed > 0 {
                return Err(Error::BackfillFailed {
                    failed,
                    backfill_id: summary.record.backfill_id,
                });
            }
            Ok(())
        }
        Command::Tables { format } => {
            let lake = open_lake(&config, false).await?;
            let tables = inspect::tables(&lake).await?;
            let columns = ["table", "layer", "version", "rows", "last_commit"];
            emit!("{}", output::rows(&tables, &columns, format)?);
            Ok(())
        }
        Command::History { table, format } => {
            let lake = open_lake(&config, false).await?;
            let table: TableName = table.parse()?;
            let entries = inspect::history(&lake, &table).await?;
            let columns = [
                "version",
                "timestamp",
                "operation",
                "rows_written",
                "run_id",
                "step",
            ];
            emit!("{}", output::rows(&entries, &columns, format)?);
            Ok(())
        }
        Command::Query { sql, format } => {
            let lake = Arc::new(open_lake(&config, false).await?);
            let session = config.session_options()?;
            let result = query::run(&lake, &session, &sql)
                .await
                .map_err(|e| crate::memory::over_limit(e, "the query", &session.memory, false))?;
            emit!(
                "{}",
                output::batches(&result.schema, &result.batches, format)?
            );
            Ok(())
        }
        Command::Diff {
            table,
            from,
            to,
            key,
            limit,
            format,
        } => {
            let lake = Arc::new(open_lake(&config, false).await?);
            let table: TableName = table.parse()?;
            let key = if key.is_empty() {
                Dag::build(&config, &lake).await?.natural_key(&table)
            } else {
                key
            };
            let options = config.session_options()?;
            let diff = crate::diff::diff(&lake, &options, &table, from, to, &key, limit).await?;
            emit!("{}", diff_output::render(&diff, format)?);
            Ok(())
        }
        Command::Restore { table, version } => {
            let lake = open_lake(&config, true).await?;
            let table: TableName = table.parse()?;
            let new_version = inspect::restore(&lake, &table, version).await?;
            emit!("{table} restored to the contents of version {version} as version {new_version}");
            Ok(())
        }
        Command::Serve { bind } => {
            let addr = bind.unwrap_or(config.serve.bind);
            let server = crate::api::Server::bind(Arc::new(config), addr).await?;
            eprintln!("strata serve listening on http://{}", server.local_addr());
            server.serve(crate::api::shutdown_signal()).await
        }
        Command::Healthcheck { url, timeout_ms } => {
            let url = url
                .unwrap_or_else(|| format!("http://127.0.0.1:{}/health", config.serve.bind.port()));
            healthcheck(&url, std::time::Duration::from_millis(timeout_ms)).await?;
            emit!("{url}: ok");
            Ok(())
        }
        Command::Runs {
            show,
            limit,
            format,
        } => {
            let lake = Arc::new(open_lake(&config, false).await?);
            match show {
                None => {
                    let runs = run_log::RunLogReader::latest(&lake)
                        .await?
                        .list_runs(limit)
                        .await?;
                    let columns = [
                        "run_id",
                        "trigger",
                        "selection",
                        "variables",
                        "started_at",
                        "ended_at",
                        "status",
                        "error",
                    ];
                    emit!("{}", output::rows(&runs, &columns, format)?);
                }
                Some(RunsCommand::Show { run_id, format }) => {
                    let log = run_log::RunLogReader::latest(&lake).await?;
                    let run_id = if run_id == "last" {
                        log.last_run_id()
                            .await?
                            .ok_or_else(|| Error::Usage("no run recorded yet".into()))?
                    } else {
                        run_id
                    };
                    let steps = log.run_steps(&run_id).await?;
                    if steps.is_empty() {
                        return Err(Error::Usage(format!(
                            "no steps recorded for run {run_id} (see `strata runs`)"
                        )));
                    }
                    let columns = [
                        "step", "attempt", "status", "rows", "version", "ended_at", "inputs",
                        "error",
                    ];
                    emit!("{}", output::rows(&steps, &columns, format)?);
                }
            }
            Ok(())
        }
        Command::Dag { format } => {
            let lake = open_lake(&config, false).await?;
            let dag = Dag::build(&config, &lake).await?;
            let rendered = dag.render(format);
            emit!("{}", rendered.trim_end());
            Ok(())
        }
        Command::Bench(BenchCommand::Predict {
            model,
            version,
            iterations,
        }) => {
            let lake = Arc::new(open_lake(&config, false).await?);
            let report = bench_predict(
                &lake,
                &config,
                &model.parse()?,
                version,
                iterations as usize,
            )
            .await?;
            emit!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Cluster(node) => run_cluster_node(node, &config).await,
        Command::Bench(BenchCommand::Als(_)) | Command::Fixtures(_) => {
            unreachable!("handled before loading the config")
        }
        Command::Sample {
            kind: SampleKind::Adtech,
            users,
            items,
            ratings,
            seed,
            out,
            adtech,
        } => {
            if users.is_some() || items.is_some() || ratings.is_some() {
                return Err(Error::Usage(
                    "--users, --items and --ratings shape MovieLens samples; an adtech sample \
                     takes --days, --advertisers, --products, --impressions-per-day, --views-per-day"
                        .into(),
                ));
            }
            let spec = adtech.spec(seed)?;
            let dir = out.unwrap_or_else(|| config.ingest.raw_dir.clone());
            let summary = tokio::task::spawn_blocking({
                let dir = dir.clone();
                move || sample::adtech::write_adtech(&spec, &dir)
            })
            .await
            .map_err(|e| Error::Internal(format!("sample generator panicked: {e}")))?
            .map_err(|e| Error::io(&dir, e))?;
            emit!(
                "wrote {} day(s) from {}: {} ad rows, {} product views, {} active advertisers, to {}",
                summary.days,
                spec.start,
                summary.ad_rows,
                summary.view_rows,
                summary.active_advertisers,
                dir.display()
            );
            Ok(())
        }
        Command::Sample {
            kind: SampleKind::Movielens,
            users,
            items,
            ratings,
            seed,
            out,
            adtech,
        } => {
            if adtech.any() {
                return Err(Error::Usage(
                    "--days, --start, --advertisers, --products, --impressions-per-day, \
                     --views-per-day and --ctr shape adtech samples: add --kind adtech"
                        .into(),
                ));
            }
            let mut spec = match ratings {
                Some(r) if users.is_none() && items.is_none() => SampleSpec::for_ratings(r),
                _ => config.sample.spec,
            };
            if let Some(r) = ratings {
                spec.ratings = r;
            }
            if let Some(u) = users {
                spec.users = u;
            }
            if let Some(i) = items {
                spec.items = i;
            }
            spec.seed = seed;
            spec.validate().map_err(Error::Usage)?;
            let dir = out.unwrap_or_else(|| config.ingest.raw_dir.clone());
            if crate::ingest::Location::is_remote(&dir) {
                return Err(Error::Usage(format!(
                    "ingest.raw_dir is {}: pass --out DIR to write the sample locally, then \
                     upload it",
                    dir.display()
                )));
            }
            let summary = tokio::task::spawn_blocking({
                let dir = dir.clone();
                move || sample::write_sample(&spec, &dir)
            })
            .await
            .map_err(|e| Error::Internal(format!("sample generator panicked: {e}")))?
            .map_err(|e| Error::io(&dir, e))?;
            emit!(
                "wrote {} users, {} movies, {} ratings to {}",
                summary.users,
                summary.items,
                summary.ratings,
                dir.display()
            );
            Ok(())
        }
    }
}

/// `strata bench predict`: loads the model as the server does and times it on its input rows.
async fn bench_predict(
    lake: &Arc<Lake>,
    config: &Config,
    step: &TableName,
    version: Option<u64>,
    iterations: usize,
) -> Result<serde_json::Value> {
    use crate::pipeline::classifier_step::{artifact, spec::model_table};
    let table = model_table(step);
    let delta = match version {
        Some(v) => lake.open_version(&table, v).await?,
        None => lake.open(&table).await?,
    };
    let version = delta.version().unwrap_or(0);
    let provider = crate::catalog::provider(&delta).await?;
    let stored = artifact::read(provider)
        .await
        .map_err(|e| Error::Classifier {
            step: step.clone(),
            message: format!("{table}: {e}"),
        })?;
    let input: TableName = stored.input_table.parse()?;
    let rows = query::run(
        lake,
        &config.session_options()?,
        &format!("SELECT * FROM {input}"),
    )
    .await?;
    let records: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&output::batches(&rows.schema, &rows.batches, Format::Json)?)?;
    eprintln!(
        "timing {table}@{version} ({} trees) on {} rows of {input}",
        stored.classifier.params.trees,
        records.len()
    );
    let report = tokio::task::spawn_blocking(move || {
        crate::ml::forest::bench::run(&stored.classifier, &records, iterations)
    })
    .await
    .map_err(|e| Error::Classifier {
        step: step.clone(),
        message: format!("benchmark panicked: {e}"),
    })?
    .map_err(|e| Error::Classifier {
        step: step.clone(),
        message: format!("{input}: {e}"),
    })?;
    Ok(serde_json::json!({
        "model": table.to_string(),
        "version": version,
        "input": input.to_string(),
        "report": report,
    }))
}

async fn run_als_bench(args: als::BenchArgs) -> Result<()> {
    eprintln!(
        "training {} ALS: {} factors, {} iterations, regularization {}",
        if args.implicit {
            "implicit"
        } else {
            "explicit"
        },
        args.factors,
        args.iterations,
        args.params().regularization
    );
    let report = tokio::task::spawn_blocking(move || als::run_bench(&args))
        .await
        .map_err(|e| Error::Internal(format!("benchmark panicked: {e}")))??;
    emit!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn load_config(cli: &Cli, env: &[(String, String)], cwd: &Path) -> Result<Config> {
    let default_file = cwd.join(DEFAULT_CONFIG_PATH);
    let file = match &cli.config {
        Some(path) => Some(path.clone()),
        None if default_file.is_file() => Some(default_file),
        None => None,
    };
    let overrides = Overrides {
        lake_root: cli.lake.clone(),
    };
    Ok(Config::load(file.as_deref(), env, &overrides, cwd)?)
}

/// GETs `url`; anything but a 200 within `timeout` is an error naming the URL.
async fn healthcheck(url: &str, timeout: std::time::Duration) -> Result<()> {
    let unhealthy = |detail: String| Error::Unhealthy(format!("{url}: unhealthy: {detail}"));
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| unhealthy(e.to_string()))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| unhealthy(crate::error::error_chain(&e)))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(unhealthy(format!("status {}", response.status())));
    }
    Ok(())
}

/// `strata cluster scheduler|executor`: runs until stopped.
async fn run_cluster_node(node: ClusterCommand, config: &Config) -> Result<()> {
    let lake = Lake::from_config(&config.lake)?;
    let store = LakeStore::of(lake.remote());
    match node {
        ClusterCommand::Scheduler {
            bind,
            external_host,
            executor_timeout_s,
        } => {
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|e| Error::Cluster(format!("cannot listen on {bind}: {e}")))?;
            let external_host = external_host.unwrap_or_else(|| match bind.ip() {
                ip if ip.is_unspecified() => "localhost".to_string(),
                ip => ip.to_string(),
            });
            let options = SchedulerOptions {
                external_host,
                executor_timeout_seconds: executor_timeout_s,
            };
            cluster::run_scheduler(listener, options, store).await
        }
        ClusterCommand::Executor {
            scheduler,
            bind_host,
            external_host,
            flight_port,
            grpc_port,
            concurrent_tasks,
            work_dir,
            memory_limit_mb,
            heartbeat_s,
        } => {
            let url = if scheduler.starts_with("df://") {
                scheduler
            } else {
                format!("df://{scheduler}")
            };
            let scheduler = ClusterUrl::parse(&url).map_err(Error::Usage)?;
            let options = ExecutorOptions {
                scheduler,
                bind_host,
                external_host,
                flight_port,
                grpc_port,
                concurrent_tasks,
                work_dir,
                memory_limit_mb,
                heartbeat_seconds: heartbeat_s,
            };
            cluster::run_executor(options, store).await
        }
    }
}

/// The configured lake, checked once up front on object storage (bucket, credentials, endpoint;
/// conditional writes when the command writes) so a wrong setting is one clear line.
async fn open_lake(config: &Config, for_writing: bool) -> Result<Lake> {
    let lake = Lake::from_config(&config.lake)?;
    lake.check_access(for_writing).await?;
    Ok(lake)
}

fn parse_tables(names: &[String]) -> Result<Vec<TableName>> {
    Ok(names
        .iter()
        .map(|n| n.parse())
        .collect::<std::result::Result<_, _>>()?)
}
