//! Configuration: where the lake is, what to ingest, where the SQL steps are and how to run them.
//!
//! Layers, lowest to highest precedence: built-in defaults ([`DEFAULTS`]) < the config file
//! (`--config FILE`, else `config/strata.toml` when it exists in the working directory) < `STRATA_*`
//! environment variables (`STRATA_LAKE__ROOT=/data/lake`: `__` separates keys) < command-line flags.
//!
//! Invariants: unknown keys are errors; every problem in every layer is collected and reported at once,
//! each with where it came from (file or variable) and its key; relative paths in a file are resolved
//! against that file's directory, relative paths from the environment or flags against the working
//! directory. [`Config::load`] takes the environment as a parameter so tests never touch the process
//! environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Table, Value};
use url::Url;

use crate::api::settings::{RawServe, ServeConfig};
use crate::catalog::{SessionOptions, TableName};
use crate::ingest::{ColumnSpec, parse_columns};
use crate::pipeline::run::RunOptions;
use crate::pipeline::run_log::Trigger;
use crate::pipeline::trigger::Schedule;
use crate::sample::SampleSpec;

/// The config file used when `--config` is not given and this file exists in the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/strata.toml";

/// Built-in defaults: the MovieLens pipeline on a local `lake/`, paths relative to the working
/// directory. `config/strata.toml` documents the same values key by key (a unit test keeps them equal).
pub const DEFAULTS: &str = r#"
[lake]
root = "lake"
allow_unsafe_concurrent_writes = false

[lake.storage_options]

[ingest]
raw_dir = "lake/raw"
max_reject_fraction = 0.01
batch_rows = 65536

[sample]
generate_if_empty = true
users = 6040
items = 3706
ratings = 1000209
seed = 42

[sql]
dir = "sql"

[run]
concurrency = 1
memory_limit_mb = 0

[schedule]
cron = ""
select = []
downstream = false
full_refresh = false

[serve]
bind = "127.0.0.1:8080"
default_page_rows = 100
max_page_rows = 10000
query_max_rows = 10000
query_timeout_ms = 30000
query_memory_limit_mb = 1024
request_timeout_ms = 60000
max_body_bytes = 1048576
refresh_interval_ms = 1000
cache_entries = 100000
cors_origins = []
open_paths = ["/health", "/ready", "/metrics", "/openapi.json"]

[serve.recommendations]
items_table = "silver.movies"
item_id_column = "movie_id"
item_columns = ["title", "year", "genres"]

[serve.auth]
hs256_secret = ""
rs256_public_key_file = ""
issuer = ""
audience = ""

[sources.ratings]
format = "movielens"
path = "ratings.dat"
columns = "user_id bigint, movie_id bigint, rating int, timestamp bigint"

[sources.movies]
format = "movielens"
path = "movies.dat"
columns = "movie_id bigint, title string, genres string"

[sources.users]
format = "movielens"
path = "users.dat"
columns = "user_id bigint, gender string, age int, occupation int, zip_code string"
"#;

/// Keys whose values are paths, resolved against the directory of the layer that set them.
const PATH_KEYS: [&[&str]; 4] = [
    &["lake", "root"],
    &["ingest", "raw_dir"],
    &["sql", "dir"],
    &["serve", "auth", "rs256_public_key_file"],
];

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the lake is and how to reach it.
    pub lake: LakeConfig,
    pub ingest: IngestConfig,
    pub sample: SampleConfig,
    pub sources: BTreeMap<String, SourceConfig>,
    /// Directory holding `<layer>/<name>.sql` step files.
    pub sql_dir: PathBuf,
    /// How many independent steps may run at the same time.
    pub concurrency: usize,
    /// Memory pool of each step's (and query's) DataFusion session in MiB; operators that can spill
    /// (sorts, aggregations) spill to disk beyond it. `None`: unbounded.
    pub memory_limit_mb: Option<u64>,
    /// Per-step settings from the config file, keyed by table; they override the SQL file's header.
    pub steps: BTreeMap<TableName, Table>,
    /// DataFusion options passed through verbatim (`datafusion.execution.batch_size` = "8192").
    pub datafusion: BTreeMap<String, String>,
    /// `strata serve`.
    pub serve: ServeConfig,
    /// The run `strata serve` starts on a cron schedule, if any.
    pub schedule: Option<Schedule>,
}

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

