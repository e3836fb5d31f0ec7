//! In-memory indexes over the gold recommendation tables, rebuilt when their versions move.
//!
//! `GET /v1/users/{id}/recommendations` must answer in microseconds, so the lists of
//! `gold.user_recommendations` / `gold.similar_items`, the popularity fallback and the item
//! details are loaded once per version into hash maps. Each index remembers the versions it was
//! built from; a request that finds newer snapshots rebuilds it (once, under a lock) and answers
//! from the new one.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float32Type, Int32Type, Int64Type};
use datafusion::logical_expr::{cast, col};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::api::error::{ApiError, ApiResult};
use crate::api::snapshots::{Snapshot, Snapshots};
use crate::catalog::{Layer, TableName};
use crate::config::serve::RecommendationsConfig;

/// One ranked neighbour: an item and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub item_id: i64,
    pub score: f64,
}

/// Ranked lists by id, from a `(id, rank, other_id, score)` table.
#[derive(Debug, Default)]
pub struct RankedLists {
    pub by_id: HashMap<i64, Vec<Ranked>>,
}

/// Item details by item id, as JSON objects ready to merge into responses.
#[derive(Debug, Default)]
pub struct ItemDetails {
    pub by_item: HashMap<i64, Map<String, Value>>,
}

/// Everything recommendation responses read, and the versions it was built from.
#[derive(Debug)]
pub struct RecommendationIndex {
    /// `(table, version)` of every table read.
    pub versions: Vec<(TableName, u64)>,
    /// `table@version,...`: names the data behind a response in cache keys and ETags.
    pub version_key: String,
    pub users: RankedLists,
    pub similar: RankedLists,
    /// Most interactions first: the fallback for unknown users.
    pub popular: Vec<Ranked>,
    pub details: ItemDetails,
}

impl RecommendationIndex {
    /// Item details merged with rank and score, one JSON object per item.
    pub fn items_json(&self, list: &[Ranked], k: usize) -> Vec<Value> {
        list.iter()
            .take(k)
            .enumerate()
            .map(|(i, r)| {
                let mut item = Map::new();
                item.insert("rank".into(), Value::from(i + 1));
                item.insert("item_id".into(), Value::from(r.item_id));
                item.insert("score".into(), Value::from(r.score));
                if let Some(details) = self.details.by_item.get(&r.item_id) {
                    for (key, value) in details {
                        item.entry(key.clone()).or_insert_with(|| value.clone());
                    }
                }
                Value::Object(item)
            })
            .collect()
    }
}

#[derive(Debug, Default)]
pub struct Indexes {
    /// The index most recently built; read on every request without waiting.
    current: std::sync::RwLock<Option<Arc<RecommendationIndex>>>,
    /// Held while rebuilding, so a version change triggers one rebuild, not one per request.
    rebuilding: Mutex<()>,
}

fn gold(name: &str) -> TableName {
    TableName::new(Layer::Gold, name)
}

impl Indexes {
    /// The index for the current snapshots, rebuilding it when a version moved.
    pub async fn recommendations(
        &self,
        snapshots: &Snapshots,
        config: &RecommendationsConfig,
    ) -> ApiResult<Arc<RecommendationIndex>> {
        let sources = current_sources(snapshots, config).await?;
        if let Some(index) = self.built_from(&sources) {
            return Ok(index);
        }
        let _rebuilding = self.rebuilding.lock().await;
        // Another request may have rebuilt it while this one waited.
        if let Some(index) = self.built_from(&sources) {
            return Ok(index);
        }
        let index = Arc::new(build(&sources, config).await?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&index));
        Ok(index)
    }

    /// The current index if it was built from exactly these snapshots' versions.
    fn built_from(&self, sources: &[Arc<Snapshot>]) -> Option<Arc<RecommendationIndex>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        let index = current.as_ref()?;
        let same = index.versions.len() == sources.len()
            && index
                .versions
                .iter()
                .zip(sources)
                .all(|((table, version), s)| *version == s.version && *table == s.table);
        same.then(|| Arc::clone(index))
    }
}

/// The snapshots recommendation responses read: the three gold tables (required) and the item
/// details table (when configured and present).
async fn current_sources(
    snapshots: &Snapshots,
    config: &RecommendationsConfig,
) -> ApiResult<Vec<Arc<Snapshot>>> {
    let not_trained = |table: &TableName| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "model_not_available",
            format!("{table} does not exist yet: run the pipeline (strata run) first"),
        )
    };
    let mut sources = Vec::with_capacity(4);
    for table in [
        gold("user_recommendations"),
        gold("similar_items"),
        gold("item_popularity"),
    ] {
        let snapshot = snapshots
            .latest_if_exists(&table)
            .await?
            .ok_or_else(|| not_trained(&table))?;
        sources.push(snapshot);
    }
    if let Some(items) = &config.items_table
        && let Some(snapshot) = snapshots.latest_if_exists(items).await?
    {
        sources.push(snapshot);
    }
    Ok(sources)
}

async fn build(
    sources: &[Arc<Snapshot>],
    config: &RecommendationsConfig,
) -> ApiResult<RecommendationIndex> {
    let versions: Vec<(TableName, u64)> = sources
        .iter()
        .map(|s| (s.table.clone(), s.version))
        .collect();
    let version_key = versions
        .iter()
        .map(|(t, v)| format!("{t}@{v}"))
        .collect::<Vec<_>>()
        .join(",");
    let users = ranked_lists(&sources[0], "user_id", "item_id").await?;
    let similar = ranked_lists(&sources[1], "item_id", "similar_item_id").await?;
    let popular = popularity(&sources[2]).await?;
    let details = match sources.get(3) {
        Some(items) => item_details(items, config).await?,
        None => ItemDetails::default(),
    };
    Ok(RecommendationIndex {
        versions,
        version_key,
        users,
        similar,
        popular,
        details,
    })
}

