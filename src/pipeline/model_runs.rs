//! `system.model_runs`: one row per model a training step published, our MLflow.
//!
//! ALS and classifier steps log to the same table. They share the columns that say which data and
//! settings produced the model (`run_id`, `step`, `kind`, `trained_at`, `input_table`,
//! `input_version`, `params`, row counts, timings) and each adds its own measures (RMSE and
//! ranking metrics for ALS; accuracy, per-class metrics and the confusion matrix for
//! classifiers). A row's kind-specific columns the other kind does not have read NULL.
//!
//! Invariant: appending never drops a column, a row or a column's type. A row that brings new
//! columns adds them to the table in the same commit (every column is nullable); a row whose
//! column has another type than the table's is refused naming the column.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::{Field, Schema};

use crate::catalog::{Layer, TableName};
use crate::error::{Error, Result};
use crate::pipeline::StepContext;
use crate::pipeline::commit::{self, CommitMeta, WriteMode};

/// The run log of every training run.
pub fn table() -> TableName {
    TableName::new(Layer::System, "model_runs")
}

/// Serialises appends within the process: with `run.concurrency > 1` two training steps may log
/// at once, and the widening rewrite below must not race another append (the run lock already
/// keeps other processes out).
static APPENDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Appends one step's run row, adding the columns the table does not have yet.
pub async fn append(ctx: &StepContext, step: &TableName, row: RecordBatch) -> Result<u64> {
    let _one_at_a_time = APPENDING.lock().await;
    let table = table();
    let meta = CommitMeta {
        run_id: ctx.run_id.clone(),
        step: step.to_string(),
        ..Default::default()
    };
    // The row in the table's shape, and the table when it still has NOT NULL columns.
    let (row, widen) = if ctx.lake.exists(&table).await? {
        let delta = ctx.lake.open(&table).await?;
        let provider = crate::catalog::provider(&delta).await?;
        let existing = provider.schema();
        let unified = unify(&table, &existing, &row.schema())?;
        let has_not_null = existing.fields().iter().any(|f| !f.is_nullable());
        (
            pad(&row, &unified)?,
            has_not_null.then_some((provider, unified)),
        )
    } else {
        (pad(&row, &nullable(&row.schema()))?, None)
    };
    let Some((provider, unified)) = widen else {
        let mode = WriteMode::AppendAddingColumns;
        return commit_rows(ctx, &table, vec![row], mode, &meta).await;
    };
    // Tables written before ALS and classifier runs shared this table have NOT NULL columns, which
    // a row of the other kind cannot fill. Rewrite it once, every column nullable, in the same
    // commit as the new row (the earlier versions stay readable by time travel).
    let session = ctx.lake.session(&ctx.config.session_options())?;
    let mut rows = Vec::new();
    for batch in session.read_table(provider)?.collect().await? {
        rows.push(pad(&batch, &unified)?);
    }
    rows.push(row);
    let mode = WriteMode::Overwrite {
        partition_by: Vec::new(),
    };
    commit_rows(ctx, &table, rows, mode, &meta).await
}

async fn commit_rows(
    ctx: &StepContext,
    table: &TableName,
    rows: Vec<RecordBatch>,
    mode: WriteMode,
    meta: &CommitMeta,
) -> Result<u64> {
    let schema = rows[0].schema();
    commit::commit(&ctx.lake, table, schema, rows, mode, meta).await
}

/// The schema after appending a row of `incoming`: the table's columns, then the row's new ones,
/// every column nullable (a run of one kind has no value for the other kind's columns). A column
/// both have must have the same type.
fn unify(table: &TableName, existing: &Schema, incoming: &Schema) -> Result<Schema> {
    let existing = commit::delta_schema(existing);
    let incoming = commit::delta_schema(incoming);
    let mut fields: Vec<Field> = Vec::new();
    for field in existing.fields() {
        if let Ok(theirs) = incoming.field_with_name(field.name())
            && !same_type(theirs.data_type(), field.data_type())
        {
            return Err(Error::SchemaConflict {
                table: table.clone(),
                message: format!(
                    "column {} is {} in the table but {} in the new run's row",
                    field.name(),
                    field.data_type(),
                    theirs.data_type()
                ),
            });
        }
        fields.push(field.as_ref().clone());
    }
    for field in incoming.fields() {
        if existing.index_of(field.name()).is_err() {
            fields.push(field.as_ref().clone());
        }
    }
    Ok(nullable(&Schema::new(fields)))
}

/// `schema` with every top-level column nullable.
fn nullable(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    )
}

/// `batch` in `schema`: its columns cast to the schema's types, NULL where it has none.
fn pad(batch: &RecordBatch, schema: &Schema) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) => Ok(arrow::compute::cast(column, field.data_type())?),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(Arc::new(schema.clone()), columns)?)
}

/// Types equal up to nullability of nested fields (Delta and Arrow disagree on those; the data
/// is the same).
fn same_type(a: &arrow::datatypes::DataType, b: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType::{List, Struct};
    match (a, b) {
        (List(x), List(y)) => same_type(x.data_type(), y.data_type()),
        (Struct(x), Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(f, g)| f.name() == g.name() && same_type(f.data_type(), g.data_type()))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::DataType;

    fn batch(fields: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let schema = Schema::new(
            fields
                .iter()
                .map(|(name, array)| Field::new(*name, array.data_type().clone(), false))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            fields.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    #[test]
    fn a_row_of_another_kind_keeps_the_table_columns_and_adds_its_own() {
        let existing = Schema::new(vec![
            Field::new("run_id", DataType::Utf8View, false),
            Field::new("factors", DataType::Int64, false),
        ]);
        let row = batch(vec![
            ("accuracy", Arc::new(Float64Array::from(vec![0.98]))),
            ("run_id", Arc::new(StringArray::from(vec!["r2"]))),
        ]);
        let unified = unify(&table(), &existing, &row.schema()).unwrap();
        let out = pad(&row, &unified).unwrap();
        let names: Vec<&str> = out
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["run_id", "factors", "accuracy"]);
        assert!(out.schema().fields().iter().all(|f| f.is_nullable()));
        assert_eq!(out.column(0).data_type(), &DataType::Utf8);
        assert!(out.column(1).is_null(0), "factors is NULL for this kind");
        assert!(!out.column(0).is_null(0));
    }

    #[test]
    fn a_column_of_another_type_is_refused_naming_it() {
        let existing = Schema::new(vec![Field::new("run_id", DataType::Int64, true)]);
        let row = batch(vec![("run_id", Arc::new(StringArray::from(vec!["r1"])))]);
        let err = unify(&table(), &existing, &row.schema())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("system.model_runs") && err.contains("run_id"),
            "{err}"
        );
        let same = batch(vec![("run_id", Arc::new(Int64Array::from(vec![1])))]);
        assert!(unify(&table(), &existing, &same.schema()).is_ok());
    }
}