#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    /// Landing directory for raw files; source paths are relative to it.
    pub raw_dir: PathBuf,
    /// An ingest fails (nothing committed) when more than this fraction of a source's lines is rejected.
    pub max_reject_fraction: f64,
    /// Rows per Arrow batch while parsing.
    pub batch_rows: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleConfig {
    /// `strata run` writes a generated sample into an empty raw directory.
    pub generate_if_empty: bool,
    pub spec: SampleSpec,
}

/// Raw source formats Strata ingests: files, or an HTTP JSON API (`http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Csv,
    Movielens,
    Json,
    Ndjson,
    Parquet,
    Http,
}

/// A declared raw source, ingested into `bronze.<name>`.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub format: SourceFormat,
    /// A file or a directory (every non-hidden file in it), absolute or relative to the raw directory.
    pub path: PathBuf,
    /// Declared columns; `None` infers them from the data.
    pub columns: Option<Vec<ColumnSpec>>,
    pub header: bool,
    pub delimiter: String,
    pub quote: Option<u8>,
    pub null_value: Option<String>,
    pub latin1: bool,
    /// `format = "http"`: how to fetch the records.
    pub http: Option<crate::ingest::http::HttpSpec>,
    /// Rows are upserted on this column (`id` for http sources) instead of replaced per file.
    pub merge_key: Option<String>,
}

/// Values given on the command line, the highest-precedence layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--lake`: a directory or an `s3://` URL.
    pub lake_root: Option<String>,
}

/// Every problem found while loading the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

