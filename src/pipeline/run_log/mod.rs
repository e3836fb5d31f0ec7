//! The run history: `system.runs` (one row per run) and `system.step_runs` (one row per step
//! attempt), Strata's answer to Airflow's metadata database.
//!
//! A run is upserted into `system.runs` (merge on `run_id`) as `running` when it starts and with
//! its outcome when it ends; each step appends its row to `system.step_runs` as soon as it
//! finishes, so a run killed half way still shows which steps committed. A run left `running` by a
//! killed process is marked `failed` by the next run on the lake (see [`mark_abandoned`]).
//! [`RunLogReader`] answers the questions asked of the log (runs, a run's steps, the grid).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use serde::Serialize;

use crate::catalog::{Lake, Layer, TableName};
use crate::error::Result;
use crate::pipeline::StepStatus;
use crate::pipeline::commit::{self, CommitMeta, WriteMode};
pub use crate::run_options::Trigger;
pub use reader::RunLogReader;

pub mod backfills;
mod reader;

pub fn runs_table() -> TableName {
    TableName::new(Layer::System, "runs")
}

pub fn step_runs_table() -> TableName {
    TableName::new(Layer::System, "step_runs")
}

/// One step's outcome in a run.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub table: TableName,
    /// 1 for the first try.
    pub attempt: u32,
    pub status: StepStatus,
    pub rows: Option<u64>,
    pub version: Option<u64>,
    pub elapsed_ms: u64,
    pub detail: String,
    pub error: Option<String>,
    /// Where the step ran: `local`, or `ballista df://host:port` (see [`crate::engine::Engine`]).
    pub engine: String,
}

/// One row of `system.runs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub trigger: String,
    /// `all`, or the selected steps joined by `,` (with ` +downstream`).
    pub selection: String,
    pub full_refresh: bool,
    /// RFC 3339.
    pub started_at: String,
    pub ended_at: Option<String>,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    pub error: Option<String>,
    /// The run's variables as a JSON object (`{"ds":"2026-11-30"}`; `{}` for none).
    pub variables: String,
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn micros(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_micros())
}

fn runs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("trigger", DataType::Utf8, false),
        Field::new("selection", DataType::Utf8, false),
        Field::new("full_refresh", DataType::Boolean, false),
        Field::new("started_at", ts_type(), false),
        Field::new("ended_at", ts_type(), true),
        Field::new("status", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("variables", DataType::Utf8, true),
    ]))
}

fn runs_batch(runs: &[RunRecord]) -> Result<RecordBatch> {
    let text = |f: fn(&RunRecord) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(runs.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        text(|r| &r.run_id),
        text(|r| &r.trigger),
        text(|r| &r.selection),
        Arc::new(BooleanArray::from_iter(
            runs.iter().map(|r| Some(r.full_refresh)),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter(runs.iter().map(|r| micros(&r.started_at)))
                .with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMicrosecondArray::from_iter(
                runs.iter().map(|r| r.ended_at.as_deref().and_then(micros)),
            )
            .with_timezone("UTC"),
        ),
        text(|r| &r.status),
        Arc::new(StringArray::from_iter(
            runs.iter().map(|r| r.error.as_deref()),
        )),
        text(|r| &r.variables),
    ];
    Ok(RecordBatch::try_new(runs_schema(), columns)?)
}

/// Inserts or updates runs by `run_id`.
pub async fn upsert_runs(lake: &Lake, runs: &[RunRecord]) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let meta = CommitMeta {
        run_id: runs[0].run_id.clone(),
        step: runs_table().to_string(),
        ..Default::default()
    };
    // Tables written before runs had variables gain the column (older rows read NULL).
    let mode = WriteMode::Merge {
        keys: vec!["run_id".into()],
        evolve_schema: true,
    };
    commit::commit(
        lake,
        &runs_table(),
        runs_schema(),
        vec![runs_batch(runs)?],
        mode,
        &meta,
    )
    .await?;
    Ok(())
}

