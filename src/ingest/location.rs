//! Where a source's files live: a local path, or an object-store URL (`s3://bucket/landing/ratings.dat`,
//! or a prefix ending in `/` for every object under it).
//!
//! Owns: telling the two apart (`Location`), listing a location's files with their size and SHA-256,
//! and downloading objects into a scratch directory that lives as long as the ingest. Does not own:
//! parsing (every file, local or downloaded, is parsed the same way by [`crate::ingest::open_reader`])
//! or deciding what has changed (the ingest step compares checksums with its log).
//!
//! A local directory lists every non-hidden file in it, sorted; an object prefix every non-hidden
//! object directly under it, sorted by key. A file's `name` (what lineage and rejects show) is its
//! path relative to the raw directory, or its full URL: never the scratch copy.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use futures::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use sha2::{Digest, Sha256};
use url::Url;

use crate::error::{Error, Result};
use crate::storage::{self, LakeRoot};
use crate::variables::{self, RunVars};

/// Where a source's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file or a directory (every non-hidden file in it).
    Local(PathBuf),
    /// An object, or every object under a prefix (`s3://bucket/landing/`).
    Remote(Url),
}

impl Location {
    /// Reads a source's `path` as written: an `s3://` (or `s3a://`) URL, or a local path (see
    /// [`Location::under`] for relative ones).
    pub fn parse(text: &str) -> std::result::Result<Location, String> {
        if text.is_empty() {
            return Err("must not be empty (a file or directory under ingest.raw_dir)".into());
        }
        if let Some((scheme, _)) = text.split_once("://") {
            let is_scheme = !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if is_scheme {
                if !LakeRoot::REMOTE_SCHEMES.contains(&scheme) {
                    return Err(format!(
                        "unsupported scheme {scheme:?} in {text:?}: use a local path or s3://bucket/key"
                    ));
                }
                let url =
                    Url::parse(text).map_err(|e| format!("{text:?} is not a valid URL: {e}"))?;
                if url.host_str().unwrap_or("").is_empty() {
                    return Err(format!("{text:?} names no bucket: write s3://bucket/key"));
                }
                return Ok(Location::Remote(url));
            }
        }
        Ok(Location::Local(PathBuf::from(text)))
    }

    /// The location with a relative local path taken as relative to `raw_dir`, which may itself be
    /// a landing prefix on object storage (`s3://bucket/landing`).
    pub fn under(self, raw_dir: &Path) -> std::result::Result<Location, String> {
        match self {
            Location::Local(path) if path.is_relative() => {
                let joined = raw_dir.join(path);
                if Location::is_remote(&joined) {
                    Location::parse(&joined.to_string_lossy())
                } else {
                    Ok(Location::Local(joined))
                }
            }
            other => Ok(other),
        }
    }

    /// Whether a path names an object-store URL rather than a local file.
    pub fn is_remote(path: &Path) -> bool {
        path.to_str()
            .and_then(|p| p.split_once("://"))
            .is_some_and(|(scheme, _)| LakeRoot::REMOTE_SCHEMES.contains(&scheme))
    }

    /// The files at this location, each with its size and SHA-256, ready to parse. Objects are
    /// downloaded into the returned [`Scratch`], which must outlive the parsing.
    pub async fn files(
        &self,
        raw_dir: &Path,
        storage_options: &HashMap<String, String>,
    ) -> Result<(Option<Scratch>, Vec<SourceFile>)> {
        match self {
            Location::Local(path) => {
                let (path, raw_dir) = (path.clone(), raw_dir.to_path_buf());
                let files = tokio::task::spawn_blocking(move || list_local(&path, &raw_dir))
                    .await
                    .map_err(|e| Error::Internal(format!("file scan panicked: {e}")))??;
                Ok((None, files))
            }
            Location::Remote(url) => {
                let (scratch, files) = fetch(url, storage_options).await?;
                Ok((Some(scratch), files))
            }
        }
    }
}

impl Location {
    /// The text a path template is written in: an object URL with its braces as typed (the URL
    /// parser percent-encodes them).
    fn template_text(&self) -> String {
        self.to_string().replace("%7B", "{").replace("%7D", "}")
    }

    /// The run variables the path is a template of (`raw/ads_views/{ds}.csv` reads `ds`).
    pub fn variables(&self) -> BTreeSet<String> {
        variables::template_names(&self.template_text())
    }

