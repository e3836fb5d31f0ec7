//! The catalog: table names, where each table lives, and how the lake appears in DataFusion.
//!
//! One name, four places: `silver.ratings` = `sql/silver/ratings.sql` = `<lake>/silver/ratings/` =
//! `TableName { layer: Layer::Silver, name: "ratings" }`. A table exists when its directory holds a
//! `_delta_log`. This module owns opening tables (latest, by version, as of a time) and building a
//! `SessionContext` in which every table of the lake is queryable as `layer.name`, plus the time-travel
//! table functions `table_version(name, version)` and `table_as_of(name, timestamp)`.
//!
//! Invariant: schema lookups open the Delta log on every query, so a query always sees the latest
//! committed version (no stale snapshots are cached across queries).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::catalog::{
    MemorySchemaProvider, SchemaProvider, TableFunctionArgs, TableFunctionImpl, TableProvider,
};
use datafusion::common::ScalarValue;
use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use url::Url;

pub mod file_scan;
pub mod table_name;

pub use table_name::{Layer, TableName, TableNameError};

use crate::error::{Error, Result};
pub use crate::session::SessionOptions;
use crate::session::new_session;
use crate::storage::{LakeConfig, LakeRoot, RemoteLake};

/// Commit metadata keys Strata writes at the top level of Delta's `commitInfo` (the pipeline
/// writes them, `inspect` and the API read them back).
pub const META_RUN_ID: &str = "strata.run_id";
pub const META_STEP: &str = "strata.step";
pub const META_INPUTS: &str = "strata.inputs";
pub const META_FINGERPRINT: &str = "strata.fingerprint";

/// A table's first commit and the pointer to its latest checkpoint, in its `_delta_log`: a table
/// exists once either does.
const FIRST_COMMIT: &str = "00000000000000000000.json";
const LAST_CHECKPOINT: &str = "_last_checkpoint";

/// How often a remote table's log is listed before an inconsistent listing counts, and the wait
/// before the second listing (doubled after each).
const STALE_LISTING_ATTEMPTS: u32 = 4;
const STALE_LISTING_FIRST_WAIT: std::time::Duration = std::time::Duration::from_millis(100);
/// Whether opening a table failed the way a stale listing of its log makes it fail: no commit
/// where one was listed a moment before, or a log segment shorter than its known end. A table not found at all is not listed again: that is
/// what every request for a missing table meets, and it must stay fast.
fn listing_looked_stale(error: &Error) -> bool {
    match error {
        Error::StaleListing { .. } => true,
        Error::Delta { source, .. } => {
            matches!(source, deltalake::DeltaTableError::InvalidVersion(_))
                || source.to_string().contains("No files in log segment")
        }
        _ => false,
    }
}

/// The lake: `<root>/<layer>/<name>/` per table, on local disk or on object storage.
#[derive(Debug, Clone)]
pub struct Lake {
    root: LakeRoot,
    /// Set for object-store lakes: the store rooted at the lake and the options every table is
    /// opened with.
    remote: Option<RemoteLake>,
    allow_unsafe_concurrent_writes: bool,
    /// Set once the store passed the conditional-write check: the probe runs once per process.
    writes_checked: Arc<tokio::sync::OnceCell<()>>,
    /// One turn per table for this process's writers (see [`Lake::write_turn`]); shared by clones.
    write_turns: Arc<std::sync::Mutex<HashMap<TableName, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Lake {
    /// A lake in a local directory, made absolute so table URLs are well-formed.
    pub fn try_new(root: &Path) -> Result<Self> {
        let root = std::path::absolute(root).map_err(|e| Error::io(root, e))?;
        Ok(Lake {
            root: LakeRoot::Local(root),
            remote: None,
            allow_unsafe_concurrent_writes: false,
            writes_checked: Default::default(),
            write_turns: Default::default(),
        })
    }

    /// The lake the configuration names. Builds no connection yet: see [`Lake::check_access`].
    pub fn from_config(config: &LakeConfig) -> Result<Self> {
        match &config.root {
            LakeRoot::Local(path) => Lake::try_new(path),
            LakeRoot::Remote(url) => {
                let options: HashMap<String, String> = config
                    .storage_options
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Ok(Lake {
                    root: config.root.clone(),
                    remote: Some(RemoteLake::new(url, &options)?),
                    allow_unsafe_concurrent_writes: config.allow_unsafe_concurrent_writes,
                    writes_checked: Default::default(),
                    write_turns: Default::default(),
                })
            }
        }
    }

    pub fn root(&self) -> &LakeRoot {
        &self.root
    }

    /// Waits until no other writer of this process is committing to `table`; hold the guard
    /// from opening the table for write to its commit. Writers in one process (concurrent
    /// appends in `serve`, the days of a backfill) then never race each other for a version:
    /// delta-rs retries a taken version at once, 15 times, and a dozen racers used them up.
    /// Other processes are still merged by Delta's conflict check.
    pub async fn write_turn(&self, table: &TableName) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = Arc::clone(
            self.write_turns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(table.clone())
                .or_default(),
        );
        turn.lock_owned().await
    }

