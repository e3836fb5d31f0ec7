//! HTTP JSON API sources: fetching every page of records, with retries, and turning them into Arrow.
//!
//! Owns: the `http` source settings (URL, method, headers whose values may name environment
//! variables, query parameters, JSON body, pagination, retries, timeout, the path to the record
//! array), the fetch loop and the JSON → Arrow conversion. Nested objects stay structs and arrays
//! stay lists: nothing is stringified. Does not own: writing to the lake (`pipeline::ingest_step`).
//!
//! Pagination kinds:
//! - `page`: a page number (`param`, from `start`), in the query string or the JSON body
//!   (`param = "options.page"`); stops at an empty page or when `has_more_path` reads false.
//! - `offset`: an offset advanced by the records received.
//! - `cursor`: the next cursor read from `cursor_path` of each response; stops when it is missing.
//! - `link`: the `Link: <...>; rel="next"` response header (GitHub style).
//!
//! Retries: 429, 5xx and transport errors are retried `retries` times with exponential backoff from
//! `retry_backoff` (a `Retry-After` in seconds wins when given); any other status fails the fetch
//! with the URL, the status and the start of the body.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use serde_json::Value;
use url::Url;

/// Lineage column: the request that returned the record.
pub const REQUEST_URL: &str = "_request_url";
/// Lineage column: when that response arrived.
pub const FETCHED_AT: &str = "_fetched_at";

/// Pages fetched at most, a guard against an API that never says it is done.
const DEFAULT_MAX_PAGES: u64 = 10_000;

/// `format = "http"`: how the source is fetched and merged.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSource {
    /// The endpoint; `${NAME}` / `${NAME:-default}` name environment variables, resolved at fetch
    /// time (`${SPACEX_API:-https://api.spacexdata.com}/v4/launches` lets a test or an offline
    /// demo point the source elsewhere).
    pub url: String,
    #[serde(default)]
    pub method: Method,
    /// Header name → value; `${NAME}` inside a value is replaced by the environment variable NAME
    /// at fetch time (tokens stay out of config files).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "text_map")]
    pub query: BTreeMap<String, String>,
    /// JSON body for POST (e.g. a query API's `{"query": {}, "options": {"limit": 50}}`).
    #[serde(default)]
    pub body: Option<Value>,
    /// Dot path to the array of records in each response; empty: the response is the array.
    #[serde(default, deserialize_with = "dot_path")]
    pub records_path: Vec<String>,
    #[serde(default)]
    pub pagination: Pagination,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_retry_backoff", deserialize_with = "duration")]
    pub retry_backoff: Duration,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Pages fetched at most (at least one is always fetched).
    #[serde(default = "default_max_pages")]
    pub max_pages: u64,
    /// Records are upserted on this field.
    #[serde(default = "default_merge_key")]
    pub merge_key: String,
}

fn default_retries() -> u32 {
    4
}

fn default_retry_backoff() -> Duration {
    Duration::from_millis(500)
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_max_pages() -> u64 {
    DEFAULT_MAX_PAGES
}

fn default_merge_key() -> String {
    "id".into()
}

/// A duration written as humantime text (`"500ms"`, `"30s"`).
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("not a duration (e.g. \"500ms\", \"30s\"): {e}"))
    })
}

/// A map whose values may be written as any TOML scalar, read as their text (`page = 1` → "1").
fn text_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let values = <BTreeMap<String, toml::Value> as serde::Deserialize>::deserialize(d)?;
    Ok(values
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect())
}

fn dot_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    Ok(parse_path(&text))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Get,
    Post,
}

impl<'de> serde::Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        match text.to_ascii_uppercase().as_str() {
            "GET" => Ok(Method::Get),
            "POST" => Ok(Method::Post),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?}: use GET or POST"
            ))),
        }
    }
}

/// Where a pagination parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    Query,
    /// A dot path into the JSON body.
    Body,
}

