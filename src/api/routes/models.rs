//! `/v1/models`: the trained models and their runs (from `system.model_runs`), and predictions
//! from classifier models.
//!
//! `POST /v1/models/{name}/predict` takes one record (a JSON object of feature values), an array
//! of records, or `{"records": [...]}`, and answers each record's class and class probabilities
//! from the model version served now (or `?version=N`). A record the model cannot read (a missing
//! field, a value of the wrong type, a category never seen in training) is refused as a whole
//! request with 422 `invalid_record`, naming the record and the field.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::api::cache::Cached;
use crate::api::encode::json_rows;
use crate::api::error::{ApiError, ApiResult};
use crate::api::models::{LAYER_PREFERENCE, LoadedModel};
use crate::api::state::AppState;
use crate::ml::forest::encoding::FeatureKind;
use crate::pipeline::model_runs;

/// Records one predict request may carry.
pub const MAX_RECORDS: usize = 10_000;

/// Records scored on the request's own thread; larger requests move to a blocking thread.
const INLINE_RECORDS: usize = 64;

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    pub models: Vec<ModelSummary>,
    /// `system.model_runs@version` the list was read from.
    pub versions: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelSummary {
    /// The step's name without its layer: the `{name}` of the model endpoints.
    pub name: String,
    pub step: String,
    /// `classifier` or `als`.
    pub kind: String,
    /// Training runs logged for this step.
    pub runs: usize,
    /// The latest run's row of `system.model_runs` (its non-null columns, `params` as JSON).
    pub latest_run: Value,
    /// Where the model answers.
    pub endpoints: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelDetail {
    #[serde(flatten)]
    pub summary: ModelSummary,
    /// Classifiers: the model served now, its features and classes.
    pub model: Option<ClassifierInfo>,
    /// Every run of this step, newest first.
    pub history: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClassifierInfo {
    /// The model table and its version: the model version.
    pub table: String,
    pub version: u64,
    pub run_id: String,
    pub trained_at: String,
    pub accuracy: Option<f64>,
    pub classes: Vec<String>,
    /// `{name, type: "number" | "category", categories?}` in the model's order.
    pub features: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PredictResponse {
    pub model: String,
    pub model_version: u64,
    pub run_id: String,
    pub classes: Vec<String>,
    /// One per record, in request order.
    pub predictions: Vec<PredictionBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PredictionBody {
    pub class: String,
    /// The predicted class's probability (its share of the trees' votes).
    pub probability: f64,
    /// Every class's probability.
    pub probabilities: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PredictParams {
    /// Predict with this model version (a version of the model table); default: the latest.
    pub version: Option<u64>,
}

/// The trained models and their latest runs.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, body = ModelList), (status = 304, description = "If-None-Match matched")))]
pub async fn models_list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (version_key, runs) = model_run_rows(&state).await?;
    let key = format!("models|{version_key}");
    let make = async {
        let models = group_by_step(&runs)
            .into_iter()
            .map(|(step, runs)| summary(&step, &runs))
            .collect();
        let body = serde_json::to_vec(&ModelList {
            models,
            versions: version_key.clone(),
        })
        .map_err(ApiError::internal)?;
        Ok(Cached::new(&key, "application/json", body))
    };
    let cached = state.cache.get_or_make("models", key.clone(), make).await?;
    Ok(cached.respond(&headers))
}

/// One model: its latest run, its run history and (classifiers) the features it reads.
#[utoipa::path(get, path = "/v1/models/{name}", tag = "models",
    params(("name" = String, Path, description = "the step's name, e.g. penguin_species")),
    responses(
        (status = 200, body = ModelDetail),
        (status = 404, description = "model_not_found", body = crate::api::error::ErrorBody),
    ))]
pub async fn model_get(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let (_, rows) = model_run_rows(&state).await?;
    let mut steps = group_by_step(&rows);
    let step = resolve_step(steps.keys(), &name).ok_or_else(|| {
        ApiError::not_found(
            "model_not_found",
            format!("no model {name:?} in system.model_runs (GET /v1/models lists them)"),
        )
    })?;
    let runs = steps.remove(&step).unwrap_or_default();
    let summary = summary(&step, &runs);
    // The run history answers even when the model table is gone or unreadable.
    let model = if summary.kind == crate::pipeline::classifier_step::run_row::KIND {
        match state
            .models
            .classifier(&state.snapshots, &summary.step, None)
            .await
        {
            Ok(loaded) => Some(classifier_info(&loaded)),
            Err(e) => {
                tracing::warn!(step = %step, error = %e.message, "model not loadable");
                None
            }
        }
    } else {
        None
    };
    let history = runs.iter().rev().map(clean_run).collect();
    Ok(Json(ModelDetail {
        summary,
        model,
        history,
    })
    .into_response())
}

/// Class and class probabilities for one or many records.
#[utoipa::path(post, path = "/v1/models/{name}/predict", tag = "models",
    params(("name" = String, Path, description = "the classifier step's name"), PredictParams),
    request_body(content = Value, description = "a record `{feature: value, ...}`, an array of records, or `{\"records\": [...]}`"),
    responses(
        (status = 200, body = PredictResponse),
        (status = 400, description = "bad_json", body = crate::api::error::ErrorBody),
        (status = 404, description = "model_not_found, version_not_found", body = crate::api::error::ErrorBody),
        (status = 408, description = "timeout", body = crate::api::error::ErrorBody),
        (status = 413, description = "body larger than serve.max_body_bytes", body = crate::api::error::ErrorBody),
        (status = 422, description = "invalid_record: names the record and the field", body = crate::api::error::ErrorBody),
        (status = 500, description = "the model table cannot be read (the server log has why)", body = crate::api::error::ErrorBody),
    ))]