    /// The lake's directory when it is on local disk.
    pub fn local_root(&self) -> Option<&Path> {
        match &self.root {
            LakeRoot::Local(path) => Some(path),
            LakeRoot::Remote(_) => None,
        }
    }

    /// The object store of a remote lake.
    pub fn remote(&self) -> Option<&RemoteLake> {
        self.remote.as_ref()
    }

    /// For a remote lake: fails with one clear line when the bucket, credentials or endpoint are
    /// wrong. `for_writing` also checks that the store honours conditional writes. Local lakes
    /// need no check.
    pub async fn check_access(&self, for_writing: bool) -> Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        remote.check_reachable().await?;
        if for_writing {
            self.check_writable().await?;
        }
        Ok(())
    }

    /// Before the first write of this process to a remote lake: the store must honour
    /// conditional writes (see [`RemoteLake::check_conditional_writes`]). Checked once; a server
    /// that only reads (read-only credentials) never needs it.
    pub async fn check_writable(&self) -> Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        self.writes_checked
            .get_or_try_init(|| {
                remote.check_conditional_writes(self.allow_unsafe_concurrent_writes)
            })
            .await
            .map(|_| ())
    }

    /// The table's directory, for local lakes only.
    pub fn local_table_dir(&self, table: &TableName) -> Option<PathBuf> {
        self.local_root()
            .map(|root| root.join(table.layer.as_str()).join(&table.name))
    }

    /// The table's path relative to the lake root (`silver/ratings`).
    fn relative_path(table: &TableName) -> String {
        format!("{}/{}", table.layer, table.name)
    }

    pub fn table_url(&self, table: &TableName) -> Result<Url> {
        match &self.root {
            LakeRoot::Local(root) => {
                let dir = root.join(table.layer.as_str()).join(&table.name);
                Url::from_directory_path(&dir).map_err(|()| {
                    Error::Internal(format!("cannot make a URL of {}", dir.display()))
                })
            }
            LakeRoot::Remote(url) => url
                .join(&format!("{}/", Self::relative_path(table)))
                .map_err(|e| {
                    Error::Internal(format!("cannot make a URL of {table} under {url}: {e}"))
                }),
        }
    }

    /// The storage options tables are opened with (empty for local lakes).
    fn storage_options(&self) -> HashMap<String, String> {
        self.remote
            .as_ref()
            .map(|r| r.options().clone())
            .unwrap_or_default()
    }

    /// True when the table has at least one committed version: its first commit is there, or a
    /// checkpoint (once old commits are cleaned up). On a remote lake both are looked up with a
    /// HEAD, not a listing, so a stale listing cannot hide a table.
    pub async fn exists(&self, table: &TableName) -> Result<bool> {
        match &self.remote {
            None => Ok(self.exists_locally(table)),
            Some(remote) => {
                let log = format!("{}/_delta_log", Self::relative_path(table));
                Ok(remote.has_object(&format!("{log}/{FIRST_COMMIT}")).await?
                    || remote
                        .has_object(&format!("{log}/{LAST_CHECKPOINT}"))
                        .await?)
            }
        }
    }

    /// A local table exists once its first commit does (or a checkpoint, once old commits are
    /// cleaned up): a `_delta_log` directory without either is what a process killed while
    /// creating the table leaves, and the next write creates the table there anew.
    fn exists_locally(&self, table: &TableName) -> bool {
        self.local_table_dir(table).is_some_and(|dir| {
            let log = dir.join("_delta_log");
            log.join(FIRST_COMMIT).is_file() || log.join(LAST_CHECKPOINT).is_file()
        })
    }

    /// Every table of the lake, sorted by layer then name.
    pub async fn list(&self) -> Result<Vec<TableName>> {
        let mut tables = Vec::new();
        for layer in Layer::ALL {
            tables.extend(self.list_layer(layer).await?);
        }
        Ok(tables)
    }

    async fn list_layer(&self, layer: Layer) -> Result<Vec<TableName>> {
        let names = match &self.remote {
            None => {
                let Some(root) = self.local_root() else {
                    return Ok(Vec::new());
                };
                let Ok(entries) = std::fs::read_dir(root.join(layer.as_str())) else {
                    return Ok(Vec::new());
                };
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            }
            Some(remote) => remote.child_names(layer.as_str()).await?,
        };
        let candidates: Vec<TableName> = names
            .into_iter()
            .filter(|name| TableName::validate_name(name).is_ok())
            .map(|name| TableName::new(layer, name))
            .collect();
        let checks = candidates.iter().map(|t| self.exists(t));
        let present = futures::future::try_join_all(checks).await?;
        let mut tables: Vec<TableName> = candidates
            .into_iter()
            .zip(present)
            .filter_map(|(t, present)| present.then_some(t))
            .collect();
        tables.sort();
        Ok(tables)
    }

    /// Opens the latest version of an existing table. On a remote lake, a log that a listing
    /// shows inconsistently (a stale LIST: no commit, or fewer commits than the log is known to
    /// hold) is listed again, a few times, before that answer counts.
    pub async fn open(&self, table: &TableName) -> Result<DeltaTable> {
        let mut wait = STALE_LISTING_FIRST_WAIT;
        let mut attempt = 1;
        loop {
            match self.open_once(table).await {
                Err(e) if self.remote.is_some() && listing_looked_stale(&e) => {
                    if attempt == STALE_LISTING_ATTEMPTS {
                        return Err(Error::Storage(format!(
                            "{}: listing the log of {table} gave an inconsistent answer \
                             {attempt} times in a row (the object store served a stale \
                             listing); nothing was changed: try again ({e})",
                            self.root()
                        )));
                    }
                    tracing::debug!(%table, error = %e, "listing the log again: it looked stale");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn open_once(&self, table: &TableName) -> Result<DeltaTable> {
        if !self.exists(table).await? {
            return Err(Error::TableNotFound(table.clone()));
        }
        let mut delta = self.table_handle(table)?;
        delta.load().await.map_err(|e| self.delta_error(table, e))?;
        Ok(delta)
    }

    /// An unloaded handle on a table. On a remote lake it works through the lake's bucket store,
    /// whose conditional writes survive a lost answer (`storage::retry_safe`).
    fn table_handle(&self, table: &TableName) -> Result<DeltaTable> {
        let url = self.table_url(table)?;
        let mut builder = deltalake::DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| self.delta_error(table, e))?
            .with_storage_options(self.storage_options());
        if let Some(remote) = &self.remote {
            let (_, bucket) = remote.bucket_store();
            builder = builder.with_storage_backend(bucket, url);
        }
        builder.build().map_err(|e| self.delta_error(table, e))
    }

    /// Opens a table for writing: the latest version if it exists, else an empty handle whose first
    /// write creates version 0.
    pub async fn open_for_write(&self, table: &TableName) -> Result<DeltaTable> {
        if self.exists(table).await? {
            return self.open(table).await;
        }
        if let Some(dir) = self.local_table_dir(table) {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        // An unloaded handle: there is no log to read yet, and the first write creates version 0.
        self.table_handle(table)
    }

    /// Removes every file of a table (one a failed step had created). Local directories go
    /// whole; on object storage every object under the table's prefix is deleted.
    pub async fn delete_table(&self, table: &TableName) -> Result<()> {
        match (&self.remote, self.local_table_dir(table)) {
            (Some(remote), _) => remote.delete_prefix(&Self::relative_path(table)).await,
            (None, Some(dir)) => std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e)),
            (None, None) => Ok(()),
        }
    }

    /// A Delta error, explained in one line when it is a storage failure on a remote lake.
    pub fn delta_error(&self, table: &TableName, error: deltalake::DeltaTableError) -> Error {
        if let Some(remote) = &self.remote
            && let Some(store_error) = crate::storage::find_object_store_error(&error)
        {
            return remote.explain(store_error);
        }
        Error::delta(table, error)
    }

    /// Opens a table at a given version.
    pub async fn open_version(&self, table: &TableName, version: u64) -> Result<DeltaTable> {
        let mut delta = self.open(table).await?;
        let latest = delta.version().unwrap_or(0);
        if version > latest {
            return Err(Error::VersionNotFound {
                table: table.clone(),
                version,
            });
        }
        delta.load_version(version).await.map_err(|e| match e {
            deltalake::DeltaTableError::InvalidVersion(_) => Error::VersionNotFound {
                table: table.clone(),
                version,
            },
            e => self.delta_error(table, e),
        })?;
        Ok(delta)
    }

    /// Opens the latest version committed at or before `at`.
    pub async fn open_as_of(&self, table: &TableName, at: DateTime<Utc>) -> Result<DeltaTable> {
        let mut delta = self.open(table).await?;
        delta
            .load_with_datetime(at)
            .await
            .map_err(|e| self.delta_error(table, e))?;
        Ok(delta)
    }

    /// A DataFusion session over the lake: every table as `layer.name`, plus the time-travel table
    /// functions. `options` are DataFusion settings passed through from the config.
    pub fn session(self: &Arc<Self>, options: &SessionOptions) -> Result<SessionContext> {
        self.session_reading(options, TableScan::Delta)
    }

    /// A session over the lake whose tables read as plain Parquet scans of their versions' files
    /// (see [`file_scan`]), so its plans can be serialized and run on a cluster.
    pub fn file_scan_session(self: &Arc<Self>, options: &SessionOptions) -> Result<SessionContext> {
        let ctx = self.session_reading(options, TableScan::Files)?;
        if let Some(remote) = &self.remote {
            // Plain scans name their files by URL: the session must know the lake's store.
            let (url, store) = remote.bucket_store();
            ctx.register_object_store(&url, store);
        }
        Ok(ctx)
    }

    fn session_reading(
        self: &Arc<Self>,
        options: &SessionOptions,
        scan: TableScan,
    ) -> Result<SessionContext> {
        let ctx = new_session(options)?;
        let catalog = ctx
            .catalog("datafusion")
            .expect("the default catalog always exists");
        for layer in Layer::ALL {
            let schema = Arc::new(LayerSchema {
                lake: Arc::clone(self),
                layer,
                scan,
            });
            catalog.register_schema(layer.as_str(), schema)?;
        }
        ctx.register_udtf(
            "table_version",
            Arc::new(TimeTravel {
                lake: Arc::clone(self),
                kind: TimeTravelKind::Version,
                scan,
            }),
        );
        ctx.register_udtf(
            "table_as_of",
            Arc::new(TimeTravel {
                lake: Arc::clone(self),
                kind: TimeTravelKind::AsOf,
                scan,
            }),
        );
        Ok(ctx)
    }
}

/// Number of rows in the table's current snapshot, from the Delta log's file statistics.
pub fn row_count(table: &DeltaTable) -> Option<u64> {
    let snapshot = table.snapshot().ok()?;
    let mut rows = 0u64;
    for file in snapshot.log_data().iter() {
        rows += file.num_records()? as u64;
    }
    Some(rows)
}

/// Makes each table readable in `ctx` as `layer.name` through the given provider (a version
/// pinned by the caller), creating the layer's schema when it is the first table of its layer.
pub fn register_pinned(
    ctx: &SessionContext,
    tables: impl IntoIterator<Item = (TableName, Arc<dyn TableProvider>)>,
) -> datafusion::error::Result<()> {
    let catalog = ctx
        .catalog("datafusion")
        .expect("the default catalog always exists");
    for (table, provider) in tables {
        let layer = table.layer.as_str();
        if catalog.schema(layer).is_none() {
            catalog.register_schema(layer, Arc::new(MemorySchemaProvider::new()))?;
        }
        ctx.register_table(TableReference::partial(layer, table.name), provider)?;
    }
    Ok(())
}

/// Builds a DataFusion provider for an opened Delta table.
pub async fn provider(table: &DeltaTable) -> datafusion::error::Result<Arc<dyn TableProvider>> {
    table.table_provider().await
}

/// How a session reads a table version.
#[derive(Debug, Clone, Copy)]
enum TableScan {
    /// deltalake's own provider: the fastest in this process.
    Delta,
    /// Plain Parquet scans of the version's files, which serialize to a cluster.
    Files,
}

impl TableScan {
    async fn provider(
        self,
        table: &TableName,
        delta: &DeltaTable,
    ) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        match self {
            TableScan::Delta => provider(delta).await,
            TableScan::Files => file_scan::file_scan(table, delta),
        }
    }
}

