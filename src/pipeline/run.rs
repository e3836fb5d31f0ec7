//! `strata run`: generate sample data if needed, then run the selected steps in dependency order.
//!
//! Steps whose inputs are ready run concurrently (up to `run.concurrency`). A failed step is reported
//! and every step reading it, directly or not, is skipped; independent branches still run. Each step's
//! outcome is reported as it finishes and the whole run is appended to `system.runs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::Utc;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::catalog::{Lake, Layer, TableName};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pipeline::commit::{self, CommitMeta, WriteMode};
use crate::pipeline::dag::{Dag, Step, StepKind};
use crate::pipeline::{StepContext, StepResult, StepStatus, als_step, ingest_step, sql_step};
use crate::sample;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only these steps (all when empty).
    pub select: Vec<TableName>,
    /// Also every step downstream of the selection.
    pub downstream: bool,
    /// Rebuild from scratch: re-ingest every file and overwrite every table.
    pub full_refresh: bool,
}

/// One step's outcome in a run.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub table: TableName,
    pub status: StepStatus,
    pub rows: Option<u64>,
    pub version: Option<u64>,
    pub elapsed_ms: u64,
    pub detail: String,
    pub error: Option<String>,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: String,
    pub steps: Vec<StepReport>,
}

impl RunSummary {
    pub fn failed(&self) -> usize {
        self.count(StepStatus::Failed)
    }

    pub fn skipped(&self) -> usize {
        self.count(StepStatus::Skipped)
    }

    fn count(&self, status: StepStatus) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }
}

/// The table recording every step of every run.
pub fn runs_table() -> TableName {
    TableName::new(Layer::System, "runs")
}

/// Runs the pipeline; `on_step` sees each step's report as soon as it is known.
pub async fn run(
    config: Arc<Config>,
    options: &RunOptions,
    mut on_step: impl FnMut(&StepReport),
) -> Result<RunSummary> {
    let lake = Arc::new(Lake::try_new(&config.lake_root)?);
    generate_sample_if_empty(&config).await?;
    let dag = Dag::build(&config, &lake)?;
    let selected = dag.select(&options.select, options.downstream)?;

    let ctx = StepContext {
        lake: Arc::clone(&lake),
        config: Arc::clone(&config),
        run_id: uuid::Uuid::new_v4().to_string(),
        started_at: Utc::now(),
        full_refresh: options.full_refresh,
    };
    info!(run_id = %ctx.run_id, steps = selected.len(), "run started");

    let mut pending: Vec<&Step> = dag
        .ordered()
        .filter(|s| selected.contains(&s.table))
        .collect();
    let mut done: BTreeMap<TableName, StepStatus> = BTreeMap::new();
    let mut reports = Vec::new();
    let mut running: JoinSet<(TableName, u64, Result<StepResult>)> = JoinSet::new();

    loop {
        let mut i = 0;
        while i < pending.len() {
            let step = pending[i];
            let upstream: Vec<&TableName> = step
                .after
                .iter()
                .filter(|r| selected.contains(*r))
                .collect();
            let failed_upstream = upstream.iter().find(|r| {
                matches!(
                    done.get(**r),
                    Some(StepStatus::Failed | StepStatus::Skipped)
                )
            });
            if let Some(cause) = failed_upstream {
                let report = StepReport {
                    table: step.table.clone(),
                    status: StepStatus::Skipped,
                    rows: None,
                    version: None,
                    elapsed_ms: 0,
                    detail: format!("upstream {cause} did not complete"),
                    error: None,
                };
                on_step(&report);
                done.insert(step.table.clone(), StepStatus::Skipped);
                reports.push(report);
                pending.remove(i);
                continue;
            }
            let ready = upstream.iter().all(|r| done.contains_key(*r));
            if ready && running.len() < config.concurrency {
                let ctx = ctx.clone();
                let step = step.clone();
                running.spawn(async move {
                    let started = Instant::now();
                    let result = run_step(&ctx, &step).await;
                    (step.table, started.elapsed().as_millis() as u64, result)
                });
                pending.remove(i);
                continue;
            }
            i += 1;
        }

        let Some(joined) = running.join_next().await else {
            break;
        };
        let (table, elapsed_ms, result) =
            joined.map_err(|e| Error::Usage(format!("step task failed: {e}")))?;
        let report = match result {
            Ok(r) => {
                info!(step = %table, status = r.status.as_str(), rows = r.rows, version = r.version, elapsed_ms, "step finished");
                StepReport {
                    table: table.clone(),
                    status: r.status,
                    rows: Some(r.rows),
                    version: Some(r.version),
                    elapsed_ms,
                    detail: r.detail,
                    error: None,
                }
            }
            Err(e) => {
                warn!(step = %table, elapsed_ms, error = %e, "step failed");
                StepReport {
                    table: table.clone(),
                    status: StepStatus::Failed,
                    rows: None,
                    version: lake.open(&table).await.ok().and_then(|t| t.version()),
                    elapsed_ms,
                    detail: String::new(),
                    error: Some(crate::error::error_chain(&e)),
                }
            }
        };
        on_step(&report);
        done.insert(table, report.status);
        reports.push(report);
    }

    let summary = RunSummary {
        run_id: ctx.run_id.clone(),
        steps: reports,
    };
    if let Err(e) = record_run(&ctx, &summary).await {
        warn!(error = %e, "could not append the run to system.runs");
    }
    Ok(summary)
}