pub async fn predict_post(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(params): Query<PredictParams>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("expected a JSON record, an array of records or {{\"records\": [...]}}: {e}"),
        )
    })?;
    let model = state
        .models
        .classifier(&state.snapshots, &name, params.version)
        .await?;
    let (records, single) = split_records(body)?;
    let encoded = records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            (model.classifier.encoder.values_from_json(record))
                .map_err(|e| invalid_record(format!("{}{e}", record_prefix(single, i))))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let score = {
        let model = Arc::clone(&model);
        move || -> ApiResult<Vec<PredictionBody>> {
            let classes = &model.classifier.classes;
            encoded
                .iter()
                .enumerate()
                .map(|(i, values)| {
                    let p = model
                        .classifier
                        .predict(values)
                        .map_err(|e| invalid_record(format!("{}{e}", record_prefix(single, i))))?;
                    let at = classes.iter().position(|c| *c == p.class).unwrap_or(0);
                    Ok(PredictionBody {
                        probability: p.probabilities[at],
                        probabilities: classes.iter().cloned().zip(p.probabilities).collect(),
                        class: p.class,
                    })
                })
                .collect()
        }
    };
    let predictions = if records.len() <= INLINE_RECORDS {
        score()?
    } else {
        tokio::task::spawn_blocking(score)
            .await
            .map_err(ApiError::internal)??
    };
    Ok(Json(PredictResponse {
        model: model.name.clone(),
        model_version: model.version,
        run_id: model.run_id.clone(),
        classes: model.classifier.classes.clone(),
        predictions,
    })
    .into_response())
}

/// How a message names record `i`: `records[i].` in a list, nothing for a single record.
fn record_prefix(single: bool, i: usize) -> String {
    if single {
        String::new()
    } else {
        format!("records[{i}].")
    }
}

fn invalid_record(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record", message)
}

/// The records of a request body and whether it was a single record.
fn split_records(body: Value) -> ApiResult<(Vec<Map<String, Value>>, bool)> {
    let (items, single) = match body {
        Value::Object(mut object) if object.len() == 1 && object.contains_key("records") => {
            match object.remove("records") {
                Some(Value::Array(items)) => (items, false),
                _ => {
                    return Err(invalid_record(
                        "records: expected an array of records".into(),
                    ));
                }
            }
        }
        Value::Object(object) => (vec![Value::Object(object)], true),
        Value::Array(items) => (items, false),
        _ => {
            return Err(invalid_record(
                "expected a JSON record, an array of records or {\"records\": [...]}".into(),
            ));
        }
    };
    if items.is_empty() {
        return Err(invalid_record("no records to predict".into()));
    }
    if items.len() > MAX_RECORDS {
        return Err(invalid_record(format!(
            "{} records; at most {MAX_RECORDS} per request",
            items.len()
        )));
    }
    let records = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(record) => Ok(record),
            other => Err(invalid_record(format!(
                "records[{i}]: expected an object of feature values, got {}",
                json_kind(&other)
            ))),
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok((records, single))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn classifier_info(model: &LoadedModel) -> ClassifierInfo {
    let features = model
        .classifier
        .encoder
        .features
        .iter()
        .map(|f| match &f.kind {
            FeatureKind::Numeric => serde_json::json!({"name": f.name, "type": "number"}),
            FeatureKind::Categorical(categories) => {
                serde_json::json!({"name": f.name, "type": "category", "categories": categories})
            }
        })
        .collect();
    ClassifierInfo {
        table: model.table.to_string(),
        version: model.version,
        run_id: model.run_id.clone(),
        trained_at: model.trained_at.clone(),
        accuracy: model.accuracy,
        classes: model.classifier.classes.clone(),
        features,
    }
}

/// Every row of `system.model_runs`, oldest first, and `system.model_runs@version` (no rows and
/// `system.model_runs@none` before any training step ran).
pub(crate) async fn model_run_rows(
    state: &AppState,
) -> ApiResult<(String, Vec<Map<String, Value>>)> {
    let table = model_runs::table();
    let Some(snapshot) = state.snapshots.latest_if_exists(&table).await? else {
        return Ok((format!("{table}@none"), Vec::new()));
    };
    let ctx = crate::session::scratch_session();
    ctx.register_table("model_runs", Arc::clone(&snapshot.provider))?;
    let batches = ctx
        .sql("SELECT * FROM model_runs ORDER BY trained_at, run_id")
        .await?
        .collect()
        .await?;
    let mut rows = Vec::new();
    for batch in &batches {
        for row in json_rows(batch)? {
            if let Value::Object(row) = row {
                rows.push(row);
            }
        }
    }
    Ok((format!("{table}@{}", snapshot.version), rows))
}

/// Runs grouped by step (steps in name order, runs oldest first).
pub(crate) fn group_by_step(
    rows: &[Map<String, Value>],
) -> BTreeMap<String, Vec<Map<String, Value>>> {
    let mut steps: BTreeMap<String, Vec<Map<String, Value>>> = BTreeMap::new();
    for row in rows {
        if let Some(step) = row.get("step").and_then(Value::as_str) {
            steps.entry(step.to_string()).or_default().push(row.clone());
        }
    }
    steps
}

/// The step `name` means: `gold.penguin_species` itself, or for `penguin_species` the step of that
/// name in the first layer of [`LAYER_PREFERENCE`] that has one (as predictions resolve it).
pub(crate) fn resolve_step<'a>(
    steps: impl Iterator<Item = &'a String>,
    name: &str,
) -> Option<String> {
    let steps: Vec<&String> = steps.collect();
    if name.contains('.') {
        return steps.into_iter().find(|s| *s == name).cloned();
    }
    LAYER_PREFERENCE
        .iter()
        .map(|layer| format!("{layer}.{name}"))
        .find(|candidate| steps.contains(&candidate))
}

