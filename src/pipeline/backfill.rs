//! `strata backfill --from DATE --to DATE`: one run per day, each with `ds` set to its day.
//!
//! First backfill: every day of the range runs in order (up to `concurrency` at once, started in
//! order), each an ordinary run in `system.runs` (trigger `backfill`, `variables` `{"ds": ...}`).
//! The backfill itself is a row of `system.backfills`. Rerun: a day that already has a succeeded
//! run of the same steps (or of every step) is done and skipped, so a second backfill over done
//! days writes nothing; `--full-refresh` runs every day again (counting as done only what this
//! backfill ran). Failure: once a day fails, no further day starts (later days often read the
//! earlier ones); the days running finish, and `--resume` (the backfill's id, or `last`) runs
//! the days not done with the same range and steps. A killed backfill resumes the same way: its
//! finished days are done, its interrupted day runs again (each step replaces only its own day).
//!
//! The whole backfill holds the lake's lock once; its days' runs execute side by side under it,
//! their commits to one table taking turns ([`crate::catalog::Lake::write_turn`]), and each step
//! of a day starting only once the same step of the day before ended ([`StepChain`]), so a step
//! that reads the day before (day-over-day changes) sees it whatever the concurrency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use tokio::task::JoinSet;
use tracing::warn;

use crate::catalog::{Lake, TableName};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pipeline::dag::Dag;
use crate::pipeline::lake_lock::LakeLock;
use crate::pipeline::run::{self, Chained, RunSummary, StepChain};
use crate::pipeline::run_log::backfills::{self, BackfillRecord};
use crate::pipeline::run_log::{StepRunsLog, Trigger};
use crate::run_options::RunOptions;
use crate::variables::RunVars;

/// Days one backfill may span (ten years): a typo in a year should not start 300,000 runs.
pub const MAX_DAYS: i64 = 3660;

/// What to backfill.
#[derive(Debug, Clone, PartialEq)]
pub enum BackfillRequest {
    /// A new backfill over `from..=to`.
    New {
        from: NaiveDate,
        to: NaiveDate,
        select: Vec<TableName>,
        downstream: bool,
        full_refresh: bool,
        concurrency: usize,
    },
    /// The days an earlier backfill (an id, or `last`) did not get done; `concurrency` when
    /// given replaces the one it had.
    Resume {
        backfill: String,
        concurrency: Option<usize>,
    },
}

/// How one day ended.
#[derive(Debug, Clone)]
pub struct DayOutcome {
    pub day: NaiveDate,
    /// The day's run id, when its run started.
    pub run_id: Option<String>,
    pub succeeded: bool,
    /// Steps committed, unchanged, failed and skipped.
    pub committed: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub skipped: usize,
    pub elapsed: Duration,
    /// Why the run could not start or what failed.
    pub error: Option<String>,
}

/// What the caller of [`backfill`] hears, in order.
pub trait BackfillObserver {
    /// The backfill holds the lake: `todo` of `days` days will run, the others are done already.
    fn planned(&mut self, backfill: &BackfillRecord, todo: &[NaiveDate]);
    /// A day's run started.
    fn day_started(&mut self, day: NaiveDate);
    /// A day ended; `done` of `todo` days have ended so far.
    fn day_finished(&mut self, outcome: &DayOutcome, done: usize, todo: usize);
}

/// A backfill nobody watches.
impl BackfillObserver for () {
    fn planned(&mut self, _: &BackfillRecord, _: &[NaiveDate]) {}
    fn day_started(&mut self, _: NaiveDate) {}
    fn day_finished(&mut self, _: &DayOutcome, _: usize, _: usize) {}
}

/// The whole backfill.
#[derive(Debug, Clone)]
pub struct BackfillSummary {
    pub record: BackfillRecord,
    pub days: Vec<DayOutcome>,
}

impl BackfillSummary {
    pub fn failed_days(&self) -> usize {
        self.days.iter().filter(|d| !d.succeeded).count()
    }
}

