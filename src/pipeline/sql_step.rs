//! Running one SQL step: `sql/<layer>/<name>.sql` into `layer.name`.
//!
//! First run: the query runs read-only over the lake, its result is checked against the step's
//! expectations, then committed as version 0. Rerun: when the SQL, the settings and the versions of
//! every table it reads match the fingerprint stored in the table's last commit, the step is
//! `unchanged` and nothing is written (so `append` steps never duplicate rows on an idle rerun).
//! Failure at any point (planning, execution, expectation, commit): nothing is committed and the
//! table stays at its previous version.

use std::collections::BTreeMap;

use std::path::PathBuf;

use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SQLOptions, SessionContext};
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

    if !ctx.full_refresh && ctx.lake.exists(table).await? {
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
                    detail: "up_to_date: inputs and SQL unchanged".into(),
                });
            }
        }
    }

    let session = ctx.lake.session(&ctx.config.session_options())?;
    let sql_error = |e: datafusion::error::DataFusionError| Error::Sql {
        file: step.file.clone(),
        message: e.to_string(),
    };
    let frame = session
        .sql_with_options(&step.sql, read_only())
        .await
        .map_err(sql_error)?;
    let logical_schema = std::sync::Arc::new(frame.schema().as_arrow().clone());

    // Stream the result to staged Parquet files (bounded memory), check expectations over them,
    // then commit from them. The staging directory is removed however the step ends.
    let staging = Staging::create(&ctx.lake, &ctx.run_id, table)?;
    frame
        .write_parquet(&staging.url, DataFrameWriteOptions::new(), None)
        .await
        .map_err(sql_error)?;
    let staged_files = staging.has_files();
    let check_ctx = SessionContext::new();
    if staged_files {
        check_ctx
            .register_parquet("result", &staging.url, ParquetReadOptions::default())
            .await?;
    } else {
        let empty = MemTable::try_new(logical_schema.clone(), vec![vec![]])?;
        check_ctx.register_table("result", std::sync::Arc::new(empty))?;
    }
    expectations::check(table, &check_ctx, &step.settings.expect).await?;
    let result_rows = check_ctx.table("result").await?.count().await? as u64;

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
            evolve_schema: false,
        },
    };
    let meta = CommitMeta {
        run_id: ctx.run_id.clone(),
        step: table.to_string(),
        inputs,
        fingerprint: Some(fingerprint),
    };
    let version = if staged_files {
        let staged = session
            .read_parquet(&staging.url, ParquetReadOptions::default())
            .await?;
        commit::commit_frame(&ctx.lake, table, staged, mode, &meta).await?
    } else {
        commit::commit(&ctx.lake, table, logical_schema, Vec::new(), mode, &meta).await?
    };
    drop(staging);
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

/// A step's result staged as Parquet under `<lake>/_staging/<run>/<table>/` (outside every layer, so
/// never visible as a table), or under the system temp directory for a lake on object storage
/// (staging is scratch space: it never needs to be shared); removed on drop.
struct Staging {
    dir: PathBuf,
    /// The directory as a path string ending in `/`, which DataFusion reads and writes as a
    /// directory of files.
    url: String,
}

impl Staging {
    fn create(lake: &crate::catalog::Lake, run_id: &str, table: &TableName) -> Result<Staging> {
        let base = match lake.local_root() {
            Some(root) => root.to_path_buf(),
            None => std::env::temp_dir().join("strata"),
        };
        let dir = base.join("_staging").join(run_id).join(table.to_string());
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let url = format!("{}/", dir.display());
        Ok(Staging { dir, url })
    }

    fn has_files(&self) -> bool {
        std::fs::read_dir(&self.dir)
            .map(|mut entries| entries.any(|e| e.is_ok()))
            .unwrap_or(false)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // Remove the run's directory and `_staging` itself once empty (fails harmlessly otherwise).
        if let Some(run_dir) = self.dir.parent() {
            let _ = std::fs::remove_dir(run_dir);
            if let Some(staging_root) = run_dir.parent() {
                let _ = std::fs::remove_dir(staging_root);
            }
        }
    }
}

/// Identifies what the step would compute: its SQL text and its resolved settings.
fn fingerprint(step: &SqlStep) -> String {
    let mut hasher = Sha256::new();
    hasher.update(step.sql.as_bytes());
    hasher.update(format!("{:?}", step.settings).as_bytes());
    format!("{:x}", hasher.finalize())
}
