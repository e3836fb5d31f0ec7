//! Running one SQL step: `sql/<layer>/<name>.sql` into `layer.name`.
//!
//! First run: the query runs read-only over the lake, its result is checked against the step's
//! expectations, then committed as version 0. Rerun: when the SQL, the settings and the versions of
//! every table it reads match the fingerprint stored in the table's last commit, the step is
//! `unchanged` and nothing is written (so `append` steps never duplicate rows on an idle rerun).
//! Failure at any point (planning, execution, expectation, commit): nothing is committed and the
//! table stays at its previous version.
//!
//! With `[engine] kind = "ballista"` the query is planned over plain scans of the input versions
//! and executed on the cluster; its rows stream back and everything after (staging, expectations,
//! commit) is the same as for a local query.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::{SchemaRef, UInt64Type};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DataFusionError};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::format_as_file_type;
use datafusion::datasource::file_format::parquet::ParquetFormatFactory;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::logical_expr::{Expr, lit};
use datafusion::physical_plan::collect;
use datafusion::prelude::{DataFrame, ParquetReadOptions};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::{TableName, row_count};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::memory::Spilled;
use crate::pipeline::commit::{self, CommitMeta, WriteMode};
use crate::pipeline::expectations;
use crate::pipeline::fingerprint::{self, Fingerprint};
use crate::pipeline::progress::StepProgress;
use crate::pipeline::settings::{Materialization, StepSettings};
use crate::pipeline::staged_commit;
use crate::pipeline::{StepContext, StepResult, StepStatus};
use crate::query::read_only;
use crate::session::{on_cluster, read_stream};
use crate::variables::RunVars;

/// A SQL step as found in the SQL directory.
#[derive(Debug, Clone)]
pub struct SqlStep {
    pub file: PathBuf,
    pub sql: String,
    pub settings: StepSettings,
    /// The run variables the query and its `replace_where` read (`$ds`).
    pub variables: BTreeSet<String>,
}

