//! The row an ALS step appends to `system.model_runs` (see [`crate::pipeline::model_runs`]).
//!
//! It answers "which data and settings produced the recommendations that are live now?": the input
//! table and its Delta version, every parameter, the evaluation metrics, the per-iteration loss, the
//! row counts, the time each phase took and the versions of the gold tables the run wrote. The
//! columns every kind shares come from [`RunRow`]; this module adds the ALS ones.

use std::sync::Arc;

use arrow::array::{Float64Array, ListArray, RecordBatch};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field};

use super::Trained;
use super::spec::{AlsSpec, GOLD_OUTPUTS};
use crate::catalog::{Layer, TableName};
use crate::error::Result;
use crate::pipeline::model_runs::{RunRow, TrainingRun};

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
    /// Users the ranking metrics average over: those with at least one relevant test item, or a
    /// seeded sample of them (`eval.max_users`).
    pub eval_users: u64,
    /// Users with at least one relevant test item, before sampling.
    pub eval_users_total: u64,
    /// Half-width of the 95% confidence interval of `ndcg_at_10` (1.96 standard errors).
    pub ndcg_at_10_ci95: Option<f64>,
}

/// The run as a one-row batch of `system.model_runs`: the shared columns, the hyper-parameters,
/// the model's size, what the evaluation measured, the per-iteration loss and the versions of the
/// gold tables the run committed.
pub fn row(run: &TrainingRun, spec: &AlsSpec, trained: &Trained) -> Result<RecordBatch> {
    let p = spec.params();
    let e = &trained.eval;
    let data = trained.model.data();
    let loss_history = trained.model.loss_history();
    let loss_element = Arc::new(Field::new("element", DataType::Float64, false));
    let loss_history_list = ListArray::try_new(
        loss_element,
        OffsetBuffer::from_lengths([loss_history.len()]),
        Arc::new(Float64Array::from(loss_history.to_vec())),
        None,
    )?;
    let row = RunRow::new(run, &p)?
        .int("factors", p.factors)
        .int("iterations", p.iterations)
        .float("regularization", Some(p.regularization as f64))
        .float("alpha", Some(p.alpha as f64))
        .boolean("implicit", p.implicit)
        .boolean("biases", p.biases)
        .int("seed", p.seed)
        .int("k", p.k)
        .int("threads", trained.threads)
        .input_rows()
        .int("users", data.n_users())
        .int("items", data.n_items())
        .evaluation(&e.method, e.train_rows, e.test_rows)
        .int("rmse_pairs", e.rmse_pairs)
        .int("rmse_skipped", e.rmse_skipped)
        .int("eval_users", e.eval_users)
        .float("rmse", e.rmse)
        .float("precision_at_10", e.precision_at_10)
        .float("recall_at_10", e.recall_at_10)
        .float("ndcg_at_10", e.ndcg_at_10)
        .float("map_at_10", e.map_at_10)
        .int("eval_users_total", e.eval_users_total)
        .float("ndcg_at_10_ci95", e.ndcg_at_10_ci95)
        .float("popular_precision_at_10", e.popular_precision_at_10)
        .float("popular_recall_at_10", e.popular_recall_at_10)
        .float("popular_ndcg_at_10", e.popular_ndcg_at_10)
        .float("popular_map_at_10", e.popular_map_at_10)
        .float("train_rmse", trained.train_rmse)
        .float("final_loss", loss_history.last().copied())
        .seconds(&[
            ("eval", trained.eval_seconds),
            ("train", trained.train_seconds),
            ("recommend", trained.recommend_seconds),
        ])
        .column("loss_history", Arc::new(loss_history_list));
    let row = GOLD_OUTPUTS.iter().fold(row, |row, name| {
        row.version(name, &TableName::new(Layer::Gold, *name))
    });
    row.finish()
}
