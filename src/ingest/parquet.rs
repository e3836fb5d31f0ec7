//! Parquet files, read with the parquet crate's Arrow reader.
//!
//! Owns: opening the file (footer and schema checks happen in `open`, so a broken file is a file-level error
//! before any batch), choosing and converting declared columns. Does not own: decoding (the parquet crate),
//! and has no rejects: values are already typed, so there is no "line" that can fail on its own.
//!
//! Declared columns are selected by exact name (a missing one is a file-level error listing what the file
//! has), only those columns are decoded, and each is cast to its declared type. A column whose type cannot
//! be cast at all fails at open; a value that does not convert (e.g. the string "x" to int64) fails the
//! batch with an error naming the column rather than quietly becoming NULL.
//! Without declared columns the file's own Arrow schema is passed through unchanged.
//!
//! Invariant: every batch has exactly `schema()`'s fields, in that order.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use ::parquet::arrow::ProjectionMask;
use ::parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use arrow::array::{ArrayRef, AsArray, make_array};
use arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMicrosecondType};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::schema::{ColumnSpec, ColumnType, schema_of};
use super::{IngestError, open_file};

pub(super) struct ParquetSource {
    path: PathBuf,
    schema: SchemaRef,
    reader: ParquetRecordBatchReader,
    /// Declared columns to pick from each decoded batch (by name) and cast; None passes batches through.
    declared: Option<Vec<ColumnSpec>>,
}

impl ParquetSource {
    pub(super) fn open(
        path: &Path,
        columns: Option<&[ColumnSpec]>,
        batch_rows: usize,
    ) -> Result<Self, IngestError> {
        let parquet_error = |source| IngestError::Parquet {
            path: path.to_path_buf(),
            source,
        };
        let file = open_file(path)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(parquet_error)?
            .with_batch_size(batch_rows);
        let file_schema = builder.schema().clone();
        let Some(declared) = columns else {
            let reader = builder.build().map_err(parquet_error)?;
            return Ok(Self {
                path: path.to_path_buf(),
                schema: file_schema,
                reader,
                declared: None,
            });
        };
        let mut roots = Vec::with_capacity(declared.len());
        for spec in declared {
            let Ok(idx) = file_schema.index_of(&spec.name) else {
                let available: Vec<&str> = file_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                return Err(IngestError::MissingColumn {
                    path: path.to_path_buf(),
                    column: spec.name.clone(),
                    available: available.join(", "),
                });
            };
            let from = file_schema.field(idx).data_type();
            let to = spec.ty.data_type();
            if !can_cast_types(from, &cast_target(spec.ty)) {
                return Err(IngestError::IncompatibleColumn {
                    path: path.to_path_buf(),
                    column: spec.name.clone(),
                    from: from.clone(),
                    to,
                });
            }
            roots.push(idx);
        }
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let reader = builder
            .with_projection(mask)
            .build()
            .map_err(parquet_error)?;
        Ok(Self {
            path: path.to_path_buf(),
            schema: schema_of(declared),
            reader,
            declared: Some(declared.to_vec()),
        })
    }

    pub(super) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub(super) fn next_batch(&mut self) -> Result<Option<RecordBatch>, IngestError> {
        let Some(batch) = self.reader.next() else {
            return Ok(None);
        };
        let batch = batch.map_err(|source| IngestError::Parquet {
            path: self.path.clone(),
            source: source.into(),
        })?;
        let Some(declared) = &self.declared else {
            return Ok(Some(batch));
        };
        // The projection keeps the file's column order; declared order and types are restored here.
        let options = CastOptions {
            safe: false,
            ..CastOptions::default()
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(declared.len());
        for spec in declared {
            let cast_error = |source| IngestError::Cast {
                path: self.path.clone(),
                column: spec.name.clone(),
                source,
            };
            let column = batch.column_by_name(&spec.name).ok_or_else(|| {
                cast_error(ArrowError::SchemaError(
                    "column missing from the decoded batch".into(),
                ))
            })?;
            columns.push(cast_column(column, spec.ty, &options).map_err(cast_error)?);
        }
        let out = RecordBatch::try_new(self.schema.clone(), columns).map_err(|source| {
            IngestError::Batch {
                path: self.path.clone(),
                source,
            }
        })?;
        Ok(Some(out))
    }
}

/// The type `cast_column` casts to before attaching a time zone.
fn cast_target(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::TimestampMicros => DataType::Timestamp(TimeUnit::Microsecond, None),
        other => other.data_type(),
    }
}

