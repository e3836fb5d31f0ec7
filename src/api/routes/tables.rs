//! `/v1/tables`: the catalog, pages of rows (with time travel), version history, schemas and
//! the diff of two versions.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::api::cache::Cached;
use crate::api::encode::Encoding;
use crate::api::error::{ApiError, ApiResult};
use crate::api::page::{At, PageRequest};
use crate::api::snapshots::Snapshot;
use crate::api::state::AppState;
use crate::catalog::TableName;
use crate::inspect::{HistoryEntry, TableInfo};

/// Parses and validates a table name from a path: `layer.name` of an existing table. Anything
/// else (`../x`, `gold/x`, unknown layer) is rejected before the lake is touched.
pub async fn table_name(state: &AppState, text: &str) -> ApiResult<TableName> {
    let table: TableName = text.parse().map_err(|e| {
        ApiError::not_found(
            "table_not_found",
            format!("{text:?} is not a table name: {e}"),
        )
    })?;
    // A table already served is known to exist without asking storage: on an object store that
    // question is a LIST request, too slow for every call.
    if state.snapshots.latest_if_exists(&table).await?.is_none() {
        return Err(ApiError::not_found(
            "table_not_found",
            format!("table {table} does not exist (GET /v1/tables lists them)"),
        ));
    }
    Ok(table)
}

/// Every table of the lake.
#[utoipa::path(get, path = "/v1/tables", tag = "tables", responses((status = 200, body = [TableInfo])))]
pub async fn tables_list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<TableInfo>>> {
    Ok(Json(crate::inspect::tables(&state.lake).await?))
}

/// Rows of a table: filter, order, project, page; any version (`version`, `as_of`).
#[utoipa::path(get, path = "/v1/tables/{table}", tag = "tables",
    params(
        ("table" = String, Path, description = "layer.name, e.g. gold.movie_stats"),
        ("limit" = Option<usize>, Query, description = "rows (default serve.default_page_rows, capped at serve.max_page_rows)"),
        ("offset" = Option<usize>, Query),
        ("columns" = Option<String>, Query, description = "comma-separated columns"),
        ("order_by" = Option<String>, Query, description = "comma-separated; `-col` or `col:desc` for descending"),
        ("filter" = Option<String>, Query, description = "repeatable `column:op:value`; ops eq ne lt le gt ge like in contains is_null not_null"),
        ("version" = Option<u64>, Query, description = "Delta version to read"),
        ("as_of" = Option<String>, Query, description = "RFC 3339: the latest version committed at or before it"),
        ("format" = Option<String>, Query, description = "json (default), ndjson, csv, arrow; or the Accept header"),
    ),
    responses(
        (status = 200, description = "`{table, version, offset, limit, rows}` in JSON; rows only in the other formats (version in X-Strata-Version)"),
        (status = 304, description = "If-None-Match matched: same versions, same request"),
        (status = 400, body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody),
    ))]
pub async fn table_read(
    State(state): State<Arc<AppState>>,
    Path(table): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let table = table_name(&state, &table).await?;
    let serve = &state.config.serve;
    let page = PageRequest::parse(
        query.as_deref(),
        serve.default_page_rows,
        serve.max_page_rows,
    )?;
    let encoding = Encoding::negotiate(page.format.as_deref(), &headers)?;
    let snapshot = match page.at {
        At::Latest => state.snapshots.latest(&table).await?,
        At::Version(v) => state.snapshots.at_version(&table, v).await?,
        At::AsOf(at) => state.snapshots.as_of(&table, at).await?,
    };
    let key = format!(
        "page|{table}@{}|{}|{}",
        snapshot.version,
        page.canonical,
        encoding.name()
    );
    let cached = state
        .cache
        .get_or_make(
            "table_page",
            key.clone(),
            render_page(&snapshot, &page, encoding, &key),
        )
        .await?;
    Ok(with_version(cached.respond(&headers), snapshot.version))
}

async fn render_page(
    snapshot: &Snapshot,
    page: &PageRequest,
    encoding: Encoding,
    key: &str,
) -> ApiResult<Cached> {
    let ctx = crate::session::scratch_session();
    let frame = page.apply(ctx.read_table(Arc::clone(&snapshot.provider))?)?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    let mut envelope = Map::new();
    envelope.insert("table".into(), Value::from(snapshot.table.to_string()));
    envelope.insert("version".into(), Value::from(snapshot.version));
    envelope.insert("offset".into(), Value::from(page.offset));
    envelope.insert("limit".into(), Value::from(page.limit));
    let body = encoding.encode(&schema, &batches, envelope)?;
    Ok(Cached::new(key, encoding.content_type(), body))
}