async fn scan(snapshot: &Snapshot, columns: &[&str]) -> ApiResult<Vec<RecordBatch>> {
    let ctx = crate::session::scratch_session();
    let frame = ctx.read_table(Arc::clone(&snapshot.provider))?;
    let exprs = columns
        .iter()
        .map(|c| col(datafusion::common::Column::from_name(*c)))
        .collect::<Vec<_>>();
    Ok(frame.select(exprs)?.collect().await?)
}

async fn ranked_lists(snapshot: &Snapshot, id: &str, other: &str) -> ApiResult<RankedLists> {
    let ctx = crate::session::scratch_session();
    let frame = ctx
        .read_table(Arc::clone(&snapshot.provider))?
        .select(vec![
            cast(col(id), arrow::datatypes::DataType::Int64),
            cast(col("rank"), arrow::datatypes::DataType::Int32),
            cast(col(other), arrow::datatypes::DataType::Int64),
            cast(col("score"), arrow::datatypes::DataType::Float32),
        ])?;
    let mut rows: HashMap<i64, Vec<(i32, Ranked)>> = HashMap::new();
    for batch in frame.collect().await? {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let ranks = batch.column(1).as_primitive::<Int32Type>();
        let others = batch.column(2).as_primitive::<Int64Type>();
        let scores = batch.column(3).as_primitive::<Float32Type>();
        for r in 0..batch.num_rows() {
            rows.entry(ids.value(r)).or_default().push((
                ranks.value(r),
                Ranked {
                    item_id: others.value(r),
                    score: scores.value(r) as f64,
                },
            ));
        }
    }
    let by_id = rows
        .into_iter()
        .map(|(id, mut list)| {
            list.sort_by_key(|(rank, _)| *rank);
            (id, list.into_iter().map(|(_, r)| r).collect())
        })
        .collect();
    Ok(RankedLists { by_id })
}

async fn popularity(snapshot: &Snapshot) -> ApiResult<Vec<Ranked>> {
    let mut rows = Vec::new();
    for batch in scan(snapshot, &["item_id", "rank", "interactions"]).await? {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let ranks = batch.column(1).as_primitive::<Int32Type>();
        let counts = batch.column(2).as_primitive::<Int64Type>();
        for r in 0..batch.num_rows() {
            rows.push((
                ranks.value(r),
                Ranked {
                    item_id: ids.value(r),
                    score: counts.value(r) as f64,
                },
            ));
        }
    }
    rows.sort_by_key(|(rank, _)| *rank);
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

/// The configured detail columns of every item, as JSON objects keyed by item id. Columns the
/// table lacks are skipped (a pipeline without `year` still serves titles).
async fn item_details(
    snapshot: &Snapshot,
    config: &RecommendationsConfig,
) -> ApiResult<ItemDetails> {
    let schema = snapshot.provider.schema();
    if schema.field_with_name(&config.item_id_column).is_err() {
        return Ok(ItemDetails::default());
    }
    let mut columns = vec![config.item_id_column.as_str()];
    columns.extend(
        config
            .item_columns
            .iter()
            .map(String::as_str)
            .filter(|c| schema.field_with_name(c).is_ok() && *c != config.item_id_column),
    );
    let ctx = crate::session::scratch_session();
    let mut exprs = vec![cast(col(columns[0]), arrow::datatypes::DataType::Int64).alias("__id")];
    exprs.extend(columns[1..].iter().map(|c| col(*c)));
    let batches = ctx
        .read_table(Arc::clone(&snapshot.provider))?
        .select(exprs)?
        .collect()
        .await?;
    let mut by_item = HashMap::new();
    for batch in batches {
        let ids = batch.column(0).as_primitive::<Int64Type>().clone();
        let rest = batch
            .project(&(1..batch.num_columns()).collect::<Vec<_>>())
            .map_err(ApiError::internal)?;
        let rows = crate::api::encode::json_rows(&rest)?;
        for (r, row) in rows.into_iter().enumerate() {
            if ids.is_valid(r)
                && let Value::Object(map) = row
            {
                by_item.insert(ids.value(r), map);
            }
        }
    }
    Ok(ItemDetails { by_item })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_json_merges_details_under_rank_and_score() {
        let mut details = ItemDetails::default();
        let mut toy = Map::new();
        toy.insert("title".into(), Value::from("Toy Story"));
        toy.insert("score".into(), Value::from("not this one"));
        details.by_item.insert(1, toy);
        let index = RecommendationIndex {
            versions: vec![(gold("user_recommendations"), 3)],
            version_key: "gold.user_recommendations@3".into(),
            users: RankedLists::default(),
            similar: RankedLists::default(),
            popular: Vec::new(),
            details,
        };
        let list = [
            Ranked {
                item_id: 1,
                score: 0.5,
            },
            Ranked {
                item_id: 2,
                score: 0.25,
            },
        ];
        let items = index.items_json(&list, 1);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["title"], "Toy Story");
        assert_eq!(
            items[0]["score"], 0.5,
            "the recommendation's own fields win"
        );
    }
}