/// Before run-level history, `system.runs` held one row per step. Such a table is renamed to
/// `system.runs_per_step` (still readable, history intact) so the new one can start. Called once
/// as a run starts, before anything reads or writes `system.runs`.
pub async fn set_aside_legacy_runs(lake: &Lake) -> Result<()> {
    let table = runs_table();
    // Remote lakes are newer than the per-step layout: only local lakes can hold it.
    let (Some(from), Some(to)) = (
        lake.local_table_dir(&table),
        lake.local_table_dir(&TableName::new(Layer::System, "runs_per_step")),
    ) else {
        return Ok(());
    };
    if !lake.exists(&table).await? {
        return Ok(());
    }
    let delta = lake.open(&table).await?;
    let schema = crate::catalog::provider(&delta).await?.schema();
    if schema.field_with_name("trigger").is_ok() {
        return Ok(());
    }
    if to.exists() {
        return Err(crate::error::Error::Usage(format!(
            "{} has the old per-step layout and {} already exists: move one of them away",
            from.display(),
            to.display()
        )));
    }
    std::fs::rename(&from, &to).map_err(|e| crate::error::Error::io(&from, e))?;
    tracing::warn!(
        "system.runs had the old per-step layout: kept as system.runs_per_step, \
         system.runs now holds one row per run"
    );
    Ok(())
}

/// `system.step_runs` held open for one run. Each append commits on top of the version the
/// previous one left instead of opening the table again: opening replays its log since the last
/// checkpoint, 11 versions more per run of the sample pipeline, and a rerun with nothing to do
/// took 0.37 s after one earlier run and 1.17 s after fifteen.
#[derive(Debug, Default)]
pub struct StepRunsLog {
    table: tokio::sync::Mutex<Option<DeltaTable>>,
}

impl StepRunsLog {
    /// Appends one step attempt. Steps running at once append one after the other; a writer
    /// outside this run (a second process) is merged by delta-rs's conflict check.
    pub async fn record(
        &self,
        lake: &Lake,
        run_id: &str,
        started_at: DateTime<Utc>,
        report: &StepReport,
        inputs: &BTreeMap<String, u64>,
    ) -> Result<()> {
        let (schema, batch) = step_row(run_id, started_at, report, inputs)?;
        let meta = CommitMeta {
            run_id: run_id.to_string(),
            step: step_runs_table().to_string(),
            ..Default::default()
        };
        let mut open = self.table.lock().await;
        let _turn = lake.write_turn(&step_runs_table()).await;
        let delta = match open.take() {
            Some(delta) => delta,
            None => lake.open_for_write(&step_runs_table()).await?,
        };
        // Adds the `engine` column to tables written before it existed. After a failure the next
        // append opens the table afresh.
        let mode = WriteMode::AppendAddingColumns;
        let written =
            commit::commit_to(delta, &step_runs_table(), schema, vec![batch], mode, &meta).await?;
        *open = Some(written);
        Ok(())
    }

    /// Compacts `system.step_runs` (see [`compact_if_fragmented`]) from the table this log holds
    /// open, so the check reads no log.
    pub async fn compact_if_fragmented(&self, lake: &Lake) -> Result<()> {
        let mut open = self.table.lock().await;
        let _turn = lake.write_turn(&step_runs_table()).await;
        let delta = match open.take() {
            Some(delta) => delta,
            None if lake.exists(&step_runs_table()).await? => lake.open(&step_runs_table()).await?,
            None => return Ok(()),
        };
        *open = Some(compact_if_fragmented(delta, &step_runs_table()).await?);
        Ok(())
    }
}

/// Files a run-log table may hold before the end of a run compacts it. Every step attempt appends
/// one small file to `system.step_runs` and every run two to `system.runs`; reading them
/// (`strata runs`, `GET /v1/runs`) opens each file, which a thousand runs would make slow.
pub const COMPACT_AT_FILES: usize = 64;

/// Rewrites `delta`'s files into one when it has more than [`COMPACT_AT_FILES`] (Delta OPTIMIZE:
/// same rows, a new version marked as no data change). Returns the table as it now is.
pub async fn compact_if_fragmented(delta: DeltaTable, table: &TableName) -> Result<DeltaTable> {
    let files = delta
        .snapshot()
        .map_err(|e| crate::error::Error::delta(table, e))?
        .log_data()
        .num_files();
    if files <= COMPACT_AT_FILES {
        return Ok(delta);
    }
    let (compacted, _metrics) = delta
        .optimize()
        .await
        .map_err(|e| crate::error::Error::delta(table, e))?;
    Ok(compacted)
}

