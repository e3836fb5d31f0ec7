//! A fast answer to "is this key unique?" for keys of integer-like columns.
//!
//! The general `unique` check groups the result by the key in SQL, a hash aggregation as large as
//! the result (70 ms per million rows, the costliest expectation of the 1M pipeline). When every
//! key column is an integer, a date, a time or a timestamp, each row's key packs into one `u64`
//! or `u128`; sorting those on both cores and comparing neighbours answers in a fraction of that.
//! The packed keys take memory from the session's pool like any operator; when the pool refuses,
//! or a key column is of another type or holds a null, the caller falls back to the grouping,
//! which can spill. Duplicates found here are counted and sampled by the grouping too, so this
//! module decides only the common case: no duplicates.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use rayon::slice::ParallelSliceMut;

/// Whether the rows of the table registered as `result` have pairwise different `columns`
/// values: `Some(true)` or `Some(false)`, or `None` when this module cannot decide (see the
/// module docs). `rows_hint` sizes the first allocation (0 when unknown).
pub async fn all_distinct(
    ctx: &SessionContext,
    columns: &[String],
    rows_hint: u64,
) -> datafusion::error::Result<Option<bool>> {
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let keys = ctx.table("result").await?.select_columns(&names)?;
    let widths: Option<Vec<u32>> = keys
        .schema()
        .fields()
        .iter()
        .map(|f| bit_width(f.data_type()))
        .collect();
    let Some(widths) = widths else {
        return Ok(None);
    };
    let stream = keys.execute_stream().await?;
    match widths.iter().sum::<u32>() {
        0..=64 => distinct::<u64>(ctx, stream, &widths, rows_hint).await,
        65..=128 => distinct::<u128>(ctx, stream, &widths, rows_hint).await,
        _ => Ok(None),
    }
}

/// Bits a column of this type takes in a packed key; `None` for types not packed.
fn bit_width(data_type: &DataType) -> Option<u32> {
    use DataType::*;
    match data_type {
        Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32 | Date32 | Time32(_) => Some(32),
        Int64 | UInt64 | Date64 | Time64(_) | Timestamp(_, _) | Duration(_) => Some(64),
        _ => None,
    }
}

/// A packed key: the columns' bits side by side.
trait PackedKey: Ord + Copy + Send + 'static {
    fn from_bits(bits: u128) -> Self;
}

impl PackedKey for u64 {
    fn from_bits(bits: u128) -> Self {
        bits as u64
    }
}

impl PackedKey for u128 {
    fn from_bits(bits: u128) -> Self {
        bits
    }
}

