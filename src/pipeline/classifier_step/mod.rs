//! Running a classifier step: `sql/<layer>/<name>.classifier.toml` trains a random forest on a
//! lake table and publishes `<layer>.<name>_predictions` (the held-out rows with the model's
//! answers) and `<layer>.<name>_model` (the model artifact), logging the run to
//! `system.model_runs`.
//!
//! Phases: read the input at one Delta version; encode the features (one-hot categories, nulls a
//! category of their own); split the rows by a seeded hash of their id; train on the train rows;
//! predict the test rows and measure accuracy, per-class precision and recall and the confusion
//! matrix; commit the predictions, then the model; append the run. The step's line in `strata
//! run` reports the predictions table (rows, version); its note names the model version.
//!
//! The published model is the one that was measured (trained on the train rows only), so the
//! accuracy in `system.model_runs` is the accuracy of the model the API serves. Each training
//! overwrites the one-row model table, so the model's version is the table's Delta version and
//! older models stay readable by time travel.
//!
//! Invariant: all or none, as for ALS steps (see [`crate::pipeline::publish`]). A rerun whose
//! settings and input version are unchanged writes nothing. Both come from the training skeleton
//! ([`crate::pipeline::training`]); this module is what is particular to classifiers.

pub mod artifact;
pub mod run_row;
pub mod spec;
pub mod tables;

use std::path::PathBuf;
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use deltalake::DeltaTable;
use tracing::info;

use crate::catalog::TableName;
use crate::error::{Error, Result};
use crate::ml::forest::{self, Classifier, Encoder, Evaluation, FeatureValue};
use crate::pipeline::model_runs::TrainingRun;
use crate::pipeline::training::{self, TrainingStep};
use crate::pipeline::{StepContext, StepResult};

use spec::ClassifierSpec;

/// A classifier step as found in the SQL directory.
#[derive(Debug, Clone)]
pub struct ClassifierStep {
    pub file: PathBuf,
    pub spec: ClassifierSpec,
}

/// The input rows: as read (for the predictions table) and as the model sees them.
pub struct Dataset {
    /// The id, feature and label columns, in [`ClassifierSpec::input_columns`] order.
    rows: RecordBatch,
    records: Vec<Vec<FeatureValue>>,
    labels: Vec<String>,
    /// What identifies each row: the id, or the row's values. Keys the train/test split.
    keys: Vec<String>,
    /// The features encoded as categories.
    categorical: Vec<String>,
}

impl Dataset {
    /// Bytes training holds at its peak, estimated: the rows as read; the records, labels and
    /// keys; the encoded features twice (smartcore's matrix is a copy). The trees are left out:
    /// beside the data they are small at any depth that does not memorise it.
    fn training_bytes(&self, features: usize) -> usize {
        let n = self.records.len();
        let strings = |texts: &[String]| {
            texts
                .iter()
                .map(|t| t.capacity() + size_of::<String>())
                .sum::<usize>()
        };
        self.rows.get_array_memory_size()
            + n * (size_of::<Vec<FeatureValue>>() + features * size_of::<FeatureValue>())
            + strings(&self.labels)
            + strings(&self.keys)
            + 2 * n * features * size_of::<f64>()
    }
}

/// A trained and measured model.
pub struct Trained {
    pub model: Classifier,
    pub is_test: Vec<bool>,
    /// Predictions for the test rows, in row order.
    pub predictions: Vec<forest::Prediction>,
    pub evaluation: Evaluation,
    pub train_rows: usize,
    pub train_seconds: f64,
    pub eval_seconds: f64,
}

pub async fn run(
    ctx: &StepContext,
    step: &TableName,
    classifier: &ClassifierStep,
) -> Result<StepResult> {
    training::run(ctx, step, classifier).await
}

impl TrainingStep for ClassifierStep {
    const KIND: &'static str = run_row::KIND;
    const NAME: &'static str = "classifier";
    type Spec = ClassifierSpec;
    type Data = Dataset;
    /// The input stays with the model: the predictions table repeats the test rows.
    type Model = (Dataset, Trained);

    fn spec(&self) -> &ClassifierSpec {
        &self.spec
    }

    fn error(step: &TableName, message: String) -> Error {
        Error::Classifier {
            step: step.clone(),
            message,
        }
    }

