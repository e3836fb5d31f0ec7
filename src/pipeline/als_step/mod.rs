//! Running an ALS step: `sql/gold/<name>.als.toml` trains a recommender on a lake table and
//! publishes it as gold tables, logging the run to `system.model_runs`.
//!
//! Phases: read the input table at one Delta version; evaluate (train on a seeded holdout split or
//! beside a test table, measure RMSE and ranking metrics against most-popular); train the published
//! model; score top-k for every user and similar items for every item; commit the five gold tables;
//! append the run to `system.model_runs`.
//!
//! Invariant: the step publishes all its gold tables or none. Everything is computed before the
//! first commit; if a commit (or the run log) fails, the tables already committed by this step are
//! restored to their previous versions (or removed when the step created them), so the previous
//! model stays live. A rerun whose settings and input versions are unchanged writes nothing.
//!
//! The order of the phases, the rerun check and the roll-back belong to the training skeleton
//! ([`crate::pipeline::training`]); this module is what is particular to ALS: reading ratings,
//! training and scoring, the gold tables and the run's own `system.model_runs` columns.

pub mod model_runs;
pub mod spec;
pub mod tables;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Int64Type};
use datafusion::logical_expr::{Expr, cast, col};
use deltalake::DeltaTable;
use futures::TryStreamExt;
use tracing::info;

use crate::catalog::{Layer, TableName};
use crate::error::{Error, Result};
use crate::ml::als::eval::{self, Evaluation};
use crate::ml::als::ratings::ID_MAP_ENTRY_BYTES;
use crate::ml::als::{AlsModel, DenseRatings, Interactions, Rating, RatingsBuilder, thread_pool};
use crate::pipeline::model_runs::TrainingRun;
use crate::pipeline::training::{self, TrainingStep};
use crate::pipeline::{StepContext, StepResult};

use model_runs::EvalMetrics;
use spec::AlsSpec;

/// An ALS step as found in the SQL directory.
#[derive(Debug, Clone)]
pub struct AlsStep {
    pub file: PathBuf,
    pub spec: AlsSpec,
}

/// Splits `data` by [`eval::pair_held_out`]: which rows train (`true`), and the held-out rows in
/// read order.
fn split(data: &DenseRatings, fraction: f64, seed: u64) -> (Vec<bool>, Vec<Rating>) {
    let mut train = Vec::with_capacity(data.len());
    let mut test = Vec::new();
    for r in 0..data.len() {
        let rating = data.rating(r);
        let held_out = eval::pair_held_out(rating.user, rating.item, fraction, seed);
        train.push(!held_out);
        if held_out {
            test.push(rating);
        }
    }
    (train, test)
}

/// Bytes [`train`] holds at its peak on `data`, estimated from the count of ratings and of
/// distinct users and items: the ratings as read; then whichever is larger, the evaluation
/// (its split and the training rows' matrix) or the published model's matrix; the factors and
/// biases with the solver's copy; every user's top `k` and every item's `similar_k`.
fn training_bytes(data: &DenseRatings, spec: &AlsSpec) -> usize {
    let (n, users, items) = (data.len(), data.users().len(), data.items().len());
    let ids = users + items;
    let matrix = |rows: usize| rows * MATRIX_BYTES_PER_RATING + ids * MATRIX_BYTES_PER_ID;
    let held_out = (n as f64 * spec.holdout_fraction()) as usize;
    let evaluation = if held_out > 0 {
        n * size_of::<bool>() + held_out * size_of::<Rating>() + matrix(n - held_out)
    } else {
        0
    };
    let factors = 2 * ids * (spec.factors + 1) * size_of::<f32>();
    let entry = size_of::<(u32, f32)>();
    let lists = users * spec.k * entry + items * spec.similar_k * entry;
    data.bytes() + evaluation.max(matrix(n)) + factors + lists
}

