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
//!
//! This module composes sections owned by the modules that use them (`[sources.*]` is
//! [`crate::ingest::SourceSpec`], `[serve]` is `serve`, read by `api`, the sample is `sample::SampleSpec`)
//! and validates the keys that are its own; `layers` does the generic TOML layering.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Table, Value};

mod layers;
pub mod serve;

use layers::{Layer, LayerKind, MergeRules, check_layer, env_layers, file_layer, merge_layers};

use crate::catalog::table_name::TableName;
use crate::engine::{ClusterUrl, Engine};
pub use crate::error::{ConfigError, Problem};
use crate::ingest::SourceSpec;
use crate::memory::{MemoryLimit, MemoryLimitSetting, SpillArea};
use crate::run_options::{RunOptions, Schedule, Trigger};
use crate::sample::SampleSpec;
use crate::session::SessionOptions;
use crate::storage::{LakeConfig, LakeRoot};
use serve::{RawServe, ServeConfig};

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
memory_limit_mb = "auto"
spill_dir = ""

[engine]
kind = "local"
url = ""
lake_path_shared = false

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
max_concurrent_queries = 4
request_timeout_ms = 60000
max_body_bytes = 1048576
max_connections = 1024
max_connections_per_client = 128
refresh_interval_ms = 1000
cache_entries = 100000
cache_max_mb = 256
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
const PATH_KEYS: [&[&str]; 5] = [
    &["lake", "root"],
    &["ingest", "raw_dir"],
    &["sql", "dir"],
    &["run", "spill_dir"],
    &["serve", "auth", "rs256_public_key_file"],
];

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the lake is and how to reach it.
    pub lake: LakeConfig,
    pub ingest: IngestConfig,
    pub sample: SampleConfig,
    pub sources: BTreeMap<String, SourceSpec>,
    /// Directory holding `<layer>/<name>.sql` step files.
    pub sql_dir: PathBuf,
    /// How many independent steps may run at the same time.
    pub concurrency: usize,
    /// `run.memory_limit_mb`: the memory pool shared by a run's (or a query's) DataFusion
    /// sessions; operators spill to disk beyond it.
    pub memory_limit: MemoryLimitSetting,
    /// `run.spill_dir`: where spill files go; `None` is `strata-spill` in the system temp dir.
    pub spill_dir: Option<PathBuf>,
    /// Per-step settings from the config file, keyed by table; they override the SQL file's header.
    pub steps: BTreeMap<TableName, Table>,
    /// DataFusion options passed through verbatim (`datafusion.execution.batch_size` = "8192").
    pub datafusion: BTreeMap<String, String>,
    /// Where SQL steps run (`[engine]`): here, or on a Ballista cluster.
    pub engine: Engine,
    /// `strata serve`.
    pub serve: ServeConfig,
    /// The run `strata serve` starts on a cron schedule, if any.
    pub schedule: Option<Schedule>,
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

/// Values given on the command line, the highest-precedence layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--lake`: a directory or an `s3://` URL.
    pub lake_root: Option<String>,
}

