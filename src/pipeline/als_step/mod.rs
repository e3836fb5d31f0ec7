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

pub mod model_runs;
pub mod spec;
pub mod tables;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type, Int64Type};
use datafusion::logical_expr::{Expr, cast, col};
use deltalake::DeltaTable;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use tracing::info;

use crate::catalog::{Layer, TableName};
use crate::error::{Error, Result};
use crate::ml::als::eval::{self, Evaluation};
use crate::ml::als::{AlsModel, Interactions, Rating, thread_pool};
use crate::pipeline::commit::CommitMeta;
use crate::pipeline::publish::{self, Publication};
use crate::pipeline::{StepContext, StepResult, StepStatus};

use model_runs::{EvalMetrics, ModelRun};
use spec::AlsSpec;

/// An ALS step as found in the SQL directory.
#[derive(Debug, Clone)]
pub struct AlsStep {
    pub file: PathBuf,
    pub spec: AlsSpec,
}

/// Ratings as parallel columns, the shape the model is built from.
#[derive(Debug, Default)]
struct RatingColumns {
    users: Vec<i64>,
    items: Vec<i64>,
    ratings: Vec<f32>,
}

impl RatingColumns {
    fn len(&self) -> usize {
        self.users.len()
    }

    fn to_ratings(&self) -> Vec<Rating> {
        (0..self.len())
            .map(|r| Rating {
                user: self.users[r],
                item: self.items[r],
                rating: self.ratings[r],
            })
            .collect()
    }

    /// Splits by [`eval::pair_held_out`]: (train, test).
    fn split(&self, fraction: f64, seed: u64) -> (RatingColumns, Vec<Rating>) {
        let mut train = RatingColumns::default();
        let mut test = Vec::new();
        for r in 0..self.len() {
            let (user, item, rating) = (self.users[r], self.items[r], self.ratings[r]);
            if eval::pair_held_out(user, item, fraction, seed) {
                test.push(Rating { user, item, rating });
            } else {
                train.users.push(user);
                train.items.push(item);
                train.ratings.push(rating);
            }
        }
        (train, test)
    }

    fn interactions(&self) -> std::result::Result<Interactions, crate::ml::als::AlsError> {
        Interactions::from_columns(&self.users, &self.items, &self.ratings)
    }
}

/// Everything computed before the first commit.
struct Trained {
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
    let spec = &als.spec;
    let als_error = |message: String| Error::Als {
        step: step.clone(),
        message,
    };
    let input = spec.input_table().map_err(als_error)?;
    let test_table = spec.test_table().map_err(als_error)?;
    let input_delta = ctx.lake.open(&input).await?;
    let input_version = input_delta.version().unwrap_or(0);
    let mut inputs = BTreeMap::from([(input.to_string(), input_version)]);
    let test_delta = match &test_table {
        Some(t) => {
            let delta = ctx.lake.open(t).await?;
            inputs.insert(t.to_string(), delta.version().unwrap_or(0));
            Some((t.clone(), delta))
        }
        None => None,
    };
    let fingerprint = fingerprint(spec);
    let primary = TableName::new(Layer::Gold, spec::USER_RECOMMENDATIONS);
    let outputs = spec::gold_outputs();
    if let Some(unchanged) =
        publish::up_to_date(ctx, &outputs, &primary, &fingerprint, &inputs).await?
    {
        return Ok(unchanged);
    }
    let mut publication = Publication::start(ctx, &outputs).await?;

    let started = Instant::now();
    let data = read_ratings(ctx, spec, &input, &input_delta).await?;
    let test = match &test_delta {
        Some((table, delta)) => Some(read_ratings(ctx, spec, table, delta).await?.to_ratings()),
        None => None,
    };
    let read_seconds = started.elapsed().as_secs_f64();
    info!(step = %step, rows = data.len(), read_seconds, "ALS input read");

    let input_rows = data.len() as u64;
    let train_spec = spec.clone();
    let trained = tokio::task::spawn_blocking(move || train(&train_spec, data, test))
        .await
        .map_err(|e| als_error(format!("training panicked: {e}")))?
        .map_err(|e| als_error(e.to_string()))?;
    let model_data = trained.model.data();
    info!(
        step = %step,
        users = model_data.n_users(),
        items = model_data.n_items(),
        train_seconds = trained.train_seconds,
        "ALS model trained"
    );

    let meta = CommitMeta {
        run_id: ctx.run_id.clone(),
        step: step.to_string(),
        inputs,
        fingerprint: Some(fingerprint),
    };
    let write_started = Instant::now();
    let batches = tables::gold_batches(&trained.model, &trained.recommendations, &trained.similar)?;
    let mut recommendation_rows = 0;
    for (name, batch) in batches {
        let table = TableName::new(Layer::Gold, name);
        if name == spec::USER_RECOMMENDATIONS {
            recommendation_rows = batch.num_rows() as u64;
        }
        publication.overwrite(ctx, &table, batch, &meta).await?;
    }
    let output_versions = publication.versions.clone();

