//! `/v1/runs`: start a pipeline run (admin) and follow runs and their steps (reader).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::api::error::{ApiError, ApiResult};
use crate::api::state::AppState;
use crate::catalog::TableName;
use crate::error::Error;
use crate::pipeline::run::RunOptions;
use crate::pipeline::run_log::{RunLogReader, Trigger};
use crate::variables::RunVars;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RunRequest {
    /// Steps (or tables they write) to run; all when empty.
    pub select: Vec<String>,
    /// Also every step downstream of the selection.
    pub downstream: bool,
    /// Rebuild even up-to-date steps.
    pub full_refresh: bool,
    /// The run's variables, bound in SQL as `$name` (`{"ds": "2026-11-30"}`).
    pub vars: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunStarted {
    pub run_id: String,
    pub status: &'static str,
}

/// Start a run in the background (one at a time per lake).
#[utoipa::path(post, path = "/v1/runs", tag = "runs", request_body = RunRequest,
    responses(
        (status = 202, body = RunStarted),
        (status = 400, body = crate::api::error::ErrorBody),
        (status = 409, description = "another run holds the lake; the message names it", body = crate::api::error::ErrorBody),
    ))]
pub async fn runs_post(State(state): State<Arc<AppState>>, body: Bytes) -> ApiResult<Response> {
    let request: RunRequest = if body.is_empty() {
        RunRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "bad_json",
                format!("expected {{\"select\": [...], \"downstream\": false, \"full_refresh\": false, \"vars\": {{\"ds\": \"2026-11-30\"}}}}: {e}"),
            )
        })?
    };
    let select = request
        .select
        .iter()
        .map(|t| t.parse::<TableName>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad_request("bad_select", e.to_string()))?;
    let vars = RunVars::try_from_map(request.vars)
        .map_err(|message| ApiError::bad_request("bad_vars", message))?;
    let options = RunOptions {
        trigger: Trigger::Api,
        select,
        downstream: request.downstream,
        full_refresh: request.full_refresh,
        resume: None,
        vars,
    };
    match state.runner.start(options).await {
        Ok(run_id) => Ok((
            StatusCode::ACCEPTED,
            Json(RunStarted {
                run_id,
                status: "running",
            }),
        )
            .into_response()),
        Err(Error::LakeBusy { holder, .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_in_progress",
            format!("the lake is busy: {holder}"),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// Most recent runs to return (default 20).
    pub limit: Option<usize>,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(ListParams),
    responses((status = 200, description = "`[{run_id, trigger, selection, full_refresh, started_at, ended_at, status, error, variables}]`")))]
pub async fn runs_list(
    State(state): State<Arc<AppState>>,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<Vec<Value>>> {
    let limit = params.limit.unwrap_or(20).min(10_000);
    Ok(Json(
        RunLogReader::latest(&state.lake)
            .await?
            .list_runs(limit)
            .await?,
    ))
}

/// One run and its step attempts.
#[utoipa::path(get, path = "/v1/runs/{run_id}", tag = "runs", params(("run_id" = String, Path)),
    responses(
        (status = 200, description = "the run's fields and `steps: [{step, attempt, status, rows, version, inputs, error}]`"),
        (status = 404, body = crate::api::error::ErrorBody),
    ))]
pub async fn run_get(
    State(state): State<Arc<AppState>>,
    Path(run_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let log = RunLogReader::latest(&state.lake).await?;
    let found = log.find_run(&run_id).await?;
    let steps = log.run_steps(&run_id).await?;
    let run = match found {
        Some(run) => run,
        // Just started: the run exists before its first row is committed.
        None if state.runner.current().as_deref() == Some(run_id.as_str()) => {
            json!({"run_id": run_id, "status": "running"})
        }
        None => {
            return Err(ApiError::not_found(
                "run_not_found",
                format!("no run {run_id} (GET /v1/runs lists them)"),
            ));
        }
    };
    let mut run = run;
    run["steps"] = Value::Array(steps);
    Ok(Json(run))
}
