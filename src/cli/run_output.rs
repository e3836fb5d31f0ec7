//! What `strata run` shows while it runs: the memory line first (stderr), one line per step as it
//! ends (stdout), and, when stderr is a terminal, live progress lines (stderr): the run's
//! "step i of n" and, for each step running longer than [`SHOW_AFTER`], its phase, rows and
//! bytes read, rows written and time so far. On a pipe or in a file there are no live lines, so
//! scripts read exactly the step lines.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanCount, MultiProgress, ProgressBar, ProgressStyle};

use crate::catalog::TableName;
use crate::pipeline::StepStatus;
use crate::pipeline::progress::{ProgressSnapshot, StepProgress};
use crate::pipeline::run::{RunObserver, StepReport};
use crate::session::SessionOptions;

/// A step's live line appears once it has run this long: short steps only print their result.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// How often live lines are redrawn.
const TICK: Duration = Duration::from_millis(200);

/// The [`RunObserver`] of `strata run`.
pub struct RunOutput {
    spill_root: PathBuf,
    /// `None` when stderr is not a terminal.
    live: Option<Live>,
}

struct Live {
    lines: MultiProgress,
    run: ProgressBar,
    started: usize,
    steps: usize,
    running: HashMap<TableName, StepLine>,
}

/// A running step's live line: the task that draws it, and the line once it is shown.
struct StepLine {
    ticker: tokio::task::JoinHandle<()>,
    shown: Arc<OnceLock<ProgressBar>>,
}

impl StepLine {
    /// Stops drawing and takes the line off the screen now, before the step's result is printed.
    fn end(self) {
        self.ticker.abort();
        if let Some(line) = self.shown.get() {
            line.finish_and_clear();
        }
    }
}

impl RunOutput {
    pub fn new(spill_root: PathBuf) -> Self {
        let live = std::io::stderr().is_terminal().then(|| Live {
            lines: MultiProgress::new(),
            run: ProgressBar::hidden(),
            started: 0,
            steps: 0,
            running: HashMap::new(),
        });
        Self { spill_root, live }
    }

    /// Runs `print` with the live lines out of the way, so they never tear a printed line.
    fn print(&self, print: impl FnOnce()) {
        match &self.live {
            Some(live) => live.lines.suspend(print),
            None => print(),
        }
    }
}

impl RunObserver for RunOutput {
    fn started(&mut self, session: &SessionOptions, steps: usize) {
        eprintln!(
            "{}; spill files under {}",
            session.memory,
            self.spill_root.display()
        );
        if let Some(live) = &mut self.live {
            live.steps = steps;
            live.run = live.lines.add(ProgressBar::new(steps as u64));
            live.run.set_style(
                ProgressStyle::with_template("{elapsed:>4} [{bar:24}] {pos} of {len} steps done")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            live.run.enable_steady_tick(TICK);
        }
    }

    fn step_started(&mut self, table: &TableName, progress: &Arc<StepProgress>) {
        let Some(live) = &mut self.live else {
            return;
        };
        live.started += 1;
        let label = format!("step {} of {} {table}", live.started, live.steps);
        let (lines, progress) = (live.lines.clone(), Arc::clone(progress));
        let shown = Arc::new(OnceLock::new());
        let shown_by_ticker = Arc::clone(&shown);
        let started = Instant::now();
        let ticker = tokio::spawn(async move {
            tokio::time::sleep(SHOW_AFTER).await;
            let line = shown_by_ticker.get_or_init(|| lines.add(ProgressBar::new_spinner()));
            line.set_style(
                ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"),
            );
            loop {
                line.set_message(step_line(&label, &progress.snapshot(), started.elapsed()));
                line.tick();
                tokio::time::sleep(TICK).await;
            }
        });
        if let Some(previous) = live
            .running
            .insert(table.clone(), StepLine { ticker, shown })
        {
            previous.end();
        }
    }

    fn attempt_failed(&mut self, report: &StepReport) {
        self.print(|| print_step(report));
    }

    fn step_finished(&mut self, report: &StepReport) {
        if let Some(live) = &mut self.live {
            if let Some(line) = live.running.remove(&report.table) {
                line.end();
            }
            live.run.inc(1);
        }
        self.print(|| print_step(report));
    }
}

impl Drop for RunOutput {
    fn drop(&mut self) {
        if let Some(live) = &mut self.live {
            for (_, line) in live.running.drain() {
                line.end();
            }
            live.run.finish_and_clear();
        }
    }
}

/// `step 3 of 11 silver.ratings  running 12s: read 25,000,000 rows (612.40 MiB), wrote 24,100,000
/// rows`; the counts a step does not report (zero) are left out.
fn step_line(label: &str, progress: &ProgressSnapshot, elapsed: Duration) -> String {
    let mut line = format!(
        "{label}  {} {}s",
        progress.phase_or_running(),
        elapsed.as_secs()
    );
    let mut parts = Vec::new();
    if progress.rows_read > 0 || progress.bytes_read > 0 {
        let mut read = format!("read {} rows", HumanCount(progress.rows_read));
        if progress.bytes_read > 0 {
            read.push_str(&format!(" ({})", HumanBytes(progress.bytes_read)));
        }
        parts.push(read);
    }
    if progress.rows_written > 0 {
        parts.push(format!("wrote {} rows", HumanCount(progress.rows_written)));
    }
    if !parts.is_empty() {
        line.push_str(": ");
        line.push_str(&parts.join(", "));
    }
    line
}

/// One line per step: table, status, rows, Delta version, milliseconds, and a note.
fn print_step(report: &StepReport) {
    let rows = report
        .rows
        .map(|r| format!("{r} rows"))
        .unwrap_or_else(|| "-".into());
    let version = report
        .version
        .map(|v| format!("v{v}"))
        .unwrap_or_else(|| "-".into());
    let mut note = match report.status {
        StepStatus::Failed => report
            .error
            .as_deref()
            .and_then(|e| e.lines().next())
            .unwrap_or_default()
            .to_string(),
        _ => report.detail.clone(),
    };
    if report.status == StepStatus::Failed && !report.detail.is_empty() {
        note = format!("{note} ({})", report.detail);
    }
    if report.attempt > 1 {
        note = format!("[attempt {}] {note}", report.attempt);
    }
    // Only a step that ran (not one skipped or up to date) and left the process says where.
    if report.engine != "local"
        && matches!(report.status, StepStatus::Committed | StepStatus::Failed)
        && !note.contains(&format!("on {}", report.engine))
    {
        note = format!("{note} [on {}]", report.engine);
    }
    emit!(
        "{:<30} {:<9} {:>14} {:>5} {:>8} ms  {}",
        report.table.to_string(),
        report.status.as_str(),
        rows,
        version,
        report.elapsed_ms,
        note
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_line_names_the_step_its_phase_and_only_the_counts_it_has() {
        let reading = ProgressSnapshot {
            phase: "reading",
            rows_read: 1_234_567,
            bytes_read: 3 << 20,
            rows_written: 0,
        };
        assert_eq!(
            step_line("step 2 of 9 gold.x", &reading, Duration::from_millis(4_500)),
            "step 2 of 9 gold.x  reading 4s: read 1,234,567 rows (3.00 MiB)"
        );
        let training = ProgressSnapshot {
            phase: "",
            rows_written: 20,
            ..ProgressSnapshot::default()
        };
        assert_eq!(
            step_line("step 1 of 1 gold.y", &training, Duration::from_secs(61)),
            "step 1 of 1 gold.y  running 61s: wrote 20 rows"
        );
    }
}