fn with_version(mut response: Response, version: u64) -> Response {
    response.headers_mut().insert(
        "x-strata-version",
        HeaderValue::from_str(&version.to_string()).expect("digits"),
    );
    response
}

/// Every Delta version of a table, newest first.
#[utoipa::path(get, path = "/v1/tables/{table}/history", tag = "tables",
    params(("table" = String, Path)),
    responses((status = 200, body = [HistoryEntry]), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn table_history(
    State(state): State<Arc<AppState>>,
    Path(table): Path<String>,
) -> ApiResult<Json<Vec<HistoryEntry>>> {
    let table = table_name(&state, &table).await?;
    Ok(Json(crate::inspect::history(&state.lake, &table).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Schema {
    pub table: String,
    pub version: u64,
    pub columns: Vec<SchemaColumn>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaColumn {
    pub name: String,
    /// Arrow type, e.g. `Int64`, `Utf8`, `List(Utf8)`.
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
}

/// The columns of the table's current version.
#[utoipa::path(get, path = "/v1/tables/{table}/schema", tag = "tables",
    params(("table" = String, Path)),
    responses((status = 200, body = Schema), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn table_schema(
    State(state): State<Arc<AppState>>,
    Path(table): Path<String>,
) -> ApiResult<Response> {
    let table = table_name(&state, &table).await?;
    let snapshot = state.snapshots.latest(&table).await?;
    let schema = snapshot.provider.schema();
    let body = Schema {
        table: table.to_string(),
        version: snapshot.version,
        columns: schema
            .fields()
            .iter()
            .map(|f| SchemaColumn {
                name: f.name().clone(),
                data_type: crate::api::encode::type_name(f.data_type()),
                nullable: f.is_nullable(),
            })
            .collect(),
    };
    Ok(Json(body).into_response())
}

/// Query parameters of `GET /v1/tables/{table}/diff`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct DiffQuery {
    /// The older version.
    pub from: u64,
    /// The newer version (default: the latest).
    pub to: Option<u64>,
    /// Comma-separated columns that identify a row (default: the step's `unique_key`, else its
    /// first `unique` expectation, else every column).
    pub key: Option<String>,
    /// Rows shown per kind of change (default 20, at most serve.max_page_rows).
    pub limit: Option<usize>,
}

/// What changed between two versions: schema, then counts and a few rows added, removed and
/// changed (each changed row with the cells that differ). Both versions are fixed once `to` is
/// known, so the answer is cached and ETagged under them (and the key and limit).
#[utoipa::path(get, path = "/v1/tables/{table}/diff", tag = "tables",
    params(("table" = String, Path), DiffQuery),
    responses(
        (status = 200, body = crate::diff::TableDiff),
        (status = 304, description = "If-None-Match matched: the same two versions, key and limit"),
        (status = 400, body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody),
    ))]
pub async fn table_diff(
    State(state): State<Arc<AppState>>,
    Path(table): Path<String>,
    axum::extract::Query(query): axum::extract::Query<DiffQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let table = table_name(&state, &table).await?;
    let to = match query.to {
        Some(to) => to,
        None => state.snapshots.latest(&table).await?.version,
    };
    let key: Vec<String> = match query.key.as_deref() {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect(),
        None => crate::pipeline::dag::Dag::build(&state.config, &state.lake)
            .await?
            .natural_key(&table),
    };
    let limit = query
        .limit
        .unwrap_or(crate::diff::DEFAULT_SAMPLE_ROWS)
        .min(state.config.serve.max_page_rows);
    let from = query.from;
    let cache_key = format!("diff|{table}@{from}..{to}|{}|{limit}", key.join(","));
    let make = async {
        let _slot = state.query_slot().await?;
        let options = state.query_session_options()?;
        let lake = &state.lake;
        let diff = crate::diff::diff(lake, &options, &table, from, Some(to), &key, limit).await?;
        let body = serde_json::to_vec(&diff).map_err(crate::error::Error::from)?;
        Ok(Cached::new(&cache_key, "application/json", body))
    };
    let cached = state
        .cache
        .get_or_make("table_diff", cache_key.clone(), make)
        .await?;
    Ok(cached.respond(&headers))
}
