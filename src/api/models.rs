//! Classifier models loaded from the lake for `POST /v1/models/{name}/predict`.
//!
//! A classifier step publishes its model as the one row of `<layer>.<name>_model`; the table's
//! Delta version is the model's version. The server loads the artifact of the version it serves
//! (the table's pinned snapshot, swapped by the refresher like every other table) once, and keeps
//! the few most recent versions loaded, so a retrain switches the served model as soon as the
//! snapshot moves and predictions never read storage. `?version=N` predicts with an older model.

use std::sync::Arc;

use crate::api::error::{ApiError, ApiResult};
use crate::api::snapshots::{Snapshot, Snapshots};
use crate::catalog::{Layer, TableName};
use crate::ml::forest::Classifier;
use crate::pipeline::classifier_step::artifact::{self, ArtifactError};

/// Artifact bytes of the loaded models kept at most (the penguins forest is about 60 KB; forests
/// grown on large tables are much bigger, and `?version=N` lets a reader load old versions).
const LOADED_MODEL_BYTES: u64 = 256 << 20;

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
    pub artifact_bytes: usize,
}

#[derive(Debug)]
pub struct Models {
    loaded: moka::future::Cache<(TableName, u64), Arc<LoadedModel>>,
}

impl Default for Models {
    fn default() -> Self {
        Self {
            loaded: moka::future::Cache::builder()
                .weigher(|_, model: &Arc<LoadedModel>| {
                    u32::try_from(model.artifact_bytes).unwrap_or(u32::MAX)
                })
                .max_capacity(LOADED_MODEL_BYTES)
                .build(),
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
            .try_get_with(key, async { load(&snapshot).await.map(Arc::new) })
            .await
            .map_err(|e: Arc<ApiError>| (*e).clone())
    }
}

/// Where a model name without a layer is looked for, in order.
pub const LAYER_PREFERENCE: [Layer; 3] = [Layer::Gold, Layer::Silver, Layer::Bronze];

fn model_not_found(name: &str) -> ApiError {
    ApiError::not_found(
        "model_not_found",
        format!(
            "no classifier model {name:?}: a classifier step sql/<layer>/{name}.classifier.toml \
             publishes <layer>.{name}_model (GET /v1/models lists the models)"
        ),
    )
}

/// The model table of `name`: `gold.<name>_model`, else `silver.<name>_model`, else
/// `bronze.<name>_model` ([`LAYER_PREFERENCE`]); a layer may be given (`silver.<name>`).
async fn model_table(snapshots: &Snapshots, name: &str) -> ApiResult<TableName> {
    let (layers, bare) = match name.split_once('.') {
        Some((layer, bare)) => match layer.parse::<Layer>() {
            Ok(layer) => (vec![layer], bare),
            Err(_) => return Err(model_not_found(name)),
        },
        None => (LAYER_PREFERENCE.to_vec(), name),
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
async fn load(snapshot: &Snapshot) -> ApiResult<LoadedModel> {
    let table = &snapshot.table;
    let stored = artifact::read(Arc::clone(&snapshot.provider))
        .await
        .map_err(|e| match e {
            ArtifactError::NotAModel(_) => {
                ApiError::not_found("model_not_found", format!("{table}: {e}"))
            }
            // The server's data is at fault, not the request: log the detail.
            ArtifactError::Unreadable(_) | ArtifactError::Query(_) => {
                ApiError::internal(format!("{table}@{}: {e}", snapshot.version))
            }
        })?;
    let name = table.name.strip_suffix("_model").unwrap_or(&table.name);
    Ok(LoadedModel {
        name: name.to_string(),
        table: table.clone(),
        version: snapshot.version,
        run_id: stored.run_id,
        trained_at: stored.trained_at,
        accuracy: stored.accuracy,
        classifier: stored.classifier,
        artifact_bytes: stored.artifact_bytes,
    })
}