async fn run_step(ctx: &StepContext, step: &Step) -> Result<StepResult> {
    match &step.kind {
        StepKind::Ingest { source } => ingest_step::run(ctx, &step.table, source).await,
        StepKind::Sql(sql) => sql_step::run(ctx, &step.table, sql, step.reads.iter()).await,
        StepKind::Als(als) => als_step::run(ctx, &step.table, als).await,
    }
}

/// Writes a generated MovieLens-shaped sample into the raw directory when it holds no files.
async fn generate_sample_if_empty(config: &Config) -> Result<()> {
    let raw_dir = config.ingest.raw_dir.clone();
    if !config.sample.generate_if_empty || dir_has_files(&raw_dir) {
        return Ok(());
    }
    let spec = config.sample.spec;
    info!(dir = %raw_dir.display(), ratings = spec.ratings, "raw directory is empty: generating sample data");
    let dir = raw_dir.clone();
    let summary = tokio::task::spawn_blocking(move || sample::write_sample(&spec, &dir))
        .await
        .map_err(|e| Error::Usage(format!("sample generator panicked: {e}")))?
        .map_err(|e| Error::io(&raw_dir, e))?;
    eprintln!(
        "generated sample data in {}: {} users, {} movies, {} ratings",
        raw_dir.display(),
        summary.users,
        summary.items,
        summary.ratings
    );
    Ok(())
}

fn dir_has_files(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut entries| {
            entries.any(|e| {
                e.map(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false)
}

/// Appends one row per step to `system.runs`.
async fn record_run(ctx: &StepContext, summary: &RunSummary) -> Result<()> {
    if summary.steps.is_empty() {
        return Ok(());
    }
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("step", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, true),
        Field::new("version", DataType::Int64, true),
        Field::new("started_at", ts, false),
        Field::new("elapsed_ms", DataType::Int64, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
    ]));
    let steps = &summary.steps;
    let n = steps.len();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec![summary.run_id.as_str(); n])),
            Arc::new(StringArray::from_iter_values(
                steps.iter().map(|s| s.table.to_string()),
            )),
            Arc::new(StringArray::from_iter_values(
                steps.iter().map(|s| s.status.as_str()),
            )),
            Arc::new(Int64Array::from_iter(
                steps.iter().map(|s| s.rows.map(|r| r as i64)),
            )),
            Arc::new(Int64Array::from_iter(
                steps.iter().map(|s| s.version.map(|v| v as i64)),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(vec![ctx.started_at.timestamp_micros(); n])
                    .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from_iter_values(
                steps.iter().map(|s| s.elapsed_ms as i64),
            )),
            Arc::new(StringArray::from_iter_values(
                steps.iter().map(|s| s.detail.as_str()),
            )),
            Arc::new(StringArray::from_iter(
                steps.iter().map(|s| s.error.as_deref()),
            )),
        ],
    )?;
    let meta = CommitMeta {
        run_id: ctx.run_id.clone(),
        step: runs_table().to_string(),
        ..Default::default()
    };
    commit::commit(
        &ctx.lake,
        &runs_table(),
        schema,
        vec![batch],
        WriteMode::Append {
            partition_by: Vec::new(),
        },
        &meta,
    )
    .await?;
    Ok(())
}
