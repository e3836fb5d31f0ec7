//! The response cache: encoded bodies keyed by the request *and the Delta versions it read*.
//!
//! A new version changes the key, so an entry can never be served stale and nothing is ever
//! invalidated by hand; old entries simply age out (LRU-ish, bounded by `serve.cache_entries`). The
//! ETag is a hash of the same key, so `If-None-Match` gets 304 exactly while the versions behind
//! the response are unchanged.

use std::future::Future;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::api::error::{ApiError, ApiResult};
use crate::api::metrics::Metrics;

/// An encoded response body and what identifies it.
#[derive(Debug, Clone)]
pub struct Cached {
    pub etag: String,
    pub content_type: &'static str,
    pub body: Bytes,
}

impl Cached {
    pub fn new(key: &str, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            etag: etag(key),
            content_type,
            body: body.into(),
        }
    }

    /// 304 when the client already holds this representation, else 200 with the body.
    pub fn respond(&self, request_headers: &HeaderMap) -> Response {
        let etag = HeaderValue::from_str(&self.etag).expect("hex etag is a valid header");
        if matches_etag(request_headers, &self.etag) {
            return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
        }
        (
            [
                (header::ETAG, etag),
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(self.content_type),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            self.body.clone(),
        )
            .into_response()
    }
}

/// A strong ETag for a cache key (which names every version the response read).
pub fn etag(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == etag || v == "*")
}

#[derive(Debug)]
pub struct ResponseCache {
    entries: moka::future::Cache<String, Arc<Cached>>,
    metrics: Arc<Metrics>,
}

impl ResponseCache {
    pub fn new(capacity: u64, metrics: Arc<Metrics>) -> Self {
        Self {
            entries: moka::future::Cache::new(capacity),
            metrics,
        }
    }

    /// The cached response for `key`, computing it with `make` on a miss. Concurrent misses for
    /// one key compute it once.
    pub async fn get_or_make<F>(
        &self,
        cache: &'static str,
        key: String,
        make: F,
    ) -> ApiResult<Arc<Cached>>
    where
        F: Future<Output = ApiResult<Cached>>,
    {
        let entry = self
            .entries
            .entry(key)
            .or_try_insert_with(async { make.await.map(Arc::new) })
            .await
            .map_err(|e: Arc<ApiError>| (*e).clone())?;
        if entry.is_fresh() {
            self.metrics.cache_miss(cache);
        } else {
            self.metrics.cache_hit(cache);
        }
        Ok(entry.into_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_matches_plain_weak_and_lists() {
        let tag = etag("page|gold.x|3");
        assert_ne!(tag, etag("page|gold.x|4"), "a new version is a new etag");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", W/{tag}")).unwrap(),
        );
        assert!(matches_etag(&headers, &tag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!matches_etag(&headers, &tag));
    }
}
