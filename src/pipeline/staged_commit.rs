//! Committing a SQL step's staged Parquet files as its table's next Delta version, as they are.
//!
//! A SQL step streams its result to Parquet files in the lake's `_staging/` directory and checks
//! its expectations over them. Reading them back only to write the same rows again through
//! delta-rs cost as much as the query for wide tables (BENCHMARKS.md, the pipeline against DuckDB),
//! so where it is safe the files move into the table's directory and one Delta commit adds them,
//! with the statistics Delta readers skip files by, computed from the files' own footers.
//!
//! Where it is safe: a lake on local disk (a move is a rename on the same file system), an
//! overwrite or append without partition columns, and a new table or one whose schema, protocol
//! and configuration the commit keeps exactly. Anything else answers `None` and the caller writes
//! through delta-rs ([`super::commit::commit_frame`]), as before.
//!
//! Invariant: the commit is the last step and a Delta commit is atomic, so a failure leaves the
//! table at its previous version; files already moved are removed (a file no commit names is
//! never read, so even one left behind is harmless).

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    ArrowNumericType, DataType, Date32Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, Schema,
};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::{CommitBuilder, TableReference};
use deltalake::kernel::{Action, Add, DataType as DeltaType, Protocol, StructType, new_metadata};
use deltalake::protocol::{DeltaOperation, SaveMode};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use serde_json::{Map, Value, json};

use super::commit::{CommitMeta, WriteMode, delta_schema};
use crate::catalog::{Lake, TableName};
use crate::error::{Error, Result};

/// Strings longer than this are left out of a file's min/max statistics (Delta readers use the
/// statistics to skip files; a long title is no use for that and would bloat the log).
const MAX_STATS_STRING_CHARS: usize = 32;

/// Commits `files` (Parquet, written with `schema`'s Delta-storable types) as `table`'s next
/// version and returns it, or `None` when this table and mode need delta-rs's own writer.
pub async fn commit_staged(
    lake: &Lake,
    table: &TableName,
    files: &[PathBuf],
    schema: &Schema,
    mode: &WriteMode,
    meta: &CommitMeta,
) -> Result<Option<u64>> {
    let started = Instant::now();
    let save_mode = match mode {
        WriteMode::Overwrite { partition_by } if partition_by.is_empty() => SaveMode::Overwrite,
        WriteMode::Append { partition_by } if partition_by.is_empty() => SaveMode::Append,
        _ => return Ok(None),
    };
    let Some(table_dir) = lake.local_table_dir(table) else {
        return Ok(None);
    };
    let delta_error = |e: deltalake::DeltaTableError| Error::delta(table, e);
    let kernel_schema: StructType = delta_schema(schema)
        .as_ref()
        .try_into_kernel()
        .map_err(|e| delta_error(e.into()))?;
    let protocol = protocol_for(&kernel_schema)?;

    let _turn = lake.write_turn(table).await;
    let delta = lake.open_for_write(table).await?;
    let mut actions = Vec::new();
    let state = match delta.version() {
        Some(_) => {
            let state = delta.snapshot().map_err(delta_error)?;
            let snapshot = state.snapshot();
            let metadata = snapshot.metadata();
            let same_table = snapshot.schema().as_ref() == &kernel_schema
                && metadata.partition_columns().is_empty()
                && metadata.configuration().is_empty()
                && serde_json::to_value(snapshot.protocol())? == serde_json::to_value(&protocol)?;
            if !same_table {
                return Ok(None);
            }
            if save_mode == SaveMode::Overwrite {
                actions.extend(
                    state
                        .log_data()
                        .iter()
                        .map(|file| Action::Remove(file.remove_action(true))),
                );
            }
            Some(state)
        }
        None => {
            let no_partitions: [&str; 0] = [];
            let no_settings: [(&str, &str); 0] = [];
            let metadata = new_metadata(&kernel_schema, no_partitions, no_settings)
                .map_err(|e| delta_error(e.into()))?;
            actions.push(Action::Protocol(protocol));
            actions.push(Action::Metadata(metadata));
            None
        }
    };
    let removed_files = actions
        .iter()
        .filter(|a| matches!(a, Action::Remove(_)))
        .count();

    // Every file's action first (nothing has moved if a footer cannot be read), then the moves.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut adds = Vec::with_capacity(files.len());
    let mut rows_added = 0;
    for (i, file) in files.iter().enumerate() {
        let name = format!("part-{i:05}-{}-c000.snappy.parquet", uuid::Uuid::new_v4());
        let (rows, add) = add_action(file, name, now_ms)?;
        rows_added += rows;
        adds.push(add);
    }
    let mut moved: Vec<PathBuf> = Vec::with_capacity(adds.len());
    for (file, add) in files.iter().zip(&adds) {
        let to = table_dir.join(&add.path);
        if let Err(e) = std::fs::rename(file, &to) {
            remove_all(&moved);
            return Err(Error::io(&to, e));
        }
        moved.push(to);
    }
    let added_files = adds.len();
    actions.extend(adds.into_iter().map(Action::Add));

    // The same operation and metrics delta-rs's writer records (`strata history` reads them).
    let metrics = json!({
        "execution_time_ms": started.elapsed().as_millis() as u64,
        "num_added_files": added_files,
        "num_added_rows": rows_added,
        "num_partitions": 0,
        "num_removed_files": removed_files,
        "num_retries": 0,
    });
    let operation = DeltaOperation::Write {
        // A table's first version is recorded as an overwrite, as delta-rs's writer records it.
        mode: if state.is_some() {
            save_mode
        } else {
            SaveMode::Overwrite
        },
        partition_by: None,
        predicate: None,
    };
    let committed = CommitBuilder::from(meta.properties_with([("operationMetrics", metrics)]))
        .with_actions(actions)
        .build(
            state.map(|s| s as &dyn TableReference),
            delta.log_store(),
            operation,
        )
        .await;
    match committed {
        Ok(commit) => Ok(Some(commit.version)),
        Err(e) => {
            remove_all(&moved);
            Err(delta_error(e))
        }
    }
}

