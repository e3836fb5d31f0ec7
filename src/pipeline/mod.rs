//! The pipeline: ingest, SQL, ALS and classifier steps, ordered by the tables they read, run into
//! Delta tables.
//!
//! - `step` knows the kinds of step (what defines each, what it writes, which module runs it); `dag`
//!   builds the graph of steps and their order, `dag::render` draws it; `settings` reads per-step
//!   settings.
//! - `ingest_step`, `sql_step`, `als_step` and `classifier_step` run one step each. The training
//!   steps are kinds of the one `training` skeleton, which publishes through `publish` and logs to
//!   `model_runs`; `fingerprint` decides whether a SQL or training step is up to date.
//! - `expectations` checks a result before commit, `commit` writes it (through delta-rs), and
//!   `staged_commit` commits a SQL step's staged Parquet files as they are where it can; `retry`
//!   retries attempts.
//! - `progress` counts a running step's rows and bytes for the command line's progress line.
//! - `run` schedules a whole run, `backfill` one run per day of a range (`ds` set, days chained
//!   step by step), `run_log` records them in `system.runs` / `system.step_runs` /
//!   `system.backfills`,
//!   `trigger` starts runs from `strata serve` (on request or on a cron schedule) and
//!   `lake_lock` keeps it the only run on its lake.
//!
//! Invariant: a step commits each table it writes at most once per run, and only after its result
//! passed its expectations; a failed step leaves its table at the previous version and every step
//! downstream is skipped.

pub mod als_step;
pub mod backfill;
pub mod classifier_step;
pub mod commit;
pub mod dag;
pub mod expectations;
pub mod fingerprint;
pub mod ingest_step;
pub mod lake_lock;
pub mod model_runs;
pub mod progress;
pub mod publish;
pub mod retry;
pub mod run;
pub mod run_log;
pub mod settings;
pub mod sql_step;
pub mod staged_commit;
pub mod step;
pub mod training;
pub mod trigger;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::catalog::Lake;
use crate::config::Config;
use crate::session::SessionOptions;
use crate::variables::RunVars;
use progress::StepProgress;

/// What every step of a run shares.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub lake: Arc<Lake>,
    pub config: Arc<Config>,
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    /// Rebuild everything: re-ingest every file, overwrite every table, ignore fingerprints.
    pub full_refresh: bool,
    /// The run's DataFusion settings, memory pool and spill area, shared by every step.
    pub session: SessionOptions,
    /// This step's progress (each step of a run gets its own).
    pub progress: Arc<StepProgress>,
    /// Where the run's step attempts are appended, shared by every step.
    pub step_runs: Arc<run_log::StepRunsLog>,
    /// The run's variables (`--var ds=...`), bound in SQL and filled into source paths.
    pub vars: RunVars,
}

/// What happened to a step's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// A new version was committed.
    Committed,
    /// Inputs unchanged since the last commit: nothing written.
    Unchanged,
    /// The step failed; its table is at the previous version.
    Failed,
    /// Not run because a step it reads failed.
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Committed => "committed",
            StepStatus::Unchanged => "unchanged",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// The outcome of a successful step.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub status: StepStatus,
    /// Rows in the table after the step.
    pub rows: u64,
    /// The table's current version after the step.
    pub version: u64,
    /// A short human note ("1 file(s) ingested, 0 rejected line(s)").
    pub detail: String,
}
