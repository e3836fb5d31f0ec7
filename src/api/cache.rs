//! The response cache: encoded bodies keyed by the request *and the Delta versions it read*.
//!
//! A new version changes the key, so an entry can never be served stale and nothing is ever
//! invalidated by hand; old entries simply age out (LRU-ish, bounded by `serve.cache_entries` and
//! by `serve.cache_max_mb` of keys and bodies: the soak found memory growing by the entries of every
//! new version while the count bound was far off, RELIABILITY.md). The
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
    /// A cache of at most `max_entries` entries and `max_bytes` of keys and bodies together.
    pub fn new(max_entries: u64, max_bytes: u64, metrics: Arc<Metrics>) -> Self {
        // Both bounds with one weight: an entry weighs its bytes, and at least an equal share of
        // `max_bytes`, so no more than `max_entries` fit either.
        let share = (max_bytes / max_entries.max(1)).max(1);
        let weigh = move |key: &String, value: &Arc<Cached>| -> u32 {
            let bytes = (key.len() + value.body.len() + value.etag.len()) as u64;
            u32::try_from(bytes.max(share)).unwrap_or(u32::MAX)
        };
        Self {
            entries: moka::future::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(weigh)
                .build(),
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

    #[tokio::test]
    async fn the_cache_holds_at_most_its_bytes_and_its_entries() {
        let metrics = Arc::new(Metrics::new());
        let body = vec![b'x'; 10_000];
        let cache = ResponseCache::new(1000, 100_000, Arc::clone(&metrics));
        for i in 0..100 {
            let make = async { Ok(Cached::new("k", "text/plain", body.clone())) };
            cache
                .get_or_make("test", format!("page|{i}"), make)
                .await
                .unwrap();
        }
        cache.entries.run_pending_tasks().await;
        assert!(cache.entries.weighted_size() <= 100_000, "bytes bound");
        assert!(
            cache.entries.entry_count() <= 10,
            "{}",
            cache.entries.entry_count()
        );

        let cache = ResponseCache::new(5, 1 << 30, metrics);
        for i in 0..100 {
            let make = async { Ok(Cached::new("k", "text/plain", vec![b'x'; 10])) };
            cache
                .get_or_make("test", format!("page|{i}"), make)
                .await
                .unwrap();
        }
        cache.entries.run_pending_tasks().await;
        assert!(cache.entries.entry_count() <= 5, "entries bound");
    }

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
