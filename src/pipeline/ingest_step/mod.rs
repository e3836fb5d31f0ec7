//! Ingesting one configured source into `bronze.<name>`, its rejects and its ingest log.
//!
//! [`run`] is the one place sources are read: one arm per source kind. Files of any format go
//! through `files` (rows replaced per changed file, logged in `system.ingested_files`); HTTP JSON
//! APIs through `http` (records merged on a key). Both keep every input row: what cannot become a
//! row goes to `bronze.<name>__rejects` with where it came from and why, and lineage columns say
//! where each row came from and when.
//!
//! Invariant: an ingest that fails commits nothing to `bronze.<name>`.

mod files;
mod http;

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};

use crate::catalog::{Layer, TableName};
use crate::error::{Error, Result};
use crate::ingest::source::Columns;
use crate::ingest::{ColumnSpec, Format, SourceSpec};
use crate::pipeline::{StepContext, StepResult};

pub use http::RECORD_SHA256;

/// Lineage column: the file a row came from, relative to the raw directory.
pub const SOURCE_FILE: &str = "_source_file";
/// Lineage column: when the row was ingested.
pub const INGESTED_AT: &str = "_ingested_at";

/// The ingest log table.
pub fn ingested_files_table() -> TableName {
    TableName::new(Layer::System, "ingested_files")
}

/// Ingests the configured source `source_name` into `table`.
pub async fn run(ctx: &StepContext, table: &TableName, source_name: &str) -> Result<StepResult> {
    let source = ctx
        .config
        .source(source_name)
        .ok_or_else(|| Error::Ingest {
            table: table.clone(),
            message: format!("no source {source_name} in the configuration"),
        })?;
    let (location, format, columns) = match source {
        SourceSpec::Csv(s) => (
            &s.path,
            Format::Delimited(s.options()),
            declared(&s.columns),
        ),
        SourceSpec::MovieLens(s) => (&s.path, Format::movielens(), declared(&s.columns)),
        SourceSpec::Json(s) => (&s.path, Format::Json, declared(&s.columns)),
        SourceSpec::Ndjson(s) => (&s.path, Format::NdJson, declared(&s.columns)),
        SourceSpec::Parquet(s) => (&s.path, Format::Parquet, declared(&s.columns)),
        SourceSpec::Http(spec) => return http::run(ctx, table, spec).await,
    };
    files::run(ctx, table, source_name, location, format, columns).await
}

/// Declared columns, if any.
fn declared(columns: &Option<Columns>) -> Option<&[ColumnSpec]> {
    columns.as_ref().map(|c| c.0.as_slice())
}

/// A string column as `StringArray`, whatever string encoding DataFusion chose (Utf8View...).
fn as_strings(array: &dyn Array) -> Result<StringArray> {
    let cast = arrow::compute::cast(array, &DataType::Utf8)?;
    Ok(cast
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8 gives a StringArray")
        .clone())
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The rejects table's rows: (source, line or record number, raw text, reason), stamped `at`.
fn reject_rows<'a>(
    rows: impl Iterator<Item = (&'a str, i64, &'a str, &'a str)>,
    at: DateTime<Utc>,
) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(SOURCE_FILE, DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("raw", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new(INGESTED_AT, timestamp_type(), false),
    ]));
    let rows: Vec<_> = rows.collect();
    let n = rows.len();
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
            Arc::new(
                TimestampMicrosecondArray::from(vec![at.timestamp_micros(); n])
                    .with_timezone("UTC"),
            ),
        ],
    )?)
}