pub async fn run(
    ctx: &StepContext,
    table: &TableName,
    step: &SqlStep,
    reads: impl Iterator<Item = &TableName>,
) -> Result<StepResult> {
    let started = Instant::now();
    let mut inputs = BTreeMap::new();
    for read in reads {
        let delta = ctx.lake.open(read).await?;
        inputs.insert(read.to_string(), delta.version().unwrap_or(0));
    }
    let fingerprint = fingerprint(step, &ctx.vars)?;
    let outputs = std::slice::from_ref(table);
    let detail = "up_to_date: inputs and SQL unchanged";
    if let Some(unchanged) =
        fingerprint::up_to_date(ctx, outputs, table, &fingerprint, &inputs, detail).await?
    {
        return Ok(unchanged);
    }

    let session = ctx.lake.session(&ctx.session)?;
    let prepared = Instant::now();
    let engine = &ctx.config.engine;
    let sql_error = |e: datafusion::error::DataFusionError| Error::Sql {
        file: step.file.clone(),
        message: match engine {
            Engine::Local => e.to_string(),
            Engine::Ballista(url) => {
                format!(
                    "on ballista {url}: {}",
                    crate::engine::failure_line(&e.to_string())
                )
            }
        },
    };
    let frame = match engine {
        Engine::Local => bind(
            session
                .sql_with_options(&step.sql, read_only())
                .await
                .map_err(sql_error)?,
            step,
            &ctx.vars,
        )
        .map_err(sql_error)?,
        Engine::Ballista(url) => {
            url.check_reachable().await?;
            let cluster = on_cluster(
                &ctx.lake.file_scan_session(&ctx.session)?,
                url.grpc_endpoint(),
            )?;
            let remote = cluster
                .sql_with_options(&step.sql, read_only())
                .await
                .map_err(sql_error)?;
            let remote = bind(remote, step, &ctx.vars).map_err(sql_error)?;
            // The cluster computes; its rows stream back and are staged here like a local
            // result, so expectations and the commit are the same on every engine.
            let rows = remote.execute_stream().await.map_err(sql_error)?;
            read_stream(&session, rows)?
        }
    };
    // Staged in the types Delta stores, so the staged files can become the table's own.
    let frame = commit::with_delta_types(frame)?;
    let logical_schema = std::sync::Arc::new(frame.schema().as_arrow().clone());

    // Stream the result to staged Parquet files (bounded memory), check expectations over them,
    // then commit from them. The staging directory is removed however the step ends.
    let staging = Staging::create(&ctx.lake, &ctx.run_id, table)?;
    ctx.progress.phase("running");
    let (result_rows, spilled) = write_parquet(frame, &staging.url, &ctx.progress)
        .await
        .map_err(sql_error)?;
    let staged_files = staging.files()?;
    let ran = Instant::now();
    // Expectations run under the same memory pool as the step itself.
    ctx.progress.phase("checking");
    let check_ctx = crate::session::new_session(&ctx.session)?;
    if !staged_files.is_empty() {
        check_ctx
            .register_parquet("result", &staging.url, ParquetReadOptions::default())
            .await?;
    } else {
        let empty = MemTable::try_new(logical_schema.clone(), vec![vec![]])?;
        check_ctx.register_table("result", std::sync::Arc::new(empty))?;
    }
    expectations::check(table, &check_ctx, &step.settings.expect).await?;
    let checked = Instant::now();

    let settings = &step.settings;
    // A full refresh rebuilds the table, except that a `replace_where` step rebuilds only the
    // rows it owns in this run (one day): the other days are other runs' work.
    let materialization = match settings.materialization.unwrap_or_default() {
        Materialization::ReplaceWhere => Materialization::ReplaceWhere,
        _ if ctx.full_refresh => Materialization::Overwrite,
        configured => configured,
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
        Materialization::ReplaceWhere => WriteMode::ReplaceWhere {
            predicate: replace_predicate(step, &ctx.vars, &logical_schema)?,
            partition_by: settings.partition_by.clone(),
        },
    };
    let meta = CommitMeta {
        run_id: ctx.run_id.clone(),
        step: table.to_string(),
        inputs,
        fingerprint: Some(fingerprint.as_str().to_string()),
    };
    ctx.progress.phase("committing");
    let version = if !staged_files.is_empty() {
        match staged_commit::commit_staged(
            &ctx.lake,
            table,
            &staged_files,
            &logical_schema,
            &mode,
            &meta,
        )
        .await?
        {
            Some(version) => version,
            None => {
                let staged = session
                    .read_parquet(&staging.url, ParquetReadOptions::default())
                    .await?;
                commit::commit_frame(&ctx.lake, table, staged, mode, &meta).await?
            }
        }
    } else {
        commit::commit(&ctx.lake, table, logical_schema, Vec::new(), mode, &meta).await?
    };
    drop(staging);
    // Where the step's time went, for `RUST_LOG=strata=debug` (BENCHMARKS.md's profile).
    tracing::debug!(
        step = %table,
        prepare_ms = (prepared - started).as_millis() as u64,
        run_ms = (ran - prepared).as_millis() as u64,
        check_ms = (checked - ran).as_millis() as u64,
        commit_ms = checked.elapsed().as_millis() as u64,
        "sql step phases"
    );
    let rows = match materialization {
        Materialization::Overwrite => result_rows,
        _ => row_count(&ctx.lake.open(table).await?).unwrap_or(result_rows),
    };
    Ok(StepResult {
        status: StepStatus::Committed,
        rows,
        version,
        detail: match spilled {
            Spilled { spills: 0, .. } => format!("{} {result_rows} rows", materialization.as_str()),
            spilled => format!("{} {result_rows} rows; {spilled}", materialization.as_str()),
        },
    })
}

/// `frame.write_parquet(url)`, keeping the executed plan to read what its operators spilled and,
/// while it runs, how far it has got. Returns the rows written and the spills.
async fn write_parquet(
    frame: DataFrame,
    url: &str,
    progress: &StepProgress,
) -> datafusion::error::Result<(u64, Spilled)> {
    let (state, plan) = frame.into_parts();
    let parquet = format_as_file_type(Arc::new(ParquetFormatFactory::new()));
    // Snappy, as delta-rs writes: the staged files usually become the table's own files
    // (`staged_commit`), and it costs a fraction of DataFusion's default (zstd level 3, the
    // step's slowest part after the query itself).
    let options = HashMap::from([("format.compression".to_string(), "snappy".to_string())]);
    let copy =
        LogicalPlanBuilder::copy_to(plan, url.to_string(), parquet, options, vec![])?.build()?;
    let physical = state.create_physical_plan(&copy).await?;
    progress.watch(Arc::clone(&physical));
    // The copy answers one row: how many rows it wrote.
    let answer = collect(Arc::clone(&physical), state.task_ctx()).await?;
    let rows = answer
        .first()
        .and_then(|batch| batch.column(0).as_primitive_opt::<UInt64Type>())
        .map_or(0, |count| count.values().iter().sum());
    Ok((rows, Spilled::of(physical.as_ref())))
}

