//! The row a classifier step appends to `system.model_runs` (see [`crate::pipeline::model_runs`]).
//!
//! Beside the columns every training run has, it records the label, features and classes, the
//! test accuracy, per-class precision / recall / F1 / support, the confusion matrix (rows: actual
//! class, columns: predicted, both in `classes` order) and the versions of the predictions and
//! model tables it published: `model_version` is the version the API serves as this model. The
//! columns every kind shares come from [`RunRow`].

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields};

use super::Trained;
use super::spec::{ClassifierSpec, model_table, predictions_table};
use super::tables::string_list;
use crate::error::Result;
use crate::ml::forest::Evaluation;
use crate::pipeline::model_runs::{RunRow, TrainingRun};

/// `system.model_runs.kind` of classifier runs.
pub const KIND: &str = "classifier";

/// The run as a one-row batch of `system.model_runs`: the shared columns, the forest's settings,
/// the label, features and classes, what the evaluation measured and the versions of the
/// predictions and model tables the run committed.
pub fn row(
    run: &TrainingRun,
    spec: &ClassifierSpec,
    categorical: &[String],
    trained: &Trained,
) -> Result<RecordBatch> {
    let evaluation = &trained.evaluation;
    // The evaluation's classes: the model's, then any only the test rows had.
    let classes: Vec<String> = (evaluation.classes.iter())
        .map(|m| m.class.clone())
        .collect();
    let method = format!("holdout {} seed {}", spec.test_fraction, spec.split_seed());
    RunRow::new(run, spec)?
        .int("trees", spec.trees)
        .int("max_depth", spec.max_depth)
        .int("features_per_split", spec.features_per_split)
        .int("seed", spec.seed)
        .input_rows()
        .evaluation(
            &method,
            trained.train_rows as u64,
            trained.predictions.len() as u64,
        )
        .text("label", &spec.label)
        .column("features", string_list(&spec.features)?)
        .column("categorical", string_list(categorical)?)
        .column("classes", string_list(&classes)?)
        .float("accuracy", Some(evaluation.accuracy))
        .column("class_metrics", class_metrics(evaluation))
        .column("confusion_matrix", confusion_matrix(evaluation)?)
        .seconds(&[
            ("train", trained.train_seconds),
            ("eval", trained.eval_seconds),
        ])
        .version("predictions", &predictions_table(&run.step))
        .version("model", &model_table(&run.step))
        .finish()
}

/// `class_metrics`: list<struct<class, precision, recall, f1, support>>, one per class.
fn class_metrics(evaluation: &Evaluation) -> ArrayRef {
    let metrics = &evaluation.classes;
    let f1: Vec<Option<f64>> = metrics
        .iter()
        .map(|m| match (m.precision, m.recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        })
        .collect();
    let fields = Fields::from(vec![
        Field::new("class", DataType::Utf8, false),
        Field::new("precision", DataType::Float64, true),
        Field::new("recall", DataType::Float64, true),
        Field::new("f1", DataType::Float64, true),
        Field::new("support", DataType::Int64, false),
    ]);
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            metrics.iter().map(|m| m.class.as_str()),
        )),
        Arc::new(Float64Array::from_iter(metrics.iter().map(|m| m.precision))),
        Arc::new(Float64Array::from_iter(metrics.iter().map(|m| m.recall))),
        Arc::new(Float64Array::from(f1)),
        Arc::new(Int64Array::from_iter_values(
            metrics.iter().map(|m| m.support as i64),
        )),
    ];
    let structs = StructArray::new(fields.clone(), arrays, None);
    let element = Arc::new(Field::new("element", DataType::Struct(fields), true));
    let list = ListArray::new(
        Arc::clone(&element),
        OffsetBuffer::from_lengths([metrics.len()]),
        Arc::new(structs),
        None,
    );
    Arc::new(list)
}

/// `confusion_matrix`: list<list<int64>>, `[actual][predicted]` in evaluation class order.
fn confusion_matrix(evaluation: &Evaluation) -> Result<ArrayRef> {
    let matrix = &evaluation.confusion;
    let inner_element = Arc::new(Field::new("element", DataType::Int64, true));
    let inner = ListArray::try_new(
        Arc::clone(&inner_element),
        OffsetBuffer::from_lengths(matrix.iter().map(Vec::len)),
        Arc::new(Int64Array::from_iter_values(
            matrix.iter().flatten().map(|&n| n as i64),
        )),
        None,
    )?;
    let element = Arc::new(Field::new("element", DataType::List(inner_element), true));
    let outer = ListArray::try_new(
        Arc::clone(&element),
        OffsetBuffer::from_lengths([matrix.len()]),
        Arc::new(inner),
        None,
    )?;
    Ok(Arc::new(outer))
}