/// A rating's share of the interaction matrices: an index and a value by user and by item (the
/// build holds two of the three counting-sort passes at once, the same size).
const MATRIX_BYTES_PER_RATING: usize = 2 * (size_of::<u32>() + size_of::<f32>());

/// An id's share of the matrices: its row offset in each direction, and its entry in the
/// matrices' own id map.
const MATRIX_BYTES_PER_ID: usize = 2 * size_of::<usize>() + ID_MAP_ENTRY_BYTES;

/// Everything computed before the first commit.
pub struct Trained {
    model: AlsModel,
    recommendations: Vec<Vec<(u32, f32)>>,
    similar: Vec<Vec<(u32, f32)>>,
    eval: EvalMetrics,
    train_rmse: Option<f64>,
    threads: usize,
    eval_seconds: f64,
    train_seconds: f64,
    recommend_seconds: f64,
}

pub async fn run(ctx: &StepContext, step: &TableName, als: &AlsStep) -> Result<StepResult> {
    training::run(ctx, step, als).await
}

impl TrainingStep for AlsStep {
    const KIND: &'static str = model_runs::KIND;
    const NAME: &'static str = "ALS";
    type Spec = AlsSpec;
    /// The input's ratings, and the test table's when the step has one.
    type Data = (DenseRatings, Option<Vec<Rating>>);
    type Model = Trained;

    fn spec(&self) -> &AlsSpec {
        &self.spec
    }

    fn error(step: &TableName, message: String) -> Error {
        Error::Als {
            step: step.clone(),
            message,
        }
    }

    fn reads(&self) -> std::result::Result<Vec<TableName>, String> {
        let mut reads = vec![self.spec.input_table()?];
        reads.extend(self.spec.test_table()?);
        Ok(reads)
    }

    fn outputs(&self, _step: &TableName) -> Vec<TableName> {
        spec::gold_outputs()
    }

    fn primary(&self, _step: &TableName) -> TableName {
        TableName::new(Layer::Gold, spec::USER_RECOMMENDATIONS)
    }

    async fn read(
        &self,
        ctx: &StepContext,
        _step: &TableName,
        tables: &[(TableName, DeltaTable)],
    ) -> Result<Self::Data> {
        let mut ratings = Vec::with_capacity(tables.len());
        for (table, delta) in tables {
            ratings.push(read_ratings(ctx, &self.spec, table, delta).await?);
        }
        let mut ratings = ratings.into_iter();
        let data = ratings.next().unwrap_or_default();
        let test = ratings.next().map(|test| test.to_ratings());
        Ok((data, test))
    }

    fn input_rows((data, _test): &Self::Data) -> u64 {
        data.len() as u64
    }

    fn memory(spec: &AlsSpec, (data, test): &Self::Data) -> usize {
        let test = test.as_ref().map_or(0, |t| t.len() * size_of::<Rating>());
        training_bytes(data, spec) + test
    }

    type TrainError = crate::ml::als::AlsError;

    fn train(
        spec: AlsSpec,
        (data, test): Self::Data,
    ) -> std::result::Result<Trained, Self::TrainError> {
        train(&spec, data, test)
    }

    fn log_trained(step: &TableName, trained: &Trained) {
        let data = trained.model.data();
        info!(
            step = %step,
            users = data.n_users(),
            items = data.n_items(),
            train_seconds = trained.train_seconds,
            "ALS model trained"
        );
    }

    fn tables(&self, _run: &TrainingRun, trained: &Trained) -> Result<Vec<RecordBatch>> {
        let mut batches: BTreeMap<&str, RecordBatch> =
            tables::gold_batches(&trained.model, &trained.recommendations, &trained.similar)?
                .into_iter()
                .collect();
        Ok(spec::GOLD_OUTPUTS
            .iter()
            .filter_map(|name| batches.remove(name))
            .collect())
    }

    fn run_row(&self, run: &TrainingRun, trained: &Trained) -> Result<RecordBatch> {
        model_runs::row(run, &self.spec, trained)
    }