/// One layer of the lake as a DataFusion schema, resolved lazily on each query.
#[derive(Debug)]
struct LayerSchema {
    lake: Arc<Lake>,
    layer: Layer,
    scan: TableScan,
}

#[async_trait]
impl SchemaProvider for LayerSchema {
    fn table_names(&self) -> Vec<String> {
        // DataFusion asks synchronously (information_schema); listing is async.
        let lake = Arc::clone(&self.lake);
        let layer = self.layer;
        run_blocking(async move { lake.list_layer(layer).await })
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.name)
            .collect()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        if TableName::validate_name(name).is_err() {
            return Ok(None);
        }
        let table = TableName::new(self.layer, name);
        let delta = match self.lake.open(&table).await {
            Ok(delta) => delta,
            Err(Error::TableNotFound(_)) => return Ok(None),
            Err(e) => return Err(DataFusionError::External(Box::new(e))),
        };
        self.scan.provider(&table, &delta).await.map(Some)
    }

    fn table_exist(&self, name: &str) -> bool {
        if TableName::validate_name(name).is_err() {
            return false;
        }
        let table = TableName::new(self.layer, name);
        let lake = Arc::clone(&self.lake);
        run_blocking(async move { lake.exists(&table).await }).unwrap_or(false)
    }
}

#[derive(Debug, Clone, Copy)]
enum TimeTravelKind {
    /// `table_version('gold.movie_stats', 3)`
    Version,
    /// `table_as_of('gold.movie_stats', '2026-11-28T10:00:00Z')`
    AsOf,
}

