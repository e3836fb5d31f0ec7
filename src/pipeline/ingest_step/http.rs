//! Ingesting an `http` source: every page fetched, records merged on a key.
//!
//! Each record keeps its nested shape (structs, lists) plus lineage: the request URL, the fetch
//! time and `_record_sha256`, a hash of the record's JSON. A refetch commits only records that are
//! new or changed (MERGE on the key: insert new keys, update changed ones), so bronze holds every
//! record once, its Delta history holds every change, and an unchanged API commits nothing.
//! Records that are not objects or lack the key go to `bronze.<name>__rejects` with the request URL,
//! their position in the page, their JSON and the reason.

use std::collections::{BTreeMap, HashMap};

use arrow::array::Array;
use arrow::datatypes::DataType;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::warn;

use super::{as_strings, reject_rows};
use crate::catalog::{TableName, row_count};
use crate::error::{Error, Result};
use crate::ingest::http::{self, HttpSource, Page};
use crate::pipeline::commit::{self, CommitMeta, WriteMode, quote_ident};
use crate::pipeline::{StepContext, StepResult, StepStatus};

/// Lineage column: SHA-256 of the record's JSON, to tell changed records from unchanged ones.
pub const RECORD_SHA256: &str = "_record_sha256";

pub async fn run(ctx: &StepContext, table: &TableName, spec: &HttpSource) -> Result<StepResult> {
    let key = spec.merge_key.as_str();
    let ingest_error = |message: String| Error::Ingest {
        table: table.clone(),
        message,
    };
    let step = table.to_string();
    let on_retry = move |notice: &str| warn!(step = %step, "{notice}");
    ctx.progress.phase("fetching");
    let pages = http::fetch_all(spec, &on_retry)
        .await
        .map_err(|source| Error::Fetch {
            table: table.clone(),
            source,
        })?;
    let fetched: usize = pages.iter().map(|p| p.records.len()).sum();
    ctx.progress.read(fetched as u64, 0);

    let (records, rejects) = keyed_records(&pages, key);
    let refresh_all = ctx.full_refresh || !ctx.lake.exists(table).await?;
    let known = if refresh_all {
        HashMap::new()
    } else {
        known_hashes(ctx, table, key).await?
    };
    let sample: Vec<Value> = records
        .values()
        .map(|(_, record, _)| record.clone())
        .collect();
    let sample: Vec<&Value> = sample.iter().collect();
    let changed: Vec<(Value, &Page)> = records
        .into_values()
        .filter(|(key_text, record, _)| {
            known.get(key_text)
                != record
                    .get(RECORD_SHA256)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .as_ref()
        })
        .map(|(_, record, page)| (record, page))
        .collect();

    let meta = CommitMeta {
        run_id: ctx.run_id.clone(),
        step: table.to_string(),
        inputs: Default::default(),
        fingerprint: None,
    };
    if !rejects.is_empty() {
        let rows = rejects.iter().map(|r| {
            (
                r.url.as_str(),
                r.position,
                r.raw.as_str(),
                r.reason.as_str(),
            )
        });
        let batch = reject_rows(rows, ctx.started_at)?;
        commit::commit(
            &ctx.lake,
            &table.rejects(),
            batch.schema(),
            vec![batch],
            WriteMode::Append {
                partition_by: Vec::new(),
            },
            &meta,
        )
        .await?;
    }

    if changed.is_empty() {
        let current = ctx.lake.open(table).await?;
        return Ok(StepResult {
            status: StepStatus::Unchanged,
            rows: row_count(&current).unwrap_or(0),
            version: current.version().unwrap_or(0),
            detail: format!(
                "{fetched} record(s) from {} page(s), none new or changed",
                pages.len()
            ),
        });
    }
    let existing = if refresh_all {
        None
    } else {
        let current = ctx.lake.open(table).await?;
        // As Delta stores it (plain strings, not the views DataFusion scans with).
        let scanned = crate::catalog::provider(&current).await?.schema();
        Some(commit::delta_schema(&scanned))
    };
    let batch = http::to_batch(&changed, &sample, existing.as_deref()).map_err(ingest_error)?;
    if !matches!(
        batch
            .schema()
            .field_with_name(key)
            .map(|f| f.data_type().clone()),
        Ok(DataType::Utf8 | DataType::Int64)
    ) {
        return Err(ingest_error(format!(
            "merge_key {key:?} must be a string or integer field of every record"
        )));
    }
    let mode = if refresh_all {
        WriteMode::Overwrite {
            partition_by: Vec::new(),
        }
    } else {
        WriteMode::Merge {
            keys: vec![key.to_string()],
            evolve_schema: true,
        }
    };
    let written = changed.len();
    ctx.progress.phase("committing");
    // The MERGE joins the table with the new records: inside the run's memory limit, spilling.
    let session = ctx.lake.session(&ctx.session)?;
    let version =
        commit::commit_frame(&ctx.lake, table, session.read_batch(batch)?, mode, &meta).await?;
    let rows = row_count(&ctx.lake.open(table).await?).unwrap_or(written as u64);
    let rejected = if rejects.is_empty() {
        String::new()
    } else {
        format!(", {} rejected -> {}", rejects.len(), table.rejects())
    };
    Ok(StepResult {
        status: StepStatus::Committed,
        rows,
        version,
        detail: format!(
            "{fetched} record(s) from {} page(s), {written} new or changed{rejected}",
            pages.len()
        ),
    })
}

