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

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::catalog::{SchemaProvider, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::DeltaTable;
use deltalake::delta_datafusion::planner::DeltaPlanner;
use url::Url;

use crate::error::{Error, Result};

/// The layers of the lake. `System` holds Strata's own bookkeeping tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    Bronze,
    Silver,
    Gold,
    System,
}

impl Layer {
    pub const ALL: [Layer; 4] = [Layer::Bronze, Layer::Silver, Layer::Gold, Layer::System];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Bronze => "bronze",
            Layer::Silver => "silver",
            Layer::Gold => "gold",
            Layer::System => "system",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Layer {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Layer::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "unknown layer {s:?} (expected bronze, silver, gold or system)"
                ))
            })
    }
}

/// A table of the lake: `layer.name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub layer: Layer,
    pub name: String,
}

impl TableName {
    pub fn new(layer: Layer, name: impl Into<String>) -> Self {
        TableName {
            layer,
            name: name.into(),
        }
    }

    /// Names are lowercase identifiers (`[a-z_][a-z0-9_]*`), which also keeps them from escaping the
    /// lake directory.
    pub fn validate_name(name: &str) -> std::result::Result<(), String> {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        if first_ok
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && name.len() <= 128
        {
            Ok(())
        } else {
            Err(format!(
                "invalid table name {name:?}: use lowercase letters, digits and _ (starting with a letter or _)"
            ))
        }
    }

    /// The rejects table that collects the bad rows of this bronze table.
    pub fn rejects(&self) -> TableName {
        TableName::new(self.layer, format!("{}__rejects", self.name))
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.layer, self.name)
    }
}

impl FromStr for TableName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let Some((layer, name)) = s.split_once('.') else {
            return Err(Error::Usage(format!(
                "invalid table {s:?}: write it as layer.name, e.g. silver.ratings"
            )));
        };
        let layer = layer.parse()?;
        TableName::validate_name(name).map_err(Error::Usage)?;
        Ok(TableName::new(layer, name))
    }
}

/// The lake on local disk: `<root>/<layer>/<name>/` per table.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

impl Lake {
    /// A lake rooted at `root`, made absolute so table URLs are well-formed.
    pub fn try_new(root: &Path) -> Result<Self> {
        let root = std::path::absolute(root).map_err(|e| Error::io(root, e))?;
        Ok(Lake { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn table_dir(&self, table: &TableName) -> PathBuf {
        self.root.join(table.layer.as_str()).join(&table.name)
    }

    pub fn table_url(&self, table: &TableName) -> Result<Url> {
        let dir = self.table_dir(table);
        Url::from_directory_path(&dir)
            .map_err(|()| Error::Usage(format!("cannot make a URL of {}", dir.display())))
    }

    /// True when the table has at least one committed version.
    pub fn exists(&self, table: &TableName) -> bool {
        self.table_dir(table).join("_delta_log").is_dir()
    }

    /// Every table of the lake, sorted by layer then name.
    pub fn list(&self) -> Vec<TableName> {
        let mut tables = Vec::new();
        for layer in Layer::ALL {
            tables.extend(self.list_layer(layer));
        }
        tables
    }

    fn list_layer(&self, layer: Layer) -> Vec<TableName> {
        let Ok(entries) = std::fs::read_dir(self.root.join(layer.as_str())) else {
            return Vec::new();
        };
        let mut tables: Vec<TableName> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| TableName::validate_name(name).is_ok())
            .map(|name| TableName::new(layer, name))
            .filter(|t| self.exists(t))
            .collect();
        tables.sort();
        tables
    }

    /// Opens the latest version of an existing table.
    pub async fn open(&self, table: &TableName) -> Result<DeltaTable> {
        if !self.exists(table) {
            return Err(Error::TableNotFound(table.clone()));
        }
        let url = self.table_url(table)?;
        deltalake::open_table(url)
            .await
            .map_err(|e| Error::delta(table, e))
    }

    /// Opens a table for writing: the latest version if it exists, else an empty handle whose first
    /// write creates version 0.
    pub async fn open_for_write(&self, table: &TableName) -> Result<DeltaTable> {
        if self.exists(table) {
            return self.open(table).await;
        }
        let dir = self.table_dir(table);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        // An unloaded handle: there is no log to read yet, and the first write creates version 0.
        deltalake::DeltaTableBuilder::from_url(self.table_url(table)?)
            .and_then(|builder| builder.build())
            .map_err(|e| Error::delta(table, e))
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
            e => Error::delta(table, e),
        })?;
        Ok(delta)
    }

    /// Opens the latest version committed at or before `at`.
    pub async fn open_as_of(&self, table: &TableName, at: DateTime<Utc>) -> Result<DeltaTable> {
        let mut delta = self.open(table).await?;
        delta
            .load_with_datetime(at)
            .await
            .map_err(|e| Error::delta(table, e))?;
        Ok(delta)
    }

