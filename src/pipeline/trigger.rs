//! Starting runs from inside `strata serve`: on request (`POST /v1/runs`) or on a cron schedule.
//!
//! A trigger takes the lake's lock before answering, so the caller learns the run id, or that
//! another run (in this process or any other) holds the lake, before anything starts. The run
//! itself continues in the background and is visible in `system.runs` / `system.step_runs`.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use tracing::{info, warn};

use crate::catalog::Lake;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pipeline::lake_lock::LakeLock;
use crate::pipeline::run::{self, RunOptions};
pub use crate::run_options::Schedule;

/// Starts background runs, one at a time.
#[derive(Debug)]
pub struct Runner {
    config: Arc<Config>,
    lake: Arc<Lake>,
    /// The run this process is executing, if any.
    current: Arc<Mutex<Option<String>>>,
}

impl Runner {
    pub fn new(config: Arc<Config>, lake: Arc<Lake>) -> Self {
        Self {
            config,
            lake,
            current: Arc::new(Mutex::new(None)),
        }
    }

    /// The id of the run this process is executing.
    pub fn current(&self) -> Option<String> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes the lake and starts the run in the background; returns its id. `Error::LakeBusy`
    /// when a run holds the lake.
    pub async fn start(&self, options: RunOptions) -> Result<String> {
        let run_id = uuid::Uuid::new_v4().to_string();
        self.lake.check_writable().await?;
        let lock = LakeLock::acquire(&self.lake, &run_id).await?;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(run_id.clone());
        let (config, lake, current, id) = (
            Arc::clone(&self.config),
            Arc::clone(&self.lake),
            Arc::clone(&self.current),
            run_id.clone(),
        );
        tokio::spawn(async move {
            let mut log = LoggedRun { run_id: id.clone() };
            let outcome =
                run::run_locked(config, lake, &options, id.clone(), &lock, &mut log).await;
            lock.release().await;
            match outcome {
                Ok(summary) if summary.failed() == 0 => info!(run_id = %id, "run succeeded"),
                Ok(summary) => warn!(run_id = %id, failed = summary.failed(), "run failed"),
                Err(e) => warn!(run_id = %id, error = %e, "run could not start"),
            }
            *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        });
        Ok(run_id)
    }
}

/// A run started from `serve` reports to the log: nobody watches a terminal.
struct LoggedRun {
    run_id: String,
}

impl run::RunObserver for LoggedRun {
    fn started(&mut self, session: &crate::session::SessionOptions, steps: usize) {
        info!(run_id = %self.run_id, memory = %session.memory, steps, "run started");
    }

    fn step_finished(&mut self, step: &run::StepReport) {
        info!(run_id = %self.run_id, step = %step.table, status = step.status.as_str(), "step finished");
    }
}

/// Fires `schedule`'s runs forever; a fire while another run holds the lake is skipped (and logged).
pub async fn drive(schedule: Schedule, runner: Arc<Runner>) {
    loop {
        let now = Utc::now();
        let Some(next) = schedule.next_after(now) else {
            warn!("the schedule has no next fire time: scheduler stopped");
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        info!(next = %next.to_rfc3339(), "next scheduled run");
        tokio::time::sleep(wait).await;
        match runner.start(schedule.options_at(next)).await {
            Ok(run_id) => info!(run_id = %run_id, "scheduled run started"),
            Err(Error::LakeBusy { holder, .. }) => {
                warn!(holder = %holder, "scheduled run skipped: the lake is busy")
            }
            Err(e) => warn!(error = %e, "scheduled run could not start"),
        }
    }
}
