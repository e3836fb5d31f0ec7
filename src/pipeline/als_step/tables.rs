//! The rows an ALS step publishes: Arrow batches for the gold tables, from a trained model.
//!
//! Ids are the raw ids of the input (dense indexes never leave the model); ranks start at 1.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema};

use crate::error::Result;
use crate::ml::als::{AlsModel, IdMap, Interactions};

/// `(id, rank, other_id, score)` rows from per-row top-k lists: `lists[d]` belongs to dense row `d`
/// of `rows` and names dense entries of `others`.
pub fn ranked_pairs(
    (id_column, other_column): (&str, &str),
    rows: &IdMap,
    others: &IdMap,
    lists: &[Vec<(u32, f32)>],
) -> Result<RecordBatch> {
    let n: usize = lists.iter().map(Vec::len).sum();
    let (mut ids, mut ranks, mut other_ids, mut scores) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (d, list) in lists.iter().enumerate() {
        let id = rows.raw(d as u32);
        for (rank, &(other, score)) in list.iter().enumerate() {
            ids.push(id);
            ranks.push(rank as i32 + 1);
            other_ids.push(others.raw(other));
            scores.push(score);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new(id_column, DataType::Int64, false),
        Field::new("rank", DataType::Int32, false),
        Field::new(other_column, DataType::Int64, false),
        Field::new("score", DataType::Float32, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(Int32Array::from(ranks)),
        Arc::new(Int64Array::from(other_ids)),
        Arc::new(Float32Array::from(scores)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `(id, factors list<float>, bias)`: one row per dense id, `factors` of length `rank`.
pub fn factors(
    id_column: &str,
    ids: &IdMap,
    vectors: &[f32],
    rank: usize,
    biases: &[f32],
) -> Result<RecordBatch> {
    let element = Arc::new(Field::new("element", DataType::Float32, false));
    let schema = Arc::new(Schema::new(vec![
        Field::new(id_column, DataType::Int64, false),
        Field::new("factors", DataType::List(Arc::clone(&element)), false),
        Field::new("bias", DataType::Float32, false),
    ]));
    let list = ListArray::try_new(
        element,
        OffsetBuffer::from_lengths(std::iter::repeat_n(rank, ids.len())),
        Arc::new(Float32Array::from(vectors.to_vec())),
        None,
    )?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.raw_ids().to_vec())),
        Arc::new(list),
        Arc::new(Float32Array::from(biases.to_vec())),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `(item_id, rank, interactions, mean_rating)`: every training item, most interactions first (ties
/// by smaller id), the list served to users the model does not know.
pub fn item_popularity(data: &Interactions) -> Result<RecordBatch> {
    let order = crate::ml::als::eval::popularity_order(data);
    let mut ids = Vec::with_capacity(order.len());
    let mut counts = Vec::with_capacity(order.len());
    let mut means = Vec::with_capacity(order.len());
    for &i in &order {
        let (_, ratings) = data.item_row(i);
        ids.push(data.items().raw(i));
        counts.push(ratings.len() as i64);
        let sum: f64 = ratings.iter().map(|&r| r as f64).sum();
        means.push(sum / ratings.len().max(1) as f64);
    }
    let ranks: Vec<i32> = (1..=order.len() as i32).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("item_id", DataType::Int64, false),
        Field::new("rank", DataType::Int32, false),
        Field::new("interactions", DataType::Int64, false),
        Field::new("mean_rating", DataType::Float64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(Int32Array::from(ranks)),
        Arc::new(Int64Array::from(counts)),
        Arc::new(Float64Array::from(means)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Every gold table of one trained model, with the name of the table each batch goes to.
pub fn gold_batches(
    model: &AlsModel,
    recommendations: &[Vec<(u32, f32)>],
    similar: &[Vec<(u32, f32)>],
) -> Result<Vec<(&'static str, RecordBatch)>> {
    use super::spec::USER_RECOMMENDATIONS;
    use super::spec::{ITEM_FACTORS, ITEM_POPULARITY, SIMILAR_ITEMS, USER_FACTORS};
    let data = model.data();
    let rank = model.factors();
    Ok(vec![
        (
            USER_FACTORS,
            factors(
                "user_id",
                data.users(),
                model.user_factors(),
                rank,
                model.user_biases(),
            )?,
        ),
        (
            ITEM_FACTORS,
            factors(
                "item_id",
                data.items(),
                model.item_factors(),
                rank,
                model.item_biases(),
            )?,
        ),
        (ITEM_POPULARITY, item_popularity(data)?),
        (
            SIMILAR_ITEMS,
            ranked_pairs(
                ("item_id", "similar_item_id"),
                data.items(),
                data.items(),
                similar,
            )?,
        ),
        (
            USER_RECOMMENDATIONS,
            ranked_pairs(
                ("user_id", "item_id"),
                data.users(),
                data.items(),
                recommendations,
            )?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn ranked_pairs_use_raw_ids_and_ranks_from_one() {
        let users = IdMap::from_ids(&[10, 20]).unwrap();
        let items = IdMap::from_ids(&[7, 8, 9]).unwrap();
        let lists = vec![vec![(2, 0.9), (0, 0.5)], vec![(1, 0.7)]];
        let batch = ranked_pairs(("user_id", "item_id"), &users, &items, &lists).unwrap();
        let col = |i: usize| batch.column(i).clone();
        let ids = col(0);
        let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
        let ranks = col(1);
        let ranks = ranks.as_any().downcast_ref::<Int32Array>().unwrap();
        let items_col = col(2);
        let items_col = items_col.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.values(), &[10, 10, 20]);
        assert_eq!(ranks.values(), &[1, 2, 1]);
        assert_eq!(items_col.values(), &[9, 7, 8]);
    }

    #[test]
    fn factors_are_one_list_per_id() {
        let ids = IdMap::from_ids(&[3, 1]).unwrap();
        let batch = factors("item_id", &ids, &[1.0, 2.0, 3.0, 4.0], 2, &[0.0, 0.5]).unwrap();
        let list = batch
            .column(1)
            .as_any()
            .downcast_ref::<ListArray>()
            .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list.value_length(1), 2);
        let second = list.value(1);
        let second = second.as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!(second.values(), &[3.0, 4.0]);
    }
}
