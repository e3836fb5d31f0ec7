//! `strata run`: generate sample data if needed, then run the selected steps in dependency order.
//!
//! Steps whose inputs are ready run concurrently (up to `run.concurrency`). A failed step is reported
//! and every step reading it, directly or not, is skipped; independent branches still run. Each step's
//! outcome is reported as it finishes and logged to `system.step_runs`; the run itself is a row of
//! `system.runs` (see `run_log`). One run at a time per lake (`lake_lock`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::catalog::{Lake, TableName};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pipeline::dag::Dag;
use crate::pipeline::lake_lock::LakeLock;
use crate::pipeline::progress::StepProgress;
use crate::pipeline::run_log::{self, RunRecord};
use crate::pipeline::sql_step;
use crate::pipeline::step::Step;
use crate::pipeline::{StepContext, StepResult, StepStatus};
use crate::sample;
use crate::session::SessionOptions;
use crate::variables::RunVars;

pub use crate::pipeline::run_log::StepReport;
pub use crate::run_options::{RunOptions, Trigger};

/// The whole run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: String,
    pub steps: Vec<StepReport>,
}

impl RunSummary {
    pub fn failed(&self) -> usize {
        self.count(StepStatus::Failed)
    }

    pub fn skipped(&self) -> usize {
        self.count(StepStatus::Skipped)
    }

    fn count(&self, status: StepStatus) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }
}

/// What the caller of [`run`] hears while the run goes, on the run's own task, in order.
pub trait RunObserver {
    /// The run holds the lake and will run `steps` steps under these session settings (its
    /// memory limit).
    fn started(&mut self, session: &SessionOptions, steps: usize);

    /// A step's first attempt begins; `progress` follows it, retries included, until it ends.
    fn step_started(&mut self, table: &TableName, progress: &Arc<StepProgress>) {
        let _ = (table, progress);
    }

    /// An attempt failed and the step will be retried (after the report's delay).
    fn attempt_failed(&mut self, report: &StepReport) {
        let _ = report;
    }

    /// A step's outcome, or a step skipped because an upstream step failed, as soon as it is
    /// known.
    fn step_finished(&mut self, report: &StepReport);
}

/// A run nobody watches (tests, embedders that read the summary only).
impl RunObserver for () {
    fn started(&mut self, _: &SessionOptions, _: usize) {}

    fn step_finished(&mut self, _: &StepReport) {}
}

/// Runs the pipeline, telling `observer` how it goes.
pub async fn run(
    config: Arc<Config>,
    options: &RunOptions,
    observer: &mut impl RunObserver,
) -> Result<RunSummary> {
    let lake = Arc::new(Lake::from_config(&config.lake)?);
    lake.check_access(true).await?;
    let run_id = uuid::Uuid::new_v4().to_string();
    let lock = LakeLock::acquire(&lake, &run_id).await?;
    let summary = run_locked(config, lake, options, run_id, &lock, observer).await;
    lock.release().await;
    summary
}

/// [`run`] for a caller that already took the lake's lock for `run_id` (the API answers with the
/// id, or 409, before the run starts); the caller releases it when this returns.
pub async fn run_locked(
    config: Arc<Config>,
    lake: Arc<Lake>,
    options: &RunOptions,
    run_id: String,
    lock: &LakeLock,
    observer: &mut impl RunObserver,
) -> Result<RunSummary> {
    generate_sample_if_empty(&config).await?;
    let dag = Dag::build(&config, &lake).await?;
    clear_after_killed_runs(&lake, &run_id, lock).await?;
    let step_runs = Arc::default();
    let summary = execute(
        &config, &lake, &dag, options, run_id, &step_runs, None, observer,
    )
    .await;
    // Still holding the lock: nobody else writes the run log while it is rewritten.
    if let Err(e) = compact_run_log(&lake, &step_runs).await {
        warn!(error = %e, "could not compact the run log");
    }
    summary
}

/// What runs killed before this one left, cleared by a run (or backfill) holding the lake's
/// lock: the old run-log layout set aside, runs still marked running marked failed, their staging
/// removed. `run_id` is the holder's own id, whose staging is kept.
pub(crate) async fn clear_after_killed_runs(
    lake: &Arc<Lake>,
    run_id: &str,
    _lock: &LakeLock,
) -> Result<()> {
    run_log::set_aside_legacy_runs(lake).await?;
    // Holding the lock, every run still marked running belongs to a process that is gone.
    match run_log::mark_abandoned(lake, Utc::now()).await {
        Ok(0) => {}
        Ok(n) => warn!(
            runs = n,
            "marked runs left running by a killed process as failed"
        ),
        Err(e) => warn!(error = %e, "could not check system.runs for abandoned runs"),
    }
    // And whatever those runs had staged is theirs alone: nobody will commit it now.
    match sql_step::clear_abandoned_staging(lake, run_id) {
        Ok(0) => {}
        Ok(n) => warn!(runs = n, "removed staging left by killed runs"),
        Err(e) => warn!(error = %e, "could not remove staging left by killed runs"),
    }
    Ok(())
}

