//! The model artifact as stored in `<layer>.<name>_model`, and reading it back (the server and
//! `strata bench predict` load models this way).

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::catalog::TableProvider;

use crate::ml::forest::Classifier;

/// How the `artifact` column is encoded; a reader refuses artifacts of another format.
pub const ARTIFACT_FORMAT: &str = "strata-random-forest/bincode-1";

/// A model read back from its table.
#[derive(Debug)]
pub struct StoredModel {
    pub run_id: String,
    pub trained_at: String,
    pub input_table: String,
    pub accuracy: Option<f64>,
    pub classifier: Classifier,
    /// Size of the stored artifact (what the model costs in memory, roughly).
    pub artifact_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The table is not a model table (a table that merely ends in `_model`).
    #[error("not a classifier model table (it has no {0} column)")]
    NotAModel(&'static str),
    /// It is one, but its artifact cannot be used.
    #[error("{0}")]
    Unreadable(String),
    #[error(transparent)]
    Query(#[from] datafusion::error::DataFusionError),
}

/// Reads the model row of a model table (at whatever version `provider` was opened).
pub async fn read(provider: Arc<dyn TableProvider>) -> Result<StoredModel, ArtifactError> {
    let ctx = crate::session::scratch_session();
    let frame = ctx.read_table(provider)?;
    let columns = [
        "artifact_format",
        "artifact",
        "run_id",
        "trained_at",
        "input_table",
        "accuracy",
    ];
    let schema = frame.schema().as_arrow().clone();
    if let Some(missing) = columns.iter().find(|c| schema.index_of(c).is_err()) {
        return Err(ArtifactError::NotAModel(missing));
    }
    let batches = frame.select_columns(&columns)?.collect().await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let (Some(batch), 1) = (batches.iter().find(|b| b.num_rows() == 1), rows) else {
        return Err(ArtifactError::Unreadable(format!(
            "expected one model row, found {rows}"
        )));
    };
    let unreadable = |e: arrow::error::ArrowError| ArtifactError::Unreadable(e.to_string());
    let text = |i: usize| -> Result<String, ArtifactError> {
        let column = arrow::compute::cast(batch.column(i), &DataType::Utf8).map_err(unreadable)?;
        Ok(column.as_string::<i32>().value(0).to_string())
    };
    let format = text(0)?;
    if format != ARTIFACT_FORMAT {
        return Err(ArtifactError::Unreadable(format!(
            "the artifact is {format:?}; this version of Strata reads {ARTIFACT_FORMAT:?} \
             (rerun the step with --full-refresh to retrain it)"
        )));
    }
    let artifact = arrow::compute::cast(batch.column(1), &DataType::Binary).map_err(unreadable)?;
    let bytes = artifact.as_binary::<i32>().value(0);
    let classifier = Classifier::from_bytes(bytes).map_err(ArtifactError::Unreadable)?;
    let accuracy = arrow::compute::cast(batch.column(5), &DataType::Float64).map_err(unreadable)?;
    let accuracy = accuracy.as_primitive::<Float64Type>();
    Ok(StoredModel {
        run_id: text(2)?,
        trained_at: text(3)?,
        input_table: text(4)?,
        accuracy: (!accuracy.is_null(0)).then(|| accuracy.value(0)),
        classifier,
        artifact_bytes: bytes.len(),
    })
}
