//! Where the lake lives ([`LakeRoot`]: a directory or `s3://bucket/prefix/`) and reaching a lake on
//! object storage.
//!
//! `deltalake` and `object_store` do the work; this module adds what a user needs around them:
//! - one object store rooted at the lake, built from the same storage options as every table, for
//!   Strata's own objects (the run lock, probes) and for listing tables;
//! - a preflight that turns the first failure a user meets (bucket missing, wrong credentials,
//!   endpoint unreachable) into one line naming the URL and what to check;
//! - the conditional-write check: Delta commits on S3 are safe between concurrent writers only
//!   when the store honours `If-None-Match: *`, so a store that silently ignores it is refused
//!   unless the user opts in;
//! - conditional writes that survive a lost answer ([`retry_safe`]): every store of a remote lake,
//!   the tables' included, is wrapped so that a retried commit never lands twice.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use url::Url;

use crate::error::{Error, Result};

pub mod retry_safe;

use retry_safe::RetrySafeCreates;

/// `[lake]`: a local directory or an `s3://bucket/prefix` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct LakeConfig {
    pub root: LakeRoot,
    /// Passed unchanged to `deltalake`/`object_store` (`aws_endpoint`, `aws_region`, ...); they win
    /// over the `AWS_*` environment variables, which those crates read themselves.
    pub storage_options: BTreeMap<String, String>,
    /// Opt-in for object stores that ignore conditional writes: without it Strata refuses to write
    /// to such a store, because two concurrent commits could silently overwrite each other.
    pub allow_unsafe_concurrent_writes: bool,
}

/// Where the lake lives: `<root>/<layer>/<name>/` holds each Delta table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeRoot {
    Local(PathBuf),
    /// An object-store URL whose path ends in `/` (`s3://bucket/prefix/`).
    Remote(Url),
}

impl LakeRoot {
    /// URL schemes the lake may live under besides the local disk.
    pub const REMOTE_SCHEMES: [&str; 2] = ["s3", "s3a"];

    /// Parses `lake.root`: a URL with a supported scheme, `file://` or a plain path.
    pub fn parse(text: &str) -> std::result::Result<LakeRoot, String> {
        if !text.contains("://") {
            return Ok(LakeRoot::Local(PathBuf::from(text)));
        }
        let mut url = Url::parse(text).map_err(|e| format!("{text:?} is not a valid URL: {e}"))?;
        if url.scheme() == "file" {
            return url
                .to_file_path()
                .map(LakeRoot::Local)
                .map_err(|()| format!("{text:?} is not a local file URL"));
        }
        if !Self::REMOTE_SCHEMES.contains(&url.scheme()) {
            return Err(format!(
                "unsupported scheme {:?} in {text:?}: use a local path or s3://bucket/prefix",
                url.scheme()
            ));
        }
        if url.host_str().unwrap_or("").is_empty() {
            return Err(format!(
                "{text:?} names no bucket: write s3://bucket/prefix"
            ));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(LakeRoot::Remote(url))
    }
}

impl fmt::Display for LakeRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LakeRoot::Local(path) => write!(f, "{}", path.display()),
            LakeRoot::Remote(url) => write!(f, "{url}"),
        }
    }
}

/// An object store rooted at the lake's URL.
#[derive(Clone)]
pub struct RemoteLake {
    pub url: Url,
    pub store: Arc<dyn ObjectStore>,
    /// The whole bucket the lake is in, and its URL (`s3://bucket/`).
    bucket: (Url, Arc<dyn ObjectStore>),
    options: HashMap<String, String>,
}

impl fmt::Debug for RemoteLake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Storage options may hold secrets: never print them.
        f.debug_struct("RemoteLake")
            .field("url", &self.url)
            .finish()
    }
}

/// How the preflight store retries: a user waiting on a wrong endpoint should hear about it in
/// seconds, not after object_store's default three minutes of backoff.
const PREFLIGHT_OPTIONS: [(&str, &str); 4] = [
    ("max_retries", "1"),
    ("retry_timeout", "10s"),
    ("connect_timeout", "5s"),
    ("timeout", "30s"),
];

