//! Reading the run log: the questions `strata runs`, `/v1/runs` and the dashboard ask of
//! `system.runs` and `system.step_runs`.
//!
//! A reader reads either the lake as it is now ([`RunLogReader::latest`]: the CLI, the runner and
//! the JSON API, which must see a run the moment it starts) or the snapshots a server has pinned
//! ([`RunLogReader::pinned`]: the dashboard, whose pages are cached under those very versions and
//! so open nothing from storage).

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;
use serde_json::Value;

use super::{runs_table, step_runs_table};
use crate::catalog::Lake;
use crate::error::{Error, Result};
use crate::pipeline::commit;

/// The columns of a run every listing gives (and `variables`, see [`RunLogReader::run_columns`]).
const RUN_COLUMNS: &str =
    "run_id, trigger, selection, full_refresh, started_at, ended_at, status, error";

/// Queries over the run log, in one session that resolves `system.runs` and `system.step_runs`.
pub struct RunLogReader {
    ctx: SessionContext,
    /// Whether each table exists: before the first run neither does.
    has_runs: bool,
    has_step_runs: bool,
}

impl RunLogReader {
    /// The run log as the lake holds it now.
    pub async fn latest(lake: &Arc<Lake>) -> Result<RunLogReader> {
        Ok(RunLogReader {
            has_runs: lake.exists(&runs_table()).await?,
            has_step_runs: lake.exists(&step_runs_table()).await?,
            ctx: lake.session(&Default::default())?,
        })
    }

    /// The run log at the versions a server serves: the providers of its pinned snapshots of
    /// `system.runs` and `system.step_runs` (`None` for a table that does not exist yet).
    pub fn pinned(
        runs: Option<Arc<dyn TableProvider>>,
        step_runs: Option<Arc<dyn TableProvider>>,
    ) -> Result<RunLogReader> {
        let ctx = crate::session::scratch_session();
        let (has_runs, has_step_runs) = (runs.is_some(), step_runs.is_some());
        let tables = [(runs_table(), runs), (step_runs_table(), step_runs)];
        crate::catalog::register_pinned(
            &ctx,
            tables
                .into_iter()
                .filter_map(|(table, provider)| Some((table, provider?))),
        )?;
        Ok(RunLogReader {
            ctx,
            has_runs,
            has_step_runs,
        })
    }

    /// Runs newest first, at most `limit`.
    pub async fn list_runs(&self, limit: usize) -> Result<Vec<Value>> {
        if !self.has_runs {
            return Ok(Vec::new());
        }
        let columns = self.run_columns().await?;
        self.query_json(&format!(
            "SELECT {columns} FROM system.runs ORDER BY started_at DESC, run_id LIMIT {limit}"
        ))
        .await
    }

    /// [`RUN_COLUMNS`] and `variables`, which tables written before run variables lack until
    /// their next run (read as NULL).
    async fn run_columns(&self) -> Result<String> {
        let has_variables = self
            .ctx
            .table_provider(TableReference::partial("system", "runs"))
            .await?
            .schema()
            .field_with_name("variables")
            .is_ok();
        let variables = if has_variables {
            "variables"
        } else {
            "CAST(NULL AS VARCHAR) AS variables"
        };
        Ok(format!("{RUN_COLUMNS}, {variables}"))
    }

    /// One run's row of `system.runs` (the columns [`Self::list_runs`] gives), if there is one.
    pub async fn find_run(&self, run_id: &str) -> Result<Option<Value>> {
        if !self.has_runs {
            return Ok(None);
        }
        let columns = self.run_columns().await?;
        let rows = self
            .query_json(&format!(
                "SELECT {columns} FROM system.runs WHERE run_id = {}",
                commit::quote_literal(run_id)
            ))
            .await?;
        Ok(rows.into_iter().next())
    }

    /// The newest run's id, if any.
    pub async fn last_run_id(&self) -> Result<Option<String>> {
        Ok(self
            .list_runs(1)
            .await?
            .first()
            .and_then(|r| r["run_id"].as_str().map(str::to_string)))
    }