    fn reads(&self) -> std::result::Result<Vec<TableName>, String> {
        Ok(vec![self.spec.input_table()?])
    }

    fn outputs(&self, step: &TableName) -> Vec<TableName> {
        spec::outputs(step).to_vec()
    }

    fn primary(&self, step: &TableName) -> TableName {
        spec::predictions_table(step)
    }

    async fn read(
        &self,
        ctx: &StepContext,
        step: &TableName,
        tables: &[(TableName, DeltaTable)],
    ) -> Result<Dataset> {
        let Some((table, delta)) = tables.first() else {
            return Err(Self::error(step, "the step reads no table".into()));
        };
        read_input(ctx, &self.spec, table, delta)
            .await?
            .map_err(|message| Self::error(step, message))
    }

    fn input_rows(data: &Dataset) -> u64 {
        data.records.len() as u64
    }

    fn memory(spec: &ClassifierSpec, data: &Dataset) -> usize {
        data.training_bytes(spec.features.len())
    }

    type TrainError = TrainingFailed;

    fn train(
        spec: ClassifierSpec,
        data: Dataset,
    ) -> std::result::Result<(Dataset, Trained), TrainingFailed> {
        let trained = train(&spec, &data).map_err(TrainingFailed)?;
        Ok((data, trained))
    }

    fn log_trained(step: &TableName, (_data, trained): &(Dataset, Trained)) {
        info!(
            step = %step,
            accuracy = trained.evaluation.accuracy,
            train_seconds = trained.train_seconds,
            "classifier trained"
        );
    }

    fn tables(
        &self,
        run: &TrainingRun,
        (data, trained): &(Dataset, Trained),
    ) -> Result<Vec<RecordBatch>> {
        let predictions = tables::predictions(&data.rows, trained)?;
        let artifact = trained
            .model
            .to_bytes()
            .map_err(|e| Self::error(&run.step, format!("cannot serialise the model: {e}")))?;
        let accuracy = trained.evaluation.accuracy;
        let model_row = tables::model_row(run, &self.spec, &trained.model, accuracy, &artifact)?;
        Ok(vec![predictions, model_row])
    }

    fn run_row(
        &self,
        run: &TrainingRun,
        (data, trained): &(Dataset, Trained),
    ) -> Result<RecordBatch> {
        run_row::row(run, &self.spec, &data.categorical, trained)
    }

    fn detail(&self, run: &TrainingRun, (_data, trained): &(Dataset, Trained)) -> String {
        let model_table = spec::model_table(&run.step).to_string();
        format!(
            "accuracy {:.4} on {} test rows ({} train), {} trees in {:.2}s; model version {}",
            trained.evaluation.accuracy,
            trained.predictions.len(),
            trained.train_rows,
            self.spec.trees,
            trained.train_seconds,
            run.versions.get(&model_table).copied().unwrap_or_default()
        )
    }
}

/// Reads the id, feature and label columns from the table's opened snapshot. The outer error is
/// a storage or query failure; the inner one a problem with the data, named for the user.
async fn read_input(
    ctx: &StepContext,
    spec: &ClassifierSpec,
    table: &TableName,
    delta: &DeltaTable,
) -> Result<std::result::Result<Dataset, String>> {
    let session = ctx.lake.session(&ctx.session)?;
    let provider = crate::catalog::provider(delta).await?;
    let frame = session.read_table(provider)?;
    let schema = frame.schema().as_arrow().clone();
    let wanted = spec.input_columns();
    if let Some(missing) = wanted.iter().find(|c| schema.index_of(c).is_err()) {
        let have: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Ok(Err(format!(
            "{table} has no column {missing:?} (columns: {}); fix label, features or id_column \
             in the step file",
            have.join(", ")
        )));
    }
    let columns: Vec<_> = wanted
        .iter()
        .map(|c| datafusion::logical_expr::col(datafusion::common::Column::from_name(c)))
        .collect();
    let frame = frame.select(columns)?;
    let out_schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    let rows = arrow::compute::concat_batches(&out_schema, &batches)?;
    Ok(dataset(spec, table, rows))
}