/// How the steps of runs executing side by side (a backfill's days) keep their order: each step
/// of a run starts only once the same step of the run before it has ended, and fails when that
/// one did not complete (Airflow's `depends_on_past`). A day's steps may then read the day
/// before from any table, whatever the backfill's concurrency.
#[derive(Debug)]
pub struct StepChain {
    /// The run this chain follows, as messages name it (`ds=2026-11-03`).
    label: String,
    ended: std::sync::Mutex<(BTreeMap<TableName, StepStatus>, bool)>,
    changed: tokio::sync::Notify,
}

impl StepChain {
    pub fn new(label: String) -> StepChain {
        StepChain {
            label,
            ended: Default::default(),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// `table`'s step of this run ended as `status`.
    fn end(&self, table: &TableName, status: StepStatus) {
        self.ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .insert(table.clone(), status);
        self.changed.notify_waiters();
    }

    /// The run is over: a step it never ended counts as not completed.
    pub fn close(&self) {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.changed.notify_waiters();
    }

    /// Waits until `table`'s step of this run has ended; whether it completed.
    async fn completed(&self, table: &TableName) -> bool {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
                match ended.0.get(table) {
                    Some(status) => {
                        return matches!(status, StepStatus::Committed | StepStatus::Unchanged);
                    }
                    None if ended.1 => return false,
                    None => {}
                }
            }
            changed.await;
        }
    }
}

/// A run's place in a chain: the run it follows (if any) and its own chain, which the next run
/// follows.
#[derive(Debug, Clone)]
pub struct Chained {
    pub previous: Option<Arc<StepChain>>,
    pub own: Arc<StepChain>,
}

