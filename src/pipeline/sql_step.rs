//! Running one SQL step: `sql/<layer>/<name>.sql` into `layer.name`.
//!
//! First run: the query runs read-only over the lake, its result is checked against the step's
//! expectations, then committed as version 0. Rerun: when the SQL, the settings and the versions of
//! every table it reads match the fingerprint stored in the table's last commit, the step is
//! `unchanged` and nothing is written (so `append` steps never duplicate rows on an idle rerun).
//! Failure at any point (planning, execution, expectation, commit): nothing is committed and the
//! table stays at its previous version.

use std::collections::BTreeMap;

use datafusion::prelude::SQLOptions;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::{TableName, row_count};
use crate::error::{Error, Result};
use crate::pipeline::commit::{self, CommitMeta, WriteMode};
use crate::pipeline::dag::SqlStep;
use crate::pipeline::expectations;
use crate::pipeline::settings::Materialization;
use crate::pipeline::{StepContext, StepResult, StepStatus};

/// Queries in steps may only read: DDL, DML and `SET` are refused at planning time.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

pub async fn run(
    ctx: &StepContext,
    table: &TableName,
    step: &SqlStep,
    reads: impl Iterator<Item = &TableName>,
) -> Result<StepResult> {
    let mut inputs = BTreeMap::new();
    for read in reads {
        let delta = ctx.lake.open(read).await?;
        inputs.insert(read.to_string(), delta.version().unwrap_or(0));
    }
    let fingerprint = fingerprint(step);

    if !ctx.full_refresh && ctx.lake.exists(table) {
        let current = ctx.lake.open(table).await?;
        if let Some(meta) = commit::last_commit_meta(&current).await {
            let same_sql =
                meta.get(commit::META_FINGERPRINT) == Some(&Value::from(fingerprint.clone()));
            let same_inputs = meta.get(commit::META_INPUTS) == Some(&serde_json::json!(inputs));
            if same_sql && same_inputs {
                return Ok(StepResult {
                    status: StepStatus::Unchanged,
                    rows: row_count(&current).unwrap_or(0),
                    version: current.version().unwrap_or(0),
                    detail: "inputs and SQL unchanged".into(),
                });
            }
        }
    }

    let session = ctx.lake.session(&ctx.config.datafusion)?;
    let sql_error = |e: datafusion::error::DataFusionError| Error::Sql {
        file: step.file.clone(),
        message: e.to_string(),
    };
    let frame = session
        .sql_with_options(&step.sql, read_only())
        .await
        .map_err(sql_error)?;
    let logical_schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(sql_error)?;
    // The executed batches are the truth (the logical schema can differ in nullability).
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or(logical_schema);
    let result_rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();

    expectations::check(table, schema.clone(), &batches, &step.settings.expect).await?;

    let settings = &step.settings;
    let materialization = if ctx.full_refresh {
        Materialization::Overwrite
    } else {
        settings.materialization.unwrap_or_default()
    };
    let mode = match materialization {
        Materialization::Overwrite => WriteMode::Overwrite {
            partition_by: settings.partition_by.clone(),
        },
        Materialization::Append => WriteMode::Append {
            partition_by: settings.partition_by.clone(),
        },
        Materialization::Merge => WriteMode::Merge {
            keys: settings.unique_key.clone(),
        },
    };
    let meta = CommitMeta {
        run_id: ctx.run_id.clone(),
        step: table.to_string(),
        inputs,
        fingerprint: Some(fingerprint),
    };
    let version = commit::commit(&ctx.lake, table, schema, batches, mode, &meta).await?;
    let rows = match materialization {
        Materialization::Overwrite => result_rows,
        _ => row_count(&ctx.lake.open(table).await?).unwrap_or(result_rows),
    };
    Ok(StepResult {
        status: StepStatus::Committed,
        rows,
        version,
        detail: format!("{} {result_rows} rows", materialization.as_str()),
    })
}

/// Identifies what the step would compute: its SQL text and its resolved settings.
fn fingerprint(step: &SqlStep) -> String {
    let mut hasher = Sha256::new();
    hasher.update(step.sql.as_bytes());
    hasher.update(format!("{:?}", step.settings).as_bytes());
    format!("{:x}", hasher.finalize())
}