fn remove_all(files: &[PathBuf]) {
    for file in files {
        let _ = std::fs::remove_file(file);
    }
}

/// The protocol delta-rs gives a new table with this schema: reader 1 / writer 2, or 3 / 7 with
/// the `timestampNtz` feature when a column (at any depth) is a timestamp without time zone.
fn protocol_for(schema: &StructType) -> Result<Protocol> {
    let protocol = if schema.fields().any(|f| has_timestamp_ntz(f.data_type())) {
        json!({"minReaderVersion": 3, "minWriterVersion": 7,
               "readerFeatures": ["timestampNtz"], "writerFeatures": ["timestampNtz"]})
    } else {
        json!({"minReaderVersion": 1, "minWriterVersion": 2})
    };
    Ok(serde_json::from_value(protocol)?)
}

fn has_timestamp_ntz(data_type: &DeltaType) -> bool {
    match data_type {
        DeltaType::Primitive(p) => *p == deltalake::kernel::PrimitiveType::TimestampNtz,
        DeltaType::Array(a) => has_timestamp_ntz(a.element_type()),
        DeltaType::Map(m) => has_timestamp_ntz(m.key_type()) || has_timestamp_ntz(m.value_type()),
        DeltaType::Struct(s) => s.fields().any(|f| has_timestamp_ntz(f.data_type())),
        DeltaType::Variant(_) => false,
    }
}

/// The Delta action that adds `path` to a table as `name`, with its row count and statistics
/// (`numRecords`, and per top-level column `nullCount`, `minValues`, `maxValues` where the footer
/// has them), read from the footer alone.
fn add_action(path: &Path, name: String, now_ms: i64) -> Result<(u64, Add)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len() as i64;
    let footer_error =
        |e: parquet::errors::ParquetError| Error::Internal(format!("{}: {e}", path.display()));
    let footer = ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(footer_error)?;
    let rows = footer.file_metadata().num_rows() as u64;
    let stats = stats_json(&footer).map_err(footer_error)?;
    let add = Add {
        path: name,
        partition_values: Default::default(),
        size,
        modification_time: now_ms,
        data_change: true,
        stats: Some(stats.to_string()),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    };
    Ok((rows, add))
}

fn stats_json(footer: &ParquetMetaData) -> parquet::errors::Result<Value> {
    let file = footer.file_metadata();
    let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())?;
    let groups = footer.row_groups();
    let (mut mins, mut maxes, mut nulls) = (Map::new(), Map::new(), Map::new());
    for field in schema.fields() {
        if field.data_type().is_nested() {
            continue;
        }
        let converter = StatisticsConverter::try_new(field.name(), &schema, file.schema_descr())?;
        let null_counts = converter.row_group_null_counts(groups)?;
        if null_counts.null_count() == 0 {
            let total: u64 = null_counts.values().iter().sum();
            nulls.insert(field.name().clone(), json!(total));
        }
        let (min, max) = (
            converter.row_group_mins(groups)?,
            converter.row_group_maxes(groups)?,
        );
        // Every row group must have the bound for the file to have it.
        if groups.is_empty() || min.null_count() > 0 || max.null_count() > 0 {
            continue;
        }
        if let Some(value) = bound(&min, Bound::Min) {
            mins.insert(field.name().clone(), value);
        }
        if let Some(value) = bound(&max, Bound::Max) {
            maxes.insert(field.name().clone(), value);
        }
    }
    Ok(json!({
        "numRecords": file.num_rows(),
        "minValues": mins,
        "maxValues": maxes,
        "nullCount": nulls,
    }))
}