/// Runs the selected steps of `dag` as run `run_id`, recording it in `system.runs` and each step
/// in `step_runs`. The caller holds the lake's lock and has cleared what killed runs left
/// ([`clear_after_killed_runs`]); runs of one backfill execute side by side under its lock,
/// `chained` step by step.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn execute(
    config: &Arc<Config>,
    lake: &Arc<Lake>,
    dag: &Dag,
    options: &RunOptions,
    run_id: String,
    step_runs: &Arc<run_log::StepRunsLog>,
    chained: Option<&Chained>,
    observer: &mut impl RunObserver,
) -> Result<RunSummary> {
    let (config, lake) = (Arc::clone(config), Arc::clone(lake));
    let (selected, selection, vars) = match &options.resume {
        None => (
            dag.select(&options.select, options.downstream)?,
            options.selection(),
            options.vars.clone(),
        ),
        Some(previous) => resume_selection(&lake, dag, previous).await?,
    };
    check_variables(dag, &selected, &vars, options.trigger)?;

    let ctx = StepContext {
        lake: Arc::clone(&lake),
        config: Arc::clone(&config),
        run_id,
        started_at: Utc::now(),
        full_refresh: options.full_refresh,
        session: config.session_options()?,
        progress: Arc::default(),
        step_runs: Arc::clone(step_runs),
        vars,
    };
    observer.started(&ctx.session, selected.len());
    info!(
        run_id = %ctx.run_id,
        steps = selected.len(),
        memory = %ctx.session.memory,
        spill_dir = %config.spill_root().display(),
        "run started"
    );
    let mut record = RunRecord {
        run_id: ctx.run_id.clone(),
        trigger: options.trigger.as_str().into(),
        selection,
        full_refresh: options.full_refresh,
        started_at: ctx.started_at.to_rfc3339(),
        ended_at: None,
        status: "running".into(),
        error: None,
        variables: ctx.vars.to_json(),
    };
    run_log::upsert_runs(&lake, std::slice::from_ref(&record)).await?;

    let mut pending: Vec<&Step> = dag
        .ordered()
        .filter(|s| selected.contains(&s.table))
        .collect();
    let mut done: BTreeMap<TableName, StepStatus> = BTreeMap::new();
    let mut reports = Vec::new();
    // The step's table, its input versions, where it ran, and its last attempt.
    type Finished = (
        TableName,
        BTreeMap<String, u64>,
        String,
        (u32, u64, Result<StepResult>),
    );
    let mut running: JoinSet<Finished> = JoinSet::new();
    // Failed attempts that will be retried, reported as they happen (a retry may wait a while).
    let (attempt_tx, mut attempt_rx) = tokio::sync::mpsc::unbounded_channel::<StepReport>();

    loop {
        let mut i = 0;
        while i < pending.len() {
            let step = pending[i];
            let upstream: Vec<&TableName> = step
                .after
                .iter()
                .filter(|r| selected.contains(*r))
                .collect();
            let failed_upstream = upstream.iter().find(|r| {
                matches!(
                    done.get(**r),
                    Some(StepStatus::Failed | StepStatus::Skipped)
                )
            });
            if let Some(cause) = failed_upstream {
                let report = StepReport {
                    table: step.table.clone(),
                    attempt: 1,
                    status: StepStatus::Skipped,
                    rows: None,
                    version: None,
                    elapsed_ms: 0,
                    detail: format!("upstream {cause} did not complete"),
                    error: None,
                    engine: step.engine(&config.engine).describe(),
                };
                observer.step_finished(&report);
                log_step(&ctx, &report, &BTreeMap::new()).await;
                if let Some(chained) = chained {
                    chained.own.end(&step.table, StepStatus::Skipped);
                }
                done.insert(step.table.clone(), StepStatus::Skipped);
                reports.push(report);
                pending.remove(i);
                continue;
            }
            let ready = upstream.iter().all(|r| done.contains_key(*r));
            if ready && running.len() < config.concurrency {
                let progress = Arc::new(StepProgress::default());
                observer.step_started(&step.table, &progress);
                let ctx = StepContext {
                    progress,
                    ..ctx.clone()
                };
                let step = step.clone();
                let attempts = attempt_tx.clone();
                let previous = chained.and_then(|c| c.previous.clone());
                running.spawn(async move {
                    let engine = step.engine(&ctx.config.engine).describe();
                    if let Some(previous) = previous
                        && !previous.completed(&step.table).await
                    {
                        let incomplete = Error::PreviousDayIncomplete {
                            step: step.table.clone(),
                            previous: previous.label.clone(),
                        };
                        return (step.table, BTreeMap::new(), engine, (1, 0, Err(incomplete)));
                    }
                    let inputs = input_versions(&ctx.lake, &step).await;
                    let last = run_with_retries(&ctx, &step, &inputs, &attempts).await;
                    (step.table, inputs, engine, last)
                });
                pending.remove(i);
                continue;
            }
            i += 1;
        }

        let joined = loop {
            tokio::select! {
                // Attempts are sent before their task ends: drain them first, in order.
                biased;
                Some(failed_attempt) = attempt_rx.recv() => observer.attempt_failed(&failed_attempt),
                joined = running.join_next() => break joined,
            }
        };
        let Some(joined) = joined else {
            break;
        };
        let (table, inputs, engine, (attempt, elapsed_ms, result)) =
            joined.map_err(|e| Error::Internal(format!("step task failed: {e}")))?;
        let report = match result {
            Ok(r) => {
                info!(step = %table, status = r.status.as_str(), rows = r.rows, version = r.version, elapsed_ms, "step finished");
                StepReport {
                    table: table.clone(),
                    attempt,
                    status: r.status,
                    rows: Some(r.rows),
                    version: Some(r.version),
                    elapsed_ms,
                    detail: r.detail,
                    error: None,
                    engine,
                }
            }
            Err(e) => {
                warn!(step = %table, elapsed_ms, error = %e, "step failed");
                StepReport {
                    table: table.clone(),
                    attempt,
                    status: StepStatus::Failed,
                    rows: None,
                    version: lake.open(&table).await.ok().and_then(|t| t.version()),
                    elapsed_ms,
                    detail: String::new(),
                    error: Some(crate::error::error_chain(&e)),
                    engine,
                }
            }
        };
        observer.step_finished(&report);
        log_step(&ctx, &report, &inputs).await;
        if let Some(chained) = chained {
            chained.own.end(&table, report.status);
        }
        done.insert(table, report.status);
        reports.push(report);
    }

    let summary = RunSummary {
        run_id: ctx.run_id.clone(),
        steps: reports,
    };
    record.ended_at = Some(Utc::now().to_rfc3339());
    if summary.failed() > 0 {
        record.status = "failed".into();
        record.error = Some(format!(
            "{} step(s) failed, {} skipped",
            summary.failed(),
            summary.skipped()
        ));
    } else {
        record.status = "succeeded".into();
    }
    if let Err(e) = run_log::upsert_runs(&lake, &[record]).await {
        warn!(error = %e, "could not record the run's outcome in system.runs");
    }
    Ok(summary)
}