impl RemoteLake {
    pub fn new(url: &Url, options: &HashMap<String, String>) -> Result<RemoteLake> {
        let store_at = |url: &Url| -> Result<Arc<dyn ObjectStore>> {
            let store = deltalake::logstore::store_for(url, options.clone())
                .map_err(|e| Error::Storage(format!("{url}: {e}")))?;
            Ok(Arc::new(RetrySafeCreates::new(store)))
        };
        let mut bucket_url = url.clone();
        bucket_url.set_path("/");
        Ok(RemoteLake {
            url: url.clone(),
            store: store_at(url)?,
            bucket: (bucket_url.clone(), store_at(&bucket_url)?),
            options: options.clone(),
        })
    }

    /// The store for the whole bucket (or container) the lake is in, with the lake's storage
    /// options, and the URL it answers for (`s3://bucket/`). Tables are opened on it (delta-rs
    /// adds each table's prefix), and plain Parquet scans name their files by full URL, so a
    /// session (or a cluster node) registers it to read them.
    pub fn bucket_store(&self) -> (Url, Arc<dyn ObjectStore>) {
        self.bucket.clone()
    }

    /// The storage options every table of the lake is opened with.
    pub fn options(&self) -> &HashMap<String, String> {
        &self.options
    }

    /// Lists the lake root once, with short retries. Call before anything else so that a wrong
    /// bucket, key or endpoint is one clear line instead of a stack of SDK errors mid-run.
    pub async fn check_reachable(&self) -> Result<()> {
        let mut options = self.options.clone();
        for (key, value) in PREFLIGHT_OPTIONS {
            options.entry(key.to_string()).or_insert(value.to_string());
        }
        let probe = deltalake::logstore::store_for(&self.url, options)
            .map_err(|e| Error::Storage(format!("{}: {e}", self.url)))?;
        match probe.list_with_delimiter(None).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.explain(&e)),
        }
    }

    /// Checks that the store refuses a second `If-None-Match: *` write of one object, which is
    /// what makes Delta commits (and the run lock) safe between concurrent writers.
    pub async fn check_conditional_writes(&self, allow_unsafe: bool) -> Result<()> {
        let path = ObjectPath::from(format!(
            "_strata/probes/conditional-put-{}",
            uuid::Uuid::new_v4()
        ));
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let first = self
            .store
            .put_opts(&path, PutPayload::from_static(b"1"), create.clone())
            .await;
        if let Err(e) = first {
            return Err(match e {
                object_store::Error::NotImplemented { .. } => Error::Storage(format!(
                    "{}: conditional writes are disabled in the storage options \
                     (aws_conditional_put); Delta commits need them: remove that option",
                    self.url
                )),
                e => self.explain(&e),
            });
        }
        let second = self
            .store
            .put_opts(&path, PutPayload::from_static(b"2"), create)
            .await;
        let _ = self.store.delete(&path).await;
        match second {
            Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(self.explain(&e)),
            Ok(_) if allow_unsafe => {
                tracing::warn!(
                    lake = %self.url,
                    "the object store ignores conditional writes; going on because \
                     lake.allow_unsafe_concurrent_writes = true (one writer at a time only)"
                );
                Ok(())
            }
            Ok(_) => Err(Error::Storage(format!(
                "{}: the object store ignores conditional writes (a second PUT with \
                 If-None-Match: * succeeded), so two concurrent writers could overwrite each \
                 other's Delta commits. Use a store that supports them (AWS S3, MinIO, \
                 Cloudflare R2), or set lake.allow_unsafe_concurrent_writes = true if only one \
                 writer ever runs",
                self.url
            ))),
        }
    }

    /// Whether the object at `path` (relative to the lake root) exists: a HEAD, which sees every
    /// write that finished before it, where a listing may lag.
    pub async fn has_object(&self, path: &str) -> Result<bool> {
        match self.store.head(&ObjectPath::from(path)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.explain(&e)),
        }
    }

    /// The "directories" directly under `prefix`.
    pub async fn child_names(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = ObjectPath::from(prefix);
        let listing = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| self.explain(&e))?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Deletes every object under `prefix` (a table the failed step had created).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let prefix = ObjectPath::from(prefix);
        let locations = self
            .store
            .list(Some(&prefix))
            .map(|m| m.map(|m| m.location));
        let mut deleted = self.store.delete_stream(locations.boxed());
        while let Some(result) = deleted.next().await {
            result.map_err(|e| self.explain(&e))?;
        }
        Ok(())
    }

    /// One line naming the lake URL, what went wrong and what to check.
    pub fn explain(&self, error: &object_store::Error) -> Error {
        Error::Storage(explain(&self.url, &self.options, error))
    }
}

