//! How far a running step has got, readable while it runs.
//!
//! Owns [`StepProgress`], one per step of a run: counters the step kinds add to as rows pass
//! (ingest per parsed batch, training steps per batch read), the phase the step is in, and the
//! physical plan a SQL step is executing, whose operators' own metrics (rows out of each scan,
//! bytes scanned, rows into the sink) DataFusion updates as the plan runs. [`StepProgress::snapshot`]
//! adds them up. It does not own drawing (the command line's progress line) or the step's final
//! figures (its `StepResult`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::physical_plan::ExecutionPlan;

/// What a step has done so far. Cheap to update from any thread.
#[derive(Debug, Default)]
pub struct StepProgress {
    rows_read: AtomicU64,
    bytes_read: AtomicU64,
    rows_written: AtomicU64,
    phase: Mutex<&'static str>,
    plan: Mutex<Option<Arc<dyn ExecutionPlan>>>,
}

/// [`StepProgress`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    pub phase: &'static str,
    pub rows_read: u64,
    pub bytes_read: u64,
    pub rows_written: u64,
}

impl ProgressSnapshot {
    /// The phase, or "running" for a step that names none.
    pub fn phase_or_running(&self) -> &'static str {
        if self.phase.is_empty() {
            "running"
        } else {
            self.phase
        }
    }
}

impl StepProgress {
    pub fn read(&self, rows: u64, bytes: u64) {
        self.rows_read.fetch_add(rows, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn wrote(&self, rows: u64) {
        self.rows_written.fetch_add(rows, Ordering::Relaxed);
    }

    /// What the step is doing now, in a word or two ("reading", "training", "committing").
    pub fn phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
    }

    /// Counts `plan`'s work from now on (until the next call): rows out of its leaves are read,
    /// bytes its scans report are read, rows into its root are written. The figures it added
    /// stay when the next plan replaces it.
    pub fn watch(&self, plan: Arc<dyn ExecutionPlan>) {
        let previous = self
            .plan
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(plan);
        if let Some(previous) = previous {
            let done = PlanCounts::of(previous.as_ref());
            self.read(done.rows_read, done.bytes_read);
            self.wrote(done.rows_written);
        }
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        let live = self
            .plan
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            .map(PlanCounts::of)
            .unwrap_or_default();
        ProgressSnapshot {
            phase: *self.phase.lock().unwrap_or_else(|e| e.into_inner()),
            rows_read: self.rows_read.load(Ordering::Relaxed) + live.rows_read,
            bytes_read: self.bytes_read.load(Ordering::Relaxed) + live.bytes_read,
            rows_written: self.rows_written.load(Ordering::Relaxed) + live.rows_written,
        }
    }
}

/// A plan's figures so far, from its operators' metrics.
#[derive(Debug, Default)]
struct PlanCounts {
    rows_read: u64,
    bytes_read: u64,
    rows_written: u64,
}

impl PlanCounts {
    fn of(root: &dyn ExecutionPlan) -> Self {
        // The root writes what its input produces (a sink reports no rows of its own until done).
        let rows_written = match root.children().first() {
            Some(input) => output_rows(input.as_ref()),
            None => output_rows(root),
        };
        let mut counts = PlanCounts {
            rows_written,
            ..PlanCounts::default()
        };
        counts.add_leaves(root);
        counts
    }

    fn add_leaves(&mut self, plan: &dyn ExecutionPlan) {
        let children = plan.children();
        if children.is_empty() {
            self.rows_read += output_rows(plan);
            let bytes = plan
                .metrics()
                .and_then(|m| m.sum_by_name("bytes_scanned"))
                .map_or(0, |v| v.as_usize());
            self.bytes_read += bytes as u64;
        }
        for child in children {
            self.add_leaves(child.as_ref());
        }
    }
}

fn output_rows(plan: &dyn ExecutionPlan) -> u64 {
    plan.metrics().and_then(|m| m.output_rows()).unwrap_or(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn a_watched_plan_counts_rows_read_and_written_and_they_stay_after_the_next_plan() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.parquet");
        let ctx = SessionContext::new();
        ctx.sql("SELECT * FROM (VALUES (1), (2), (3), (4)) AS t(v)")
            .await
            .unwrap()
            .write_parquet(file.to_str().unwrap(), Default::default(), None)
            .await
            .unwrap();
        ctx.register_parquet("t", file.to_str().unwrap(), Default::default())
            .await
            .unwrap();
        let frame = ctx
            .sql("SELECT v * 2 AS w FROM t WHERE v > 1")
            .await
            .unwrap();
        let plan = frame.create_physical_plan().await.unwrap();
        let progress = StepProgress::default();
        progress.watch(Arc::clone(&plan));
        assert_eq!(progress.snapshot(), ProgressSnapshot::default());
        collect(plan, ctx.task_ctx()).await.unwrap();
        let done = progress.snapshot();
        assert_eq!((done.rows_read, done.rows_written), (4, 3));
        assert!(done.bytes_read > 0, "{done:?}");

        progress.phase("committing");
        let next = ctx.sql("SELECT 1").await.unwrap();
        progress.watch(next.create_physical_plan().await.unwrap());
        progress.wrote(10);
        let later = progress.snapshot();
        assert_eq!(later.phase, "committing");
        assert_eq!((later.rows_read, later.rows_written), (4, 13));
        assert_eq!(later.bytes_read, done.bytes_read);
    }
}
