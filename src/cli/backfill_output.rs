//! What `strata backfill` prints: the plan, one line per day as it ends (with how many days are
//! done out of how many), and the outcome. Lines go to stdout as the backfill goes.

use chrono::NaiveDate;

use crate::pipeline::backfill::{BackfillObserver, DayOutcome};
use crate::pipeline::run_log::backfills::BackfillRecord;

/// Prints a backfill's progress.
pub struct BackfillOutput;

impl BackfillObserver for BackfillOutput {
    fn planned(&mut self, backfill: &BackfillRecord, todo: &[NaiveDate]) {
        emit!(
            "backfill {} of {} ({}..{}, {} day(s)): {} done already, {} to run, {} at a time",
            backfill.backfill_id,
            backfill.selection,
            backfill.from,
            backfill.to,
            backfill.days,
            backfill.days_done,
            todo.len(),
            backfill.concurrency
        );
    }

    fn day_started(&mut self, _day: NaiveDate) {}

    fn day_finished(&mut self, day: &DayOutcome, done: usize, todo: usize) {
        let status = if day.succeeded { "succeeded" } else { "failed" };
        let steps = format!(
            "{} committed, {} unchanged{}",
            day.committed,
            day.unchanged,
            if day.failed + day.skipped > 0 {
                format!(", {} failed, {} skipped", day.failed, day.skipped)
            } else {
                String::new()
            }
        );
        let run = day
            .run_id
            .as_deref()
            .map(|id| format!("  run {id}"))
            .unwrap_or_default();
        emit!(
            "[{done}/{todo}] {}  {status:<9}  {steps}  {:.2} s{run}",
            day.day,
            day.elapsed.as_secs_f64()
        );
        if let Some(error) = &day.error {
            emit!("    error: {error}");
        }
    }
}
