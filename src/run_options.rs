//! What a run is asked to do, as plain data: the options of one run ([`RunOptions`]), what started
//! it ([`Trigger`]) and a cron [`Schedule`] of runs. A leaf: `config` reads `[schedule]` into these
//! and `pipeline` carries them out, without either importing the other for them.

use chrono::{DateTime, Utc};
use croner::Cron;
use serde::Serialize;

use crate::catalog::table_name::TableName;
use crate::variables::RunVars;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// What started the run (recorded in `system.runs`).
    pub trigger: Trigger,
    /// Only these steps (all when empty).
    pub select: Vec<TableName>,
    /// Also every step downstream of the selection.
    pub downstream: bool,
    /// Rebuild from scratch: re-ingest every file and overwrite every table.
    pub full_refresh: bool,
    /// Re-run only what this run (an id, or `last`) did not complete.
    pub resume: Option<String>,
    /// The run's variables (`--var ds=2026-11-30`), bound in SQL as `$name`.
    pub vars: RunVars,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            trigger: Trigger::Cli,
            select: Vec::new(),
            downstream: false,
            full_refresh: false,
            resume: None,
            vars: RunVars::default(),
        }
    }
}

impl RunOptions {
    /// How `system.runs` names the selection.
    pub fn selection(&self) -> String {
        if self.select.is_empty() {
            return "all".into();
        }
        let tables: Vec<String> = self.select.iter().map(|t| t.to_string()).collect();
        let mut text = tables.join(",");
        if self.downstream {
            text.push_str(" +downstream");
        }
        text
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Cli,
    Api,
    Schedule,
    /// The dashboard's form (`POST /ui/runs`).
    Ui,
    /// A day of `strata backfill`.
    Backfill,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::Api => "api",
            Trigger::Schedule => "schedule",
            Trigger::Ui => "ui",
            Trigger::Backfill => "backfill",
        }
    }
}

/// A parsed `[schedule]`: when `strata serve` starts a run, and of what.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub cron: Cron,
    pub options: RunOptions,
}

impl Schedule {
    /// The options of the run fired at `at`: `ds` is that time's date (UTC), as Airflow's `ds`
    /// is a run's logical date.
    pub fn options_at(&self, at: DateTime<Utc>) -> RunOptions {
        RunOptions {
            vars: RunVars::for_date(at.date_naive()),
            ..self.options.clone()
        }
    }

    /// The first fire time strictly after `now` (UTC).
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&now, false).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(pattern: &str) -> Schedule {
        Schedule {
            cron: pattern.parse().unwrap(),
            options: RunOptions::default(),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn next_fire_times_come_from_the_injected_clock() {
        let every_six_hours = schedule("0 */6 * * *");
        assert_eq!(
            every_six_hours.next_after(at("2026-11-28T10:15:00Z")),
            Some(at("2026-11-28T12:00:00Z"))
        );
        assert_eq!(
            every_six_hours.next_after(at("2026-11-28T12:00:00Z")),
            Some(at("2026-11-28T18:00:00Z")),
            "strictly after: a run at 12:00 does not fire twice"
        );
        let monday_morning = schedule("30 7 * * MON");
        assert_eq!(
            monday_morning.next_after(at("2026-11-28T10:00:00Z")),
            Some(at("2026-11-30T07:30:00Z"))
        );
        assert!("61 * * * *".parse::<Cron>().is_err());
    }
}