#[derive(Clone, Copy)]
enum Bound {
    Min,
    Max,
}

/// The least (or greatest) of the row groups' bounds, as Delta writes it in JSON, for the types
/// whose JSON form is unambiguous; `None` for the others (timestamps, decimals, binary ...).
fn bound(values: &ArrayRef, which: Bound) -> Option<Value> {
    let finite = |v: f64| v.is_finite().then(|| json!(v));
    match values.data_type() {
        DataType::Int8 => extreme::<Int8Type>(values, which).map(|v| json!(v)),
        DataType::Int16 => extreme::<Int16Type>(values, which).map(|v| json!(v)),
        DataType::Int32 => extreme::<Int32Type>(values, which).map(|v| json!(v)),
        DataType::Int64 => extreme::<Int64Type>(values, which).map(|v| json!(v)),
        DataType::Float32 => extreme::<Float32Type>(values, which).and_then(|v| finite(v.into())),
        DataType::Float64 => extreme::<Float64Type>(values, which).and_then(finite),
        DataType::Date32 => {
            let days = extreme::<Date32Type>(values, which)?;
            let date = chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)?;
            Some(json!(date.format("%Y-%m-%d").to_string()))
        }
        DataType::Utf8 => {
            let array = values.as_string::<i32>();
            let v = match which {
                Bound::Min => arrow::compute::min_string(array),
                Bound::Max => arrow::compute::max_string(array),
            }?;
            (v.chars().count() <= MAX_STATS_STRING_CHARS).then(|| json!(v))
        }
        _ => None,
    }
}

/// The least (or greatest) value in an array of row-group bounds of primitive type `T`.
fn extreme<T: ArrowNumericType>(values: &ArrayRef, which: Bound) -> Option<T::Native> {
    let array = values.as_primitive::<T>();
    match which {
        Bound::Min => arrow::compute::min(array),
        Bound::Max => arrow::compute::max(array),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::Field;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;

    /// Two row groups of two rows: the file's bounds are across both.
    fn write_file(path: &Path) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("score", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
        ]));
        let long = "z: a title far longer than thirty-two characters";
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![7, 3, 12, 5])),
                Arc::new(Float64Array::from(vec![
                    Some(0.5),
                    None,
                    Some(-2.0),
                    Some(9.0),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("b"),
                    Some("a"),
                    None,
                    Some(long),
                ])),
                Arc::new(Date32Array::from(vec![
                    Some(0),
                    Some(19_000),
                    None,
                    Some(1),
                ])),
            ],
        )
        .unwrap();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let file = std::fs::File::create(path).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema, Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn statistics_come_from_the_footer_across_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        write_file(&path);
        let (rows, add) = add_action(&path, "f.parquet".into(), 0).unwrap();
        assert_eq!(rows, 4);
        let stats: Value = serde_json::from_str(add.stats.as_deref().unwrap()).unwrap();
        assert_eq!(stats["numRecords"], 4);
        assert_eq!(
            stats["minValues"],
            json!({"id": 3, "score": -2.0, "name": "a", "day": "1970-01-01"})
        );
        // The longest name is left out: a bound must hold every value, so none is better than
        // a long one.
        assert_eq!(
            stats["maxValues"],
            json!({"id": 12, "score": 9.0, "day": "2022-01-08"})
        );
        assert_eq!(
            stats["nullCount"],
            json!({"id": 0, "score": 1, "name": 1, "day": 1})
        );
    }

    #[test]
    fn timestamps_without_time_zone_need_the_table_feature() {
        let kernel =
            |field: Field| -> StructType { (&Schema::new(vec![field])).try_into_kernel().unwrap() };
        let plain = kernel(Field::new("x", DataType::Int64, true));
        let ntz = kernel(Field::new(
            "at",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            true,
        ));
        let plain = serde_json::to_value(protocol_for(&plain).unwrap()).unwrap();
        assert_eq!(plain, json!({"minReaderVersion": 1, "minWriterVersion": 2}));
        let ntz = serde_json::to_value(protocol_for(&ntz).unwrap()).unwrap();
        assert_eq!(ntz["minReaderVersion"], 3);
        assert_eq!(ntz["writerFeatures"], json!(["timestampNtz"]));
    }
}
