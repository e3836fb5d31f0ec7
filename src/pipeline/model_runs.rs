//! `system.model_runs`: one row per model a training step published, our MLflow.
//!
//! ALS and classifier steps log to the same table. They share the columns that say which data and
//! settings produced the model (`run_id`, `step`, `kind`, `trained_at`, `input_table`,
//! `input_version`, `params`, row counts, timings) and each adds its own measures (RMSE and
//! ranking metrics for ALS; accuracy, per-class metrics and the confusion matrix for
//! classifiers). A row's kind-specific columns the other kind does not have read NULL.
//!
//! Rows are built by [`RunRow`], the one place that names and types the shared columns; each kind
//! adds its own columns between them, in its own order (the order a fresh table gets). Every
//! top-level column is nullable, as the table stores it. This module does not know what a kind
//! measures: `als_step::model_runs` and `classifier_step::run_row` do.
//!
//! Invariant: appending never drops a column, a row or a column's type. A row that brings new
//! columns adds them to the table in the same commit (every column is nullable); a row whose
//! column has another type than the table's is refused naming the column. Only tables written
//! by versions whose rows had NOT NULL columns are rewritten, once (see [`append`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, new_null_array,
};
use arrow::datatypes::{Field, Schema};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::{Layer, TableName};
use crate::error::{Error, Result};
use crate::pipeline::StepContext;
use crate::pipeline::commit::{self, CommitMeta, WriteMode};

/// The run log of every training run.
pub fn table() -> TableName {
    TableName::new(Layer::System, "model_runs")
}

/// What every training run records about where its model came from, filled in by the training
/// skeleton ([`crate::pipeline::training`]) as the run goes.
#[derive(Debug, Clone)]
pub struct TrainingRun {
    pub run_id: String,
    pub step: TableName,
    /// `system.model_runs.kind`.
    pub kind: &'static str,
    pub trained_at: DateTime<Utc>,
    /// The table trained on and the Delta version read.
    pub input: TableName,
    pub input_version: u64,
    /// Rows read from the input.
    pub input_rows: u64,
    pub read_seconds: f64,
    /// Known once the outputs are committed: 0 before.
    pub write_seconds: f64,
    /// Table -> the version this run committed; empty before the outputs are committed.
    pub versions: BTreeMap<String, u64>,
}

/// One row of `system.model_runs`, built column by column: [`RunRow::new`] and the other
/// shared-column methods fix those columns' names and types; a kind adds its own with the typed
/// methods. Every top-level column is nullable.
#[derive(Debug)]
pub struct RunRow<'a> {
    run: &'a TrainingRun,
    fields: Vec<Field>,
    columns: Vec<ArrayRef>,
}