/// A record that cannot be keyed.
struct RejectedRecord {
    url: String,
    position: i64,
    raw: String,
    reason: String,
}

/// The records by key text (the last one wins when a key repeats across pages), each with its
/// hash added, and the records that have no usable key.
#[allow(clippy::type_complexity)]
fn keyed_records<'p>(
    pages: &'p [Page],
    key: &str,
) -> (
    BTreeMap<String, (String, Value, &'p Page)>,
    Vec<RejectedRecord>,
) {
    let mut keyed = BTreeMap::new();
    let mut rejects = Vec::new();
    for page in pages {
        for (index, record) in page.records.iter().enumerate() {
            let key_text = match record.get(key) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::Number(n)) if n.is_i64() => Ok(n.to_string()),
                Some(_) if record.is_object() => {
                    Err(format!("{key} is not a non-empty string or an integer"))
                }
                None if record.is_object() => Err(format!("missing merge key {key}")),
                _ => Err("not a JSON object".to_string()),
            };
            match key_text {
                Ok(key_text) => {
                    let mut record = record.clone();
                    let hash = format!("{:x}", Sha256::digest(record.to_string().as_bytes()));
                    record[RECORD_SHA256] = Value::String(hash);
                    keyed.insert(key_text.clone(), (key_text, record, page));
                }
                Err(reason) => rejects.push(RejectedRecord {
                    url: page.url.clone(),
                    position: index as i64 + 1,
                    raw: record.to_string(),
                    reason,
                }),
            }
        }
    }
    (keyed, rejects)
}

/// Key text → record hash of what bronze holds now.
async fn known_hashes(
    ctx: &StepContext,
    table: &TableName,
    key: &str,
) -> Result<HashMap<String, String>> {
    let session = ctx.lake.session(&ctx.session)?;
    let sql = format!(
        "SELECT CAST({k} AS VARCHAR) AS k, {h} AS h FROM {table}",
        k = quote_ident(key),
        h = quote_ident(RECORD_SHA256)
    );
    let batches = session.sql(&sql).await?.collect().await?;
    let mut known = HashMap::new();
    for batch in batches {
        let keys = as_strings(batch.column(0).as_ref())?;
        let hashes = as_strings(batch.column(1).as_ref())?;
        for i in 0..batch.num_rows() {
            if keys.is_valid(i) && hashes.is_valid(i) {
                known.insert(keys.value(i).to_string(), hashes.value(i).to_string());
            }
        }
    }
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_a_usable_key_are_rejected_with_their_position_and_the_last_copy_wins() {
        let page = Page {
            url: "http://api/v4/launches?page=2".into(),
            fetched_at: chrono::Utc::now(),
            records: vec![
                serde_json::json!({"id": "a", "v": 1}),
                serde_json::json!({"v": 2}),
                serde_json::json!({"id": 7, "v": 3}),
                serde_json::json!("not an object"),
                serde_json::json!({"id": "a", "v": 4}),
                serde_json::json!({"id": 1.5}),
            ],
        };
        let pages = [page];
        let (keyed, rejects) = keyed_records(&pages, "id");
        assert_eq!(keyed.keys().collect::<Vec<_>>(), ["7", "a"]);
        assert_eq!(keyed["a"].1["v"], 4, "a repeated key keeps its last record");
        assert!(keyed["a"].1[RECORD_SHA256].as_str().unwrap().len() == 64);
        let reasons: Vec<(i64, &str)> = rejects
            .iter()
            .map(|r| (r.position, r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (2, "missing merge key id"),
                (4, "not a JSON object"),
                (6, "id is not a non-empty string or an integer"),
            ]
        );
        assert!(rejects.iter().all(|r| r.url.ends_with("page=2")));
    }
}
