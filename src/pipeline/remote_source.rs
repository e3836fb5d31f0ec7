//! Raw sources on object storage (`path = "s3://bucket/landing/ratings.dat"`, or a prefix ending
//! in `/` for every object under it).
//!
//! Each object is downloaded into a scratch directory that lives as long as the ingest, hashed on
//! the way, and then parsed exactly like a local file; its `_source_file` name is the full URL so
//! lineage and rejects point at the object, not at the scratch copy. Credentials and endpoint come
//! from `lake.storage_options` and the `AWS_*` environment, as for the lake itself.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use futures::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use sha2::{Digest, Sha256};
use url::Url;

use crate::error::{Error, Result};
use crate::storage;

/// Whether a source path names an object-store URL rather than a local file.
pub fn is_remote(path: &Path) -> bool {
    path.to_str()
        .and_then(|p| p.split_once("://"))
        .is_some_and(|(scheme, _)| crate::config::LakeRoot::REMOTE_SCHEMES.contains(&scheme))
}

/// A downloaded object: where its copy is, and its URL.
#[derive(Debug)]
pub struct FetchedObject {
    pub local: PathBuf,
    pub url: String,
    pub size: u64,
    pub sha256: String,
}

/// Scratch directory holding downloaded objects; removed on drop.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Downloads the object `url` names, or every non-hidden object directly under it when it ends in
/// `/` (or names no object but a prefix), sorted by key.
pub async fn fetch(
    url_text: &str,
    options: &HashMap<String, String>,
) -> Result<(Scratch, Vec<FetchedObject>)> {
    let url = Url::parse(url_text)
        .map_err(|e| Error::Usage(format!("source path {url_text:?} is not a valid URL: {e}")))?;
    let bucket = Url::parse(&format!(
        "{}://{}/",
        url.scheme(),
        url.host_str().unwrap_or_default()
    ))
    .map_err(|e| Error::Usage(format!("source path {url_text:?}: {e}")))?;
    let store = deltalake::logstore::store_for(&bucket, options.clone())
        .map_err(|e| Error::Storage(format!("{url_text}: {e}")))?;
    let explain = |e: &object_store::Error| Error::Storage(storage::explain(&url, options, e));

    let key = url.path().trim_start_matches('/');
    let mut keys = Vec::new();
    if !key.is_empty() && !key.ends_with('/') {
        match store.head(&ObjectPath::from(key)).await {
            Ok(meta) => keys.push(meta.location),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(explain(&e)),
        }
    }
    if keys.is_empty() {
        let prefix = ObjectPath::from(key.trim_end_matches('/'));
        let listing = store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| explain(&e))?;
        keys = listing
            .objects
            .into_iter()
            .map(|m| m.location)
            .filter(|p| !p.filename().unwrap_or("").starts_with('.'))
            .collect();
        keys.sort();
    }
    if keys.is_empty() {
        return Err(Error::Storage(format!(
            "{url_text}: no such object, and no objects under it"
        )));
    }

    let scratch = Scratch {
        dir: std::env::temp_dir().join(format!("strata-fetch-{}", uuid::Uuid::new_v4())),
    };
    std::fs::create_dir_all(&scratch.dir).map_err(|e| Error::io(&scratch.dir, e))?;
    let mut fetched = Vec::with_capacity(keys.len());
    for (i, key) in keys.into_iter().enumerate() {
        let object_url = format!("{bucket}{key}");
        // Keep the object's file name: readers pick formats and messages by it.
        let local = scratch
            .dir
            .join(format!("{i}-{}", key.filename().unwrap_or("object")));
        let (size, sha256) = download(store.as_ref(), &key, &local)
            .await
            .map_err(|e| match e {
                Downloaded::Store(e) => explain(&e),
                Downloaded::Io(e) => Error::io(&local, e),
            })?;
        fetched.push(FetchedObject {
            local,
            url: object_url,
            size,
            sha256,
        });
    }
    Ok((scratch, fetched))
}

enum Downloaded {
    Store(object_store::Error),
    Io(std::io::Error),
}

/// Streams one object to `local`, hashing it on the way.
async fn download(
    store: &dyn ObjectStore,
    key: &ObjectPath,
    local: &Path,
) -> std::result::Result<(u64, String), Downloaded> {
    let mut stream = store
        .get(key)
        .await
        .map_err(Downloaded::Store)?
        .into_stream();
    let mut file = std::fs::File::create(local).map_err(Downloaded::Io)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(Downloaded::Store)?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk).map_err(Downloaded::Io)?;
    }
    Ok((size, format!("{:x}", hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_object_store_urls_are_remote() {
        assert!(is_remote(Path::new("s3://bucket/raw/ratings.dat")));
        assert!(is_remote(Path::new("s3a://bucket/raw/")));
        assert!(!is_remote(Path::new("/data/raw/ratings.dat")));
        assert!(!is_remote(Path::new("raw/odd://name.csv")));
    }
}