#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(try_from = "RawPagination")]
pub enum Pagination {
    #[default]
    None,
    Page {
        param: String,
        start: u64,
        location: ParamIn,
        has_more_path: Vec<String>,
    },
    Offset {
        param: String,
        location: ParamIn,
        has_more_path: Vec<String>,
    },
    Cursor {
        param: String,
        location: ParamIn,
        cursor_path: Vec<String>,
    },
    Link,
}

/// Records of one response.
#[derive(Debug, Clone)]
pub struct Page {
    pub url: String,
    pub fetched_at: DateTime<Utc>,
    pub records: Vec<Value>,
}

/// A fetch that failed for good; the message names the URL.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// Reports each retry as it is scheduled (the step prints or logs it).
pub type RetryNotice<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Fetches every page.
pub async fn fetch_all(
    spec: &HttpSource,
    on_retry: RetryNotice<'_>,
) -> Result<Vec<Page>, FetchError> {
    let client = reqwest::Client::builder()
        .timeout(spec.timeout)
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError(format!("{}: cannot build the HTTP client: {e}", spec.url)))?;
    let headers = resolve_headers(&spec.headers)?;
    let url = resolve_url(&spec.url)?;
    let mut pages = Vec::new();
    let mut next = Request::first(spec, url);
    let mut received = 0u64;
    for _ in 0..spec.max_pages.max(1) {
        let Some(request) = next.take() else {
            return Ok(pages);
        };
        let response = send_with_retries(&client, spec, &headers, &request, on_retry).await?;
        let records = records_at(&response.body, &spec.records_path).ok_or_else(|| {
            FetchError(format!(
                "{}: no array of records at {:?} in the response (set records_path)",
                response.url,
                spec.records_path.join(".")
            ))
        })?;
        received += records.len() as u64;
        let empty = records.is_empty();
        next = request.next(spec, &response, empty, received);
        pages.push(Page {
            url: response.url,
            fetched_at: response.fetched_at,
            records,
        });
    }
    Err(FetchError(format!(
        "{}: still more pages after {} (max_pages)",
        spec.url, spec.max_pages
    )))
}

/// One request to make: the URL (query included) and the body.
#[derive(Debug, Clone)]
struct Request {
    url: Url,
    body: Option<Value>,
    page: u64,
}

struct Response {
    url: String,
    fetched_at: DateTime<Utc>,
    body: Value,
    next_link: Option<String>,
}

impl Request {
    fn first(spec: &HttpSource, mut url: Url) -> Option<Request> {
        if !spec.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &spec.query {
                pairs.append_pair(k, v);
            }
        }
        let mut request = Request {
            url,
            body: spec.body.clone(),
            page: 0,
        };
        match &spec.pagination {
            Pagination::Page {
                param,
                start,
                location,
                ..
            } => {
                request.page = *start;
                request.set(param, *location, Value::from(*start));
            }
            Pagination::Offset {
                param, location, ..
            } => request.set(param, *location, Value::from(0)),
            Pagination::None | Pagination::Cursor { .. } | Pagination::Link => {}
        }
        Some(request)
    }

    fn set(&mut self, param: &str, location: ParamIn, value: Value) {
        match location {
            ParamIn::Query => {
                let others: Vec<(String, String)> = self
                    .url
                    .query_pairs()
                    .filter(|(k, _)| k != param)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let text = match &value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                self.url
                    .query_pairs_mut()
                    .clear()
                    .extend_pairs(others)
                    .append_pair(param, &text);
            }
            ParamIn::Body => {
                let body = self
                    .body
                    .get_or_insert_with(|| Value::Object(Default::default()));
                set_path(body, param, value);
            }
        }
    }

    /// The request after `response`, or `None` when the pagination says it was the last.
    fn next(
        mut self,
        spec: &HttpSource,
        response: &Response,
        empty: bool,
        received: u64,
    ) -> Option<Request> {
        let more = |path: &[String]| {
            path.is_empty() || value_at(&response.body, path).and_then(Value::as_bool) == Some(true)
        };
        match &spec.pagination {
            Pagination::None => None,
            Pagination::Page {
                param,
                location,
                has_more_path,
                ..
            } => {
                if empty || !more(has_more_path) {
                    return None;
                }
                self.page += 1;
                let page = self.page;
                self.set(param, *location, Value::from(page));
                Some(self)
            }
            Pagination::Offset {
                param,
                location,
                has_more_path,
            } => {
                if empty || !more(has_more_path) {
                    return None;
                }
                self.set(param, *location, Value::from(received));
                Some(self)
            }
            Pagination::Cursor {
                param,
                location,
                cursor_path,
            } => {
                let cursor = value_at(&response.body, cursor_path)?;
                let cursor = match cursor {
                    Value::String(s) if !s.is_empty() => Value::String(s.clone()),
                    Value::Number(n) => Value::Number(n.clone()),
                    _ => return None,
                };
                if empty {
                    return None;
                }
                self.set(param, *location, cursor);
                Some(self)
            }
            Pagination::Link => {
                let next = response.next_link.as_deref()?;
                self.url = self.url.join(next).ok()?;
                Some(self)
            }
        }
    }
}

