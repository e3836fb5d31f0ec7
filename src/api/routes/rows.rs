//! `POST /v1/tables/{bronze_table}/rows` (admin): append JSON records to a bronze table, the API's
//! way in for new data ("new records invalidate the cache" without Redis: the version moves, the
//! version-keyed cache follows).
//!
//! Every record is checked against the table's schema first (unknown field, missing or null
//! required field, wrong type); if any is bad, the answer is 422 listing each bad record's index and
//! reason, and nothing is written. Good records are appended in one Delta commit, stamped with
//! `_source_file = "api:<request id>"` and `_ingested_at`. `?run=downstream` then starts a run of
//! every step downstream of the table.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::api::error::{ApiError, ApiResult};
use crate::api::routes::tables::table_name;
use crate::api::state::AppState;
use crate::catalog::Layer;
use crate::error::Error;
use crate::pipeline::commit::{self, CommitMeta, WriteMode};
use crate::pipeline::ingest_step::{INGESTED_AT, SOURCE_FILE};
use crate::pipeline::run::RunOptions;
use crate::pipeline::run_log::Trigger;

#[derive(Debug, Deserialize, IntoParams)]
pub struct AppendParams {
    /// `downstream`: also run every step downstream of the table.
    pub run: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Appended {
    pub table: String,
    /// The version the append committed.
    pub version: u64,
    pub rows: usize,
    /// The downstream run started with `?run=downstream`.
    pub run_id: Option<String>,
}

/// Append records to a bronze table.
#[utoipa::path(post, path = "/v1/tables/{table}/rows", tag = "tables",
    params(("table" = String, Path, description = "a bronze table"), AppendParams),
    request_body(content = Vec<Object>, description = "JSON records with the table's columns"),
    responses(
        (status = 200, body = Appended),
        (status = 400, body = crate::api::error::ErrorBody),
        (status = 409, description = "`run_in_progress`: run=downstream while another run holds the lake (the rows were appended); `commit_conflict`: other writers kept taking every version this append tried (nothing written: retry)", body = crate::api::error::ErrorBody),
        (status = 503, description = "the lake's object store is unavailable (nothing written)", body = crate::api::error::ErrorBody),
        (status = 422, description = "bad records, each listed; nothing written", body = crate::api::error::ErrorBody),
    ))]