impl<'a> RunRow<'a> {
    /// The columns every row starts with: `run_id`, `step`, `kind`, `trained_at`,
    /// `input_table`, `input_version` and `params` (the kind's settings as JSON).
    pub fn new(run: &'a TrainingRun, params: &impl Serialize) -> Result<RunRow<'a>> {
        let trained_at = TimestampMicrosecondArray::from(vec![run.trained_at.timestamp_micros()])
            .with_timezone("UTC");
        let row = RunRow {
            run,
            fields: Vec::new(),
            columns: Vec::new(),
        };
        Ok(row
            .text("run_id", &run.run_id)
            .text("step", &run.step.to_string())
            .text("kind", run.kind)
            .column("trained_at", Arc::new(trained_at))
            .text("input_table", &run.input.to_string())
            .int("input_version", run.input_version)
            .text("params", &serde_json::to_string(params)?))
    }

    /// `input_rows`: the rows read from the input.
    pub fn input_rows(self) -> Self {
        let rows = self.run.input_rows;
        self.int("input_rows", rows)
    }

    /// `eval_method` (how the model was measured), `train_rows` and `test_rows`.
    pub fn evaluation(self, method: &str, train_rows: u64, test_rows: u64) -> Self {
        self.text("eval_method", method)
            .int("train_rows", train_rows)
            .int("test_rows", test_rows)
    }

    /// `read_seconds`, `<phase>_seconds` for each of the kind's phases, `write_seconds`.
    pub fn seconds(self, phases: &[(&str, f64)]) -> Self {
        let (read, write) = (self.run.read_seconds, self.run.write_seconds);
        let row = self.float("read_seconds", Some(read));
        let row = phases.iter().fold(row, |row, (phase, seconds)| {
            row.float(&format!("{phase}_seconds"), Some(*seconds))
        });
        row.float("write_seconds", Some(write))
    }

    /// `<name>_version`: the version of `table` this run committed.
    pub fn version(self, name: &str, table: &TableName) -> Self {
        let version = self.run.versions.get(&table.to_string()).map(|&v| v as i64);
        let column = Arc::new(Int64Array::from(vec![version]));
        self.column(&format!("{name}_version"), column)
    }

    pub fn text(self, name: &str, value: &str) -> Self {
        self.column(name, Arc::new(StringArray::from(vec![value])))
    }

    pub fn int(self, name: &str, value: impl TryInto<i64>) -> Self {
        // Counts and settings far below i64::MAX; one that is not reads NULL rather than wrapping.
        let value = value.try_into().ok();
        self.column(name, Arc::new(Int64Array::from(vec![value])))
    }

    pub fn float(self, name: &str, value: Option<f64>) -> Self {
        self.column(name, Arc::new(Float64Array::from(vec![value])))
    }

    pub fn boolean(self, name: &str, value: bool) -> Self {
        self.column(name, Arc::new(BooleanArray::from(vec![value])))
    }

    /// A column of one value of any type (lists, structs), typed by the array.
    pub fn column(mut self, name: &str, value: ArrayRef) -> Self {
        self.fields
            .push(Field::new(name, value.data_type().clone(), true));
        self.columns.push(value);
        self
    }

    pub fn finish(self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(self.fields)),
            self.columns,
        )?)
    }
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
    let session = ctx.lake.session(&ctx.session)?;
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

    fn training_run() -> TrainingRun {
        TrainingRun {
            run_id: "r1".into(),
            step: "gold.species".parse().unwrap(),
            kind: "classifier",
            trained_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            input: "silver.penguins".parse().unwrap(),
            input_version: 3,
            input_rows: 344,
            read_seconds: 0.5,
            write_seconds: 0.25,
            versions: BTreeMap::from([("gold.species_model".to_string(), 7)]),
        }
    }

    /// Every kind builds its shared columns here, so they have one name, type and nullability
    /// whichever kind writes the table first.
    #[test]
    fn shared_columns_have_one_name_type_and_nullability() {
        let run = training_run();
        let row = RunRow::new(&run, &serde_json::json!({"trees": 10}))
            .unwrap()
            .int("trees", 10u16)
            .input_rows()
            .evaluation("holdout 0.2 seed 42", 275, 69)
            .seconds(&[("train", 1.0)])
            .version("model", &"gold.species_model".parse().unwrap())
            .version("predictions", &"gold.species_predictions".parse().unwrap())
            .finish()
            .unwrap();
        let schema = row.schema();
        let columns: Vec<(&str, &DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        let utc = DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(
            columns,
            [
                ("run_id", &DataType::Utf8),
                ("step", &DataType::Utf8),
                ("kind", &DataType::Utf8),
                ("trained_at", &utc),
                ("input_table", &DataType::Utf8),
                ("input_version", &DataType::Int64),
                ("params", &DataType::Utf8),
                ("trees", &DataType::Int64),
                ("input_rows", &DataType::Int64),
                ("eval_method", &DataType::Utf8),
                ("train_rows", &DataType::Int64),
                ("test_rows", &DataType::Int64),
                ("read_seconds", &DataType::Float64),
                ("train_seconds", &DataType::Float64),
                ("write_seconds", &DataType::Float64),
                ("model_version", &DataType::Int64),
                ("predictions_version", &DataType::Int64),
            ]
        );
        assert!(schema.fields().iter().all(|f| f.is_nullable()));
        let int = |name: &str| {
            let column = row.column_by_name(name).unwrap();
            let ints = column.as_any().downcast_ref::<Int64Array>().unwrap();
            (!ints.is_null(0)).then(|| ints.value(0))
        };
        assert_eq!(int("input_version"), Some(3));
        assert_eq!(int("input_rows"), Some(344));
        assert_eq!(int("model_version"), Some(7));
        assert_eq!(int("predictions_version"), None, "not committed");
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