    fn detail(&self, _run: &TrainingRun, trained: &Trained) -> String {
        describe(trained)
    }
}

/// One line for the run report: model size and what the evaluation measured.
fn describe(trained: &Trained) -> String {
    let data = trained.model.data();
    let mut text = format!(
        "{} users x {} items, trained in {:.2}s",
        data.n_users(),
        data.n_items(),
        trained.train_seconds
    );
    let e = &trained.eval;
    if let Some(rmse) = e.rmse {
        text.push_str(&format!(", RMSE {rmse:.4}"));
    }
    if let (Some(ndcg), Some(pop)) = (e.ndcg_at_10, e.popular_ndcg_at_10) {
        text.push_str(&format!(", NDCG@10 {ndcg:.4}"));
        if let Some(ci) = e.ndcg_at_10_ci95 {
            text.push_str(&format!(" ± {ci:.4}"));
        }
        text.push_str(&format!(" (most-popular {pop:.4}"));
        if e.eval_users < e.eval_users_total {
            text.push_str(&format!(
                "; {} of {} users sampled",
                e.eval_users, e.eval_users_total
            ));
        }
        text.push(')');
    }
    text
}

/// Reads `(user, item, rating)` from the table's opened snapshot (not whatever is latest by the
/// time the query runs), casting to the model's types. A NULL anywhere fails the step naming the
/// column; a `weight` column multiplies ratings for implicit models.
async fn read_ratings(
    ctx: &StepContext,
    spec: &AlsSpec,
    table: &TableName,
    delta: &DeltaTable,
) -> Result<DenseRatings> {
    let session = ctx.lake.session(&ctx.session)?;
    let provider = crate::catalog::provider(delta).await?;
    let frame = session.read_table(provider)?;
    let schema = frame.schema().as_arrow().clone();
    let column = |name: &str| {
        schema
            .field_with_name(name)
            .map(|_| col(datafusion::common::Column::from_name(name)))
            .map_err(|_| Error::Als {
                step: table.clone(),
                message: format!(
                    "{table} has no column {name:?} (columns: {}); set user_column, item_column \
                     or rating_column in the step file",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    };
    let mut rating: Expr = cast(column(&spec.rating_column)?, DataType::Float32);
    if schema.field_with_name(&spec.weight_column).is_ok() {
        if !spec.implicit {
            return Err(Error::Als {
                step: table.clone(),
                message: format!(
                    "{table} has a {:?} column, but weights are only used by implicit ALS \
                     (strength = rating * weight); drop the column or set implicit = true",
                    spec.weight_column
                ),
            });
        }
        rating = rating * cast(column(&spec.weight_column)?, DataType::Float32);
    }
    let frame = frame.select(vec![
        cast(column(&spec.user_column)?, DataType::Int64).alias("user"),
        cast(column(&spec.item_column)?, DataType::Int64).alias("item"),
        rating.alias("rating"),
    ])?;
    let mut out = RatingsBuilder::default();
    let mut stream = frame.execute_stream().await?;
    while let Some(batch) = stream.try_next().await? {
        let names = [&spec.user_column, &spec.item_column, &spec.rating_column];
        for (i, name) in names.iter().enumerate() {
            let nulls = batch.column(i).null_count();
            if nulls > 0 {
                return Err(Error::Als {
                    step: table.clone(),
                    message: format!(
                        "{table}.{name} has NULL values (or values that are not numbers); \
                         ALS needs every user, item and rating: filter them in the step that \
                         builds {table}"
                    ),
                });
            }
        }
        out.push(
            batch.column(0).as_primitive::<Int64Type>().values(),
            batch.column(1).as_primitive::<Int64Type>().values(),
            batch.column(2).as_primitive::<Float32Type>().values(),
        )
        .map_err(|e| Error::Als {
            step: table.clone(),
            message: format!("{table}: {e}"),
        })?;
    }
    Ok(out.finish())
}

/// Evaluates, trains the published model and scores every user and item. CPU-bound: runs on a
/// blocking thread inside the step's own rayon pool.
fn train(
    spec: &AlsSpec,
    data: DenseRatings,
    test: Option<Vec<Rating>>,
) -> std::result::Result<Trained, crate::ml::als::AlsError> {
    let params = spec.params();
    let pool = thread_pool((spec.threads > 0).then_some(spec.threads))?;
    let threshold = spec.eval.relevance_threshold;
    let (max_users, eval_seed) = (spec.eval.max_users, spec.eval.seed);

    let started = Instant::now();
    let mut eval = EvalMetrics {
        method: "none".into(),
        train_rows: data.len() as u64,
        ..Default::default()
    };
    let mut evaluated_model = None;
    if let Some(test) = test {
        // Test table: the published model trains on the whole input, so it is the evaluated one.
        let model = AlsModel::fit(Interactions::from_dense(&data, None), &params, &pool)?;
        let measured = eval::evaluate(&model, &test, threshold, max_users, eval_seed, &pool);
        eval = metrics(
            format!("table {}", spec.eval.test_table.as_deref().unwrap_or("")),
            data.len(),
            test.len(),
            spec.implicit,
            &measured,
        );
        evaluated_model = Some(model);
    } else if spec.holdout_fraction() > 0.0 {
        let (fraction, seed) = (spec.holdout_fraction(), spec.eval.seed);
        let (train, test) = split(&data, fraction, seed);
        let train = Interactions::from_dense(&data, Some(&train));
        let train_rows = train.nnz();
        let model = AlsModel::fit(train, &params, &pool)?;
        let measured = eval::evaluate(&model, &test, threshold, max_users, eval_seed, &pool);
        eval = metrics(
            format!("holdout {fraction} seed {seed}"),
            train_rows,
            test.len(),
            spec.implicit,
            &measured,
        );
        if !spec.eval.refit {
            evaluated_model = Some(model);
        }
    }
    let eval_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let model = match evaluated_model {
        Some(model) => model,
        None => {
            let interactions = Interactions::from_dense(&data, None);
            // The ratings as read are no longer needed: free them before training.
            drop(data);
            AlsModel::fit(interactions, &params, &pool)?
        }
    };
    let train_seconds = started.elapsed().as_secs_f64();
    let train_rmse = (!spec.implicit).then(|| eval::training_rmse(&model));

    let started = Instant::now();
    let recommendations = model.recommend_all(spec.k, &pool);
    let similar = model.similar_items_all(spec.similar_k, &pool);
    let recommend_seconds = started.elapsed().as_secs_f64();

    Ok(Trained {
        threads: pool.current_num_threads(),
        model,
        recommendations,
        similar,
        eval,
        train_rmse,
        eval_seconds,
        train_seconds,
        recommend_seconds,
    })
}

fn metrics(
    method: String,
    train_rows: usize,
    test_rows: usize,
    implicit: bool,
    m: &Evaluation,
) -> EvalMetrics {
    let defined = |v: f64| (!v.is_nan()).then_some(v);
    EvalMetrics {
        method,
        train_rows: train_rows as u64,
        test_rows: test_rows as u64,
        rmse: if implicit { None } else { defined(m.rmse.rmse) },
        rmse_pairs: m.rmse.pairs as u64,
        rmse_skipped: m.rmse.skipped as u64,
        precision_at_10: defined(m.model.precision),
        recall_at_10: defined(m.model.recall),
        ndcg_at_10: defined(m.model.ndcg),
        map_at_10: defined(m.model.map),
        popular_precision_at_10: defined(m.popular.precision),
        popular_recall_at_10: defined(m.popular.recall),
        popular_ndcg_at_10: defined(m.popular.ndcg),
        popular_map_at_10: defined(m.popular.map),
        eval_users: m.model.eval_users as u64,
        eval_users_total: m.users_with_relevant_items as u64,
        ndcg_at_10_ci95: defined(m.model.ndcg_ci95),
    }
}
