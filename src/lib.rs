//! Strata: a lakehouse engine in one binary.
//!
//! Raw sources become Delta tables in three layers, driven by SQL:
//!
//! ```text
//!  files (local, s3://), HTTP JSON APIs ──ingest──▶ bronze.<source>  (+ __rejects, system.ingested_files)
//!                           │
//!            sql/silver/*.sql ──▶ silver.<name>   (one SELECT per file; DAG read from the SQL)
//!                           │
//!            sql/gold/*.sql   ──▶ gold.<name>     (expectations checked before every commit)
//!                           │
//!   sql/gold/<name>.als.toml ──▶ gold.user_recommendations, ... (ALS, all or none)
//!   sql/<layer>/<name>.classifier.toml ──▶ <name>_predictions, <name>_model (random forest)
//!                                          + a row of system.model_runs per training
//! ```
//!
//! Tour of the modules, from the bottom of the module graph up: each imports only modules listed
//! before it, except that the crate error wraps the typed errors of `catalog::table_name` and
//! `ingest::http`.
//! - [`ml`]: alternating least squares and random forests (training, evaluation, benchmarks);
//!   [`sample`]: the seeded data generators (MovieLens-shaped, and daily ad-tech logs);
//!   [`variables`]: run variables (`--var ds=...`), typed, bound as SQL parameters and filled
//!   into path templates. They import nothing of the crate.
//! - [`error`]: the crate error; each variant's [`error::Fault`] decides exit code and HTTP status.
//! - [`storage`]: where the lake lives (`LakeRoot`: a directory or `s3://`), object-store access
//!   checks, the conditional-write check, clear storage errors, and conditional writes that survive
//!   a lost answer (`storage::retry_safe`). [`memory`]: the memory limit
//!   (`run.memory_limit_mb`, "auto" from the machine), spill areas, out-of-memory errors that
//!   name the operator, the process's peak memory. [`session`]: the one factory of DataFusion
//!   sessions (shared pool, spill area, planner, yield points so any query can be cancelled,
//!   reservations for training steps, a one-shot stream of rows as a table for streaming ingest,
//!   a session whose queries run on a Ballista cluster). [`engine`]: where SQL steps run (`[engine]`: here or on a Ballista cluster) and
//!   `strata cluster`, Ballista's scheduler and executor with the lake's store. [`output`]: rendering. [`fixtures`]: `strata
//!   fixtures serve`, recorded JSON APIs served locally for offline examples.
//! - [`catalog`]: `layer.name` ⇄ `<lake>/<layer>/<name>/`; opening tables (latest, version, as-of);
//!   a session where every table is queryable, plus `table_version` / `table_as_of`.
//! - [`ingest`]: sources as one typed enum (`SourceSpec`), where their files live (`Location`, local
//!   or `s3://`), parsers for CSV, MovieLens `::` files, JSON/NDJSON and Parquet that account for
//!   every line (a row or a reject), and HTTP JSON API fetching.
//! - [`query`]: read-only SQL. [`inspect`]: table list, version history, restore.
//!   [`run_options`]: what a run is asked to do, and cron schedules of runs, as plain data.
//! - [`config`]: defaults < config file < `STRATA_*` env < flags, all problems reported at once;
//!   composes the sections other modules own (sources, run options) with its own (`[serve]` in
//!   `config::serve`).
//! - [`pipeline`]: the step DAG and its step kinds (ingest, SQL, ALS, classifier), expectations,
//!   commits, publishing training outputs all or none, retries, the run scheduler (telling a
//!   `RunObserver` how each step goes, with its live `StepProgress`), backfills (one run per day,
//!   days chained step by step), the run log and the lake lock, and runs started from `serve`
//!   (on request or on a cron schedule).
//! - [`diff`]: what changed in a table between two versions (schema, rows added, removed and
//!   changed), for `strata diff` and the API; the key rows are matched on comes from the caller
//!   (the step's, via [`pipeline::dag::Dag::natural_key`]).
//! - [`api`]: `strata serve`, the axum HTTP API (tables, time travel, diffs, SQL, named queries
//!   with typed parameters from `sql/api/`, recommendations,
//!   models and predictions, runs, auth, version-keyed cache, metrics, OpenAPI, security headers,
//!   connection caps) and the `/ui`
//!   dashboard (`api::ui`: runs, the step graph, tables at any version, lineage, diffs and models
//!   as server-rendered HTML and SVG, with its own sign-in).
//! - [`cli`]: the command line, and what `strata run` shows while it runs (live progress lines on a
//!   terminal).
//!
//! Every table is a plain Delta table, so Spark, DuckDB, pandas and polars read the lake directly.
//! `ARCHITECTURE.md` follows a run and a request through these modules.

pub mod api;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod diff;
pub mod engine;
pub mod error;
pub mod fixtures;
pub mod ingest;
pub mod inspect;
pub mod memory;
pub mod ml;
pub mod output;
pub mod pipeline;
pub mod query;
pub mod run_options;
pub mod sample;
pub mod session;
pub mod storage;
pub mod variables;

pub use error::{Error, Result};