/// Keeps `system.step_runs`, `system.runs` and `system.ingested_files` (every run appends to
/// them) to a few files ([`run_log::COMPACT_AT_FILES`]). Called holding the lake's lock; runs
/// of this process may be executing (a backfill's other days): each table is compacted in its
/// write turn.
pub(crate) async fn compact_run_log(lake: &Lake, step_runs: &run_log::StepRunsLog) -> Result<()> {
    step_runs.compact_if_fragmented(lake).await?;
    let tables = [
        run_log::runs_table(),
        crate::pipeline::ingest_step::ingested_files_table(),
    ];
    for table in tables {
        let _turn = lake.write_turn(&table).await;
        if lake.exists(&table).await? {
            run_log::compact_if_fragmented(lake.open(&table).await?, &table).await?;
        }
    }
    Ok(())
}

/// Every run variable a selected step reads must have a value: a usage error naming each step
/// and variable otherwise, before anything runs. A variable no selected step reads is logged as a
/// warning (a mistyped name), except `ds` when `trigger` set it itself (a schedule, a backfill).
pub(crate) fn check_variables(
    dag: &Dag,
    selected: &BTreeSet<TableName>,
    vars: &RunVars,
    trigger: Trigger,
) -> Result<()> {
    let mut problems = Vec::new();
    let mut read = BTreeSet::new();
    for step in dag.ordered().filter(|s| selected.contains(&s.table)) {
        let needed = step.variables();
        for name in vars.missing(&needed) {
            problems.push(format!("{} reads the run variable {name}", step.origin()));
        }
        read.extend(needed);
    }
    let automatic_ds = matches!(trigger, Trigger::Schedule | Trigger::Backfill);
    let unread: Vec<&String> = vars
        .as_map()
        .keys()
        .filter(|name| {
            let set_by_trigger = automatic_ds && *name == crate::variables::DS;
            !read.contains(*name) && !set_by_trigger
        })
        .collect();
    if !unread.is_empty() {
        warn!(variables = ?unread, "no selected step reads these run variables");
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{}: give it with --var NAME=VALUE (ds as YYYY-MM-DD), or run the days with \
         `strata backfill --from DATE --to DATE`",
        problems.join("; ")
    )))
}

/// The steps a resumed run must run: those the earlier run selected minus those whose last attempt
/// committed (or found its table up to date). Also returns how `system.runs` names the selection
/// and the earlier run's variables, which the resumed run keeps.
async fn resume_selection(
    lake: &Arc<Lake>,
    dag: &Dag,
    previous: &str,
) -> Result<(BTreeSet<TableName>, String, RunVars)> {
    let log = run_log::RunLogReader::latest(lake).await?;
    let run_id = if previous == "last" {
        log.last_run_id()
            .await?
            .ok_or_else(|| Error::Usage("--resume last: no run recorded yet".into()))?
    } else {
        previous.to_string()
    };
    let runs = log.list_runs(usize::MAX >> 1).await?;
    let run = runs
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .ok_or_else(|| {
            Error::Usage(format!(
                "--resume {run_id}: no such run (see `strata runs`)"
            ))
        })?;
    let (tables, downstream) = parse_selection(run["selection"].as_str().unwrap_or("all"))?;
    let original = dag.select(&tables, downstream)?;
    // A step's last attempt decides: attempts are logged in order.
    let mut last_status: BTreeMap<String, String> = BTreeMap::new();
    for step in log.run_steps(&run_id).await? {
        if let (Some(name), Some(status)) = (step["step"].as_str(), step["status"].as_str()) {
            last_status.insert(name.to_string(), status.to_string());
        }
    }
    let remaining: BTreeSet<TableName> = original
        .into_iter()
        .filter(|t| {
            !matches!(
                last_status.get(&t.to_string()).map(String::as_str),
                Some("committed" | "unchanged")
            )
        })
        .collect();
    if remaining.is_empty() {
        return Err(Error::Usage(format!(
            "--resume {run_id}: every step of that run completed; nothing to resume"
        )));
    }
    let names: Vec<String> = remaining.iter().map(|t| t.to_string()).collect();
    let vars = match run["variables"].as_str() {
        Some(text) => RunVars::from_json(text)
            .map_err(|e| Error::Internal(format!("system.runs, run {run_id}: {e}")))?,
        None => RunVars::default(),
    };
    Ok((
        remaining,
        format!("resume {run_id}: {}", names.join(",")),
        vars,
    ))
}

