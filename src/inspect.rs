//! Read-only views of the lake's Delta metadata: the table list and each table's version history.
//!
//! Everything here reads the Delta log only (no data files), so it is cheap enough for `strata tables`
//! and for the HTTP API. Restoring a version also lives here, as it is the write-side twin of history.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::Value;

use deltalake::DeltaTable;

use crate::catalog::{Lake, TableName, row_count};
use crate::catalog::{META_INPUTS, META_RUN_ID, META_STEP};
use crate::error::{Error, Result};

/// One table of the lake, as `strata tables` and `GET /v1/tables` show it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TableInfo {
    pub table: String,
    pub layer: String,
    pub version: u64,
    pub rows: Option<u64>,
    /// RFC 3339, UTC.
    pub last_commit: Option<String>,
    /// The Strata run that wrote the current version (absent for commits made by other engines).
    pub run_id: Option<String>,
}

/// One version of a table, as `strata history` and `GET /v1/tables/{table}/history` show it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub version: u64,
    /// RFC 3339, UTC.
    pub timestamp: Option<String>,
    pub operation: Option<String>,
    pub rows_written: Option<u64>,
    /// The Strata run that wrote the version (absent for commits made by other engines).
    pub run_id: Option<String>,
    pub step: Option<String>,
    /// The table versions a step's commit was computed from (its lineage; empty for ingests and
    /// for commits without Strata's metadata, such as a restore).
    pub inputs: BTreeMap<String, u64>,
}

/// Every table with its current version, row count, last commit time and the run that wrote it.
pub async fn tables(lake: &Lake) -> Result<Vec<TableInfo>> {
    let mut infos = Vec::new();
    for table in lake.list().await? {
        let delta = lake.open(&table).await?;
        infos.push(table_info(&table, &delta).await?);
    }
    Ok(infos)
}

/// One table's [`TableInfo`] at the version `delta` holds (a server passes its pinned snapshot).
pub async fn table_info(table: &TableName, delta: &DeltaTable) -> Result<TableInfo> {
    let version = delta.version().unwrap_or(0);
    let last_commit = delta
        .snapshot()
        .ok()
        .and_then(|s| s.version_timestamp(version))
        .and_then(rfc3339_millis);
    // The newest commit only: one small read of the log's tail.
    let newest: Vec<_> = delta
        .history(Some(1))
        .try_collect()
        .await
        .map_err(|e| Error::delta(table, e))?;
    let run_id = newest
        .first()
        .and_then(|c| c.info.get(META_RUN_ID))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(TableInfo {
        table: table.to_string(),
        layer: table.layer.to_string(),
        version,
        rows: row_count(delta),
        last_commit,
        run_id,
    })
}

/// Every version of a table, newest first.
pub async fn history(lake: &Lake, table: &TableName) -> Result<Vec<HistoryEntry>> {
    newest_commits(lake, table, None).await
}

/// The table's latest commit: who wrote the version read now (the log's tail only).
pub async fn last_commit(lake: &Lake, table: &TableName) -> Result<Option<HistoryEntry>> {
    Ok(newest_commits(lake, table, Some(1))
        .await?
        .into_iter()
        .next())
}

async fn newest_commits(
    lake: &Lake,
    table: &TableName,
    limit: Option<usize>,
) -> Result<Vec<HistoryEntry>> {
    let delta = lake.open(table).await?;
    let latest = delta.version().unwrap_or(0);
    let commits: Vec<_> = delta
        .history(limit)
        .try_collect()
        .await
        .map_err(|e| Error::delta(table, e))?;
    // deltalake returns commits newest first, one per version.
    Ok(commits
        .into_iter()
        .enumerate()
        .map(|(i, commit)| {
            let text = |key: &str| {
                commit
                    .info
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            HistoryEntry {
                version: latest.saturating_sub(i as u64),
                timestamp: commit.timestamp.and_then(rfc3339_millis),
                operation: commit.operation.clone(),
                rows_written: rows_written(commit.info.get("operationMetrics")),
                run_id: text(META_RUN_ID),
                step: text(META_STEP),
                inputs: commit
                    .info
                    .get(META_INPUTS)
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default(),
            }
        })
        .collect())
}

/// Commits a new version whose contents equal `version` (Delta RESTORE); returns the new version.
pub async fn restore(lake: &Lake, table: &TableName, version: u64) -> Result<u64> {
    let delta = lake.open(table).await?;
    let latest = delta.version().unwrap_or(0);
    if version > latest {
        return Err(Error::VersionNotFound {
            table: table.clone(),
            version,
        });
    }
    let (restored, _metrics) = delta
        .restore()
        .with_version_to_restore(version)
        .await
        .map_err(|e| Error::delta(table, e))?;
    Ok(restored.version().unwrap_or(latest + 1))
}

/// Rows a commit wrote, from Delta's operation metrics (writes and merges name them differently).
fn rows_written(metrics: Option<&Value>) -> Option<u64> {
    let metrics = metrics?;
    let get = |key: &str| metrics.get(key).and_then(Value::as_u64);
    get("num_added_rows").or_else(|| {
        let inserted = get("num_target_rows_inserted");
        let updated = get("num_target_rows_updated");
        match (inserted, updated) {
            (None, None) => None,
            (i, u) => Some(i.unwrap_or(0) + u.unwrap_or(0)),
        }
    })
}

fn rfc3339_millis(millis: i64) -> Option<String> {
    let at: DateTime<Utc> = Utc.timestamp_millis_opt(millis).single()?;
    Some(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