pub async fn rows_post(
    State(state): State<Arc<AppState>>,
    Path(table): Path<String>,
    Query(params): Query<AppendParams>,
    body: Bytes,
) -> ApiResult<Response> {
    let table = table_name(&state, &table).await?;
    if table.layer != Layer::Bronze || table.name.ends_with("__rejects") {
        return Err(ApiError::bad_request(
            "not_bronze",
            format!(
                "{table}: rows can only be appended to bronze tables (silver and gold are built by steps)"
            ),
        ));
    }
    let run_downstream = match params.run.as_deref() {
        None => false,
        Some("downstream") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_parameter",
                format!("run={other}: the only value is downstream"),
            ));
        }
    };
    let records: Vec<Value> = match serde_json::from_slice(&body) {
        Ok(Value::Array(records)) if !records.is_empty() => records,
        _ => {
            return Err(ApiError::bad_request(
                "bad_json",
                "expected a non-empty JSON array of records",
            ));
        }
    };

    let snapshot = state.snapshots.latest(&table).await?;
    let schema = plain_types(&snapshot.provider.schema());
    let batch = records_to_batch(&schema, &records).map_err(|problems| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_rows",
            format!(
                "{} of {} record(s) invalid, nothing written: {}",
                problems.len(),
                records.len(),
                problems.join("; ")
            ),
        )
    })?;
    let request_id = uuid::Uuid::new_v4().to_string();
    let batch = stamp(&schema, batch, &format!("api:{request_id}"))?;
    let meta = CommitMeta {
        run_id: request_id,
        step: format!("api POST /v1/tables/{table}/rows"),
        ..Default::default()
    };
    let mode = WriteMode::Append {
        partition_by: Vec::new(),
    };
    state.lake.check_writable().await?;
    let version = commit::commit(
        &state.lake,
        &table,
        batch.schema(),
        vec![batch],
        mode,
        &meta,
    )
    .await?;
    state.refresh().await;

    let run_id = if run_downstream {
        let options = RunOptions {
            trigger: Trigger::Api,
            select: vec![table.clone()],
            downstream: true,
            full_refresh: false,
            resume: None,
            vars: Default::default(),
        };
        match state.runner.start(options).await {
            Ok(id) => Some(id),
            Err(Error::LakeBusy { holder, .. }) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "run_in_progress",
                    format!(
                        "the rows were appended as version {version}, but no run started: {holder}"
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    Ok(Json(Appended {
        table: table.to_string(),
        version,
        rows: records.len(),
        run_id,
    })
    .into_response())
}

/// The schema with view types as their plain equivalents (what JSON decodes into).
fn plain_types(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let data_type = match f.data_type() {
                DataType::Utf8View => DataType::Utf8,
                DataType::BinaryView => DataType::Binary,
                other => other.clone(),
            };
            f.as_ref().clone().with_data_type(data_type)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The user-supplied columns: everything but the ingest stamps.
fn user_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != SOURCE_FILE && f.name() != INGESTED_AT)
        .map(|f| f.as_ref().clone())
        .collect();
    Arc::new(Schema::new(fields))
}

/// Decodes every record on its own so each bad one is named; all good, one batch.
fn records_to_batch(schema: &Schema, records: &[Value]) -> Result<RecordBatch, Vec<String>> {
    let columns = user_schema(schema);
    let mut problems = Vec::new();
    let mut batches = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let Some(object) = record.as_object() else {
            problems.push(format!("record {index}: not a JSON object"));
            continue;
        };
        match check_record(&columns, object).and_then(|()| decode(&columns, object)) {
            Ok(batch) => batches.push(batch),
            Err(reason) => problems.push(format!("record {index}: {reason}")),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    arrow::compute::concat_batches(&columns, &batches).map_err(|e| vec![e.to_string()])
}

fn check_record(columns: &Schema, object: &Map<String, Value>) -> Result<(), String> {
    if let Some(unknown) = object.keys().find(|k| columns.field_with_name(k).is_err()) {
        return Err(format!("unknown field {unknown:?}"));
    }
    for field in columns.fields() {
        let value = object.get(field.name()).unwrap_or(&Value::Null);
        if value.is_null() && !field.is_nullable() {
            return Err(format!("field {:?} is required", field.name()));
        }
    }
    Ok(())
}

fn decode(columns: &SchemaRef, object: &Map<String, Value>) -> Result<RecordBatch, String> {
    let mut decoder = arrow::json::ReaderBuilder::new(Arc::clone(columns))
        .with_strict_mode(true)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    decoder
        .serialize(std::slice::from_ref(object))
        .map_err(|e| e.to_string())?;
    decoder
        .flush()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "empty record".to_string())
}

/// Adds `_source_file` and `_ingested_at` (when the table has them), in the table's column order.
fn stamp(schema: &Schema, batch: RecordBatch, source: &str) -> ApiResult<RecordBatch> {
    let rows = batch.num_rows();
    let now = chrono::Utc::now().timestamp_micros();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column: ArrayRef = if field.name() == SOURCE_FILE {
            Arc::new(StringArray::from(vec![source; rows]))
        } else if field.name() == INGESTED_AT {
            let stamps: ArrayRef =
                Arc::new(TimestampMicrosecondArray::from(vec![now; rows]).with_timezone("UTC"));
            arrow::compute::cast(&stamps, field.data_type()).map_err(ApiError::internal)?
        } else {
            batch.column_by_name(field.name()).cloned().ok_or_else(|| {
                ApiError::internal(format!("decoded batch lacks {}", field.name()))
            })?
        };
        columns.push(column);
    }
    let fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_bad_record_is_named_and_good_ones_decode() {
        let schema = Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("rating", DataType::Int32, true),
            Field::new(SOURCE_FILE, DataType::Utf8, true),
        ]);
        let good = [json!({"user_id": 1, "rating": 5}), json!({"user_id": 2})];
        let batch = records_to_batch(&schema, &good).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let bad = [
            json!({"user_id": 1, "rating": 5}),
            json!({"rating": 5}),
            json!({"user_id": "x"}),
            json!({"user_id": 3, "stars": 4}),
            json!(7),
        ];
        let problems = records_to_batch(&schema, &bad).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("record 1: field \"user_id\" is required"));
        assert!(problems[1].starts_with("record 2:"), "{problems:?}");
        assert!(problems[2].contains("unknown field \"stars\""));
        assert!(problems[3].contains("not a JSON object"));
    }
}
