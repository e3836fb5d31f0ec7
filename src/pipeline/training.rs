//! The skeleton every training step (ALS, classifier) runs: a kind says how to read, train,
//! publish and log ([`TrainingStep`]); [`run`] owns the order and the all-or-none rule.
//!
//! First run: open every table the step reads at its current Delta version; read the input from
//! those snapshots; reserve the kind's estimate of its peak memory in the run's pool; train on a
//! blocking thread (training is CPU-bound and must not stall the runtime); build every output
//! table; commit them in order; append the run to `system.model_runs`. Rerun: when the settings'
//! fingerprint and the input versions match the primary table's last commit, nothing is read or
//! written ([`fingerprint::up_to_date`]).
//! Failure: nothing is committed before training succeeded and every batch is built; a failed
//! commit or run-log append rolls back what the step committed ([`Publication`]).
//!
//! A new model kind is a module implementing [`TrainingStep`]; it never repeats this order. What
//! the skeleton does not own: how a kind reads its input, what it trains, the tables it publishes
//! and its own `system.model_runs` columns (built through [`RunRow`]).
//!
//! [`RunRow`]: crate::pipeline::model_runs::RunRow

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

use arrow::array::RecordBatch;
use deltalake::DeltaTable;
use serde::Serialize;
use tracing::info;

use crate::catalog::TableName;
use crate::error::{Error, Result};
use crate::pipeline::commit::CommitMeta;
use crate::pipeline::fingerprint::{self, Fingerprint};
use crate::pipeline::model_runs::TrainingRun;
use crate::pipeline::publish::Publication;
use crate::pipeline::{StepContext, StepResult, StepStatus};

/// One kind of training step.
pub trait TrainingStep: Sync {
    /// `system.model_runs.kind`, and the kind in the fingerprint's tag.
    const KIND: &'static str;
    /// The kind in log lines ("ALS input read").
    const NAME: &'static str;
    /// The resolved settings: fingerprinted, and handed to the training thread.
    type Spec: Serialize + Clone + Send + 'static;
    /// The input as read.
    type Data: Send + 'static;
    /// A trained and measured model, with whatever of the input publishing needs.
    type Model: Send + 'static;

    fn spec(&self) -> &Self::Spec;

    /// The step's error for a problem with its settings, data or model, named for the user.
    fn error(step: &TableName, message: String) -> Error;

    /// The tables the step reads, the one it trains on first.
    fn reads(&self) -> std::result::Result<Vec<TableName>, String>;

    /// The tables the step publishes, in commit order (`system.model_runs` comes last).
    fn outputs(&self, step: &TableName) -> Vec<TableName>;

    /// The output whose commit carries the fingerprint and whose rows and version `strata run`
    /// reports.
    fn primary(&self, step: &TableName) -> TableName;

    /// Reads the input from the opened snapshots (`reads`, in order), not whatever is latest by
    /// the time the query runs.
    fn read(
        &self,
        ctx: &StepContext,
        step: &TableName,
        tables: &[(TableName, DeltaTable)],
    ) -> impl Future<Output = Result<Self::Data>> + Send;

    /// Rows read from the input (`system.model_runs.input_rows`).
    fn input_rows(data: &Self::Data) -> u64;

    /// Why training failed (the data cannot train a model, a setting is out of range); kept as the
    /// step error's `#[source]`.
    type TrainError: std::error::Error + Send + Sync + 'static;

    /// Bytes training holds at its peak (the input as read, the training structures, the model
    /// and its output lists), estimated from the input's sizes. Reserved in the run's memory pool
    /// before training starts and held until the step ends, so a run counts its models with
    /// DataFusion's operators, and a model too big for the limit fails before it is built.
    /// Runs on the training thread.
    fn memory(spec: &Self::Spec, data: &Self::Data) -> usize;

    /// Trains and measures. Runs on a blocking thread.
    fn train(
        spec: Self::Spec,
        data: Self::Data,
    ) -> std::result::Result<Self::Model, Self::TrainError>;

    /// Logs what was trained (one line).
    fn log_trained(step: &TableName, model: &Self::Model);

    /// The batches of [`TrainingStep::outputs`], in that order.
    fn tables(&self, run: &TrainingRun, model: &Self::Model) -> Result<Vec<RecordBatch>>;

    /// The run's row of `system.model_runs`, built with [`crate::pipeline::model_runs::RunRow`];
    /// `run` now has the write time and the committed versions.
    fn run_row(&self, run: &TrainingRun, model: &Self::Model) -> Result<RecordBatch>;

    /// The step's note in `strata run`.
    fn detail(&self, run: &TrainingRun, model: &Self::Model) -> String;
}