/// The time-travel table functions.
#[derive(Debug)]
struct TimeTravel {
    lake: Arc<Lake>,
    kind: TimeTravelKind,
    scan: TableScan,
}

impl TimeTravel {
    fn usage(&self) -> &'static str {
        match self.kind {
            TimeTravelKind::Version => "table_version('layer.name', version)",
            TimeTravelKind::AsOf => "table_as_of('layer.name', 'RFC 3339 timestamp')",
        }
    }

    fn plan_error(&self, what: impl fmt::Display) -> DataFusionError {
        DataFusionError::Plan(format!("{}: {what}", self.usage()))
    }
}

impl TableFunctionImpl for TimeTravel {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let [table_arg, point_arg] = args.exprs() else {
            return Err(self.plan_error("expects exactly two arguments"));
        };
        let table: TableName = match literal_string(table_arg) {
            Some(s) => s.parse().map_err(|e| self.plan_error(e))?,
            None => return Err(self.plan_error("the first argument must be a string literal")),
        };
        let lake = Arc::clone(&self.lake);
        let opened = match self.kind {
            TimeTravelKind::Version => {
                let version = literal_u64(point_arg)
                    .ok_or_else(|| self.plan_error("the version must be a non-negative integer"))?;
                let table = table.clone();
                run_blocking(async move { lake.open_version(&table, version).await })
            }
            TimeTravelKind::AsOf => {
                let text = literal_string(point_arg)
                    .ok_or_else(|| self.plan_error("the timestamp must be a string literal"))?;
                let at = parse_timestamp(&text).map_err(|e| self.plan_error(e))?;
                let table = table.clone();
                run_blocking(async move { lake.open_as_of(&table, at).await })
            }
        };
        let delta = opened.map_err(|e| DataFusionError::Plan(e.to_string()))?;
        let scan = self.scan;
        run_blocking(async move { scan.provider(&table, &delta).await })
    }
}