/// The `system.step_runs` row of one step attempt.
fn step_row(
    run_id: &str,
    started_at: DateTime<Utc>,
    report: &StepReport,
    inputs: &BTreeMap<String, u64>,
) -> Result<(SchemaRef, RecordBatch)> {
    let ended_at = started_at + chrono::Duration::milliseconds(report.elapsed_ms as i64);
    let schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("step", DataType::Utf8, false),
        Field::new("attempt", DataType::Int64, false),
        Field::new("started_at", ts_type(), false),
        Field::new("ended_at", ts_type(), false),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, true),
        Field::new("version", DataType::Int64, true),
        Field::new("inputs", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        // Added after the first release: older rows read it as null.
        Field::new("engine", DataType::Utf8, true),
    ]));
    let ts = |t: DateTime<Utc>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(vec![t.timestamp_micros()]).with_timezone("UTC"))
    };
    let text = |s: &str| -> ArrayRef { Arc::new(StringArray::from(vec![s])) };
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            text(run_id),
            text(&report.table.to_string()),
            Arc::new(Int64Array::from(vec![report.attempt as i64])),
            ts(started_at),
            ts(ended_at),
            text(report.status.as_str()),
            Arc::new(Int64Array::from(vec![report.rows.map(|r| r as i64)])),
            Arc::new(Int64Array::from(vec![report.version.map(|v| v as i64)])),
            text(&serde_json::to_string(inputs)?),
            text(&report.detail),
            Arc::new(StringArray::from(vec![report.error.as_deref()])),
            Arc::new(StringArray::from(vec![Some(report.engine.as_str())])),
        ],
    )?;
    Ok((schema, batch))
}

/// Marks every run still `running` as `failed`: called by a run that holds the lake lock, so no
/// other process can be executing them (their process was killed or crashed).
pub async fn mark_abandoned(lake: &Arc<Lake>, now: DateTime<Utc>) -> Result<usize> {
    let rows = RunLogReader::latest(lake).await?.running().await?;
    let abandoned: Vec<RunRecord> = rows
        .iter()
        .map(|r| RunRecord {
            run_id: r["run_id"].as_str().unwrap_or_default().to_string(),
            trigger: r["trigger"].as_str().unwrap_or_default().to_string(),
            selection: r["selection"].as_str().unwrap_or_default().to_string(),
            full_refresh: r["full_refresh"].as_bool().unwrap_or(false),
            started_at: normalize_ts(r["started_at"].as_str().unwrap_or_default()),
            ended_at: Some(now.to_rfc3339()),
            status: "failed".into(),
            error: Some("the run's process ended without finishing it (killed or crashed)".into()),
            variables: r["variables"].as_str().unwrap_or("{}").to_string(),
        })
        .collect();
    upsert_runs(lake, &abandoned).await?;
    Ok(abandoned.len())
}

/// Arrow's JSON writer prints timestamps without the `T`/offset form RFC 3339 parsers want.
fn normalize_ts(text: &str) -> String {
    if DateTime::parse_from_rfc3339(text).is_ok() {
        return text.to_string();
    }
    parse_timestamp(text)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| text.to_string())
}

