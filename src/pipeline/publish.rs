//! Publishing several tables as one model: the all-or-none rule of training steps (ALS,
//! classifier).
//!
//! A training step computes everything first, then commits its tables one by one and appends its
//! run to `system.model_runs`. If any of that fails, [`Publication::roll_back`] puts every table it
//! committed back to its version before the step (removing a table the step created), so the
//! previous model stays live. The training skeleton ([`crate::pipeline::training`]) drives it;
//! whether a rerun has anything to do is [`crate::pipeline::fingerprint::up_to_date`]'s question.

use std::collections::BTreeMap;

use tracing::{info, warn};

use crate::catalog::TableName;
use crate::error::Result;
use crate::pipeline::StepContext;
use crate::pipeline::commit::{self, CommitMeta, WriteMode};

/// The tables a step is publishing: their versions before it, and what it committed so far.
#[derive(Debug)]
pub struct Publication {
    previous: BTreeMap<TableName, Option<u64>>,
    committed: Vec<TableName>,
    /// Table -> the version this step committed.
    pub versions: BTreeMap<String, u64>,
}

impl Publication {
    /// Opens every table the step writes (and the run log) before any work, so a table that cannot
    /// be opened fails the step with nothing written and the versions to roll back to are known.
    pub async fn start(ctx: &StepContext, tables: &[TableName]) -> Result<Publication> {
        let mut previous = BTreeMap::new();
        for table in tables
            .iter()
            .cloned()
            .chain([crate::pipeline::model_runs::table()])
        {
            let version = if ctx.lake.exists(&table).await? {
                ctx.lake.open(&table).await?.version()
            } else {
                None
            };
            previous.insert(table, version);
        }
        Ok(Publication {
            previous,
            committed: Vec::new(),
            versions: BTreeMap::new(),
        })
    }

    /// Overwrites `table` with `batch`; on failure, rolls back what was committed and fails.
    pub async fn overwrite(
        &mut self,
        ctx: &StepContext,
        table: &TableName,
        batch: arrow::array::RecordBatch,
        meta: &CommitMeta,
    ) -> Result<u64> {
        let mode = WriteMode::Overwrite {
            partition_by: Vec::new(),
        };
        let schema = batch.schema();
        match commit::commit(&ctx.lake, table, schema, vec![batch], mode, meta).await {
            Ok(version) => {
                self.versions.insert(table.to_string(), version);
                self.committed.push(table.clone());
                Ok(version)
            }
            Err(e) => {
                self.roll_back(ctx).await;
                Err(e)
            }
        }
    }

    /// Appends the run's row to `system.model_runs`, the last write; if the row could not be
    /// built or appended, every table the step committed goes back.
    pub async fn log_run(
        &mut self,
        ctx: &StepContext,
        step: &TableName,
        row: Result<arrow::array::RecordBatch>,
    ) -> Result<u64> {
        let appended = match row {
            Ok(row) => crate::pipeline::model_runs::append(ctx, step, row).await,
            Err(e) => Err(e),
        };
        match appended {
            Ok(version) => Ok(version),
            Err(e) => {
                self.roll_back(ctx).await;
                Err(e)
            }
        }
    }

    /// Puts every table this step committed back to its version before the step; a table the
    /// step created is removed. Failures are logged: the step's own error is what the user needs.
    pub async fn roll_back(&mut self, ctx: &StepContext) {
        for table in self.committed.drain(..) {
            let outcome = match self.previous.get(&table).copied().flatten() {
                Some(version) => crate::inspect::restore(&ctx.lake, &table, version)
                    .await
                    .map(|_| ()),
                None => ctx.lake.delete_table(&table).await,
            };
            match outcome {
                Ok(()) => info!(table = %table, "rolled back after a failed training step"),
                Err(e) => warn!(table = %table, error = %e, "could not roll back"),
            }
        }
    }
}
