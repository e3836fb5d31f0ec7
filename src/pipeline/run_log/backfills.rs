//! `system.backfills`: one row per `strata backfill`, and the question a backfill asks of the run
//! log, which days are already done.
//!
//! A backfill is upserted (merge on `backfill_id`) as `running` when it starts and with its
//! outcome when it ends; its days are ordinary runs in `system.runs` (trigger `backfill`, each
//! with its `ds`). `strata backfill --resume` reads the range and selection back from here. A
//! backfill left `running` by a killed process is marked `failed` by the next backfill.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::{parse_timestamp, runs_table, ts_type};
use crate::catalog::{Lake, Layer, TableName};
use crate::error::{Error, Result};
use crate::pipeline::commit::{self, CommitMeta, WriteMode};
use crate::variables::{RunVars, days_since_epoch, parse_date};

pub fn backfills_table() -> TableName {
    TableName::new(Layer::System, "backfills")
}

/// One row of `system.backfills`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillRecord {
    pub backfill_id: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The steps each day runs, named as `system.runs` names a selection.
    pub selection: String,
    pub full_refresh: bool,
    /// Days run at once.
    pub concurrency: u64,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// Days in the range.
    pub days: u64,
    /// Days done when the row was written (run by this backfill, or done before it).
    pub days_done: u64,
    pub error: Option<String>,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("backfill_id", DataType::Utf8, false),
        Field::new("from_date", DataType::Date32, false),
        Field::new("to_date", DataType::Date32, false),
        Field::new("selection", DataType::Utf8, false),
        Field::new("full_refresh", DataType::Boolean, false),
        Field::new("concurrency", DataType::Int64, false),
        Field::new("started_at", ts_type(), false),
        Field::new("ended_at", ts_type(), true),
        Field::new("status", DataType::Utf8, false),
        Field::new("days", DataType::Int64, false),
        Field::new("days_done", DataType::Int64, false),
        Field::new("error", DataType::Utf8, true),
    ]))
}