/// The URL with its environment variables substituted, checked to be http(s).
pub fn resolve_url(template: &str) -> Result<Url, FetchError> {
    let text = substitute_env(template, |var| std::env::var(var).ok()).map_err(|var| {
        FetchError(format!(
            "url {template}: the environment variable {var} is not set"
        ))
    })?;
    match Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(url),
        Ok(url) => Err(FetchError(format!("url {url} is not http(s)"))),
        Err(e) => Err(FetchError(format!("url {text:?} is not a valid URL: {e}"))),
    }
}

fn resolve_headers(
    headers: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, FetchError> {
    headers
        .iter()
        .map(|(name, template)| {
            substitute_env(template, |var| std::env::var(var).ok())
                .map(|value| (name.clone(), value))
                .map_err(|var| {
                    FetchError(format!(
                        "header {name} needs the environment variable {var}, which is not set"
                    ))
                })
        })
        .collect()
}

/// Replaces each `${NAME}` with `lookup(NAME)`, and `${NAME:-default}` with the default when the
/// variable is unset or empty; the name of the first missing variable on failure.
pub fn substitute_env(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 2..start + 2 + len];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        match (lookup(name).filter(|v| !v.is_empty()), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => return Err(name.to_string()),
        }
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

async fn send_with_retries(
    client: &reqwest::Client,
    spec: &HttpSource,
    headers: &[(String, String)],
    request: &Request,
    on_retry: RetryNotice<'_>,
) -> Result<Response, FetchError> {
    let url = request.url.to_string();
    let mut attempt = 0u32;
    loop {
        let mut builder = match spec.method {
            Method::Get => client.get(request.url.clone()),
            Method::Post => client.post(request.url.clone()),
        };
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let outcome = builder.send().await;
        let (retryable, reason, retry_after) = match outcome {
            Ok(response) if response.status().is_success() => {
                let next_link = response
                    .headers()
                    .get(reqwest::header::LINK)
                    .and_then(|v| v.to_str().ok())
                    .and_then(next_link);
                let fetched_at = Utc::now();
                let body: Value = response
                    .json()
                    .await
                    .map_err(|e| FetchError(format!("{url}: the response is not JSON: {e}")))?;
                return Ok(Response {
                    url,
                    fetched_at,
                    body,
                    next_link,
                });
            }
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let text = response.text().await.unwrap_or_default();
                let snippet: String = text.chars().take(200).collect();
                let retryable = status.as_u16() == 429 || status.is_server_error();
                (
                    retryable,
                    format!("status {status}: {snippet}"),
                    retry_after,
                )
            }
            Err(e) => (true, crate::error::chain::error_chain(&e), None),
        };
        if !retryable || attempt >= spec.retries {
            let tries = if retryable {
                format!(" (after {} attempt(s))", attempt + 1)
            } else {
                String::new()
            };
            return Err(FetchError(format!("{url}: {reason}{tries}")));
        }
        let backoff = spec.retry_backoff.saturating_mul(1 << attempt.min(10));
        let delay = retry_after.unwrap_or(backoff).min(Duration::from_secs(300));
        on_retry(&format!(
            "{url}: {reason}; retry {} of {} in {}",
            attempt + 1,
            spec.retries,
            humantime::format_duration(delay)
        ));
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// The `rel="next"` target of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        is_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// Parses a dot path (`docs`, `data.items`); empty text is the root.
pub fn parse_path(text: &str) -> Vec<String> {
    text.split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn records_at(body: &Value, path: &[String]) -> Option<Vec<Value>> {
    value_at(body, path)?.as_array().cloned()
}

fn set_path(root: &mut Value, dotted: &str, value: Value) {
    let keys = parse_path(dotted);
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut current = root;
    for key in parents {
        if !current.get(key).is_some_and(Value::is_object) {
            current[key.as_str()] = Value::Object(Default::default());
        }
        current = &mut current[key.as_str()];
    }
    current[last.as_str()] = value;
}

/// The records as one Arrow batch, plus the lineage columns. Field types are inferred from
/// `sample` (every record fetched, so an empty list in the records written does not hide what the
/// list holds elsewhere): nested objects become structs, arrays lists, a field only ever null a
/// string. A field the table already has keeps the table's type, so a later fetch whose records
/// happen to be all null or empty there still fits.
pub fn to_batch(
    records: &[(Value, &Page)],
    sample: &[&Value],
    existing: Option<&Schema>,
) -> Result<RecordBatch, String> {
    let values: Vec<&Value> = records.iter().map(|(v, _)| v).collect();
    let inferred = arrow::json::reader::infer_json_schema_from_iterator(
        sample.iter().map(|v| Ok((*v).clone())),
    )
    .map_err(|e| format!("cannot infer a schema from the records: {e}"))?;
    let schema = Arc::new(Schema::new(
        inferred
            .fields()
            .iter()
            .map(
                |f| match existing.and_then(|s| s.field_with_name(f.name()).ok()) {
                    Some(known) => Arc::new(known.clone()),
                    None => storable_field(f),
                },
            )
            .collect::<Vec<_>>(),
    ));
    let mut decoder = arrow::json::ReaderBuilder::new(Arc::clone(&schema))
        .with_batch_size(values.len().max(1))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    decoder
        .serialize(&values)
        .map_err(|e| format!("the records do not fit the table's columns: {e}"))?;
    let batch = decoder
        .flush()
        .map_err(|e| format!("cannot decode the records: {e}"))?
        .unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(&schema)));
    let urls: StringArray = records.iter().map(|(_, p)| Some(p.url.as_str())).collect();
    let fetched: TimestampMicrosecondArray = records
        .iter()
        .map(|(_, p)| Some(p.fetched_at.timestamp_micros()))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let mut fields: Vec<FieldRef> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(REQUEST_URL, DataType::Utf8, false)));
    fields.push(Arc::new(Field::new(
        FETCHED_AT,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )));
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(urls));
    columns.push(Arc::new(fetched));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
}