pub(crate) fn summary(step: &str, runs: &[Map<String, Value>]) -> ModelSummary {
    let latest = runs.last().cloned().unwrap_or_default();
    // Rows logged before classifiers existed have no kind: they are ALS runs.
    let kind = latest
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or(crate::pipeline::als_step::model_runs::KIND)
        .to_string();
    let name = step
        .split_once('.')
        .map_or(step, |(_, bare)| bare)
        .to_string();
    let endpoints = if kind == crate::pipeline::classifier_step::run_row::KIND {
        vec![
            format!("GET /v1/models/{name}"),
            format!("POST /v1/models/{name}/predict"),
        ]
    } else {
        vec![
            format!("GET /v1/models/{name}"),
            "GET /v1/users/{user_id}/recommendations".into(),
            "GET /v1/items/{item_id}/similar".into(),
        ]
    };
    ModelSummary {
        name,
        step: step.to_string(),
        kind,
        runs: runs.len(),
        latest_run: clean_run(&latest),
        endpoints,
    }
}

/// A run row without its null columns (those of the other kind of model), `params` parsed.
pub(crate) fn clean_run(row: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (key, value) in row {
        match (key.as_str(), value) {
            (_, Value::Null) => {}
            ("params", Value::String(text)) => {
                let parsed = serde_json::from_str(text).unwrap_or_else(|_| value.clone());
                out.insert(key.clone(), parsed);
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_one_record_an_array_or_records() {
        let one = serde_json::json!({"bill": 1.0});
        assert!(split_records(one).unwrap().1);
        let many = serde_json::json!([{"bill": 1.0}, {"bill": 2.0}]);
        assert_eq!(split_records(many).unwrap().0.len(), 2);
        let wrapped = serde_json::json!({"records": [{"bill": 1.0}]});
        assert_eq!(split_records(wrapped).unwrap(), (vec![one_map()], false));
        for (bad, needle) in [
            (serde_json::json!([]), "no records"),
            (serde_json::json!([1]), "records[0]"),
            (serde_json::json!("x"), "expected a JSON record"),
            (
                serde_json::json!({"records": 3}),
                "records: expected an array",
            ),
        ] {
            let err = split_records(bad).unwrap_err();
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(err.message.contains(needle), "{}", err.message);
        }
    }

    fn one_map() -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("bill".into(), Value::from(1.0));
        map
    }

    #[test]
    fn a_model_name_resolves_to_its_step_preferring_gold() {
        let steps: Vec<String> = ["bronze.species", "gold.species", "silver.other"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let resolve = |name: &str| resolve_step(steps.iter(), name);
        assert_eq!(resolve("species").as_deref(), Some("gold.species"));
        assert_eq!(resolve("bronze.species").as_deref(), Some("bronze.species"));
        assert_eq!(resolve("other").as_deref(), Some("silver.other"));
        assert_eq!(resolve("spec"), None);
    }
}