    /// The location for one run: every `{name}` replaced by that run variable. The error names a
    /// variable the run does not have.
    pub fn for_run(&self, vars: &RunVars) -> std::result::Result<Location, String> {
        if self.variables().is_empty() {
            return Ok(self.clone());
        }
        let filled = vars.fill(&self.template_text()).map_err(|name| {
            format!("{self} needs the run variable {name}: run with --var {name}=...")
        })?;
        Location::parse(&filled)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::Remote(url) => write!(f, "{url}"),
        }
    }
}

/// A file of a source, readable on the local disk, and what is known about it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Where to read it (a downloaded object's scratch copy).
    pub path: PathBuf,
    /// The name stored in `_source_file`: relative to the raw directory when it is inside it, or
    /// the object's URL.
    pub name: String,
    pub size: u64,
    pub checksum: String,
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

/// The files of a local source (a file, or every non-hidden file of a directory).
fn list_local(path: &Path, raw_dir: &Path) -> Result<Vec<SourceFile>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mut paths = Vec::new();
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                paths.push(entry.path());
            }
        }
        paths.sort();
    } else {
        paths.push(path.to_path_buf());
    }
    paths
        .into_iter()
        .map(|path| {
            let (size, checksum) = checksum(&path)?;
            let name = path
                .strip_prefix(raw_dir)
                .unwrap_or(&path)
                .display()
                .to_string();
            Ok(SourceFile {
                path,
                name,
                size,
                checksum,
            })
        })
        .collect()
}

fn checksum(path: &Path) -> Result<(u64, String)> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, format!("{:x}", hasher.finalize())))
}

/// Downloads the object `url` names, or every non-hidden object directly under it when it ends in
/// `/` (or names no object but a prefix), sorted by key.
async fn fetch(url: &Url, options: &HashMap<String, String>) -> Result<(Scratch, Vec<SourceFile>)> {
    let bucket = Url::parse(&format!(
        "{}://{}/",
        url.scheme(),
        url.host_str().unwrap_or_default()
    ))
    .map_err(|e| Error::Internal(format!("source path {url}: {e}")))?;
    let store = deltalake::logstore::store_for(&bucket, options.clone())
        .map_err(|e| Error::Storage(format!("{url}: {e}")))?;
    let explain = |e: &object_store::Error| Error::Storage(storage::explain(url, options, e));

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
            "{url}: no such object, and no objects under it"
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
        let (size, checksum) =
            download(store.as_ref(), &key, &local)
                .await
                .map_err(|e| match e {
                    Downloaded::Store(e) => explain(&e),
                    Downloaded::Io(e) => Error::io(&local, e),
                })?;
        fetched.push(SourceFile {
            path: local,
            name: object_url,
            size,
            checksum,
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
        assert!(Location::is_remote(Path::new(
            "s3://bucket/raw/ratings.dat"
        )));
        assert!(Location::is_remote(Path::new("s3a://bucket/raw/")));
        assert!(!Location::is_remote(Path::new("/data/raw/ratings.dat")));
        assert!(!Location::is_remote(Path::new("raw/odd://name.csv")));
    }

    #[test]
    fn relative_paths_are_under_the_raw_dir_and_urls_stay_as_written() {
        let raw = Path::new("/lake/raw");
        let parse = |text: &str| Location::parse(text).and_then(|l| l.under(raw));
        assert_eq!(
            parse("ratings.dat").unwrap(),
            Location::Local(PathBuf::from("/lake/raw/ratings.dat"))
        );
        assert_eq!(
            parse("/data/x.csv").unwrap(),
            Location::Local(PathBuf::from("/data/x.csv"))
        );
        let Location::Remote(url) = parse("s3://bucket/landing/").unwrap() else {
            panic!("expected a remote location");
        };
        assert_eq!(url.as_str(), "s3://bucket/landing/");
        // A `://` inside a relative path is not a scheme.
        assert_eq!(
            parse("raw/odd://name.csv").unwrap(),
            Location::Local(PathBuf::from("/lake/raw/raw/odd://name.csv"))
        );
        let err = parse("gs://bucket/x").unwrap_err();
        assert!(err.contains("unsupported scheme \"gs\""), "{err}");
        assert!(parse("s3:///x").unwrap_err().contains("no bucket"));
    }
}
