//! Committing batches to a Delta table: one call, one Delta commit, or nothing.
//!
//! Owns the write modes (overwrite, append, replace-where, merge), the Strata metadata stamped into
//! every commit (run id, step, input versions, fingerprint) and the casts that make DataFusion's
//! output types storable in Delta (views to plain strings, unsigned to signed, nanoseconds to
//! microseconds). It does not decide *what* to write; callers do.
//!
//! Invariant: a write either commits one new version or fails leaving the table at its previous
//! version (Delta's optimistic commit: data files are written first, the log entry last).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use datafusion::logical_expr::{Expr, cast as cast_expr, col};
use datafusion::prelude::DataFrame;
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use futures::TryStreamExt;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Value, json};

use crate::catalog::{Lake, TableName};
use crate::error::{Error, Result};

pub use crate::catalog::{META_FINGERPRINT, META_INPUTS, META_RUN_ID, META_STEP};

/// Who wrote a commit and from what: lets `strata history` name the run and lets a rerun skip a step
/// whose SQL, settings and input versions are unchanged.
#[derive(Debug, Clone, Default)]
pub struct CommitMeta {
    pub run_id: String,
    pub step: String,
    pub inputs: BTreeMap<String, u64>,
    pub fingerprint: Option<String>,
}

impl CommitMeta {
    fn properties(&self) -> CommitProperties {
        self.properties_with([])
    }

    /// The commit's properties: Strata's own keys and `extra` ones (e.g. `operationMetrics`).
    pub(super) fn properties_with<const N: usize>(
        &self,
        extra: [(&str, Value); N],
    ) -> CommitProperties {
        let mut meta: Vec<(String, Value)> = vec![
            (META_RUN_ID.into(), json!(self.run_id)),
            (META_STEP.into(), json!(self.step)),
            (META_INPUTS.into(), json!(self.inputs)),
        ];
        if let Some(f) = &self.fingerprint {
            meta.push((META_FINGERPRINT.into(), json!(f)));
        }
        meta.extend(
            extra
                .into_iter()
                .map(|(key, value)| (key.to_string(), value)),
        );
        CommitProperties::default().with_metadata(meta)
    }
}

/// How the batches become the next version.
#[derive(Debug, Clone)]
pub enum WriteMode {
    /// Replace everything (schema changes allowed).
    Overwrite { partition_by: Vec<String> },
    /// Add rows.
    Append { partition_by: Vec<String> },
    /// Add rows that may bring columns the table lacks: the table gains them (older rows read
    /// NULL). Every existing column must be in the rows, with its type.
    AppendAddingColumns,
    /// Replace exactly the rows matching a predicate (values bound, never SQL text); every new
    /// row must match it too. `partition_by` lays out a new table.
    ReplaceWhere {
        predicate: Expr,
        partition_by: Vec<String>,
    },
    /// Upsert on key columns; `evolve_schema` adds columns the new rows bring (API sources grow
    /// fields over time), else they are an error.
    Merge {
        keys: Vec<String>,
        evolve_schema: bool,
    },
}

/// Writes `batches` to `table` in one commit and returns the new version.
pub async fn commit(
    lake: &Lake,
    table: &TableName,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    mode: WriteMode,
    meta: &CommitMeta,
) -> Result<u64> {
    let _turn = lake.write_turn(table).await;
    let delta = lake.open_for_write(table).await?;
    let written = commit_to(delta, table, schema, batches, mode, meta).await?;
    Ok(written.version().unwrap_or(0))
}

/// Writes the rows of `frame` to `table` in one commit, streaming (memory stays bounded by
/// DataFusion's batches, not by the result size). `frame` must come from a lake session, whose
/// planner knows deltalake's write nodes. Returns the new version.
pub async fn commit_frame(
    lake: &Lake,
    table: &TableName,
    frame: DataFrame,
    mode: WriteMode,
    meta: &CommitMeta,
) -> Result<u64> {
    let _turn = lake.write_turn(table).await;
    let delta = lake.open_for_write(table).await?;
    let written = commit_frame_to(delta, table, frame, mode, meta).await?;
    Ok(written.version().unwrap_or(0))
}

/// [`commit`] into a table already open (from [`Lake::open_for_write`] or an earlier commit, at
/// any version: a newer one is merged by delta-rs's conflict check, as for any concurrent
/// writer). Returns the table at the version written, ready for the next commit. The caller
/// holds the table's [`Lake::write_turn`].
pub async fn commit_to(
    delta: DeltaTable,
    table: &TableName,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    mode: WriteMode,
    meta: &CommitMeta,
) -> Result<DeltaTable> {
    // The same streaming path as step results: one place decides casts and write modes.
    let ctx = crate::session::scratch_session();
    let frame = if batches.is_empty() {
        // deltalake needs the schema even when there is no row.
        ctx.read_batch(RecordBatch::new_empty(schema))?
    } else {
        ctx.read_batches(batches)?
    };
    commit_frame_to(delta, table, frame, mode, meta).await
}