fn batch(row: &BackfillRecord) -> Result<RecordBatch> {
    let text = |value: &str| -> ArrayRef { Arc::new(StringArray::from(vec![value])) };
    let columns: Vec<ArrayRef> = vec![
        text(&row.backfill_id),
        Arc::new(Date32Array::from(vec![days_since_epoch(row.from)])),
        Arc::new(Date32Array::from(vec![days_since_epoch(row.to)])),
        text(&row.selection),
        Arc::new(BooleanArray::from(vec![row.full_refresh])),
        Arc::new(Int64Array::from(vec![row.concurrency as i64])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![row.started_at.timestamp_micros()])
                .with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMicrosecondArray::from(vec![row.ended_at.map(|t| t.timestamp_micros())])
                .with_timezone("UTC"),
        ),
        text(&row.status),
        Arc::new(Int64Array::from(vec![row.days as i64])),
        Arc::new(Int64Array::from(vec![row.days_done as i64])),
        Arc::new(StringArray::from(vec![row.error.as_deref()])),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// Inserts or updates the backfill's row.
pub async fn upsert(lake: &Arc<Lake>, row: &BackfillRecord) -> Result<()> {
    let meta = CommitMeta {
        run_id: row.backfill_id.clone(),
        step: backfills_table().to_string(),
        ..Default::default()
    };
    let mode = WriteMode::Merge {
        keys: vec!["backfill_id".into()],
        evolve_schema: false,
    };
    commit::commit(
        lake,
        &backfills_table(),
        schema(),
        vec![batch(row)?],
        mode,
        &meta,
    )
    .await?;
    Ok(())
}

/// Every backfill, newest first.
pub async fn list(lake: &Arc<Lake>) -> Result<Vec<BackfillRecord>> {
    if !lake.exists(&backfills_table()).await? {
        return Ok(Vec::new());
    }
    let rows = query_json(
        lake,
        "SELECT * FROM system.backfills ORDER BY started_at DESC, backfill_id",
    )
    .await?;
    rows.iter().map(record).collect()
}

/// The backfill `id`, or the latest one for `last`.
pub async fn find(lake: &Arc<Lake>, id: &str) -> Result<Option<BackfillRecord>> {
    let all = list(lake).await?;
    Ok(if id == "last" {
        all.into_iter().next()
    } else {
        all.into_iter().find(|b| b.backfill_id == id)
    })
}

/// Marks every backfill still `running` as `failed`: called by a backfill holding the lake lock,
/// so their process is gone.
pub async fn mark_abandoned(lake: &Arc<Lake>, now: DateTime<Utc>) -> Result<usize> {
    let abandoned: Vec<BackfillRecord> = list(lake)
        .await?
        .into_iter()
        .filter(|b| b.status == "running")
        .collect();
    for backfill in &abandoned {
        let failed = BackfillRecord {
            ended_at: Some(now),
            status: "failed".into(),
            error: Some(
                "the backfill's process ended without finishing it (killed or crashed)".into(),
            ),
            ..backfill.clone()
        };
        upsert(lake, &failed).await?;
    }
    Ok(abandoned.len())
}

/// The days (`ds`) with a succeeded run in `system.runs` that ran `selection` (or every step),
/// started at or after `since` when given.
pub async fn done_days(
    lake: &Arc<Lake>,
    selection: &str,
    since: Option<DateTime<Utc>>,
) -> Result<BTreeSet<NaiveDate>> {
    let runs = runs_table();
    if !lake.exists(&runs).await? {
        return Ok(BTreeSet::new());
    }
    let delta = lake.open(&runs).await?;
    let has_variables = crate::catalog::provider(&delta)
        .await?
        .schema()
        .field_with_name("variables")
        .is_ok();
    if !has_variables {
        return Ok(BTreeSet::new());
    }
    let rows = query_json(
        lake,
        "SELECT variables, selection, started_at FROM system.runs \
         WHERE status = 'succeeded' AND variables IS NOT NULL",
    )
    .await?;
    let mut days = BTreeSet::new();
    for row in rows {
        let covers = matches!(row["selection"].as_str(), Some(s) if s == "all" || s == selection);
        let recent = match since {
            None => true,
            Some(since) => row["started_at"]
                .as_str()
                .and_then(parse_timestamp)
                .is_some_and(|at| at >= since),
        };
        let day = row["variables"]
            .as_str()
            .and_then(|text| RunVars::from_json(text).ok())
            .and_then(|vars| vars.ds());
        if let (true, true, Some(day)) = (covers, recent, day) {
            days.insert(day);
        }
    }
    Ok(days)
}

fn record(row: &Value) -> Result<BackfillRecord> {
    let broken = |column: &str| {
        Error::Internal(format!("system.backfills row has no valid {column}: {row}"))
    };
    let text = |column: &str| row[column].as_str().map(str::to_string);
    let date = |column: &str| {
        row[column]
            .as_str()
            .and_then(|d| parse_date(d).ok())
            .ok_or_else(|| broken(column))
    };
    let number = |column: &str| row[column].as_u64().ok_or_else(|| broken(column));
    Ok(BackfillRecord {
        backfill_id: text("backfill_id").ok_or_else(|| broken("backfill_id"))?,
        from: date("from_date")?,
        to: date("to_date")?,
        selection: text("selection").ok_or_else(|| broken("selection"))?,
        full_refresh: row["full_refresh"].as_bool().unwrap_or(false),
        concurrency: number("concurrency")?,
        started_at: row["started_at"]
            .as_str()
            .and_then(parse_timestamp)
            .ok_or_else(|| broken("started_at"))?,
        ended_at: row["ended_at"].as_str().and_then(parse_timestamp),
        status: text("status").ok_or_else(|| broken("status"))?,
        days: number("days")?,
        days_done: number("days_done")?,
        error: text("error"),
    })
}

async fn query_json(lake: &Arc<Lake>, sql: &str) -> Result<Vec<Value>> {
    super::reader::query_json(&lake.session(&Default::default())?, sql).await
}