    let data = trained.model.data();
    let run = ModelRun {
        run_id: ctx.run_id.clone(),
        step: step.to_string(),
        trained_at: ctx.started_at,
        input_table: input.to_string(),
        input_version,
        params: spec.params(),
        threads: trained.threads,
        input_rows,
        users: data.n_users() as u64,
        items: data.n_items() as u64,
        eval: trained.eval.clone(),
        train_rmse: trained.train_rmse,
        loss_history: trained.model.loss_history().to_vec(),
        read_seconds,
        eval_seconds: trained.eval_seconds,
        train_seconds: trained.train_seconds,
        recommend_seconds: trained.recommend_seconds,
        write_seconds: write_started.elapsed().as_secs_f64(),
        output_versions: output_versions.clone(),
    };
    publication.log_run(ctx, step, run.to_batch()).await?;

    Ok(StepResult {
        status: StepStatus::Committed,
        rows: recommendation_rows,
        version: output_versions[&primary.to_string()],
        detail: describe(&run),
    })
}

/// One line for the run report: model size and what the evaluation measured.
fn describe(run: &ModelRun) -> String {
    let mut text = format!(
        "{} users x {} items, trained in {:.2}s",
        run.users, run.items, run.train_seconds
    );
    let e = &run.eval;
    if let Some(rmse) = e.rmse {
        text.push_str(&format!(", RMSE {rmse:.4}"));
    }
    if let (Some(ndcg), Some(pop)) = (e.ndcg_at_10, e.popular_ndcg_at_10) {
        text.push_str(&format!(", NDCG@10 {ndcg:.4} (most-popular {pop:.4})"));
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
) -> Result<RatingColumns> {
    let session = ctx.lake.session(&ctx.config.session_options())?;
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
    let mut out = RatingColumns::default();
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
        out.users
            .extend_from_slice(batch.column(0).as_primitive::<Int64Type>().values());
        out.items
            .extend_from_slice(batch.column(1).as_primitive::<Int64Type>().values());
        out.ratings
            .extend_from_slice(batch.column(2).as_primitive::<Float32Type>().values());
    }
    Ok(out)
}

/// Evaluates, trains the published model and scores every user and item. CPU-bound: runs on a
/// blocking thread inside the step's own rayon pool.
fn train(
    spec: &AlsSpec,
    data: RatingColumns,
    test: Option<Vec<Rating>>,
) -> std::result::Result<Trained, crate::ml::als::AlsError> {
    let params = spec.params();
    let pool = thread_pool((spec.threads > 0).then_some(spec.threads))?;
    let threshold = spec.eval.relevance_threshold;

    let started = Instant::now();
    let mut eval = EvalMetrics {
        method: "none".into(),
        train_rows: data.len() as u64,
        ..Default::default()
    };
    let mut evaluated_model = None;
    if let Some(test) = test {
        // Test table: the published model trains on the whole input, so it is the evaluated one.
        let model = AlsModel::fit(data.interactions()?, &params, &pool)?;
        let measured = eval::evaluate(&model, &test, threshold, &pool);
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
        let (train, test) = data.split(fraction, seed);
        let model = AlsModel::fit(train.interactions()?, &params, &pool)?;
        let measured = eval::evaluate(&model, &test, threshold, &pool);
        eval = metrics(
            format!("holdout {fraction} seed {seed}"),
            train.len(),
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
        None => AlsModel::fit(data.interactions()?, &params, &pool)?,
    };
    let train_seconds = started.elapsed().as_secs_f64();
    let train_rmse = (!spec.implicit).then(|| eval::rmse(&model, &model_rows(&model)).rmse);

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

/// The model's own training rows, for the training RMSE.
fn model_rows(model: &AlsModel) -> Vec<Rating> {
    let data = model.data();
    let mut rows = Vec::with_capacity(data.nnz());
    for u in 0..data.n_users() as u32 {
        let (items, ratings) = data.user_row(u);
        for (&i, &rating) in items.iter().zip(ratings) {
            rows.push(Rating {
                user: data.users().raw(u),
                item: data.items().raw(i),
                rating,
            });
        }
    }
    rows
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
    }
}

/// Identifies what the step would compute from its inputs: its resolved settings.
fn fingerprint(spec: &AlsSpec) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"als-step-v1");
    hasher.update(serde_json::to_string(spec).unwrap_or_default().as_bytes());
    format!("{:x}", hasher.finalize())
}
