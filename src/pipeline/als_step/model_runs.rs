//! The row an ALS step appends to `system.model_runs` (see [`crate::pipeline::model_runs`]).
//!
//! It answers "which data and settings produced the recommendations that are live now?": the input
//! table and its Delta version, every parameter, the evaluation metrics, the per-iteration loss, the
//! row counts, the time each phase took and the versions of the gold tables the run wrote.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::ml::als::AlsParams;

/// `system.model_runs.kind` of ALS runs.
pub const KIND: &str = "als";

/// What the evaluation measured; every field is `None` when the step did not evaluate.
#[derive(Debug, Clone, Default)]
pub struct EvalMetrics {
    /// `holdout 0.2 seed 42`, `table silver.x@3` or `none`.
    pub method: String,
    pub train_rows: u64,
    pub test_rows: u64,
    /// RMSE over test pairs whose user and item are in train (explicit only).
    pub rmse: Option<f64>,
    pub rmse_pairs: u64,
    /// Test pairs not scored because the user or item was not in train.
    pub rmse_skipped: u64,
    pub precision_at_10: Option<f64>,
    pub recall_at_10: Option<f64>,
    pub ndcg_at_10: Option<f64>,
    pub map_at_10: Option<f64>,
    pub popular_precision_at_10: Option<f64>,
    pub popular_recall_at_10: Option<f64>,
    pub popular_ndcg_at_10: Option<f64>,
    pub popular_map_at_10: Option<f64>,
    /// Users with at least one relevant test item.
    pub eval_users: u64,
}

/// One training run.
#[derive(Debug, Clone)]
pub struct ModelRun {
    pub run_id: String,
    pub step: String,
    pub trained_at: DateTime<Utc>,
    pub input_table: String,
    pub input_version: u64,
    pub params: AlsParams,
    pub threads: usize,
    pub input_rows: u64,
    pub users: u64,
    pub items: u64,
    pub eval: EvalMetrics,
    /// RMSE of the published model on its own training rows (explicit only).
    pub train_rmse: Option<f64>,
    /// The published model's objective after each iteration.
    pub loss_history: Vec<f64>,
    pub read_seconds: f64,
    pub eval_seconds: f64,
    pub train_seconds: f64,
    pub recommend_seconds: f64,
    pub write_seconds: f64,
    /// Gold table -> the version this run committed.
    pub output_versions: BTreeMap<String, u64>,
}

impl ModelRun {
    /// The run as a one-row batch of `system.model_runs`.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let loss_element = Arc::new(Field::new("element", DataType::Float64, false));
        let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
        let int = |name: &str| Field::new(name, DataType::Int64, false);
        let float = |name: &str| Field::new(name, DataType::Float64, true);
        let p = &self.params;
        let e = &self.eval;
        let version = |name: &str| self.output_versions.get(name).map(|&v| v as i64);

        let mut fields = vec![
            text("run_id", false),
            text("step", false),
            text("kind", false),
            Field::new("trained_at", ts, false),
            text("input_table", false),
            int("input_version"),
            text("params", false),
            int("factors"),
            int("iterations"),
            Field::new("regularization", DataType::Float64, false),
            Field::new("alpha", DataType::Float64, false),
            Field::new("implicit", DataType::Boolean, false),
            Field::new("biases", DataType::Boolean, false),
            int("seed"),
            int("k"),
            int("threads"),
            int("input_rows"),
            int("users"),
            int("items"),
            text("eval_method", false),
            int("train_rows"),
            int("test_rows"),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            str_col(&self.run_id),
            str_col(&self.step),
            str_col(KIND),
            Arc::new(
                TimestampMicrosecondArray::from(vec![self.trained_at.timestamp_micros()])
                    .with_timezone("UTC"),
            ),
            str_col(&self.input_table),
            int_col(self.input_version as i64),
            str_col(&serde_json::to_string(p)?),
            int_col(p.factors as i64),
            int_col(p.iterations as i64),
            Arc::new(Float64Array::from(vec![p.regularization as f64])),
            Arc::new(Float64Array::from(vec![p.alpha as f64])),
            Arc::new(BooleanArray::from(vec![p.implicit])),
            Arc::new(BooleanArray::from(vec![p.biases])),
            int_col(p.seed as i64),
            int_col(p.k as i64),
            int_col(self.threads as i64),
            int_col(self.input_rows as i64),
            int_col(self.users as i64),
            int_col(self.items as i64),
            str_col(&e.method),
            int_col(e.train_rows as i64),
            int_col(e.test_rows as i64),
        ];
        let counts = [
            ("rmse_pairs", e.rmse_pairs),
            ("rmse_skipped", e.rmse_skipped),
            ("eval_users", e.eval_users),
        ];
        for (name, value) in counts {
            fields.push(int(name));
            columns.push(int_col(value as i64));
        }
        let measures = [
            ("rmse", e.rmse),
            ("precision_at_10", e.precision_at_10),
            ("recall_at_10", e.recall_at_10),
            ("ndcg_at_10", e.ndcg_at_10),
            ("map_at_10", e.map_at_10),
            ("popular_precision_at_10", e.popular_precision_at_10),
            ("popular_recall_at_10", e.popular_recall_at_10),
            ("popular_ndcg_at_10", e.popular_ndcg_at_10),
            ("popular_map_at_10", e.popular_map_at_10),
            ("train_rmse", self.train_rmse),
            ("final_loss", self.loss_history.last().copied()),
            ("read_seconds", Some(self.read_seconds)),
            ("eval_seconds", Some(self.eval_seconds)),
            ("train_seconds", Some(self.train_seconds)),
            ("recommend_seconds", Some(self.recommend_seconds)),
            ("write_seconds", Some(self.write_seconds)),
        ];
        for (name, value) in measures {
            fields.push(float(name));
            columns.push(Arc::new(Float64Array::from(vec![value])));
        }
        fields.push(Field::new(
            "loss_history",
            DataType::List(Arc::clone(&loss_element)),
            false,
        ));
        columns.push(Arc::new(ListArray::try_new(
            loss_element,
            OffsetBuffer::from_lengths([self.loss_history.len()]),
            Arc::new(Float64Array::from(self.loss_history.clone())),
            None,
        )?));
        for table in super::spec::GOLD_OUTPUTS {
            fields.push(Field::new(
                format!("{table}_version"),
                DataType::Int64,
                true,
            ));
            columns.push(Arc::new(Int64Array::from(vec![version(&format!(
                "gold.{table}"
            ))])));
        }
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}

fn str_col(value: &str) -> ArrayRef {
    Arc::new(StringArray::from(vec![value]))
}

fn int_col(value: i64) -> ArrayRef {
    Arc::new(Int64Array::from(vec![value]))
}