/// A step's result staged as Parquet under `<lake>/_staging/<run>/<table>/` (outside every layer, so
/// never visible as a table), or under the system temp directory for a lake on object storage
/// (staging is scratch space: it never needs to be shared); removed on drop, and by the lake's
/// next run when a kill skipped the drop.
struct Staging {
    dir: PathBuf,
    /// The directory as a path string ending in `/`, which DataFusion reads and writes as a
    /// directory of files.
    url: String,
}

/// Where SQL steps stage their results: `<lake>/_staging`, or for a lake on an object store
/// `<temp>/strata/<lake digest>/_staging`, one directory per lake URL, so that what a run
/// holding one lake's lock clears up is that lake's alone.
fn staging_root(lake: &crate::catalog::Lake) -> PathBuf {
    let base = match lake.local_root() {
        Some(root) => root.to_path_buf(),
        None => {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(lake.root().to_string().as_bytes());
            let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            std::env::temp_dir().join("strata").join(name)
        }
    };
    base.join("_staging")
}

/// Removes what runs killed mid-step staged (`_staging/<their run id>/` of this lake): called by
/// a run that holds the lake lock, so no other run is staging there. Returns the directories
/// removed.
pub fn clear_abandoned_staging(lake: &crate::catalog::Lake, run_id: &str) -> Result<usize> {
    let root = staging_root(lake);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(&root, e))?.path();
        if path.file_name().is_some_and(|name| name != run_id) {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            removed += 1;
        }
    }
    let _ = std::fs::remove_dir(&root);
    Ok(removed)
}

impl Staging {
    fn create(lake: &crate::catalog::Lake, run_id: &str, table: &TableName) -> Result<Staging> {
        let dir = staging_root(lake).join(run_id).join(table.to_string());
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let url = format!("{}/", dir.display());
        Ok(Staging { dir, url })
    }

    /// The staged Parquet files.
    fn files(&self) -> Result<Vec<PathBuf>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&self.dir, e))?.path();
            if path.extension().is_some_and(|ext| ext == "parquet") {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
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

/// `frame` with the run variables its SQL reads bound as values (`$ds` becomes a DATE literal
/// in the plan; the SQL text is never edited).
fn bind(frame: DataFrame, step: &SqlStep, vars: &RunVars) -> datafusion::error::Result<DataFrame> {
    if step.variables.is_empty() {
        return Ok(frame);
    }
    frame.with_param_values(vars.params(&step.variables))
}

/// The `replace_where` predicate as an expression over the result's columns, with the run's
/// variables in place of its parameters.
fn replace_predicate(step: &SqlStep, vars: &RunVars, schema: &SchemaRef) -> Result<Expr> {
    let text = step
        .settings
        .replace_where
        .as_deref()
        .expect("resolve() requires replace_where with this materialization");
    let settings_error = |message: String| Error::StepSettings {
        file: step.file.clone(),
        message: format!("replace_where = {text:?}: {message}"),
    };
    let columns =
        DFSchema::try_from(schema.as_ref().clone()).map_err(|e| settings_error(e.to_string()))?;
    let expr = crate::session::scratch_session()
        .parse_sql_expr(text, &columns)
        .map_err(|e| settings_error(e.to_string()))?;
    let bound = expr
        .transform(|expr| match expr {
            Expr::Placeholder(placeholder) => {
                let name = placeholder.id.trim_start_matches('$');
                let value = vars.value(name).ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "no value for ${name}: run with --var {name}=..."
                    ))
                })?;
                Ok(Transformed::yes(lit(value)))
            }
            other => Ok(Transformed::no(other)),
        })
        .map_err(|e| settings_error(e.to_string()))?
        .data;
    Ok(bound)
}