// ---- the raw, per-layer shape: every field optional so each layer can be checked on its own ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawConfig {
    lake: RawLake,
    ingest: RawIngest,
    sample: RawSample,
    sql: RawSql,
    run: RawRun,
    engine: RawEngine,
    schedule: RawSchedule,
    serve: RawServe,
    /// Checked after merging (a source's `format` decides its keys): see `ingest::SourceSpec`.
    sources: BTreeMap<String, Table>,
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
    memory_limit_mb: Option<Value>,
    spill_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawEngine {
    kind: Option<String>,
    url: Option<String>,
    lake_path_shared: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSchedule {
    cron: Option<String>,
    select: Option<Vec<String>>,
    downstream: Option<bool>,
    full_refresh: Option<bool>,
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
            kind: LayerKind::Defaults,
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
                kind: LayerKind::Flags,
                origin: "flag --lake".into(),
                base_dir: cwd.to_path_buf(),
                values,
            });
        }

        // Each layer on its own: unknown keys and type errors, attributed to the layer.
        for layer in &layers {
            check_layer::<RawConfig>(layer, &mut problems);
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }

        let rules = MergeRules {
            path_keys: &PATH_KEYS,
            replaced_by_files: &["sources"],
        };
        let (merged, origins) = merge_layers(layers, &rules);
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

    /// How a run's (or a command's) DataFusion sessions are set up: one memory pool of
    /// `run.memory_limit_mb` shared by all of them, spilling into a fresh area of the spill
    /// directory that goes when the last clone of the options is dropped.
    pub fn session_options(&self) -> Result<SessionOptions, crate::error::Error> {
        let area = SpillArea::open(&self.spill_root())?;
        SessionOptions::new(
            self.datafusion.clone(),
            MemoryLimit::resolve(self.memory_limit),
            Some(std::sync::Arc::new(area)),
        )
    }

    /// The directory spill areas are made in.
    pub fn spill_root(&self) -> PathBuf {
        self.spill_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("strata-spill"))
    }

    /// The configured source for `bronze.<name>`, if any.
    pub fn source(&self, name: &str) -> Option<&SourceSpec> {
        self.sources.get(name)
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
    let memory_limit = match raw.run.memory_limit_mb.as_ref() {
        None => MemoryLimitSetting::Auto,
        Some(value) => MemoryLimitSetting::from_toml(value).unwrap_or_else(|message| {
            report("run.memory_limit_mb", message);
            MemoryLimitSetting::Auto
        }),
    };

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
        match SourceSpec::from_toml(&source, &raw_dir) {
            Ok(source) => {
                sources.insert(name, source);
            }
            Err(problems) => {
                for (field, message) in problems {
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
    let engine = validate_engine(raw.engine, &lake_root, &mut report);

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
        memory_limit,
        spill_dir: raw
            .run
            .spill_dir
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from),
        steps,
        datafusion,
        engine,
        serve,
        schedule,
    }
}

/// `[engine]`: `kind = "local"`, or `"ballista"` with the scheduler's `url`. A lake on local disk
/// cannot be read by executors on other machines, so it needs `lake_path_shared = true` (every
/// node sees the lake at the same path: one machine, or a shared file system).
fn validate_engine(
    raw: RawEngine,
    lake_root: &LakeRoot,
    report: &mut dyn FnMut(&str, String),
) -> Engine {
    let url = raw.url.unwrap_or_default();
    match raw.kind.as_deref().unwrap_or("local") {
        "local" => Engine::Local,
        "ballista" => {
            let cluster = match ClusterUrl::parse(&url) {
                Ok(cluster) => cluster,
                Err(message) => {
                    report("engine.url", message);
                    return Engine::Local;
                }
            };
            if let LakeRoot::Local(path) = lake_root
                && !raw.lake_path_shared.unwrap_or(false)
            {
                report(
                    "engine.lake_path_shared",
                    format!(
                        "the lake is on local disk ({}), which executors on other machines cannot \
                         read: put it on s3://, or set engine.lake_path_shared = true if every \
                         executor sees it at this same path",
                        path.display()
                    ),
                );
            }
            Engine::Ballista(cluster)
        }
        other => {
            report(
                "engine.kind",
                format!("{other:?} is not an engine: \"local\" or \"ballista\""),
            );
            Engine::Local
        }
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
            // `ds` is set to each fire time's date when the run starts (`pipeline::trigger`).
            vars: Default::default(),
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
        let SourceSpec::MovieLens(ratings) = &config.sources["ratings"] else {
            panic!(
                "ratings is a movielens source: {:?}",
                config.sources["ratings"]
            );
        };
        assert_eq!(
            ratings.path,
            crate::ingest::Location::Local(PathBuf::from("/w/lake/raw/ratings.dat"))
        );
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
            text.contains("sources.t.header: not a key of format = \"parquet\" sources"),
            "{text}"
        );
    }
}