async fn commit_frame_to(
    delta: DeltaTable,
    table: &TableName,
    frame: DataFrame,
    mode: WriteMode,
    meta: &CommitMeta,
) -> Result<DeltaTable> {
    let target = delta_schema(frame.schema().as_arrow());
    let frame = with_delta_types(frame)?;
    let exists = delta.version().is_some();
    let properties = meta.properties();
    if let WriteMode::Merge {
        keys,
        evolve_schema,
    } = &mode
        && exists
    {
        let builder = merge_builder(delta, frame, &target, keys, properties)
            .map_err(|e| Error::delta(table, e))?
            .with_merge_schema(*evolve_schema);
        let (merged, _metrics) = builder.await.map_err(|e| Error::delta(table, e))?;
        return Ok(merged);
    }
    let (state, plan) = frame.into_parts();
    let row_group_rows = state
        .config()
        .options()
        .execution
        .parquet
        .max_row_group_size;
    let builder = delta
        .write(Vec::<RecordBatch>::new())
        .with_input_plan(plan)
        .with_session_state(Arc::new(state))
        .with_commit_properties(properties);
    // Inside a memory limit the session keeps row groups small (`session::new_session`); Delta's
    // writer otherwise buffers a million rows per file it writes.
    let builder = if row_group_rows < crate::session::DEFAULT_ROW_GROUP_ROWS {
        builder.with_writer_properties(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(row_group_rows))
                .build(),
        )
    } else {
        builder
    };
    let builder = match mode {
        WriteMode::Overwrite { partition_by } | WriteMode::Append { partition_by } if !exists => {
            builder
                .with_save_mode(SaveMode::Overwrite)
                .with_partition_columns(partition_by)
        }
        WriteMode::ReplaceWhere { partition_by, .. } if !exists => builder
            .with_save_mode(SaveMode::Overwrite)
            .with_partition_columns(partition_by),
        WriteMode::Merge { .. } | WriteMode::AppendAddingColumns if !exists => {
            builder.with_save_mode(SaveMode::Overwrite)
        }
        WriteMode::Overwrite { partition_by } => builder
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite)
            .with_partition_columns(partition_by),
        WriteMode::Append { .. } => builder.with_save_mode(SaveMode::Append),
        WriteMode::AppendAddingColumns => builder
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(SchemaMode::Merge),
        WriteMode::ReplaceWhere { predicate, .. } => builder
            .with_save_mode(SaveMode::Overwrite)
            .with_replace_where(predicate),
        WriteMode::Merge { .. } => unreachable!("merge into an existing table is handled above"),
    };
    builder.await.map_err(|e| Error::delta(table, e))
}

fn merge_builder(
    delta: DeltaTable,
    source: DataFrame,
    schema: &SchemaRef,
    keys: &[String],
    properties: CommitProperties,
) -> deltalake::DeltaResult<deltalake::operations::merge::MergeBuilder> {
    let predicate = keys
        .iter()
        .map(|k| format!("t.{q} = s.{q}", q = quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let updated: Vec<&String> = columns.iter().filter(|c| !keys.contains(c)).collect();
    delta
        .merge(source, predicate)
        .with_source_alias("s")
        .with_target_alias("t")
        .with_commit_properties(properties)
        .when_matched_update(|mut update| {
            for column in &updated {
                update = update.update(quote_ident(column), format!("s.{}", quote_ident(column)));
            }
            update
        })?
        .when_not_matched_insert(|mut insert| {
            for column in &columns {
                insert = insert.set(quote_ident(column), format!("s.{}", quote_ident(column)));
            }
            insert
        })
}

/// Double-quotes an identifier for SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string as a SQL literal.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The last commit's metadata of an existing table, if any.
pub async fn last_commit_meta(
    delta: &DeltaTable,
) -> Option<std::collections::HashMap<String, Value>> {
    let infos: Vec<_> = delta.history(Some(1)).try_collect().await.ok()?;
    infos.into_iter().next().map(|ci| ci.info)
}

/// `frame` with every column cast to the type Delta stores it as ([`delta_schema`]); columns
/// already of that type are left as they are.
pub fn with_delta_types(frame: DataFrame) -> Result<DataFrame> {
    let target = delta_schema(frame.schema().as_arrow());
    let columns: Vec<Expr> = frame
        .schema()
        .fields()
        .iter()
        .zip(target.fields())
        .map(|(field, delta_field)| {
            let column = col(datafusion::common::Column::from_name(field.name()));
            if field.data_type() == delta_field.data_type() {
                column
            } else {
                cast_expr(column, delta_field.data_type().clone()).alias(field.name())
            }
        })
        .collect();
    Ok(frame.select(columns)?)
}

/// Maps Arrow types that Delta cannot store to ones it can.
fn delta_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::UInt8 | DataType::Int8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        DataType::Date64 => DataType::Date32,
        DataType::Dictionary(_, value) => delta_type(value),
        DataType::List(field) | DataType::LargeList(field) | DataType::ListView(field) => {
            DataType::List(delta_field(field))
        }
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(delta_field).collect()),
        other => other.clone(),
    }
}

fn delta_field(field: &FieldRef) -> FieldRef {
    Arc::new(Field::new(
        field.name(),
        delta_type(field.data_type()),
        field.is_nullable(),
    ))
}

/// The Delta-storable version of a schema (all columns nullable: Delta enforces NOT NULL strictly and
/// DataFusion's nullability inference is conservative in the other direction).
pub fn delta_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), delta_type(f.data_type()), true))
            .collect::<Vec<_>>(),
    ))
}
