//! Classifier models loaded from the lake for `POST /v1/models/{name}/predict`.
//!
//! A classifier step publishes its model as the one row of `<layer>.<name>_model`; the table's
//! Delta version is the model's version. The server loads the artifact of the version it serves
//! (the table's pinned snapshot, swapped by the refresher like every other table) once, and keeps
//! the few most recent versions loaded, so a retrain switches the served model as soon as the
//! snapshot moves and predictions never read storage. `?version=N` predicts with an older model.

use std::sync::Arc;

use axum::http::StatusCode;

use crate::api::error::{ApiError, ApiResult};
use crate::api::snapshots::{Snapshot, Snapshots};
use crate::catalog::{Layer, TableName};
use crate::ml::forest::Classifier;
use crate::pipeline::classifier_step::artifact::{self, ArtifactError};

/// Loaded models kept at most (each is a few hundred KB for a 100-tree forest).
const LOADED_MODELS: u64 = 16;

/// One model version, ready to predict.
#[derive(Debug)]
pub struct LoadedModel {
    /// The model's name: its step's name without the layer.
    pub name: String,
    pub table: TableName,
    /// The model table's Delta version: the model version.
    pub version: u64,
    pub run_id: String,
    pub trained_at: String,
    pub accuracy: Option<f64>,
    pub classifier: Classifier,
}

#[derive(Debug)]
pub struct Models {
    loaded: moka::future::Cache<(TableName, u64), Arc<LoadedModel>>,
}

impl Default for Models {
    fn default() -> Self {
        Self {
            loaded: moka::future::Cache::new(LOADED_MODELS),
        }
    }
}

impl Models {
    /// The classifier `name` at `version` (default: the version served now).
    pub async fn classifier(
        &self,
        snapshots: &Snapshots,
        name: &str,
        version: Option<u64>,
    ) -> ApiResult<Arc<LoadedModel>> {
        let table = model_table(snapshots, name).await?;
        let snapshot = match version {
            Some(v) => snapshots.at_version(&table, v).await?,
            None => snapshots.latest(&table).await?,
        };
        let key = (table.clone(), snapshot.version);
        self.loaded
            .try_get_with(key, async { load(name, &snapshot).await.map(Arc::new) })
            .await
            .map_err(|e: Arc<ApiError>| (*e).clone())
    }
}

fn model_not_found(name: &str) -> ApiError {
    ApiError::not_found(
        "model_not_found",
        format!(
            "no classifier model {name:?}: a classifier step sql/<layer>/{name}.classifier.toml \
             publishes <layer>.{name}_model (GET /v1/models lists the models)"
        ),
    )
}

/// The model table of `name`: `gold.<name>_model`, else `silver.<name>_model`; a layer may be
/// given (`silver.<name>`).
async fn model_table(snapshots: &Snapshots, name: &str) -> ApiResult<TableName> {
    let (layers, bare) = match name.split_once('.') {
        Some((layer, bare)) => match layer.parse::<Layer>() {
            Ok(layer) => (vec![layer], bare),
            Err(_) => return Err(model_not_found(name)),
        },
        None => (vec![Layer::Gold, Layer::Silver, Layer::Bronze], name),
    };
    if TableName::validate_name(bare).is_err() {
        return Err(model_not_found(name));
    }
    for layer in layers {
        let table = TableName::new(layer, format!("{bare}_model"));
        if snapshots.latest_if_exists(&table).await?.is_some() {
            return Ok(table);
        }
    }
    Err(model_not_found(name))
}

/// Reads the artifact row of one model table version.
async fn load(name: &str, snapshot: &Snapshot) -> ApiResult<LoadedModel> {
    let table = &snapshot.table;
    let stored = artifact::read(Arc::clone(&snapshot.provider))
        .await
        .map_err(|e| match e {
            ArtifactError::NotAModel(_) => {
                ApiError::not_found("model_not_found", format!("{table}: {e}"))
            }
            ArtifactError::Unreadable(message) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "model_unreadable",
                format!("{table}@{}: {message}", snapshot.version),
            ),
            ArtifactError::Query(e) => ApiError::from(e),
        })?;
    Ok(LoadedModel {
        name: name.to_string(),
        table: table.clone(),
        version: snapshot.version,
        run_id: stored.run_id,
        trained_at: stored.trained_at,
        accuracy: stored.accuracy,
        classifier: stored.classifier,
    })
}