/// Runs the training step `step` of kind `S`: publishes every output table and the run's row of
/// `system.model_runs`, or none of them.
pub async fn run<S: TrainingStep>(
    ctx: &StepContext,
    step: &TableName,
    kind: &S,
) -> Result<StepResult> {
    let step_error = |message: String| S::error(step, message);
    let reads = kind.reads().map_err(step_error)?;
    let mut opened = Vec::with_capacity(reads.len());
    let mut inputs = BTreeMap::new();
    for table in reads {
        let delta = ctx.lake.open(&table).await?;
        inputs.insert(table.to_string(), delta.version().unwrap_or(0));
        opened.push((table, delta));
    }
    let Some((input, input_delta)) = opened.first() else {
        return Err(Error::Internal(format!(
            "{} step {step} reads no table",
            S::NAME
        )));
    };
    let (input, input_version) = (input.clone(), input_delta.version().unwrap_or(0));
    let fingerprint = Fingerprint::of(S::KIND, kind.spec())?;
    let outputs = kind.outputs(step);
    let primary = kind.primary(step);
    let Some(primary_at) = outputs.iter().position(|t| *t == primary) else {
        return Err(Error::Internal(format!(
            "{} step {step}: {primary} is not among the step's outputs",
            S::NAME
        )));
    };
    let detail = "up_to_date: input and settings unchanged";
    if let Some(unchanged) =
        fingerprint::up_to_date(ctx, &outputs, &primary, &fingerprint, &inputs, detail).await?
    {
        return Ok(unchanged);
    }
    let mut publication = Publication::start(ctx, &outputs).await?;

    let started = Instant::now();
    ctx.progress.phase("reading");
    let data = kind.read(ctx, step, &opened).await?;
    let read_seconds = started.elapsed().as_secs_f64();
    let input_rows = S::input_rows(&data);
    ctx.progress.read(input_rows, 0);
    ctx.progress.phase("training");
    info!(step = %step, rows = input_rows, read_seconds, "{} input read", S::NAME);

    let spec = kind.spec().clone();
    let memory = ctx
        .session
        .reservation(crate::memory::held_in_memory(&format!(
            "{} training",
            S::NAME
        )));
    let step_name = step.clone();
    let trained = tokio::task::spawn_blocking(move || {
        let needed = S::memory(&spec, &data);
        let shown = crate::memory::human_bytes(needed as u64);
        info!(step = %step_name, bytes = needed, "{} training reserves {shown}", S::NAME);
        memory.try_grow(needed).map_err(TrainingEnd::OutOfMemory)?;
        let model = S::train(spec, data).map_err(TrainingEnd::Failed)?;
        Ok((model, memory))
    })
    .await
    .map_err(|e| Error::Internal(format!("{} step {step}: training panicked: {e}", S::NAME)))?;
    // The reservation lives until the step returns: the model is held until it is published.
    let (model, _memory) = match trained {
        Ok(trained) => trained,
        Err(TrainingEnd::OutOfMemory(e)) => return Err(Error::DataFusion(e)),
        Err(TrainingEnd::Failed(source)) => {
            return Err(Error::Training {
                kind: S::NAME,
                step: step.clone(),
                source: Box::new(source),
            });
        }
    };
    S::log_trained(step, &model);

    let mut run = TrainingRun {
        run_id: ctx.run_id.clone(),
        step: step.clone(),
        kind: S::KIND,
        trained_at: ctx.started_at,
        input,
        input_version,
        input_rows,
        read_seconds,
        write_seconds: 0.0,
        versions: BTreeMap::new(),
    };
    let meta = CommitMeta {
        run_id: ctx.run_id.clone(),
        step: step.to_string(),
        inputs,
        fingerprint: Some(fingerprint.as_str().to_string()),
    };
    let write_started = Instant::now();
    ctx.progress.phase("publishing");
    let batches = kind.tables(&run, &model)?;
    if batches.len() != outputs.len() {
        return Err(Error::Internal(format!(
            "{} step {step}: {} batches for {} output tables",
            S::NAME,
            batches.len(),
            outputs.len()
        )));
    }
    let rows = batches[primary_at].num_rows() as u64;
    let mut version = 0;
    for (at, (table, batch)) in outputs.iter().zip(batches).enumerate() {
        let batch_rows = batch.num_rows() as u64;
        let committed = publication.overwrite(ctx, table, batch, &meta).await?;
        ctx.progress.wrote(batch_rows);
        if at == primary_at {
            version = committed;
        }
    }
    run.write_seconds = write_started.elapsed().as_secs_f64();
    run.versions = publication.versions.clone();
    publication
        .log_run(ctx, step, kind.run_row(&run, &model))
        .await?;

    Ok(StepResult {
        status: StepStatus::Committed,
        rows,
        version,
        detail: kind.detail(&run, &model),
    })
}

/// Why the training thread returned without a model.
enum TrainingEnd<E> {
    /// The run's memory pool could not hold what training needs (`Step::run` turns this into
    /// `Error::MemoryLimit` naming the step and the limit).
    OutOfMemory(datafusion::error::DataFusionError),
    Failed(E),
}