/// A timestamp of the run log as its queries print it (RFC 3339, or Arrow's JSON form without
/// an offset, which is UTC).
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(step: &str) -> StepReport {
        StepReport {
            table: step.parse().unwrap(),
            attempt: 1,
            status: StepStatus::Committed,
            rows: Some(1),
            version: Some(0),
            elapsed_ms: 5,
            detail: String::new(),
            error: None,
            engine: "local".into(),
        }
    }

    use serde_json::Value;

    fn run(id: &str, status: &str) -> RunRecord {
        RunRecord {
            run_id: id.into(),
            trigger: "cli".into(),
            selection: "all".into(),
            full_refresh: false,
            started_at: "2026-12-01T10:00:00+00:00".into(),
            ended_at: None,
            status: status.into(),
            error: None,
            variables: r#"{"ds":"2026-12-01"}"#.into(),
        }
    }

    #[tokio::test]
    async fn runs_are_upserted_by_id_and_an_older_table_gains_the_variables_column() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Arc::new(Lake::try_new(dir.path()).unwrap());
        // system.runs as versions before run variables wrote it: every column but `variables`.
        let old = runs_batch(&[run("old", "succeeded")]).unwrap();
        let old = old.project(&[0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
        let mode = WriteMode::Append {
            partition_by: Vec::new(),
        };
        let meta = CommitMeta::default();
        commit::commit(&lake, &runs_table(), old.schema(), vec![old], mode, &meta)
            .await
            .unwrap();

        upsert_runs(&lake, &[run("a", "running")]).await.unwrap();
        upsert_runs(&lake, &[run("a", "succeeded"), run("b", "running")])
            .await
            .unwrap();
        upsert_runs(&lake, &[run("b", "failed")]).await.unwrap();
        let runs = RunLogReader::latest(&lake)
            .await
            .unwrap()
            .list_runs(10)
            .await
            .unwrap();
        let mut rows: Vec<(String, String, Value)> = runs
            .iter()
            .map(|r| {
                (
                    r["run_id"].as_str().unwrap().to_string(),
                    r["status"].as_str().unwrap().to_string(),
                    r["variables"].clone(),
                )
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let ds = Value::from(r#"{"ds":"2026-12-01"}"#);
        assert_eq!(
            rows,
            [
                ("a".into(), "succeeded".into(), ds.clone()),
                ("b".into(), "failed".into(), ds),
                ("old".into(), "succeeded".into(), Value::Null),
            ]
        );
    }

    #[tokio::test]
    async fn a_log_held_open_keeps_every_row_when_another_writer_appends_in_between() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Arc::new(Lake::try_new(dir.path()).unwrap());
        let (ours, theirs) = (StepRunsLog::default(), StepRunsLog::default());
        let (now, inputs) = (Utc::now(), BTreeMap::new());
        ours.record(&lake, "run-a", now, &report("silver.a"), &inputs)
            .await
            .unwrap();
        // A second process appends while `ours` still holds version 0.
        theirs
            .record(&lake, "run-b", now, &report("silver.b"), &inputs)
            .await
            .unwrap();
        ours.record(&lake, "run-a", now, &report("silver.c"), &inputs)
            .await
            .unwrap();
        let steps = |run: &'static str| {
            let lake = Arc::clone(&lake);
            async move {
                let rows = RunLogReader::latest(&lake)
                    .await
                    .unwrap()
                    .run_steps(run)
                    .await
                    .unwrap();
                rows.iter().map(|r| r["step"].clone()).collect::<Vec<_>>()
            }
        };
        assert_eq!(steps("run-a").await, ["silver.a", "silver.c"]);
        assert_eq!(steps("run-b").await, ["silver.b"]);
        assert_eq!(
            lake.open(&step_runs_table()).await.unwrap().version(),
            Some(2)
        );
    }

    #[tokio::test]
    async fn a_fragmented_step_log_is_compacted_to_one_file_with_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Arc::new(Lake::try_new(dir.path()).unwrap());
        let log = StepRunsLog::default();
        let files = |lake: Arc<Lake>| async move {
            let delta = lake.open(&step_runs_table()).await.unwrap();
            delta.snapshot().unwrap().log_data().num_files()
        };
        let (now, inputs) = (Utc::now(), BTreeMap::new());
        for n in 0..COMPACT_AT_FILES {
            let step = format!("silver.s{n}");
            log.record(&lake, "run-a", now, &report(&step), &inputs)
                .await
                .unwrap();
        }
        // At the threshold nothing is rewritten.
        log.compact_if_fragmented(&lake).await.unwrap();
        assert_eq!(files(Arc::clone(&lake)).await, COMPACT_AT_FILES);

        log.record(&lake, "run-a", now, &report("silver.last"), &inputs)
            .await
            .unwrap();
        log.compact_if_fragmented(&lake).await.unwrap();
        assert_eq!(files(Arc::clone(&lake)).await, 1);
        assert_eq!(
            RunLogReader::latest(&lake)
                .await
                .unwrap()
                .run_steps("run-a")
                .await
                .unwrap()
                .len(),
            COMPACT_AT_FILES + 1
        );
        // The log still appends after compacting.
        log.record(&lake, "run-b", now, &report("silver.next"), &inputs)
            .await
            .unwrap();
        assert_eq!(
            RunLogReader::latest(&lake)
                .await
                .unwrap()
                .run_steps("run-b")
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