/// Casts a decoded column to a declared type. Timestamps go via a zone-less timestamp and get "UTC" attached
/// afterwards: Arrow's cast parses named zones only with its `chrono-tz` feature, and Parquet timestamps are
/// UTC instants whatever zone the file names, so the zone is dropped without shifting the values.
fn cast_column(
    column: &ArrayRef,
    ty: ColumnType,
    options: &CastOptions,
) -> Result<ArrayRef, ArrowError> {
    if ty != ColumnType::TimestampMicros {
        return cast_with_options(column, &ty.data_type(), options);
    }
    let column = match column.data_type() {
        DataType::Timestamp(unit, Some(_)) => make_array(
            column
                .to_data()
                .into_builder()
                .data_type(DataType::Timestamp(*unit, None))
                .build()?,
        ),
        _ => column.clone(),
    };
    let micros = cast_with_options(&column, &cast_target(ty), options)?;
    let micros = micros
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| ArrowError::CastError("cast did not produce microsecond timestamps".into()))?
        .clone()
        .with_timezone("UTC");
    Ok(Arc::new(micros))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ::parquet::arrow::ArrowWriter;
    use arrow::array::{
        Array, Float64Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
        TimestampMillisecondArray, TimestampNanosecondArray,
    };
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use arrow::record_batch::RecordBatch;

    use super::super::{Format, IngestError, open_reader, parse_columns, temp_file};

    fn write_parquet(dir: &std::path::Path) -> std::path::PathBuf {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from((1..=10).collect::<Vec<_>>())),
                Arc::new(StringArray::from(
                    (1..=10).map(|i| Some(format!("n{i}"))).collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(
                    (1..=10).map(|i| i as f64 / 2.0).collect::<Vec<_>>(),
                )),
                Arc::new(TimestampNanosecondArray::from(
                    (1..=10).map(|i| i * 1_000_000_000).collect::<Vec<i64>>(),
                )),
            ],
        )
        .unwrap();
        let path = dir.join("t.parquet");
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        path
    }

    #[test]
    fn roundtrip_with_declared_subset_reorders_and_casts() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_parquet(dir.path());
        let spec = parse_columns("ts timestamp, id bigint, score double").unwrap();
        let mut reader = open_reader(&path, &Format::Parquet, Some(&spec), 3).unwrap();
        let batches: Vec<RecordBatch> = reader.by_ref().map(Result::unwrap).collect();
        assert_eq!(
            batches
                .iter()
                .map(RecordBatch::num_rows)
                .collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        assert!(reader.take_rejects().is_empty());
        assert_eq!((reader.rows_read(), reader.lines_read()), (10, 10));
        let schema = batches[0].schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["ts", "id", "score"]);
        let ts = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(ts.value(1), 2_000_000);
        assert_eq!(ts.timezone(), Some("UTC"));
        let ids = batches[3]
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(ids.value(0), 10);
    }

    #[test]
    fn zoned_timestamps_keep_their_instant() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())),
            true,
        )]));
        let values =
            TimestampMillisecondArray::from(vec![Some(1_500), None]).with_timezone("+02:00");
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.parquet");
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        let spec = parse_columns("at timestamp").unwrap();
        let mut reader = open_reader(&path, &Format::Parquet, Some(&spec), 10).unwrap();
        let batch = reader.next().unwrap().unwrap();
        let at = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(at.iter().collect::<Vec<_>>(), vec![Some(1_500_000), None]);
        assert_eq!(at.timezone(), Some("UTC"));
    }

    #[test]
    fn inferred_schema_is_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_parquet(dir.path());
        let reader = open_reader(&path, &Format::Parquet, None, 100).unwrap();
        assert_eq!(reader.schema().fields().len(), 4);
        assert_eq!(reader.schema().field(0).data_type(), &DataType::Int32);
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 10);
    }

    #[test]
    fn missing_or_unconvertible_columns_and_broken_files_fail_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_parquet(dir.path());
        let err = open_reader(
            &path,
            &Format::Parquet,
            Some(&parse_columns("id int, rating int").unwrap()),
            10,
        )
        .unwrap_err();
        assert!(
            matches!(&err, IngestError::MissingColumn { column, .. } if column == "rating"),
            "{err}"
        );
        assert!(err.to_string().contains("id, name, score, ts"), "{err}");

        let err = open_reader(
            &path,
            &Format::Parquet,
            Some(&parse_columns("ts date, name bigint").unwrap()),
            10,
        );
        // Utf8 → Int64 is castable in general, so that one fails per value instead:
        let mut reader = err.unwrap();
        let first = reader.next().unwrap();
        assert!(
            matches!(&first, Err(IngestError::Cast { column, .. }) if column == "name"),
            "{first:?}"
        );

        let (_d, broken) = temp_file("broken.parquet", b"PAR1 this is not parquet");
        let err = open_reader(&broken, &Format::Parquet, None, 10).unwrap_err();
        assert!(matches!(err, IngestError::Parquet { .. }));
        assert!(err.to_string().contains("broken.parquet"), "{err}");
    }
}