/// Delta has no `Null` type: fields that were only ever null (or empty lists) become strings.
fn storable_field(field: &FieldRef) -> FieldRef {
    Arc::new(
        field
            .as_ref()
            .clone()
            .with_data_type(storable_type(field.data_type())),
    )
}

fn storable_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Null => DataType::Utf8,
        DataType::List(inner) => DataType::List(storable_field(inner)),
        DataType::Struct(fields) => DataType::Struct(Fields::from(
            fields.iter().map(storable_field).collect::<Vec<_>>(),
        )),
        other => other.clone(),
    }
}

/// `pagination = { kind = ..., ... }` as written; checked into a [`Pagination`].
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawPagination {
    kind: Option<String>,
    param: Option<String>,
    /// `query` (default) or `body`.
    #[serde(rename = "in")]
    location: Option<String>,
    start: Option<u64>,
    has_more_path: Option<String>,
    cursor_path: Option<String>,
}

impl TryFrom<RawPagination> for Pagination {
    type Error = String;

    fn try_from(raw: RawPagination) -> Result<Pagination, String> {
        let location = match raw.location.as_deref() {
            None | Some("query") => ParamIn::Query,
            Some("body") => ParamIn::Body,
            Some(other) => return Err(format!("in = {other:?}: use \"query\" or \"body\"")),
        };
        let param = |default: &str| raw.param.clone().unwrap_or_else(|| default.to_string());
        let has_more_path = parse_path(raw.has_more_path.as_deref().unwrap_or(""));
        Ok(match raw.kind.as_deref() {
            None | Some("none") => Pagination::None,
            Some("page") => Pagination::Page {
                param: param("page"),
                start: raw.start.unwrap_or(1),
                location,
                has_more_path,
            },
            Some("offset") => Pagination::Offset {
                param: param("offset"),
                location,
                has_more_path,
            },
            Some("cursor") => Pagination::Cursor {
                param: param("cursor"),
                location,
                cursor_path: match raw.cursor_path.as_deref() {
                    Some(p) if !p.is_empty() => parse_path(p),
                    _ => return Err("kind = \"cursor\" needs cursor_path (where the next cursor is in each response)".into()),
                },
            },
            Some("link") => Pagination::Link,
            Some(other) => {
                return Err(format!(
                    "kind = {other:?}: use \"page\", \"offset\", \"cursor\", \"link\" or \"none\""
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, ListArray, StructArray};

    #[test]
    fn nested_records_stay_nested_and_null_only_fields_become_strings() {
        let page = Page {
            url: "http://x/v4/launches?page=1".into(),
            fetched_at: Utc::now(),
            records: Vec::new(),
        };
        let records = vec![
            (
                serde_json::json!({"id": "a", "cores": [{"core": "c1", "reused": false}],
                    "links": {"patch": {"small": "s.png"}}, "details": null, "crew": []}),
                &page,
            ),
            (
                serde_json::json!({"id": "b", "cores": [], "links": {"patch": {"small": null}},
                    "details": null, "crew": []}),
                &page,
            ),
        ];
        let sample: Vec<&Value> = records.iter().map(|(v, _)| v).collect();
        let batch = to_batch(&records, &sample, None).unwrap();
        let schema = batch.schema();
        assert!(matches!(
            schema.field_with_name("cores").unwrap().data_type(),
            DataType::List(_)
        ));
        assert!(matches!(
            schema.field_with_name("links").unwrap().data_type(),
            DataType::Struct(_)
        ));
        assert_eq!(
            schema.field_with_name("details").unwrap().data_type(),
            &DataType::Utf8
        );
        let cores = batch
            .column_by_name("cores")
            .unwrap()
            .as_any()
            .downcast_ref::<ListArray>()
            .unwrap();
        assert_eq!(cores.value_length(0), 1);
        let core = cores.value(0);
        let core = core.as_any().downcast_ref::<StructArray>().unwrap();
        assert_eq!(core.column_by_name("core").unwrap().len(), 1);
        assert_eq!(batch.num_rows(), 2);
        assert!(schema.field_with_name(REQUEST_URL).is_ok());
    }

    #[test]
    fn launch_fixtures_infer_lists_of_structs() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/launches/fixtures/launches.json"
        ))
        .unwrap();
        let launches: Vec<Value> = serde_json::from_str(&text).unwrap();
        let page = Page {
            url: "u".into(),
            fetched_at: Utc::now(),
            records: Vec::new(),
        };
        let records: Vec<(Value, &Page)> = launches.into_iter().map(|v| (v, &page)).collect();
        let sample: Vec<&Value> = records.iter().map(|(v, _)| v).collect();
        let batch = to_batch(&records, &sample, None).unwrap();
        let failures = batch.schema().field_with_name("failures").unwrap().clone();
        assert!(
            matches!(failures.data_type(), DataType::List(item) if matches!(item.data_type(), DataType::Struct(_))),
            "{failures:?}"
        );
    }

    #[test]
    fn link_headers_and_env_templates() {
        assert_eq!(
            next_link(r#"<https://api/x?page=2>; rel="next", <https://api/x?page=9>; rel="last""#),
            Some("https://api/x?page=2".into())
        );
        assert_eq!(next_link(r#"<https://api/x?page=9>; rel="last""#), None);
        let lookup = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
        assert_eq!(
            substitute_env("Bearer ${TOKEN}", lookup).unwrap(),
            "Bearer s3cret"
        );
        assert_eq!(substitute_env("${MISSING}", lookup).unwrap_err(), "MISSING");
        assert_eq!(
            substitute_env("${MISSING:-https://api.example.com}/v4", lookup).unwrap(),
            "https://api.example.com/v4"
        );
        assert_eq!(substitute_env("${TOKEN:-x}", lookup).unwrap(), "s3cret");
    }

    fn spec(pagination: Pagination) -> HttpSource {
        let spec: HttpSource =
            toml::from_str("url = \"https://api.example.com/items?fixed=1\"").unwrap();
        HttpSource { pagination, ..spec }
    }

    fn response(body: Value, next_link: Option<&str>) -> Response {
        Response {
            url: String::new(),
            fetched_at: Utc::now(),
            body,
            next_link: next_link.map(str::to_string),
        }
    }

    fn first(spec: &HttpSource) -> Request {
        Request::first(spec, resolve_url(&spec.url).unwrap()).unwrap()
    }

    #[test]
    fn each_pagination_kind_asks_for_the_next_page_and_knows_when_to_stop() {
        let page = spec(Pagination::Page {
            param: "page".into(),
            start: 1,
            location: ParamIn::Query,
            has_more_path: parse_path("meta.more"),
        });
        let request = first(&page);
        assert_eq!(
            request.url.as_str(),
            "https://api.example.com/items?fixed=1&page=1"
        );
        let more = response(serde_json::json!({"meta": {"more": true}}), None);
        let second = request.next(&page, &more, false, 10).unwrap();
        assert_eq!(
            second.url.as_str(),
            "https://api.example.com/items?fixed=1&page=2"
        );
        let done = response(serde_json::json!({"meta": {"more": false}}), None);
        assert!(second.next(&page, &done, false, 20).is_none());

        let offset = spec(Pagination::Offset {
            param: "offset".into(),
            location: ParamIn::Query,
            has_more_path: Vec::new(),
        });
        let next = first(&offset)
            .next(&offset, &response(Value::Null, None), false, 25)
            .unwrap();
        assert!(next.url.as_str().ends_with("offset=25"), "{}", next.url);
        assert!(
            next.next(&offset, &response(Value::Null, None), true, 25)
                .is_none()
        );

        let cursor = spec(Pagination::Cursor {
            param: "after".into(),
            location: ParamIn::Body,
            cursor_path: parse_path("next"),
        });
        let next = first(&cursor)
            .next(
                &cursor,
                &response(serde_json::json!({"next": "abc"}), None),
                false,
                5,
            )
            .unwrap();
        assert_eq!(next.body, Some(serde_json::json!({"after": "abc"})));
        assert!(
            next.next(
                &cursor,
                &response(serde_json::json!({"next": null}), None),
                false,
                9
            )
            .is_none()
        );

        let link = spec(Pagination::Link);
        let next = first(&link)
            .next(
                &link,
                &response(Value::Null, Some("/items?cursor=zz")),
                false,
                1,
            )
            .unwrap();
        assert_eq!(next.url.as_str(), "https://api.example.com/items?cursor=zz");
        assert!(
            next.next(&link, &response(Value::Null, None), false, 2)
                .is_none()
        );
    }

    #[test]
    fn body_pagination_sets_nested_keys() {
        let mut body = serde_json::json!({"query": {}, "options": {"limit": 2}});
        set_path(&mut body, "options.page", Value::from(3));
        assert_eq!(
            body,
            serde_json::json!({"query": {}, "options": {"limit": 2, "page": 3}})
        );
    }
}