/// What a SQL step's fingerprint is computed over: its SQL text, its resolved settings and the
/// values of the run variables it reads (none for most steps, which then keep the fingerprint
/// they had before variables existed).
#[derive(Serialize)]
struct Definition<'a> {
    sql: &'a str,
    settings: &'a StepSettings,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    variables: BTreeMap<&'a str, &'a str>,
}

/// Identifies what the step would compute: its SQL text, its resolved settings and its
/// variables' values, through [`Fingerprint::of`]. Commits made before carry
/// [`legacy_fingerprint`], still recognised.
fn fingerprint(step: &SqlStep, vars: &RunVars) -> Result<Fingerprint> {
    let definition = Definition {
        sql: &step.sql,
        settings: &step.settings,
        variables: vars.subset(&step.variables),
    };
    Ok(Fingerprint::of("sql", &definition)?.or_legacy(legacy_fingerprint(step)))
}

/// The fingerprint earlier versions stamped into SQL steps' commits: the SQL text, then the
/// settings' `Debug` text. Only compared against, so that lakes they wrote do not rerun every SQL
/// step once after an upgrade (see [`crate::pipeline::fingerprint`]).
fn legacy_fingerprint(step: &SqlStep) -> String {
    let mut hasher = Sha256::new();
    hasher.update(step.sql.as_bytes());
    hasher.update(format!("{:?}", legacy::StepSettings::from(&step.settings)).as_bytes());
    format!("{:x}", hasher.finalize())
}

mod legacy {
    //! The settings as their `Debug` text read when [`super::legacy_fingerprint`] was written:
    //! the same type name and fields, in order. Keys added since are left out.

    use crate::pipeline::settings::{self, Expectations, Materialization};

    #[derive(Debug)]
    pub struct StepSettings<'a> {
        #[allow(dead_code)] // read by the derived Debug only
        materialization: &'a Option<Materialization>,
        #[allow(dead_code)]
        unique_key: &'a Vec<String>,
        #[allow(dead_code)]
        partition_by: &'a Vec<String>,
        #[allow(dead_code)]
        expect: &'a Expectations,
    }

    impl<'a> From<&'a settings::StepSettings> for StepSettings<'a> {
        fn from(s: &'a settings::StepSettings) -> Self {
            StepSettings {
                materialization: &s.materialization,
                unique_key: &s.unique_key,
                partition_by: &s.partition_by,
                expect: &s.expect,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(sql: &str, settings: &str) -> SqlStep {
        let file = PathBuf::from("sql/silver/ratings.sql");
        let header = crate::pipeline::settings::parse_header(&file, settings).unwrap();
        let settings = crate::pipeline::settings::resolve(&file, header, None).unwrap();
        SqlStep {
            file,
            sql: sql.into(),
            settings,
            variables: BTreeSet::new(),
        }
    }

    /// Pinned: a change here reruns every SQL step of every existing lake once (and appends the
    /// rows of `append` steps again), so it must be deliberate.
    #[test]
    fn fingerprints_are_stable_and_recognise_what_earlier_versions_wrote() {
        let plain = step("SELECT 1", "");
        assert_eq!(
            fingerprint(&plain, &RunVars::default()).unwrap().as_str(),
            SQL_PLAIN
        );
        // What earlier versions stamped into commits (the settings' `Debug` text).
        assert_eq!(legacy_fingerprint(&plain), LEGACY_PLAIN);
        let merge = step(
            "SELECT 1",
            "-- strata: materialization = \"merge\"\n-- strata: unique_key = [\"id\"]\n",
        );
        assert_ne!(
            fingerprint(&merge, &RunVars::default()).unwrap(),
            fingerprint(&plain, &RunVars::default()).unwrap()
        );
        assert_ne!(
            fingerprint(&step("SELECT 2", ""), &RunVars::default()).unwrap(),
            fingerprint(&plain, &RunVars::default()).unwrap()
        );
    }

    const SQL_PLAIN: &str = "b22a849907374887587adff7c0b509cf7a714005b3aa0936d8ad4b0e323f834e";
    const LEGACY_PLAIN: &str = "907da2e89aa0fc24e558ede5e14b6cb8476413b199b5d5d39460f934382793a7";
}