/// Table functions and some schema lookups are synchronous in DataFusion; opening a Delta table is
/// async. Requires the multi-threaded runtime (the CLI and server use it).
fn run_blocking<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

fn literal_string(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _) => Some(s.clone()),
        _ => None,
    }
}

fn literal_u64(expr: &Expr) -> Option<u64> {
    match expr {
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => u64::try_from(*v).ok(),
        Expr::Literal(ScalarValue::Int32(Some(v)), _) => u64::try_from(*v).ok(),
        Expr::Literal(ScalarValue::UInt64(Some(v)), _) => Some(*v),
        _ => None,
    }
}

/// Parses an RFC 3339 timestamp (`2026-11-28T10:00:00Z`), also accepting a space for `T`.
pub fn parse_timestamp(text: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1)))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("cannot parse {text:?} as an RFC 3339 timestamp: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_listed_short_looks_stale_and_a_missing_table_does_not() {
        let table = TableName::new(Layer::Bronze, "ratings");
        let no_commit = Error::delta(&table, deltalake::DeltaTableError::InvalidVersion(0));
        let short = Error::delta(
            &table,
            deltalake::DeltaTableError::Generic(
                "Generic delta kernel error: LogSegment end version 1 not the same as the \
                 specified end version 2"
                    .into(),
            ),
        );
        assert!(listing_looked_stale(&no_commit));
        assert!(listing_looked_stale(&short));
        assert!(!listing_looked_stale(&Error::TableNotFound(table.clone())));
        let unrelated = Error::delta(&table, deltalake::DeltaTableError::Generic("boom".into()));
        assert!(!listing_looked_stale(&unrelated));
    }

    #[test]
    fn table_names_round_trip_and_reject_paths() {
        let t: TableName = "silver.ratings".parse().unwrap();
        assert_eq!(t, TableName::new(Layer::Silver, "ratings"));
        assert_eq!(t.to_string(), "silver.ratings");
        for bad in [
            "ratings",
            "platinum.x",
            "silver.../etc",
            "silver.Ratings",
            "silver.",
        ] {
            assert!(
                bad.parse::<TableName>().is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn table_locations_follow_layer_and_name() {
        let lake = Lake::try_new(Path::new("/tmp/lake")).unwrap();
        let t: TableName = "gold.movie_stats".parse().unwrap();
        assert_eq!(
            lake.local_table_dir(&t).unwrap(),
            Path::new("/tmp/lake/gold/movie_stats")
        );
        let remote = Lake::from_config(&LakeConfig {
            root: LakeRoot::parse("s3://bucket/prod").unwrap(),
            storage_options: Default::default(),
            allow_unsafe_concurrent_writes: false,
        })
        .unwrap();
        assert_eq!(
            remote.table_url(&t).unwrap().as_str(),
            "s3://bucket/prod/gold/movie_stats/"
        );
        assert!(remote.local_table_dir(&t).is_none());
        assert_eq!(t.rejects().to_string(), "gold.movie_stats__rejects");
    }

    #[test]
    fn timestamps_parse_as_rfc3339() {
        assert!(parse_timestamp("2026-11-28T10:00:00Z").is_ok());
        assert!(parse_timestamp("2026-11-28 10:00:00+01:00").is_ok());
        assert!(parse_timestamp("yesterday").is_err());
    }
}