/// Turns the read columns into feature records, labels and split keys.
fn dataset(
    spec: &ClassifierSpec,
    table: &TableName,
    rows: RecordBatch,
) -> std::result::Result<Dataset, String> {
    let n = rows.num_rows();
    let offset = usize::from(spec.id_column.is_some());
    let mut categorical = Vec::new();
    let mut records: Vec<Vec<FeatureValue>> = vec![Vec::with_capacity(spec.features.len()); n];
    for (f, name) in spec.features.iter().enumerate() {
        let column = rows.column(offset + f);
        let kind = column_kind(column.data_type());
        let listed = spec.categorical.as_ref().map(|c| c.contains(name));
        let as_category = match (kind, listed) {
            (ColumnKind::Other, _) => {
                return Err(format!(
                    "feature {name:?} is {} in {table}: features must be numbers, text or \
                     booleans (cast it in the step that builds {table})",
                    column.data_type()
                ));
            }
            (ColumnKind::Text, Some(false)) => {
                return Err(format!(
                    "feature {name:?} is text in {table} but not listed in categorical; list it \
                     there or cast it to a number"
                ));
            }
            (ColumnKind::Text, _) => true,
            (ColumnKind::Number, listed) => listed.unwrap_or(false),
        };
        if as_category {
            categorical.push(name.clone());
        }
        match kind {
            ColumnKind::Number => {
                let numbers = cast(column, &DataType::Float64).map_err(|e| e.to_string())?;
                let numbers = numbers.as_primitive::<Float64Type>();
                for (r, record) in records.iter_mut().enumerate() {
                    record.push(if numbers.is_null(r) {
                        FeatureValue::Null
                    } else {
                        FeatureValue::Number(numbers.value(r))
                    });
                }
            }
            _ => {
                let text = cast(column, &DataType::Utf8).map_err(|e| e.to_string())?;
                let text = text.as_string::<i32>();
                for (r, record) in records.iter_mut().enumerate() {
                    record.push(if text.is_null(r) {
                        FeatureValue::Null
                    } else {
                        FeatureValue::Category(text.value(r).to_string())
                    });
                }
            }
        }
    }
    let label = cast(rows.column(rows.num_columns() - 1), &DataType::Utf8)
        .map_err(|e| format!("label {:?}: {e}", spec.label))?;
    let label = label.as_string::<i32>();
    if label.null_count() > 0 {
        return Err(format!(
            "{table}.{} has {} NULL values; every training row needs its class: filter them in \
             the step that builds {table}",
            spec.label,
            label.null_count()
        ));
    }
    let labels: Vec<String> = (0..n).map(|r| label.value(r).to_string()).collect();
    let keys = match &spec.id_column {
        Some(id) => unique_ids(table, id, rows.column(0))?,
        None => records
            .iter()
            .zip(&labels)
            .map(|(record, label)| format!("{record:?}{label}"))
            .collect(),
    };
    Ok(Dataset {
        rows,
        records,
        labels,
        keys,
        categorical,
    })
}