/// Runs the backfill `request` asks for.
pub async fn backfill(
    config: Arc<Config>,
    request: &BackfillRequest,
    observer: &mut impl BackfillObserver,
) -> Result<BackfillSummary> {
    let lake = Arc::new(Lake::from_config(&config.lake)?);
    lake.check_access(true).await?;
    let backfill_id = match request {
        BackfillRequest::New { .. } => uuid::Uuid::new_v4().to_string(),
        BackfillRequest::Resume { backfill, .. } if backfill != "last" => backfill.clone(),
        BackfillRequest::Resume { .. } => match backfills::find(&lake, "last").await? {
            Some(last) => last.backfill_id,
            None => {
                return Err(Error::Usage(
                    "--resume last: no backfill recorded yet".into(),
                ));
            }
        },
    };
    let lock = LakeLock::acquire(&lake, &backfill_id).await?;
    let summary = backfill_locked(&config, &lake, request, backfill_id, &lock, observer).await;
    lock.release().await;
    summary
}

async fn backfill_locked(
    config: &Arc<Config>,
    lake: &Arc<Lake>,
    request: &BackfillRequest,
    backfill_id: String,
    lock: &LakeLock,
    observer: &mut impl BackfillObserver,
) -> Result<BackfillSummary> {
    let dag = Arc::new(Dag::build(config, lake).await?);
    run::clear_after_killed_runs(lake, &backfill_id, lock).await?;
    match backfills::mark_abandoned(lake, Utc::now()).await {
        Ok(0) => {}
        Ok(n) => warn!(
            backfills = n,
            "marked backfills left running by a killed process as failed"
        ),
        Err(e) => warn!(error = %e, "could not check system.backfills for abandoned backfills"),
    }
    let mut record = plan(lake, request, backfill_id).await?;
    let (select, downstream) = run::parse_selection(&record.selection)?;
    // Every name the steps read must be a variable each day has: `ds` is the only one.
    let sample_day = RunVars::for_date(record.from);
    let selected = dag.select(&select, downstream)?;
    run::check_variables(&dag, &selected, &sample_day, Trigger::Backfill)?;

    let since = record.full_refresh.then_some(record.started_at);
    let done = backfills::done_days(lake, &record.selection, since).await?;
    let all_days: Vec<NaiveDate> = record
        .from
        .iter_days()
        .take_while(|d| *d <= record.to)
        .collect();
    let todo: Vec<NaiveDate> = all_days
        .iter()
        .filter(|d| !done.contains(d))
        .copied()
        .collect();
    record.days = all_days.len() as u64;
    record.days_done = (all_days.len() - todo.len()) as u64;
    record.status = "running".into();
    record.ended_at = None;
    record.error = None;
    backfills::upsert(lake, &record).await?;
    observer.planned(&record, &todo);

    // Days start in order, `concurrency` at a time; after a failed day none starts.
    let step_runs: Arc<StepRunsLog> = Arc::default();
    let mut running: JoinSet<DayOutcome> = JoinSet::new();
    let mut outcomes = Vec::new();
    let mut next = todo.iter().copied();
    let mut stopped = false;
    // Each day's steps follow the same steps of the day before it.
    let mut chain_end: Option<Arc<StepChain>> = None;
    loop {
        while !stopped && running.len() < record.concurrency.max(1) as usize {
            let Some(day) = next.next() else { break };
            observer.day_started(day);
            let options = RunOptions {
                trigger: Trigger::Backfill,
                select: select.clone(),
                downstream,
                full_refresh: record.full_refresh,
                resume: None,
                vars: RunVars::for_date(day),
            };
            let chained = Chained {
                previous: chain_end.take(),
                own: Arc::new(StepChain::new(format!("ds={day}"))),
            };
            chain_end = Some(Arc::clone(&chained.own));
            let (config, lake, dag, step_runs) = (
                Arc::clone(config),
                Arc::clone(lake),
                Arc::clone(&dag),
                Arc::clone(&step_runs),
            );
            running.spawn(async move {
                let started = Instant::now();
                let run_id = uuid::Uuid::new_v4().to_string();
                let summary = run::execute(
                    &config,
                    &lake,
                    &dag,
                    &options,
                    run_id.clone(),
                    &step_runs,
                    Some(&chained),
                    &mut (),
                )
                .await;
                chained.own.close();
                outcome(day, run_id, summary, started.elapsed())
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let day = joined.map_err(|e| Error::Internal(format!("backfill day task failed: {e}")))?;
        if day.succeeded {
            record.days_done += 1;
        } else {
            stopped = true;
        }
        outcomes.push(day);
        observer.day_finished(
            outcomes.last().expect("just pushed"),
            outcomes.len(),
            todo.len(),
        );
        // Each day appends to the run log and the ingest log: keep them compact as days go, or
        // every later day reads one more small file per step.
        if let Err(e) = run::compact_run_log(lake, &step_runs).await {
            warn!(error = %e, "could not compact the run log");
        }
    }

    outcomes.sort_by_key(|d| d.day);
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|d| !d.succeeded)
        .map(|d| d.day.to_string())
        .collect();
    let not_started = todo.len() - outcomes.len();
    record.ended_at = Some(Utc::now());
    if failed.is_empty() {
        record.status = "succeeded".into();
    } else {
        record.status = "failed".into();
        record.error = Some(format!(
            "day(s) {} failed; {not_started} day(s) not started: `strata backfill --resume {}` runs the days not done",
            failed.join(", "),
            record.backfill_id
        ));
    }
    if let Err(e) = backfills::upsert(lake, &record).await {
        warn!(error = %e, "could not record the backfill's outcome in system.backfills");
    }
    Ok(BackfillSummary {
        record,
        days: outcomes,
    })
}

/// The backfill's row: a new one from the request, or the resumed backfill's, read back.
async fn plan(
    lake: &Arc<Lake>,
    request: &BackfillRequest,
    backfill_id: String,
) -> Result<BackfillRecord> {
    match request {
        BackfillRequest::New {
            from,
            to,
            select,
            downstream,
            full_refresh,
            concurrency,
        } => {
            if from > to {
                return Err(Error::Usage(format!("--from {from} is after --to {to}")));
            }
            let days = (*to - *from).num_days() + 1;
            if days > MAX_DAYS {
                return Err(Error::Usage(format!(
                    "{from}..{to} is {days} days; a backfill spans at most {MAX_DAYS}"
                )));
            }
            let selection = RunOptions {
                select: select.clone(),
                downstream: *downstream,
                ..RunOptions::default()
            }
            .selection();
            Ok(BackfillRecord {
                backfill_id,
                from: *from,
                to: *to,
                selection,
                full_refresh: *full_refresh,
                concurrency: (*concurrency).max(1) as u64,
                started_at: Utc::now(),
                ended_at: None,
                status: "running".into(),
                days: days as u64,
                days_done: 0,
                error: None,
            })
        }
        BackfillRequest::Resume { concurrency, .. } => {
            let earlier = backfills::find(lake, &backfill_id).await?.ok_or_else(|| {
                Error::Usage(format!(
                    "--resume {backfill_id}: no such backfill (see system.backfills)"
                ))
            })?;
            Ok(BackfillRecord {
                concurrency: concurrency.map_or(earlier.concurrency, |c| c.max(1) as u64),
                ..earlier
            })
        }
    }
}

fn outcome(
    day: NaiveDate,
    run_id: String,
    summary: Result<RunSummary>,
    elapsed: Duration,
) -> DayOutcome {
    use crate::pipeline::StepStatus;
    match summary {
        Ok(summary) => {
            let count =
                |status: StepStatus| summary.steps.iter().filter(|s| s.status == status).count();
            let error = summary
                .steps
                .iter()
                .find_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.table)));
            DayOutcome {
                day,
                run_id: Some(run_id),
                succeeded: summary.failed() == 0,
                committed: count(StepStatus::Committed),
                unchanged: count(StepStatus::Unchanged),
                failed: count(StepStatus::Failed),
                skipped: count(StepStatus::Skipped),
                elapsed,
                error,
            }
        }
        Err(e) => DayOutcome {
            day,
            run_id: None,
            succeeded: false,
            committed: 0,
            unchanged: 0,
            failed: 0,
            skipped: 0,
            elapsed,
            error: Some(crate::error::error_chain(&e)),
        },
    }
}
