//! `GET /v1/q/{name}`: a named query (`sql/api/<name>.sql`) with its parameters from the query
//! string, bound as typed values.
//!
//! The query reads the snapshots the server serves (one pinned version per table), so its answer
//! is cached and ETagged under those versions and the parameters: the same request answers from
//! the cache, with 304 for a matching `If-None-Match`, until a table it reads gets a new version.
//! It runs like `POST /v1/query` (read-only, in a query slot with its own memory pool, at most
//! `serve.query_max_rows` rows, cancelled after `serve.query_timeout_ms`). Each query is also in
//! `/openapi.json` with its parameters ([`document`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Required, ResponseBuilder};

use crate::api::cache::Cached;
use crate::api::error::{ApiError, ApiResult};
use crate::api::named_queries::{NamedQueries, NamedQuery, ParamType};
use crate::api::routes::query::answer;
use crate::api::state::AppState;
use crate::error::Error;
use crate::query::read_only;

/// Run a named query.
pub async fn named_query_get(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(given): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    run_named(state, name, given, headers).await
}

/// Run the named query `name` at the path it declares: the path's parameters join the query
/// string's (one given in both is refused).
pub async fn named_path_get(
    State(state): State<Arc<AppState>>,
    name: String,
    Path(in_path): Path<BTreeMap<String, String>>,
    Query(mut given): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    for (param, value) in in_path {
        if given.insert(param.clone(), value).is_some() {
            return Err(ApiError::bad_request(
                "bad_param",
                format!("parameter {param} is in the path: leave it out of the query string"),
            ));
        }
    }
    run_named(state, name, given, headers).await
}

async fn run_named(
    state: Arc<AppState>,
    name: String,
    given: BTreeMap<String, String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let query = state.named.get(&name).ok_or_else(|| {
        ApiError::not_found(
            "query_not_found",
            format!(
                "no named query {name:?} (sql/api/<name>.sql); there are: {}",
                match state.named.names() {
                    names if names.is_empty() => "none".to_string(),
                    names => names.join(", "),
                }
            ),
        )
    })?;
    let bound = query
        .bind(&given)
        .map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let mut snapshots = Vec::new();
    for table in &query.reads {
        let snapshot = state.snapshots.latest(table).await.map_err(|e| match e {
            Error::TableNotFound(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                format!("{name} reads {table}, which does not exist yet: run the pipeline"),
            ),
            other => other.into(),
        })?;
        snapshots.push(snapshot);
    }
    let versions: BTreeMap<String, u64> = snapshots
        .iter()
        .map(|s| (s.table.to_string(), s.version))
        .collect();
    let key = format!(
        "q|{name}|{}|{}",
        serde_json::to_string(&bound.text).map_err(ApiError::internal)?,
        serde_json::to_string(&versions).map_err(ApiError::internal)?
    );
    let make = async {
        let cap = state.config.serve.query_max_rows;
        let _slot = state.query_slot().await?;
        let run = async {
            let ctx = crate::session::new_session(&state.query_session_options()?)?;
            crate::catalog::register_pinned(
                &ctx,
                snapshots
                    .iter()
                    .map(|s| (s.table.clone(), Arc::clone(&s.provider))),
            )?;
            let frame = ctx
                .sql_with_options(&query.sql, read_only())
                .await?
                .with_param_values(bound.params())?
                .limit(0, Some(cap + 1))?;
            let schema = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await?;
            Ok::<_, ApiError>((schema, batches))
        };
        let mut envelope = Map::new();
        envelope.insert("query".into(), json!(name));
        envelope.insert("params".into(), json!(bound.text));
        envelope.insert("versions".into(), json!(versions));
        let body = answer(&state, &name, cap, envelope, run).await?;
        Ok(Cached::new(&key, "application/json", body))
    };
    let cached = state
        .cache
        .get_or_make("named_query", key.clone(), make)
        .await?;
    Ok(cached.respond(&headers))
}

/// Adds `GET /v1/q/<name>` for every named query to an OpenAPI document, with its description
/// and parameters (type, default, accepted values).
pub fn document(openapi: &mut utoipa::openapi::OpenApi, queries: &NamedQueries) {
    for query in queries.iter() {
        openapi.paths.add_path_operation(
            format!("/v1/q/{}", query.name),
            vec![HttpMethod::Get],
            operation(query, &[], format!("named_query_{}", query.name)),
        );
        if let Some(path) = &query.path {
            openapi.paths.add_path_operation(
                path,
                vec![HttpMethod::Get],
                operation(
                    query,
                    &query.path_params(),
                    format!("named_query_{}_path", query.name),
                ),
            );
        }
    }
}

/// The operation of `query`; `in_path` names the parameters its path carries.
fn operation(query: &NamedQuery, in_path: &[&str], id: String) -> utoipa::openapi::path::Operation {
    let mut operation = OperationBuilder::new()
        .tag("named queries")
        .operation_id(Some(id))
        .summary(Some(if query.description.is_empty() {
            format!(
                "The named query {} (sql/api/{}.sql)",
                query.name, query.name
            )
        } else {
            query.description.clone()
        }))
        .description(Some(format!(
            "Reads {}. Cached and ETagged under the versions it read.",
            query
                .reads
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    for param in &query.params {
        let (kind, format) = match param.kind {
            ParamType::String => (Type::String, None),
            ParamType::Int => (Type::Integer, Some(KnownFormat::Int64)),
            ParamType::Float => (Type::Number, Some(KnownFormat::Double)),
            ParamType::Date => (Type::String, Some(KnownFormat::Date)),
            ParamType::Bool => (Type::Boolean, None),
        };
        let schema = ObjectBuilder::new()
            .schema_type(kind)
            .format(format.map(SchemaFormat::KnownFormat))
            .enum_values(param.values.clone())
            .default(param.default.clone().map(Value::from))
            .build();
        operation = operation.parameter(
            ParameterBuilder::new()
                .name(&param.name)
                .parameter_in(if in_path.contains(&param.name.as_str()) {
                    ParameterIn::Path
                } else {
                    ParameterIn::Query
                })
                .required(if param.default.is_some() {
                    Required::False
                } else {
                    Required::True
                })
                .description(param.description.clone())
                .schema(Some(schema)),
        );
    }
    let response = |text: &str| ResponseBuilder::new().description(text).build();
    operation
        .response(
            "200",
            response("`{query, params, versions, columns, row_count, truncated, rows}`"),
        )
        .response(
            "304",
            response("If-None-Match matched: same parameters and versions"),
        )
        .response(
            "400",
            response("missing_param, bad_param, unknown_param: the message names the parameter"),
        )
        .response(
            "503",
            response("not_ready: a table it reads does not exist yet"),
        )
        .build()
}
