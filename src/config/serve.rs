//! `[serve]`: how `strata serve` listens, bounds requests and checks tokens.
//!
//! Owns the raw (per-layer, all-optional) shape of the section and its validation into
//! [`ServeConfig`]. Loading and layering are `config`'s job.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::catalog::TableName;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawServe {
    bind: Option<String>,
    default_page_rows: Option<usize>,
    max_page_rows: Option<usize>,
    query_max_rows: Option<usize>,
    query_timeout_ms: Option<u64>,
    query_memory_limit_mb: Option<u64>,
    max_concurrent_queries: Option<usize>,
    request_timeout_ms: Option<u64>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    refresh_interval_ms: Option<u64>,
    cache_entries: Option<u64>,
    cache_max_mb: Option<u64>,
    cors_origins: Option<Vec<String>>,
    open_paths: Option<Vec<String>>,
    recommendations: RawRecommendations,
    auth: RawAuth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawRecommendations {
    items_table: Option<String>,
    item_id_column: Option<String>,
    item_columns: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAuth {
    hs256_secret: Option<String>,
    rs256_public_key_file: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
}

/// The validated `[serve]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    /// Rows of a table page when `limit` is not given.
    pub default_page_rows: usize,
    /// The largest `limit` a table page may ask for.
    pub max_page_rows: usize,
    /// Rows `POST /v1/query` returns at most (`truncated: true` beyond).
    pub query_max_rows: usize,
    pub query_timeout: Duration,
    /// Memory pool of each query's DataFusion session.
    pub query_memory_limit_bytes: usize,
    /// Queries (`POST /v1/query`, diffs) running at once; more wait for a slot.
    pub max_concurrent_queries: usize,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// Open connections in all; beyond it clients wait to be accepted (`api::listener`).
    pub max_connections: usize,
    /// Open connections from one IP address; beyond it a client gets 429.
    pub max_connections_per_client: usize,
    /// How often the server looks for new Delta versions of the tables it serves.
    pub refresh_interval: Duration,
    /// Entries of the response cache (recommendations and table pages).
    pub cache_entries: u64,
    /// Bytes of keys and bodies the response cache holds at most.
    pub cache_max_bytes: u64,
    /// Origins allowed by CORS; `["*"]` allows any; empty turns CORS off.
    pub cors_origins: Vec<String>,
    /// Paths served without a token when auth is on.
    pub open_paths: Vec<String>,
    pub recommendations: RecommendationsConfig,
    /// `None`: auth is off (local use).
    pub auth: Option<AuthConfig>,
}

/// Where recommendation responses find item details.
#[derive(Debug, Clone, PartialEq)]
pub struct RecommendationsConfig {
    /// A table with one row per item (e.g. `silver.movies`); its columns are added to each item.
    pub items_table: Option<TableName>,
    pub item_id_column: String,
    pub item_columns: Vec<String>,
}

/// How bearer tokens are verified: exactly one algorithm is accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthKey {
    Hs256Secret(String),
    Rs256PublicKeyFile(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub key: AuthKey,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl RawServe {
    /// Validates the section; `report(key, message)` records each problem.
    pub(crate) fn validate(self, report: &mut dyn FnMut(&str, String)) -> ServeConfig {
        let bind = self.bind.unwrap_or_default();
        let bind = bind.parse().unwrap_or_else(|e| {
            report(
                "serve.bind",
                format!("{bind:?} is not host:port (e.g. 127.0.0.1:8080): {e}"),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let mut positive = |key: &str, value: Option<u64>| {
            let value = value.unwrap_or(0);
            if value == 0 {
                report(&format!("serve.{key}"), "must be at least 1".into());
            }
            value.max(1)
        };
        let default_page_rows = positive("default_page_rows", self.default_page_rows.map(as_u64));
        let max_page_rows = positive("max_page_rows", self.max_page_rows.map(as_u64));
        let query_max_rows = positive("query_max_rows", self.query_max_rows.map(as_u64));
        let query_timeout_ms = positive("query_timeout_ms", self.query_timeout_ms);
        let query_memory_limit_mb = positive("query_memory_limit_mb", self.query_memory_limit_mb);
        let max_concurrent_queries = positive(
            "max_concurrent_queries",
            self.max_concurrent_queries.map(as_u64),
        );
        let request_timeout_ms = positive("request_timeout_ms", self.request_timeout_ms);
        let max_body_bytes = positive("max_body_bytes", self.max_body_bytes.map(as_u64));
        let max_connections = positive("max_connections", self.max_connections.map(as_u64));
        let max_connections_per_client = positive(
            "max_connections_per_client",
            self.max_connections_per_client.map(as_u64),
        );
        let refresh_interval_ms = positive("refresh_interval_ms", self.refresh_interval_ms);
        let cache_entries = positive("cache_entries", self.cache_entries);
        let cache_max_mb = positive("cache_max_mb", self.cache_max_mb);
        if default_page_rows > max_page_rows {
            report(
                "serve.default_page_rows",
                format!("{default_page_rows} is above serve.max_page_rows ({max_page_rows})"),
            );
        }

        let items_table = match self.recommendations.items_table.as_deref() {
            None | Some("") => None,
            Some(name) => match name.parse::<TableName>() {
                Ok(table) => Some(table),
                Err(e) => {
                    report("serve.recommendations.items_table", e.to_string());
                    None
                }
            },
        };

        let auth = self.auth;
        let secret = auth.hs256_secret.filter(|s| !s.is_empty());
        let key_file = auth.rs256_public_key_file.filter(|s| !s.is_empty());
        let key = match (secret, key_file) {
            (Some(_), Some(_)) => {
                report(
                    "serve.auth",
                    "set hs256_secret or rs256_public_key_file, not both".into(),
                );
                None
            }
            (Some(secret), None) => {
                if secret.len() < 32 {
                    report(
                        "serve.auth.hs256_secret",
                        "must be at least 32 bytes (RFC 7518 3.2)".into(),
                    );
                }
                Some(AuthKey::Hs256Secret(secret))
            }
            (None, Some(file)) => Some(AuthKey::Rs256PublicKeyFile(PathBuf::from(file))),
            (None, None) => None,
        };

        ServeConfig {
            bind,
            default_page_rows: default_page_rows as usize,
            max_page_rows: max_page_rows as usize,
            query_max_rows: query_max_rows as usize,
            query_timeout: Duration::from_millis(query_timeout_ms),
            query_memory_limit_bytes: (query_memory_limit_mb as usize) << 20,
            max_concurrent_queries: max_concurrent_queries as usize,
            request_timeout: Duration::from_millis(request_timeout_ms),
            max_body_bytes: max_body_bytes as usize,
            max_connections: max_connections as usize,
            max_connections_per_client: max_connections_per_client as usize,
            refresh_interval: Duration::from_millis(refresh_interval_ms),
            cache_entries,
            cache_max_bytes: cache_max_mb << 20,
            cors_origins: self.cors_origins.unwrap_or_default(),
            open_paths: self.open_paths.unwrap_or_default(),
            recommendations: RecommendationsConfig {
                items_table,
                item_id_column: self.recommendations.item_id_column.unwrap_or_default(),
                item_columns: self.recommendations.item_columns.unwrap_or_default(),
            },
            auth: key.map(|key| AuthConfig {
                key,
                issuer: auth.issuer.filter(|s| !s.is_empty()),
                audience: auth.audience.filter(|s| !s.is_empty()),
            }),
        }
    }
}

fn as_u64(n: usize) -> u64 {
    n as u64
}