/// A selection as `system.runs` names it ([`RunOptions::selection`]): `all`, `a,b [+downstream]`
/// or `resume <id>: a,b`, back into the selected tables and whether downstream steps count.
pub(crate) fn parse_selection(text: &str) -> Result<(Vec<TableName>, bool)> {
    let (listed, downstream) = match text.split_once(": ") {
        Some((_, steps)) => (steps, false),
        None => match text.strip_suffix(" +downstream") {
            Some(steps) => (steps, true),
            None => (text, false),
        },
    };
    let tables: Vec<TableName> = if listed == "all" {
        Vec::new()
    } else {
        listed
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| t.parse())
            .collect::<std::result::Result<_, _>>()?
    };
    Ok((tables, downstream))
}

/// Runs a step until it succeeds or its retries are spent. Each failed attempt that will be
/// retried is logged to `system.step_runs` and sent to `attempts`; returns the last attempt's
/// number, duration and outcome.
async fn run_with_retries(
    ctx: &StepContext,
    step: &Step,
    inputs: &BTreeMap<String, u64>,
    attempts: &tokio::sync::mpsc::UnboundedSender<StepReport>,
) -> (u32, u64, Result<StepResult>) {
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        let result = match step.retry.timeout {
            None => step.run(ctx).await,
            // Dropping the step's future cancels it; it has committed nothing (commits come last).
            Some(limit) => tokio::time::timeout(limit, step.run(ctx))
                .await
                .unwrap_or_else(|_| {
                    Err(Error::StepTimeout {
                        step: step.table.clone(),
                        timeout: limit,
                    })
                }),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match result {
            Err(e) if attempt <= step.retry.retries => {
                let delay = step.retry.delay_before(attempt);
                warn!(step = %step.table, attempt, error = %e, ?delay, "step failed: retrying");
                let report = StepReport {
                    table: step.table.clone(),
                    attempt,
                    status: StepStatus::Failed,
                    rows: None,
                    version: None,
                    elapsed_ms,
                    detail: format!("retrying in {}", humantime::format_duration(delay)),
                    error: Some(crate::error::error_chain(&e)),
                    engine: step.engine(&ctx.config.engine).describe(),
                };
                log_step(ctx, &report, inputs).await;
                let _ = attempts.send(report);
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            result => return (attempt, elapsed_ms, result),
        }
    }
}

/// The current version of every table the step reads (for `system.step_runs`).
async fn input_versions(lake: &Lake, step: &Step) -> BTreeMap<String, u64> {
    let mut inputs = BTreeMap::new();
    for read in &step.reads {
        if let Ok(delta) = lake.open(read).await {
            inputs.insert(read.to_string(), delta.version().unwrap_or(0));
        }
    }
    inputs
}

/// Appends the step's row to `system.step_runs`; a failure to log is a warning, not a failed step.
async fn log_step(ctx: &StepContext, report: &StepReport, inputs: &BTreeMap<String, u64>) {
    let started = Utc::now() - chrono::Duration::milliseconds(report.elapsed_ms as i64);
    let recorded = ctx
        .step_runs
        .record(&ctx.lake, &ctx.run_id, started, report, inputs)
        .await;
    if let Err(e) = recorded {
        warn!(step = %report.table, error = %e, "could not append to system.step_runs");
    }
}

/// Writes a generated MovieLens-shaped sample into the raw directory when it holds no files.
async fn generate_sample_if_empty(config: &Config) -> Result<()> {
    let raw_dir = config.ingest.raw_dir.clone();
    // A landing area on object storage is the user's own data: never write a sample into it.
    let remote = crate::ingest::Location::is_remote(&raw_dir);
    if !config.sample.generate_if_empty || remote {
        return Ok(());
    }
    match sample::RawDir::inspect(&raw_dir) {
        sample::RawDir::Data => return Ok(()),
        sample::RawDir::Empty => {}
        sample::RawDir::IncompleteSample(leftovers) => {
            eprintln!(
                "{} holds an incomplete sample ({}), left by an interrupted run: writing it again",
                raw_dir.display(),
                leftovers
                    .iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let spec = config.sample.spec;
    info!(dir = %raw_dir.display(), ratings = spec.ratings, "raw directory is empty: generating sample data");
    let dir = raw_dir.clone();
    let summary =
        tokio::task::spawn_blocking(move || sample::write_sample_all_at_once(&spec, &dir))
            .await
            .map_err(|e| Error::Internal(format!("sample generator panicked: {e}")))?
            .map_err(|e| Error::io(&raw_dir, e))?;
    eprintln!(
        "generated sample data in {}: {} users, {} movies, {} ratings",
        raw_dir.display(),
        summary.users,
        summary.items,
        summary.ratings
    );
    Ok(())
}
