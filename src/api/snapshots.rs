//! The Delta snapshots the server answers from, one per table, swapped when a new version lands.
//!
//! Every response is computed from one pinned snapshot, so it names exactly one version per table
//! and a pipeline committing in another process never shows half-written data. A refresher (every
//! `serve.refresh_interval`, or on `POST /v1/admin/refresh`) asks each loaded table's log for its
//! latest version and, when it moved, loads the new snapshot and swaps it in; requests in flight
//! keep the snapshot they started with. Reads never wait for a pipeline: Delta readers take no
//! locks.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::catalog::TableProvider;
use deltalake::DeltaTable;
use futures::StreamExt as _;
use tracing::{info, warn};

use crate::catalog::{Lake, TableName};
use crate::error::{Error, Result};

/// Tables refreshed at once: enough to overlap a slow store's round trips, few enough not to
/// flood it.
const REFRESH_CONCURRENCY: usize = 8;

/// What a refresh did.
#[derive(Debug, Default)]
pub struct Refresh {
    /// Tables whose served version moved, with the new version.
    pub moved: Vec<(TableName, u64)>,
    /// Tables whose latest version could not be checked or loaded, with why; they are still
    /// served at their last version.
    pub failed: Vec<(TableName, String)>,
}

/// One table at one version, ready to scan.
#[derive(Debug)]
pub struct Snapshot {
    pub table: TableName,
    pub version: u64,
    pub delta: DeltaTable,
    pub provider: Arc<dyn TableProvider>,
}

impl Snapshot {
    async fn load(table: &TableName, delta: DeltaTable) -> Result<Arc<Snapshot>> {
        let provider = crate::catalog::provider(&delta)
            .await
            .map_err(Error::DataFusion)?;
        Ok(Arc::new(Snapshot {
            table: table.clone(),
            version: delta.version().unwrap_or(0),
            delta,
            provider,
        }))
    }
}

/// The latest loaded snapshot of every table served so far.
#[derive(Debug)]
pub struct Snapshots {
    lake: Arc<Lake>,
    current: RwLock<HashMap<TableName, Arc<Snapshot>>>,
}

impl Snapshots {
    pub fn new(lake: Arc<Lake>) -> Self {
        Self {
            lake,
            current: RwLock::new(HashMap::new()),
        }
    }

    /// The current snapshot of `table`, loading it on first use.
    pub async fn latest(&self, table: &TableName) -> Result<Arc<Snapshot>> {
        if let Some(snapshot) = self.read().get(table) {
            return Ok(Arc::clone(snapshot));
        }
        let snapshot = Snapshot::load(table, self.lake.open(table).await?).await?;
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        // Another request may have loaded a newer one meanwhile: keep the newest.
        let entry = current
            .entry(table.clone())
            .or_insert_with(|| Arc::clone(&snapshot));
        if entry.version < snapshot.version {
            *entry = Arc::clone(&snapshot);
        }
        Ok(Arc::clone(entry))
    }

    /// The current snapshot if the table exists, `None` if it does not.
    pub async fn latest_if_exists(&self, table: &TableName) -> Result<Option<Arc<Snapshot>>> {
        match self.latest(table).await {
            Ok(snapshot) => Ok(Some(snapshot)),
            Err(Error::TableNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `table` at an older version (time travel); not kept.
    pub async fn at_version(&self, table: &TableName, version: u64) -> Result<Arc<Snapshot>> {
        let latest = self.latest(table).await?;
        if latest.version == version {
            return Ok(latest);
        }
        Snapshot::load(table, self.lake.open_version(table, version).await?).await
    }

    /// `table` as it was at `at` (the latest version committed at or before it).
    pub async fn as_of(
        &self,
        table: &TableName,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Arc<Snapshot>> {
        Snapshot::load(table, self.lake.open_as_of(table, at).await?).await
    }

    /// Looks for new versions of every loaded table (several at a time: while the store is slow
    /// or down, one table's retries must not hold up the others) and swaps them in. A table that
    /// vanished or cannot be read keeps its last snapshot; it is reported in `failed` and logged.
    pub async fn refresh(&self) -> Refresh {
        let loaded: Vec<Arc<Snapshot>> = self.read().values().cloned().collect();
        let outcomes: Vec<(TableName, Result<Option<Arc<Snapshot>>>)> =
            futures::stream::iter(loaded)
                .map(|old| async move { (old.table.clone(), self.newer(&old).await) })
                .buffer_unordered(REFRESH_CONCURRENCY)
                .collect()
                .await;
        let mut refresh = Refresh::default();
        for (table, outcome) in outcomes {
            match outcome {
                Ok(None) => {}
                Ok(Some(new)) => {
                    info!(table = %new.table, to = new.version, "serving new version");
                    refresh.moved.push((table.clone(), new.version));
                    self.current
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(table, new);
                }
                Err(e) => {
                    warn!(table = %table, error = %e, "could not refresh; serving the last version");
                    refresh.failed.push((table, e.to_string()));
                }
            }
        }
        refresh.moved.sort();
        refresh.failed.sort();
        refresh
    }

    /// The snapshot of `old`'s table at its latest version, when that is newer than `old`.
    async fn newer(&self, old: &Snapshot) -> Result<Option<Arc<Snapshot>>> {
        let latest = old
            .delta
            .get_latest_version()
            .await
            .map_err(|e| self.lake.delta_error(&old.table, e))?;
        if latest <= old.version {
            return Ok(None);
        }
        let mut delta = old.delta.clone();
        delta
            .update_incremental(None)
            .await
            .map_err(|e| self.lake.delta_error(&old.table, e))?;
        Snapshot::load(&old.table, delta).await.map(Some)
    }

    /// Versions currently served, for `/metrics`.
    pub fn versions(&self) -> Vec<(TableName, u64)> {
        let mut versions: Vec<_> = self
            .read()
            .values()
            .map(|s| (s.table.clone(), s.version))
            .collect();
        versions.sort();
        versions
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TableName, Arc<Snapshot>>> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }
}