/// Classifies an object-store error by the S3 error code or transport failure in its chain.
pub fn explain(
    url: &Url,
    options: &HashMap<String, String>,
    error: &object_store::Error,
) -> String {
    let chain = crate::error::error_chain(error);
    let bucket = url.host_str().unwrap_or("");
    let endpoint = options
        .iter()
        .find(|(k, _)| {
            matches!(
                k.to_ascii_lowercase().as_str(),
                "aws_endpoint" | "aws_endpoint_url" | "endpoint" | "endpoint_url"
            )
        })
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .unwrap_or_else(|| "the AWS default endpoint".to_string());
    let has = |needle: &str| chain.contains(needle);
    if has("NoSuchBucket") {
        format!(
            "{url}: bucket {bucket:?} does not exist at {endpoint}: create it, or check lake.root"
        )
    } else if has("InvalidAccessKeyId")
        || has("SignatureDoesNotMatch")
        || has("AccessDenied")
        || has("403 Forbidden")
        || has("InvalidToken")
        || has("ExpiredToken")
    {
        format!(
            "{url}: access denied by {endpoint}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY \
             (or aws_access_key_id / aws_secret_access_key in lake.storage_options) and the \
             bucket's permissions"
        )
    } else if has("error sending request")
        || has("Connection refused")
        || has("dns error")
        || has("tcp connect")
        || has("timed out")
        || has("connection closed")
    {
        format!(
            "{url}: cannot reach {endpoint}: check AWS_ENDPOINT_URL (or aws_endpoint in \
             lake.storage_options), that the server is running, and AWS_ALLOW_HTTP=true for an \
             http:// endpoint"
        )
    } else if has("credential") || has("token request") {
        format!(
            "{url}: no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
             (or the lake.storage_options keys)"
        )
    } else if has("HTTP not allowed") || has("builder error") {
        format!(
            "{url}: {endpoint} is plain http: set AWS_ALLOW_HTTP=true (or aws_allow_http = \"true\" \
             in lake.storage_options)"
        )
    } else if has("Server returned non-2xx status code: 5") {
        format!(
            "{url}: {endpoint} kept failing (5xx) through every retry: the object store is \
             unavailable or throttling; try again later ({})",
            summary(error)
        )
    } else {
        format!("{url}: object store error: {}", first_line(&chain))
    }
}

/// The first line of an object-store error and its causes, for messages that name the lake
/// themselves (or cannot: a data file read inside a query).
pub fn summary(error: &object_store::Error) -> String {
    first_line(&crate::error::error_chain(error)).to_string()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Finds an object-store error anywhere in a Delta error's source chain.
pub fn find_object_store_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a object_store::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<object_store::Error>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(message: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: message.to_string().into(),
        }
    }

    #[test]
    fn common_failures_become_one_line_naming_url_and_remedy() {
        let url = Url::parse("s3://lake-bucket/prod/").unwrap();
        let options =
            HashMap::from([("aws_endpoint".to_string(), "http://minio:9000".to_string())]);
        let cases = [
            (
                "Error performing list request: Received redirect... NoSuchBucket",
                "bucket \"lake-bucket\" does not exist at http://minio:9000",
            ),
            (
                "Client error with status 403 Forbidden: InvalidAccessKeyId",
                "access denied by http://minio:9000",
            ),
            (
                "error sending request for url (http://minio:9000/): tcp connect error: Connection refused",
                "cannot reach http://minio:9000",
            ),
        ];
        for (message, expected) in cases {
            let text = explain(&url, &options, &generic(message));
            assert!(text.starts_with("s3://lake-bucket/prod/: "), "{text}");
            assert!(text.contains(expected), "{message} -> {text}");
            assert_eq!(text.lines().count(), 1, "{text}");
        }
    }
}
