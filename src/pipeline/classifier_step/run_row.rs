//! The row a classifier step appends to `system.model_runs` (see [`crate::pipeline::model_runs`]).
//!
//! Beside the columns every training run has, it records the label, features and classes, the
//! test accuracy, per-class precision / recall / F1 / support, the confusion matrix (rows: actual
//! class, columns: predicted, both in `classes` order) and the versions of the predictions and
//! model tables it published: `model_version` is the version the API serves as this model.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use chrono::{DateTime, Utc};

use super::spec::{ClassifierSpec, model_table, predictions_table};
use super::tables::{one_string, string_list};
use crate::error::Result;
use crate::ml::forest::Evaluation;

/// `system.model_runs.kind` of classifier runs.
pub const KIND: &str = "classifier";

/// One training run of a classifier step.
#[derive(Debug, Clone)]
pub struct ClassifierRun {
    pub run_id: String,
    pub step: String,
    pub trained_at: DateTime<Utc>,
    pub input_table: String,
    pub input_version: u64,
    pub spec: ClassifierSpec,
    /// The features encoded as categories (resolved from the spec and the column types).
    pub categorical: Vec<String>,
    pub input_rows: u64,
    pub train_rows: u64,
    pub test_rows: u64,
    pub evaluation: Evaluation,
    pub read_seconds: f64,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub write_seconds: f64,
    /// Table -> the version this run committed.
    pub output_versions: BTreeMap<String, u64>,
}

impl ClassifierRun {
    /// The run as a one-row batch of `system.model_runs`.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let spec = &self.spec;
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let text = |name: &str| Field::new(name, DataType::Utf8, false);
        let int = |name: &str| Field::new(name, DataType::Int64, true);
        let float = |name: &str| Field::new(name, DataType::Float64, true);
        let list = |name: &str, element: DataType| {
            Field::new(
                name,
                DataType::List(Arc::new(Field::new("element", element, false))),
                false,
            )
        };
        let step: crate::catalog::TableName = self
            .step
            .parse()
            .map_err(|e| crate::error::Error::Usage(format!("{e}")))?;
        let version = |table: &crate::catalog::TableName| {
            self.output_versions
                .get(&table.to_string())
                .map(|&v| v as i64)
        };
        // The evaluation's classes: the model's, then any only the test rows had.
        let classes: Vec<String> = (self.evaluation.classes.iter())
            .map(|m| m.class.clone())
            .collect();
        let (class_metrics_field, class_metrics) = self.class_metrics();
        let (confusion_field, confusion) = self.confusion_matrix()?;
        let columns: Vec<(Field, ArrayRef)> = vec![
            (text("run_id"), one_string(&self.run_id)),
            (text("step"), one_string(&self.step)),
            (text("kind"), one_string(KIND)),
            (
                Field::new("trained_at", ts, false),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![self.trained_at.timestamp_micros()])
                        .with_timezone("UTC"),
                ),
            ),
            (text("input_table"), one_string(&self.input_table)),
            (int("input_version"), int_value(self.input_version as i64)),
            (text("params"), one_string(&serde_json::to_string(spec)?)),
            (int("trees"), int_value(spec.trees as i64)),
            (int("max_depth"), int_value(spec.max_depth as i64)),
            (
                int("features_per_split"),
                int_value(spec.features_per_split as i64),
            ),
            (int("seed"), int_value(spec.seed as i64)),
            (int("input_rows"), int_value(self.input_rows as i64)),
            (
                text("eval_method"),
                one_string(&format!(
                    "holdout {} seed {}",
                    spec.test_fraction,
                    spec.split_seed()
                )),
            ),
            (int("train_rows"), int_value(self.train_rows as i64)),
            (int("test_rows"), int_value(self.test_rows as i64)),
            (text("label"), one_string(&spec.label)),
            (
                list("features", DataType::Utf8),
                string_list(&spec.features)?,
            ),
            (
                list("categorical", DataType::Utf8),
                string_list(&self.categorical)?,
            ),
            (list("classes", DataType::Utf8), string_list(&classes)?),
            (
                float("accuracy"),
                float_value(Some(self.evaluation.accuracy)),
            ),
            (class_metrics_field, class_metrics),
            (confusion_field, confusion),
            (float("read_seconds"), float_value(Some(self.read_seconds))),
            (
                float("train_seconds"),
                float_value(Some(self.train_seconds)),
            ),
            (float("eval_seconds"), float_value(Some(self.eval_seconds))),
            (
                float("write_seconds"),
                float_value(Some(self.write_seconds)),
            ),
            (
                int("predictions_version"),
                Arc::new(Int64Array::from(vec![version(&predictions_table(&step))])),
            ),
            (
                int("model_version"),
                Arc::new(Int64Array::from(vec![version(&model_table(&step))])),
            ),
        ];
        let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
    }

    /// `class_metrics`: list<struct<class, precision, recall, f1, support>>, one per class.
    fn class_metrics(&self) -> (Field, ArrayRef) {
        let metrics = &self.evaluation.classes;
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
        (
            Field::new("class_metrics", DataType::List(element), false),
            Arc::new(list),
        )
    }

    /// `confusion_matrix`: list<list<int64>>, `[actual][predicted]` in evaluation class order.
    fn confusion_matrix(&self) -> Result<(Field, ArrayRef)> {
        let matrix = &self.evaluation.confusion;
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
        Ok((
            Field::new("confusion_matrix", DataType::List(element), false),
            Arc::new(outer),
        ))
    }
}

fn int_value(value: i64) -> ArrayRef {
    Arc::new(Int64Array::from(vec![value]))
}

fn float_value(value: Option<f64>) -> ArrayRef {
    Arc::new(Float64Array::from(vec![value]))
}
