//! Strata: a lakehouse engine in one binary.
//!
//! Raw files become Delta tables in three layers, driven by SQL:
//!
//! ```text
//!  raw files ──ingest──▶ bronze.<source>          (+ bronze.<source>__rejects, system.ingested_files)
//!                           │
//!            sql/silver/*.sql ──▶ silver.<name>   (one SELECT per file; DAG read from the SQL)
//!                           │
//!            sql/gold/*.sql   ──▶ gold.<name>     (expectations checked before every commit)
//!                           │
//!   sql/gold/<name>.als.toml ──▶ gold.user_recommendations, gold.similar_items, ... (ALS, all or none)
//! ```
//!
//! Tour of the modules:
//! - [`config`]: defaults < config file < `STRATA_*` env < flags, all problems reported at once.
//! - [`catalog`]: `layer.name` ⇄ `<lake>/<layer>/<name>/`; opening tables (latest, version, as-of);
//!   a DataFusion session where every table is queryable, plus `table_version` / `table_as_of`.
//! - [`ingest`]: parsers for CSV, MovieLens `::` files, JSON/NDJSON and Parquet that account for every
//!   line (a row or a reject).
//! - [`pipeline`]: the step DAG, per-step settings and expectations, ingest, SQL and ALS steps,
//!   commits, and the run scheduler.
//! - [`inspect`]: table list, version history, restore.
//! - [`query`]: read-only SQL.
//! - [`fixtures`]: `strata fixtures serve`, recorded JSON APIs served locally for offline examples.
//! - [`sample`]: the seeded MovieLens-shaped data generator.
//! - [`storage`]: lakes on object storage (S3): access checks, conditional-write check, clear errors.
//! - [`ml`]: alternating least squares (training, recommendations, evaluation, `strata bench als`).
//! - [`api`]: `strata serve`, the axum HTTP API (tables, time travel, SQL, recommendations, auth,
//!   version-keyed cache, metrics, OpenAPI).
//! - [`output`], [`cli`]: rendering and the command line.
//!
//! Every table is a plain Delta table, so Spark, DuckDB, pandas and polars read the lake directly.

pub mod api;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod error;
pub mod fixtures;
pub mod ingest;
pub mod inspect;
pub mod ml;
pub mod output;
pub mod pipeline;
pub mod query;
pub mod sample;
pub mod storage;

pub use error::{Error, Result};