    /// Runs still marked `running` (the columns [`Self::list_runs`] gives).
    pub async fn running(&self) -> Result<Vec<Value>> {
        if !self.has_runs {
            return Ok(Vec::new());
        }
        let columns = self.run_columns().await?;
        self.query_json(&format!(
            "SELECT {columns} FROM system.runs WHERE status = 'running'"
        ))
        .await
    }

    /// The last attempt of every step of each of `run_ids` (`run_id`, `step`, `attempt`,
    /// `status`, `rows`, `version`, `ended_at`): one query for a page of the runs grid.
    pub async fn last_attempts(&self, run_ids: &[String]) -> Result<Vec<Value>> {
        if run_ids.is_empty() || !self.has_step_runs {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = run_ids.iter().map(|id| commit::quote_literal(id)).collect();
        self.query_json(&format!(
            "SELECT run_id, step, attempt, status, rows, version, ended_at FROM ( \
               SELECT *, row_number() OVER (PARTITION BY run_id, step ORDER BY attempt DESC) AS n \
               FROM system.step_runs WHERE run_id IN ({})) WHERE n = 1",
            ids.join(", ")
        ))
        .await
    }

    /// Every step's most recent attempt across all runs (`step`, `status`, `run_id`,
    /// `ended_at`): what the step graph colours its nodes by.
    pub async fn last_step_statuses(&self) -> Result<Vec<Value>> {
        if !self.has_step_runs {
            return Ok(Vec::new());
        }
        self.query_json(
            "SELECT step, status, run_id, ended_at FROM ( \
               SELECT step, status, run_id, ended_at, \
                 row_number() OVER (PARTITION BY step ORDER BY ended_at DESC, attempt DESC) AS n \
               FROM system.step_runs) WHERE n = 1",
        )
        .await
    }

    /// A step's last `limit` attempts across runs, newest first (`run_id`, `attempt`, `status`,
    /// `rows`, `started_at`, `ended_at`): its duration and rows over time.
    pub async fn step_attempts(&self, step: &str, limit: usize) -> Result<Vec<Value>> {
        if !self.has_step_runs {
            return Ok(Vec::new());
        }
        self.query_json(&format!(
            "SELECT run_id, attempt, status, rows, started_at, ended_at FROM system.step_runs \
             WHERE step = {} ORDER BY ended_at DESC, attempt DESC LIMIT {limit}",
            commit::quote_literal(step)
        ))
        .await
    }

    /// The step attempts of one run, in the order they finished.
    pub async fn run_steps(&self, run_id: &str) -> Result<Vec<Value>> {
        if !self.has_step_runs {
            return Ok(Vec::new());
        }
        // Tables written before the `engine` column existed get it at their next append.
        let has_engine = self
            .ctx
            .table_provider(TableReference::partial("system", "step_runs"))
            .await?
            .schema()
            .field_with_name("engine")
            .is_ok();
        let engine = if has_engine {
            "engine"
        } else {
            "NULL AS engine"
        };
        self.query_json(&format!(
            "SELECT step, attempt, status, rows, version, started_at, ended_at, inputs, detail, \
             error, {engine} FROM system.step_runs WHERE run_id = {} \
             ORDER BY ended_at, step, attempt",
            commit::quote_literal(run_id)
        ))
        .await
    }

    async fn query_json(&self, sql: &str) -> Result<Vec<Value>> {
        query_json(&self.ctx, sql).await
    }
}

/// The rows of a read-only query, as JSON objects.
pub(super) async fn query_json(ctx: &SessionContext, sql: &str) -> Result<Vec<Value>> {
    let frame = ctx
        .sql_with_options(sql, crate::query::read_only())
        .await
        .map_err(Error::Query)?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(Error::Query)?;
    let text = crate::output::batches(&schema, &batches, crate::output::Format::Json)?;
    Ok(serde_json::from_str(&text)?)
}