/// The id column as text. NULL or repeated ids are refused: the split is keyed by id (a NULL or
/// repeated id would put rows on one side as a block) and the predictions join back by it.
fn unique_ids(
    table: &TableName,
    id: &str,
    column: &arrow::array::ArrayRef,
) -> std::result::Result<Vec<String>, String> {
    let ids = cast(column, &DataType::Utf8).map_err(|e| format!("id_column {id:?}: {e}"))?;
    let ids = ids.as_string::<i32>();
    if ids.null_count() > 0 {
        return Err(format!(
            "{table}.{id} (the id_column) has {} NULL values; every row needs an id",
            ids.null_count()
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    let keys: Vec<String> = (0..ids.len()).map(|r| ids.value(r).to_string()).collect();
    if let Some(repeated) = keys.iter().find(|k| !seen.insert(k.as_str())) {
        return Err(format!(
            "{table}.{id} (the id_column) repeats {repeated:?}; ids must be unique"
        ));
    }
    Ok(keys)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ColumnKind {
    Number,
    Text,
    Other,
}

fn column_kind(data_type: &DataType) -> ColumnKind {
    match data_type {
        t if t.is_numeric() => ColumnKind::Number,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => {
            ColumnKind::Text
        }
        DataType::Dictionary(_, value) => column_kind(value),
        _ => ColumnKind::Other,
    }
}

/// Splits, trains on the train rows and measures on the test rows. CPU-bound: runs on a
/// blocking thread.
/// Why a classifier could not be trained, naming the row and field or the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrainingFailed(pub String);

fn train(spec: &ClassifierSpec, data: &Dataset) -> std::result::Result<Trained, String> {
    // The vocabulary of categories comes from every row (a category only held-out rows have is
    // still a known value of the input); only the labels of the train rows are learned from.
    let encoder = Encoder::fit(&spec.features, &data.categorical, &data.records);
    // Every row must encode before training: a bad row is named by its id, not by position.
    for (r, record) in data.records.iter().enumerate() {
        if let Err(e) = encoder.encode(record) {
            let row = match &spec.id_column {
                Some(id) => format!("{id} = {}", data.keys[r]),
                None => format!("row {}", r + 1),
            };
            return Err(format!(
                "{row}: {e}; filter or fill such rows in the step that builds {}",
                spec.input
            ));
        }
    }
    let is_test = forest::holdout(&data.keys, spec.test_fraction, spec.split_seed());
    let pick = |test: bool| -> (Vec<Vec<FeatureValue>>, Vec<String>) {
        let rows = (0..data.records.len()).filter(|&r| is_test[r] == test);
        rows.map(|r| (data.records[r].clone(), data.labels[r].clone()))
            .unzip()
    };
    let (train_records, train_labels) = pick(false);
    let (test_records, test_labels) = pick(true);

    let started = Instant::now();
    let model = Classifier::train(encoder, &train_records, &train_labels, spec.forest_params())?;
    let train_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let predictions = test_records
        .iter()
        .map(|r| model.predict(r).map_err(|e| e.to_string()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    // A class only the test rows have is one the model can never predict: it stays in the
    // evaluation (recall 0) rather than vanishing from it.
    let mut classes = model.classes.clone();
    for label in &test_labels {
        if !classes.contains(label) {
            classes.push(label.clone());
        }
    }
    let index = |class: &str| {
        classes
            .iter()
            .position(|c| c == class)
            .expect("every test label and prediction is listed")
    };
    let actual: Vec<usize> = test_labels.iter().map(|l| index(l)).collect();
    let predicted: Vec<usize> = predictions.iter().map(|p| index(&p.class)).collect();
    let evaluation = forest::evaluate(&classes, &actual, &predicted);
    let eval_seconds = started.elapsed().as_secs_f64();
    Ok(Trained {
        model,
        is_test,
        predictions,
        evaluation,
        train_rows: train_records.len(),
        train_seconds,
        eval_seconds,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    };
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn spec(features: &[&str], categorical: Option<&[&str]>) -> ClassifierSpec {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ClassifierSpec {
            input: "silver.t".into(),
            label: "label".into(),
            features: names(features),
            categorical: categorical.map(names),
            id_column: Some("id".into()),
            trees: 10,
            ..Default::default()
        }
    }

    /// `id`, the given feature columns and `label`, in that order (the order `read_input` gives).
    fn rows(features: Vec<(&str, ArrayRef)>, labels: ArrayRef, ids: ArrayRef) -> RecordBatch {
        let mut columns = vec![("id", ids)];
        columns.extend(features);
        columns.push(("label", labels));
        let schema = Schema::new(
            columns
                .iter()
                .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    fn ids(n: i64) -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(0..n))
    }

    fn table() -> TableName {
        "silver.t".parse().unwrap()
    }

    #[test]
    fn numeric_labels_boolean_features_and_listed_numeric_categories_are_read() {
        let n = 60;
        let x: Vec<f64> = (0..n)
            .map(|i| (i % 2) as f64 * 10.0 + (i % 7) as f64)
            .collect();
        let flag: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let code: Vec<i64> = (0..n).map(|i| 100 + i % 3).collect();
        let label: Vec<i64> = (0..n).map(|i| i % 2).collect();
        let batch = rows(
            vec![
                ("x", Arc::new(Float64Array::from(x))),
                ("flag", Arc::new(BooleanArray::from(flag))),
                ("code", Arc::new(Int64Array::from(code))),
            ],
            Arc::new(Int64Array::from(label)),
            ids(n),
        );
        let spec = spec(&["x", "flag", "code"], Some(&["flag", "code"]));
        let data = dataset(&spec, &table(), batch).unwrap();
        assert_eq!(data.categorical, ["flag", "code"]);
        assert_eq!(data.records[0][1], FeatureValue::Category("true".into()));
        assert_eq!(data.records[0][2], FeatureValue::Number(100.0));
        assert_eq!(data.labels[..2], ["0", "1"]);
        let trained = train(&spec, &data).unwrap();
        assert_eq!(trained.model.classes, ["0", "1"]);
        assert_eq!(
            trained.model.encoder.columns(),
            [
                "x",
                "flag=false",
                "flag=true",
                "code=100",
                "code=101",
                "code=102"
            ]
        );
        assert!(
            trained.evaluation.accuracy > 0.9,
            "{:?}",
            trained.evaluation
        );
    }

    #[test]
    fn a_class_only_the_test_rows_have_stays_in_the_evaluation() {
        let n = 50;
        let keys: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let spec = spec(&["x"], None);
        let is_test = forest::holdout(&keys, spec.test_fraction, spec.split_seed());
        let lone = is_test.iter().position(|t| *t).unwrap();
        let labels: Vec<String> = (0..n)
            .map(|i| match i {
                _ if i == lone => "c".to_string(),
                _ if i % 2 == 0 => "a".to_string(),
                _ => "b".to_string(),
            })
            .collect();
        let x: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
        let batch = rows(
            vec![("x", Arc::new(Float64Array::from(x)))],
            Arc::new(StringArray::from(labels)),
            ids(n as i64),
        );
        let data = dataset(&spec, &table(), batch).unwrap();
        let trained = train(&spec, &data).unwrap();
        assert_eq!(trained.model.classes, ["a", "b"]);
        let c = &trained.evaluation.classes[2];
        assert_eq!((c.class.as_str(), c.support, c.recall), ("c", 1, Some(0.0)));
        assert_eq!(trained.evaluation.confusion.len(), 3);
    }

    #[test]
    fn ids_must_be_present_and_unique() {
        let batch = |ids: ArrayRef| {
            rows(
                vec![("x", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])))],
                Arc::new(StringArray::from(vec!["a", "b", "a"])),
                ids,
            )
        };
        let spec = spec(&["x"], None);
        let err = dataset(
            &spec,
            &table(),
            batch(Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]))),
        )
        .err()
        .unwrap();
        assert!(
            err.contains("silver.t.id") && err.contains("1 NULL"),
            "{err}"
        );
        let err = dataset(
            &spec,
            &table(),
            batch(Arc::new(Int64Array::from(vec![1, 2, 1]))),
        )
        .err()
        .unwrap();
        assert!(err.contains("repeats \"1\""), "{err}");
    }

    #[test]
    fn unusable_features_and_tiny_tables_are_errors_not_panics() {
        let label: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let dates = rows(
            vec![("day", Arc::new(Date32Array::from(vec![1, 2])))],
            Arc::clone(&label),
            ids(2),
        );
        let err = dataset(&spec(&["day"], None), &table(), dates)
            .err()
            .unwrap();
        assert!(err.contains("feature \"day\" is Date32"), "{err}");

        let text = rows(
            vec![
                ("x", Arc::new(Float64Array::from(vec![1.0, 2.0]))),
                ("island", Arc::new(StringArray::from(vec!["A", "B"]))),
            ],
            Arc::clone(&label),
            ids(2),
        );
        let spec_x = spec(&["x", "island"], Some(&["x"]));
        let err = dataset(&spec_x, &table(), text).err().unwrap();
        assert!(
            err.contains("\"island\" is text") && err.contains("categorical"),
            "{err}"
        );

        // Two rows: one trains, one tests, and one class cannot be learned from.
        let two = rows(
            vec![("x", Arc::new(Float64Array::from(vec![1.0, 2.0])))],
            label,
            ids(2),
        );
        let spec = spec(&["x"], None);
        let data = dataset(&spec, &table(), two).unwrap();
        let err = train(&spec, &data).err().unwrap();
        assert!(err.contains("only one class"), "{err}");
    }
}