/// One configuration problem: where it came from, which key, what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub origin: String,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration ({} problem(s)):",
            self.problems.len()
        )?;
        for p in &self.problems {
            if p.key.is_empty() {
                write!(f, "\n  {}: {}", p.origin, p.message)?;
            } else {
                write!(f, "\n  {}: {}: {}", p.origin, p.key, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// ---- the raw, per-layer shape: every field optional so each layer can be checked on its own ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawConfig {
    lake: RawLake,
    ingest: RawIngest,
    sample: RawSample,
    sql: RawSql,
    run: RawRun,
    schedule: RawSchedule,
    serve: RawServe,
    sources: BTreeMap<String, RawSource>,
    steps: BTreeMap<String, Table>,
    datafusion: Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawLake {
    root: Option<String>,
    storage_options: Table,
    allow_unsafe_concurrent_writes: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawIngest {
    raw_dir: Option<String>,
    max_reject_fraction: Option<f64>,
    batch_rows: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSample {
    generate_if_empty: Option<bool>,
    users: Option<u32>,
    items: Option<u32>,
    ratings: Option<u64>,
    seed: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSql {
    dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawRun {
    concurrency: Option<usize>,
    memory_limit_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSchedule {
    cron: Option<String>,
    select: Option<Vec<String>>,
    downstream: Option<bool>,
    full_refresh: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSource {
    format: Option<SourceFormat>,
    path: Option<String>,
    columns: Option<String>,
    header: Option<bool>,
    delimiter: Option<String>,
    quote: Option<String>,
    null_value: Option<String>,
    encoding: Option<String>,
    merge_key: Option<String>,
    // `format = "http"` only (see `ingest::http`).
    url: Option<String>,
    method: Option<String>,
    headers: BTreeMap<String, String>,
    query: BTreeMap<String, Value>,
    body: Option<Value>,
    records_path: Option<String>,
    pagination: Option<crate::ingest::http::RawPagination>,
    retries: Option<u32>,
    retry_backoff: Option<String>,
    timeout: Option<String>,
    max_pages: Option<u64>,
}

/// One layer of configuration: where it came from, the directory its relative paths are relative to,
/// and its values.
struct Layer {
    origin: String,
    base_dir: PathBuf,
    values: Table,
}

impl Config {
    /// Loads the configuration from the optional file, the `STRATA_*` variables in `env` and the flags.
    ///
    /// `cwd` anchors relative paths from the defaults, the environment and the flags.
    pub fn load(
        file: Option<&Path>,
        env: &[(String, String)],
        overrides: &Overrides,
        cwd: &Path,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut layers = vec![Layer {
            origin: "built-in defaults".into(),
            base_dir: cwd.to_path_buf(),
            values: DEFAULTS
                .parse::<Table>()
                .expect("built-in defaults are valid TOML"),
        }];

        if let Some(layer) = file.and_then(|path| file_layer(path, cwd, &mut problems)) {
            layers.push(layer);
        }
        layers.extend(env_layers(env, cwd, &mut problems));
        if let Some(root) = &overrides.lake_root {
            let mut lake = Table::new();
            lake.insert("root".into(), Value::String(root.clone()));
            let mut values = Table::new();
            values.insert("lake".into(), Value::Table(lake));
            layers.push(Layer {
                origin: "flag --lake".into(),
                base_dir: cwd.to_path_buf(),
                values,
            });
        }

        // Each layer on its own: unknown keys and type errors, attributed to the layer.
        for layer in &layers {
            check_layer(layer, &mut problems);
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }

        let (merged, origins) = merge_layers(layers);
        let raw: RawConfig = match Value::Table(merged).try_into() {
            Ok(raw) => raw,
            Err(e) => {
                problems.push(Problem {
                    origin: "merged configuration".into(),
                    key: String::new(),
                    message: e.to_string(),
                });
                return Err(ConfigError { problems });
            }
        };
        let config = validate(raw, &origins, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// How DataFusion sessions over the lake are set up.
    pub fn session_options(&self) -> SessionOptions {
        SessionOptions {
            datafusion: self.datafusion.clone(),
            memory_limit_bytes: self.memory_limit_mb.map(|mb| (mb as usize) << 20),
        }
    }

    /// The configured source for `bronze.<name>`, if any.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.get(name)
    }
}

/// Reads a config file into a layer; paths in it are resolved against its directory.
fn file_layer(path: &Path, cwd: &Path, problems: &mut Vec<Problem>) -> Option<Layer> {
    let origin = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(Problem {
                origin,
                key: String::new(),
                message: format!("cannot read config file: {e}"),
            });
            return None;
        }
    };
    let values = match text.parse::<Table>() {
        Ok(values) => values,
        Err(e) => {
            problems.push(Problem {
                origin,
                key: String::new(),
                message: e.to_string().trim_end().to_string(),
            });
            return None;
        }
    };
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let base_dir = abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cwd.to_path_buf());
    Some(Layer {
        origin,
        base_dir,
        values,
    })
}

/// Turns each `STRATA_A__B=value` variable into a one-key layer. Values are read as TOML values when
/// they parse as one (`0.05`, `true`, `["a"]`), else as strings (`/data/lake`).
fn env_layers(env: &[(String, String)], cwd: &Path, problems: &mut Vec<Problem>) -> Vec<Layer> {
    let mut layers = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("STRATA_") else {
            continue;
        };
        // STRATA_CONFIG names the file itself (read by the CLI), not a key.
        if rest == "CONFIG" {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if path.iter().any(String::is_empty) {
            problems.push(Problem {
                origin: format!("environment {name}"),
                key: String::new(),
                message: "malformed variable name: use STRATA_SECTION__KEY".into(),
            });
            continue;
        }
        let parsed = format!("v = {value}")
            .parse::<Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| Value::String(value.clone()));
        let mut values = Table::new();
        insert_path(&mut values, &path, parsed);
        layers.push(Layer {
            origin: format!("environment {name}"),
            base_dir: cwd.to_path_buf(),
            values,
        });
    }
    layers
}

fn insert_path(table: &mut Table, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            if let Value::Table(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// Deserializes one layer on its own, collecting every unknown key and the first type error.
fn check_layer(layer: &Layer, problems: &mut Vec<Problem>) {
    let mut unknown = Vec::new();
    let result: Result<RawConfig, _> =
        serde_ignored::deserialize(Value::Table(layer.values.clone()), |path| {
            unknown.push(path.to_string())
        });
    for key in unknown {
        problems.push(Problem {
            origin: layer.origin.clone(),
            key,
            message: "unknown key".into(),
        });
    }
    if let Err(e) = result {
        problems.push(Problem {
            origin: layer.origin.clone(),
            key: String::new(),
            message: e.to_string().trim_end().to_string(),
        });
    }
}

/// Deep-merges the layers in order, resolving path keys against each layer's directory, and records
/// which layer set each leaf key (for error messages).
fn merge_layers(layers: Vec<Layer>) -> (Table, BTreeMap<String, String>) {
    let mut merged = Table::new();
    let mut origins = BTreeMap::new();
    for mut layer in layers {
        for key in PATH_KEYS {
            resolve_path_key(&mut layer.values, key, &layer.base_dir);
        }
        // A file that declares its own sources replaces the default MovieLens sources instead of adding
        // to them; environment and flags adjust individual keys.
        if layer.origin != "built-in defaults"
            && !layer.origin.starts_with("environment")
            && layer.values.contains_key("sources")
        {
            merged.remove("sources");
        }
        merge_table(&mut merged, layer.values, "", &layer.origin, &mut origins);
    }
    (merged, origins)
}

fn resolve_path_key(values: &mut Table, key: &[&str], base: &Path) {
    let Some((last, sections)) = key.split_last() else {
        return;
    };
    let mut table = values;
    for section in sections {
        let Some(Value::Table(inner)) = table.get_mut(*section) else {
            return;
        };
        table = inner;
    }
    if let Some(Value::String(s)) = table.get_mut(*last) {
        let p = Path::new(s.as_str());
        // An empty value means "not set", not "this directory".
        if !s.is_empty() && p.is_relative() && !s.contains("://") {
            *s = normalize(&base.join(p)).display().to_string();
        }
    }
}

/// Removes `.` and `..` components without touching the filesystem (the directory may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn merge_table(
    into: &mut Table,
    from: Table,
    prefix: &str,
    origin: &str,
    origins: &mut BTreeMap<String, String>,
) {
    for (key, value) in from {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (into.get_mut(&key), value) {
            (Some(Value::Table(existing)), Value::Table(incoming)) => {
                merge_table(existing, incoming, &path, origin, origins);
            }
            (_, value) => {
                record_origins(&value, &path, origin, origins);
                into.insert(key, value);
            }
        }
    }
}

fn record_origins(value: &Value, path: &str, origin: &str, origins: &mut BTreeMap<String, String>) {
    match value {
        Value::Table(t) => {
            for (k, v) in t {
                record_origins(v, &format!("{path}.{k}"), origin, origins);
            }
        }
        _ => {
            origins.insert(path.to_string(), origin.to_string());
        }
    }
}

/// Checks values and builds the final [`Config`]; problems name the layer that set the key.
fn validate(
    raw: RawConfig,
    origins: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Config {
    let mut report = |key: &str, message: String| {
        let origin = origins
            .get(key)
            .cloned()
            .or_else(|| {
                // A table-valued key (a whole source) is attributed to any of its leaves.
                origins
                    .iter()
                    .find(|(k, _)| k.starts_with(&format!("{key}.")))
                    .map(|(_, o)| o.clone())
            })
            .unwrap_or_else(|| "configuration".into());
        problems.push(Problem {
            origin,
            key: key.to_string(),
            message,
        });
    };

    let lake_text = raw.lake.root.unwrap_or_default();
    let lake_root = LakeRoot::parse(&lake_text).unwrap_or_else(|message| {
        report("lake.root", message);
        LakeRoot::Local(PathBuf::from(&lake_text))
    });
    let mut storage_options = BTreeMap::new();
    for (key, value) in raw.lake.storage_options {
        match value {
            Value::String(text) => {
                storage_options.insert(key, text);
            }
            // Numbers and booleans are written as deltalake parses them (`"true"`, `"5"`).
            Value::Boolean(_) | Value::Integer(_) | Value::Float(_) => {
                storage_options.insert(key, value.to_string());
            }
            other => report(
                &format!("lake.storage_options.{key}"),
                format!("must be a string, got {}", other.type_str()),
            ),
        }
    }
    let sql_dir = PathBuf::from(raw.sql.dir.unwrap_or_default());
    let raw_dir = PathBuf::from(raw.ingest.raw_dir.unwrap_or_default());
    let max_reject_fraction = raw.ingest.max_reject_fraction.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&max_reject_fraction) {
        report(
            "ingest.max_reject_fraction",
            format!("must be between 0 and 1, got {max_reject_fraction}"),
        );
    }
    let batch_rows = raw.ingest.batch_rows.unwrap_or(0);
    if batch_rows == 0 {
        report("ingest.batch_rows", "must be at least 1".into());
    }
    let concurrency = raw.run.concurrency.unwrap_or(0);
    if concurrency == 0 {
        report("run.concurrency", "must be at least 1".into());
    }

    let spec = SampleSpec {
        users: raw.sample.users.unwrap_or_default(),
        items: raw.sample.items.unwrap_or_default(),
        ratings: raw.sample.ratings.unwrap_or_default(),
        seed: raw.sample.seed.unwrap_or_default(),
    };
    if let Err(message) = spec.validate() {
        report("sample", message);
    }

    let mut sources = BTreeMap::new();
    for (name, source) in raw.sources {
        let key = format!("sources.{name}");
        if let Err(message) = TableName::validate_name(&name) {
            report(&key, message);
            continue;
        }
        match validate_source(source, &raw_dir) {
            Ok(source) => {
                sources.insert(name, source);
            }
            Err(errors) => {
                for (field, message) in errors {
                    report(&format!("{key}.{field}"), message);
                }
            }
        }
    }

    let mut steps = BTreeMap::new();
    for (name, settings) in raw.steps {
        match name.parse::<TableName>() {
            Ok(table) => {
                // Kept as TOML so the step file's own settings can be merged under it key by key;
                // checked when the step is read (its kind decides which keys are valid).
                steps.insert(table, settings);
            }
            Err(e) => report(&format!("steps.{name}"), e.to_string()),
        }
    }

    let mut datafusion = BTreeMap::new();
    flatten_options(&raw.datafusion, "datafusion", &mut datafusion);
    let mut probe = datafusion::prelude::SessionConfig::new();
    for (key, value) in &datafusion {
        if let Err(e) = probe.options_mut().set(key, value) {
            report(&key.to_string(), format!("not accepted by DataFusion: {e}"));
        }
    }

    let serve = raw.serve.validate(&mut report);
    let schedule = validate_schedule(raw.schedule, &mut report);

    Config {
        lake: LakeConfig {
            root: lake_root,
            storage_options,
            allow_unsafe_concurrent_writes: raw
                .lake
                .allow_unsafe_concurrent_writes
                .unwrap_or(false),
        },
        ingest: IngestConfig {
            raw_dir,
            max_reject_fraction,
            batch_rows,
        },
        sample: SampleConfig {
            generate_if_empty: raw.sample.generate_if_empty.unwrap_or(false),
            spec,
        },
        sources,
        sql_dir,
        concurrency,
        memory_limit_mb: raw.run.memory_limit_mb.filter(|mb| *mb > 0),
        steps,
        datafusion,
        serve,
        schedule,
    }
}

/// `[schedule]`: an empty `cron` means no schedule.
fn validate_schedule(raw: RawSchedule, report: &mut dyn FnMut(&str, String)) -> Option<Schedule> {
    let cron_text = raw.cron.unwrap_or_default();
    if cron_text.trim().is_empty() {
        return None;
    }
    let cron = match cron_text.parse::<croner::Cron>() {
        Ok(cron) => cron,
        Err(e) => {
            report(
                "schedule.cron",
                format!("{cron_text:?} is not a cron expression: {e} (e.g. \"0 */6 * * *\")"),
            );
            return None;
        }
    };
    let mut select = Vec::new();
    for name in raw.select.unwrap_or_default() {
        match name.parse::<TableName>() {
            Ok(table) => select.push(table),
            Err(e) => report("schedule.select", e.to_string()),
        }
    }
    Some(Schedule {
        cron,
        options: RunOptions {
            trigger: Trigger::Schedule,
            select,
            downstream: raw.downstream.unwrap_or(false),
            full_refresh: raw.full_refresh.unwrap_or(false),
            resume: None,
        },
    })
}

/// `[datafusion.execution] batch_size = 8192` and `"datafusion.execution.batch_size" = "8192"` both
/// become `datafusion.execution.batch_size = "8192"`.
fn flatten_options(table: &Table, prefix: &str, out: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let key = key.strip_prefix("datafusion.").unwrap_or(key);
        let path = format!("{prefix}.{key}");
        match value {
            Value::Table(inner) => flatten_options(inner, &path, out),
            Value::String(s) => {
                out.insert(path, s.clone());
            }
            other => {
                out.insert(path, other.to_string());
            }
        }
    }
}

fn validate_source(
    raw: RawSource,
    raw_dir: &Path,
) -> Result<SourceConfig, Vec<(&'static str, String)>> {
    let mut errors = Vec::new();
    let format = raw.format.unwrap_or_else(|| {
        errors.push((
            "format",
            "missing (one of csv, movielens, json, ndjson, parquet, http)".to_string(),
        ));
        SourceFormat::Csv
    });
    let raw_http = crate::ingest::http::RawHttp {
        url: raw.url,
        method: raw.method,
        headers: raw.headers,
        query: raw.query,
        body: raw.body,
        records_path: raw.records_path,
        pagination: raw.pagination,
        retries: raw.retries,
        retry_backoff: raw.retry_backoff,
        timeout: raw.timeout,
        max_pages: raw.max_pages,
    };
    let http = if format == SourceFormat::Http {
        if raw.path.is_some() {
            errors.push(("path", "http sources take url, not path".into()));
        }
        match raw_http.validate() {
            Ok(spec) => Some(spec),
            Err(problems) => {
                errors.extend(problems);
                None
            }
        }
    } else {
        if raw_http.any_given() {
            errors.push((
                "url",
                "url, method, headers, query, body, records_path, pagination, retries, \
                 retry_backoff, timeout and max_pages only apply to format = \"http\""
                    .into(),
            ));
        }
        None
    };
    let merge_key = match (raw.merge_key, format) {
        (Some(key), _) if key.is_empty() => {
            errors.push(("merge_key", "must not be empty".into()));
            None
        }
        (Some(key), SourceFormat::Http) => Some(key),
        (Some(_), _) => {
            errors.push((
                "merge_key",
                "only applies to format = \"http\" (for now)".into(),
            ));
            None
        }
        (None, SourceFormat::Http) => Some("id".to_string()),
        (None, _) => None,
    };
    let path = match raw.path {
        None if format == SourceFormat::Http => PathBuf::new(),
        Some(p) => {
            let p = PathBuf::from(p);
            // Absolute paths and object-store URLs (`s3://bucket/key`) stay as written.
            if p.is_absolute() || p.to_string_lossy().contains("://") {
                p
            } else {
                raw_dir.join(p)
            }
        }
        None => {
            errors.push((
                "path",
                "missing (a file or directory under ingest.raw_dir)".into(),
            ));
            PathBuf::new()
        }
    };
    let columns = match raw.columns.as_deref().map(parse_columns) {
        None => None,
        Some(Ok(columns)) => Some(columns),
        Some(Err(message)) => {
            errors.push(("columns", message));
            None
        }
    };
    let delimited = matches!(format, SourceFormat::Csv | SourceFormat::Movielens);
    for (field, given) in [
        ("header", raw.header.is_some()),
        ("delimiter", raw.delimiter.is_some()),
        ("quote", raw.quote.is_some()),
        ("null_value", raw.null_value.is_some()),
        ("encoding", raw.encoding.is_some()),
    ] {
        if given && format != SourceFormat::Csv {
            let why = if delimited {
                "movielens files are always `::`-separated latin-1 without header or quoting"
            } else {
                "only applies to csv sources"
            };
            errors.push((field, why.to_string()));
        }
    }
    let delimiter = raw.delimiter.unwrap_or_else(|| match format {
        SourceFormat::Movielens => "::".into(),
        _ => ",".into(),
    });
    if delimiter.is_empty() {
        errors.push(("delimiter", "must not be empty".into()));
    }
    let quote = match raw.quote.as_deref() {
        None if format == SourceFormat::Csv => Some(b'"'),
        None | Some("") => None,
        Some(q) if q.len() == 1 => Some(q.as_bytes()[0]),
        Some(q) => {
            errors.push((
                "quote",
                format!("must be one ASCII character or \"\", got {q:?}"),
            ));
            None
        }
    };
    let latin1 = match raw
        .encoding
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => format == SourceFormat::Movielens,
        Some("utf-8" | "utf8") => false,
        Some("latin-1" | "latin1" | "iso-8859-1") => true,
        Some(other) => {
            errors.push((
                "encoding",
                format!("unknown encoding {other:?} (utf-8 or latin-1)"),
            ));
            false
        }
    };
    if errors.is_empty() {
        Ok(SourceConfig {
            format,
            path,
            columns,
            header: raw.header.unwrap_or(format == SourceFormat::Csv),
            delimiter,
            quote,
            null_value: raw.null_value,
            latin1,
            http,
            merge_key,
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_str(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("conf/strata.toml");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
        Config::load(
            Some(&file),
            &env(vars),
            &Overrides::default(),
            Path::new("/work"),
        )
    }

    #[test]
    fn defaults_describe_the_movielens_pipeline_on_a_local_lake() {
        let config = Config::load(None, &[], &Overrides::default(), Path::new("/w")).unwrap();
        assert_eq!(config.lake.root, LakeRoot::Local(PathBuf::from("/w/lake")));
        assert_eq!(config.ingest.raw_dir, Path::new("/w/lake/raw"));
        assert_eq!(config.sql_dir, Path::new("/w/sql"));
        assert_eq!(
            config.sources.keys().collect::<Vec<_>>(),
            ["movies", "ratings", "users"]
        );
        assert_eq!(
            config.sources["ratings"].path,
            Path::new("/w/lake/raw/ratings.dat")
        );
        assert!(config.sources["movies"].latin1);
    }

    #[test]
    fn an_s3_lake_root_keeps_its_url_and_storage_options_pass_through() {
        let config = load_str(
            "[lake]\nroot = \"s3://bucket/lakes/prod\"\n[lake.storage_options]\n\
             aws_endpoint = \"http://127.0.0.1:9000\"\naws_allow_http = true\n",
            &[("STRATA_LAKE__STORAGE_OPTIONS__AWS_REGION", "eu-west-1")],
        )
        .unwrap();
        let LakeRoot::Remote(url) = &config.lake.root else {
            panic!("expected a remote root, got {:?}", config.lake.root);
        };
        assert_eq!(url.as_str(), "s3://bucket/lakes/prod/");
        assert_eq!(
            config.lake.storage_options,
            BTreeMap::from([
                ("aws_allow_http".to_string(), "true".to_string()),
                (
                    "aws_endpoint".to_string(),
                    "http://127.0.0.1:9000".to_string()
                ),
                ("aws_region".to_string(), "eu-west-1".to_string()),
            ])
        );
        assert!(!config.lake.allow_unsafe_concurrent_writes);
    }

    #[test]
    fn unsupported_lake_urls_are_reported_on_lake_root() {
        for (root, expected) in [
            ("gs://bucket/x", "unsupported scheme \"gs\""),
            ("s3:///x", "names no bucket"),
        ] {
            let err = load_str(&format!("[lake]\nroot = \"{root}\"\n"), &[]).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("lake.root") && text.contains(expected),
                "{text}"
            );
        }
        let config = load_str("[lake]\nroot = \"file:///data/lake\"\n", &[]).unwrap();
        assert_eq!(
            config.lake.root,
            LakeRoot::Local(PathBuf::from("/data/lake"))
        );
    }

    #[test]
    fn shipped_config_file_matches_built_in_defaults() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let file = repo.join(DEFAULT_CONFIG_PATH);
        let from_file =
            Config::load(Some(&file), &[], &Overrides::default(), Path::new("/x")).unwrap();
        let defaults = Config::load(None, &[], &Overrides::default(), repo).unwrap();
        assert_eq!(from_file, defaults);
    }

    #[test]
    fn file_paths_are_relative_to_the_file_and_env_beats_file_and_flags_beat_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("proj/strata.toml");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(
            &file,
            "[lake]\nroot = \"my-lake\"\n[ingest]\nmax_reject_fraction = 0.2\n",
        )
        .unwrap();
        let cwd = Path::new("/elsewhere");
        let config = Config::load(Some(&file), &[], &Overrides::default(), cwd).unwrap();
        assert_eq!(
            config.lake.root,
            LakeRoot::Local(dir.path().join("proj/my-lake"))
        );
        assert_eq!(config.ingest.max_reject_fraction, 0.2);

        let vars = env(&[
            ("STRATA_LAKE__ROOT", "env-lake"),
            ("STRATA_INGEST__MAX_REJECT_FRACTION", "0.5"),
            ("HOME", "/root"),
        ]);
        let config = Config::load(Some(&file), &vars, &Overrides::default(), cwd).unwrap();
        assert_eq!(
            config.lake.root,
            LakeRoot::Local(PathBuf::from("/elsewhere/env-lake"))
        );
        assert_eq!(config.ingest.max_reject_fraction, 0.5);

        let flags = Overrides {
            lake_root: Some("/flag/lake".into()),
        };
        let config = Config::load(Some(&file), &vars, &flags, cwd).unwrap();
        assert_eq!(
            config.lake.root,
            LakeRoot::Local(PathBuf::from("/flag/lake"))
        );
    }

    #[test]
    fn all_problems_are_reported_at_once_with_origin_and_key() {
        let err = load_str(
            "[lake]\nrooot = \"x\"\n[ingest]\nmax_reject_fraction = 3.0\n[sources.events]\nformat = \"csv\"\n",
            &[("STRATA_RUN__CONCURENCY", "4")],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("strata.toml: lake.rooot: unknown key"),
            "{text}"
        );
        assert!(
            text.contains("environment STRATA_RUN__CONCURENCY: run.concurency: unknown key"),
            "{text}"
        );
        // Semantic problems are only checked once every layer parses.
        let err = load_str(
            "[ingest]\nmax_reject_fraction = 3.0\n[sources.events]\nformat = \"csv\"\n",
            &[],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ingest.max_reject_fraction: must be between 0 and 1"),
            "{text}"
        );
        assert!(text.contains("sources.events.path: missing"), "{text}");
        assert_eq!(err.problems.len(), 2, "{text}");
    }

    #[test]
    fn a_file_with_sources_replaces_the_default_sources() {
        let config = load_str(
            "[sources.events]\nformat = \"ndjson\"\npath = \"events\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(config.sources.keys().collect::<Vec<_>>(), ["events"]);
    }

    #[test]
    fn datafusion_options_pass_through_and_unknown_ones_are_errors() {
        let config = load_str("[datafusion.execution]\nbatch_size = 4096\n", &[]).unwrap();
        assert_eq!(config.datafusion["datafusion.execution.batch_size"], "4096");
        let err = load_str("[datafusion.execution]\nbatch_sise = 4096\n", &[]).unwrap_err();
        assert!(
            err.to_string().contains("datafusion.execution.batch_sise"),
            "{err}"
        );
    }

    #[test]
    fn bad_column_declarations_and_options_are_reported_per_key() {
        let err = load_str(
            "[sources.t]\nformat = \"parquet\"\npath = \"x\"\nheader = true\ncolumns = \"a nosuchtype\"\n",
            &[],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sources.t.columns"), "{text}");
        assert!(
            text.contains("sources.t.header: only applies to csv sources"),
            "{text}"
        );
    }
}