    /// A DataFusion session over the lake: every table as `layer.name`, plus the time-travel table
    /// functions. `options` are DataFusion settings passed through from the config.
    pub fn session(self: &Arc<Self>, options: &SessionOptions) -> Result<SessionContext> {
        let mut config = SessionConfig::new().with_information_schema(true);
        for (key, value) in &options.datafusion {
            config.options_mut().set(key, value)?;
        }
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(bytes) = options.memory_limit_bytes {
            // Fair spilling: sorts and aggregations spill to disk instead of growing past the pool.
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(bytes)));
        }
        let runtime = runtime.build_arc()?;
        // deltalake's planner is needed for Delta writes planned in this session (MetricObserver nodes).
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_query_planner(DeltaPlanner::new())
            .build();
        let ctx = SessionContext::new_with_state(state);
        let catalog = ctx
            .catalog("datafusion")
            .expect("the default catalog always exists");
        for layer in Layer::ALL {
            let schema = Arc::new(LayerSchema {
                lake: Arc::clone(self),
                layer,
            });
            catalog.register_schema(layer.as_str(), schema)?;
        }
        ctx.register_udtf(
            "table_version",
            Arc::new(TimeTravel {
                lake: Arc::clone(self),
                kind: TimeTravelKind::Version,
            }),
        );
        ctx.register_udtf(
            "table_as_of",
            Arc::new(TimeTravel {
                lake: Arc::clone(self),
                kind: TimeTravelKind::AsOf,
            }),
        );
        Ok(ctx)
    }
}

/// A plain session whose planner knows deltalake's write nodes, for writing batches that are not the
/// result of a lake query.
pub fn write_session() -> SessionContext {
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_query_planner(DeltaPlanner::new())
        .build();
    SessionContext::new_with_state(state)
}

/// How a DataFusion session over the lake is configured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionOptions {
    /// DataFusion settings passed through verbatim (`datafusion.execution.batch_size` ...).
    pub datafusion: std::collections::BTreeMap<String, String>,
    /// Memory pool size; `None` is unbounded.
    pub memory_limit_bytes: Option<usize>,
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

/// Builds a DataFusion provider for an opened Delta table.
pub async fn provider(table: &DeltaTable) -> datafusion::error::Result<Arc<dyn TableProvider>> {
    table.table_provider().await
}

/// One layer of the lake as a DataFusion schema, resolved lazily on each query.
#[derive(Debug)]
struct LayerSchema {
    lake: Arc<Lake>,
    layer: Layer,
}

#[async_trait]
impl SchemaProvider for LayerSchema {
    fn table_names(&self) -> Vec<String> {
        self.lake
            .list_layer(self.layer)
            .into_iter()
            .map(|t| t.name)
            .collect()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        if TableName::validate_name(name).is_err() {
            return Ok(None);
        }
        let table = TableName::new(self.layer, name);
        if !self.lake.exists(&table) {
            return Ok(None);
        }
        let delta = self
            .lake
            .open(&table)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        provider(&delta).await.map(Some)
    }

    fn table_exist(&self, name: &str) -> bool {
        TableName::validate_name(name).is_ok()
            && self.lake.exists(&TableName::new(self.layer, name))
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
                run_blocking(async move { lake.open_version(&table, version).await })
            }
            TimeTravelKind::AsOf => {
                let text = literal_string(point_arg)
                    .ok_or_else(|| self.plan_error("the timestamp must be a string literal"))?;
                let at = parse_timestamp(&text).map_err(|e| self.plan_error(e))?;
                run_blocking(async move { lake.open_as_of(&table, at).await })
            }
        };
        let delta = opened.map_err(|e| DataFusionError::Plan(e.to_string()))?;
        run_blocking(async move { provider(&delta).await })
    }
}

/// Table functions are synchronous in DataFusion; opening a Delta table is async. Requires the
/// multi-threaded runtime (the CLI and server use it).
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
    fn table_dir_follows_layer_and_name() {
        let lake = Lake::try_new(Path::new("/tmp/lake")).unwrap();
        let t: TableName = "gold.movie_stats".parse().unwrap();
        assert_eq!(lake.table_dir(&t), Path::new("/tmp/lake/gold/movie_stats"));
        assert_eq!(t.rejects().to_string(), "gold.movie_stats__rejects");
    }

    #[test]
    fn timestamps_parse_as_rfc3339() {
        assert!(parse_timestamp("2026-11-28T10:00:00Z").is_ok());
        assert!(parse_timestamp("2026-11-28 10:00:00+01:00").is_ok());
        assert!(parse_timestamp("yesterday").is_err());
    }
}