async fn distinct<K: PackedKey>(
    ctx: &SessionContext,
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    widths: &[u32],
    rows_hint: u64,
) -> datafusion::error::Result<Option<bool>> {
    let key_bytes = size_of::<K>();
    let reservation =
        MemoryConsumer::new("unique expectation").register(&ctx.runtime_env().memory_pool);
    let capacity = usize::try_from(rows_hint).unwrap_or(usize::MAX);
    if reservation
        .try_grow(capacity.saturating_mul(key_bytes))
        .is_err()
    {
        return Ok(None);
    }
    let mut keys: Vec<K> = Vec::with_capacity(capacity);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let grow = (keys.len() + batch.num_rows()).saturating_sub(keys.capacity());
        if grow > 0 && reservation.try_grow(grow * key_bytes).is_err() {
            return Ok(None);
        }
        // Each column as its integer value; a null (or an unsigned value past i64, which the
        // cast turns into a null) leaves the decision to the grouping.
        let mut values: Vec<ArrayRef> = Vec::with_capacity(widths.len());
        for column in batch.columns() {
            let column = cast(column, &DataType::Int64)?;
            if column.null_count() > 0 {
                return Ok(None);
            }
            values.push(column);
        }
        let values: Vec<&[i64]> = values
            .iter()
            .map(|c| c.as_primitive::<Int64Type>().values().as_ref())
            .collect();
        keys.extend((0..batch.num_rows()).map(|row| {
            let mut bits = 0u128;
            for (column, &width) in values.iter().zip(widths) {
                let mask = if width == 64 {
                    u64::MAX
                } else {
                    u32::MAX as u64
                };
                bits = (bits << width) | u128::from(column[row] as u64 & mask);
            }
            K::from_bits(bits)
        }));
    }
    let distinct = tokio::task::spawn_blocking(move || {
        keys.par_sort_unstable();
        keys.windows(2).all(|pair| pair[0] != pair[1])
    })
    .await
    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    drop(reservation);
    Ok(Some(distinct))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::memory_pool::GreedyMemoryPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::SessionConfig;

    use super::*;

    fn ctx_with(columns: Vec<(&str, ArrayRef)>, ctx: SessionContext) -> SessionContext {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            columns.into_iter().map(|c| c.1).collect(),
        )
        .unwrap();
        // Two partitions: the key is unique only across both.
        let (a, b) = (
            batch.slice(0, batch.num_rows() / 2),
            batch.slice(
                batch.num_rows() / 2,
                batch.num_rows() - batch.num_rows() / 2,
            ),
        );
        let table = MemTable::try_new(schema, vec![vec![a], vec![b]]).unwrap();
        ctx.register_table("result", Arc::new(table)).unwrap();
        ctx
    }

    async fn decide(columns: Vec<(&str, ArrayRef)>, key: &[&str]) -> Option<bool> {
        let ctx = ctx_with(columns, SessionContext::new());
        let key: Vec<String> = key.iter().map(|c| c.to_string()).collect();
        all_distinct(&ctx, &key, 0).await.unwrap()
    }

    fn ints(values: &[i32]) -> ArrayRef {
        Arc::new(Int32Array::from(values.to_vec()))
    }

    fn longs(values: &[i64]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    #[tokio::test]
    async fn pairs_that_differ_only_in_order_or_sign_are_distinct() {
        let users = ints(&[1, 2, -1, 0, 7, 7]);
        let items = ints(&[2, 1, 0, -1, -7, 7]);
        let key = ["user_id", "item_id"];
        assert_eq!(
            decide(vec![("user_id", users), ("item_id", items)], &key).await,
            Some(true)
        );
    }

    #[tokio::test]
    async fn a_repeated_pair_in_another_batch_is_found() {
        let users = ints(&[1, 2, 3, 1]);
        let items = ints(&[5, 5, 5, 5]);
        let key = ["user_id", "item_id"];
        assert_eq!(
            decide(vec![("user_id", users), ("item_id", items)], &key).await,
            Some(false)
        );
    }

    #[tokio::test]
    async fn wide_keys_use_every_bit_of_each_column() {
        // (1, 0) and (0, 1) collide if the 64-bit columns were packed into 64 bits together.
        let a = longs(&[1, 0, i64::MAX, i64::MIN]);
        let b = longs(&[0, 1, i64::MIN, i64::MAX]);
        assert_eq!(
            decide(vec![("a", a.clone()), ("b", b)], &["a", "b"]).await,
            Some(true)
        );
        let c = longs(&[1 << 40, 1 << 40, 2, 3]);
        assert_eq!(decide(vec![("a", a), ("c", c)], &["c"]).await, Some(false));
    }

    #[tokio::test]
    async fn nulls_strings_and_a_refused_reservation_leave_it_to_the_grouping() {
        let with_null: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None]));
        assert_eq!(decide(vec![("id", with_null)], &["id"]).await, None);
        let names: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        assert_eq!(decide(vec![("name", names)], &["name"]).await, None);

        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(64)))
            .build_arc()
            .unwrap();
        let small = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        let ctx = ctx_with(vec![("id", longs(&(0..100).collect::<Vec<_>>()))], small);
        assert_eq!(all_distinct(&ctx, &["id".into()], 100).await.unwrap(), None);
    }
}
