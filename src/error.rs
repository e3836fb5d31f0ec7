//! The crate-wide error type.
//!
//! Each variant says who is at fault and carries the context a user needs to act (file, line, step,
//! table, version) as fields, not as pre-formatted strings. `Error::exit_code` maps faults to the CLI's
//! documented exit codes: 2 for usage/config errors, 1 for everything that failed while doing the work.

use std::path::PathBuf;

use crate::catalog::TableName;
use crate::config::ConfigError;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration (file, environment or flags) is invalid; every problem is listed.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// A command-line argument is malformed (bad table name, bad timestamp...).
    #[error("{0}")]
    Usage(String),

    /// A table name that does not exist in the lake.
    #[error("table {0} does not exist (run `strata tables` to list the lake)")]
    TableNotFound(TableName),

    /// The lake's object store cannot be reached or used (bucket, credentials, endpoint,
    /// conditional writes); the message names the URL and what to check.
    #[error("{0}")]
    Storage(String),

    /// `strata healthcheck`: the server did not answer `/health` with 200.
    #[error("{0}")]
    Unhealthy(String),

    /// A requested Delta version that the table does not have.
    #[error("table {table} has no version {version} (run `strata history {table}`)")]
    VersionNotFound { table: TableName, version: u64 },

    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The SQL step files do not form a valid pipeline (unknown table, cycle, bad file name...).
    #[error("{0}")]
    Dag(String),

    /// A SQL file could not be parsed or planned.
    #[error("{}: {message}", file.display())]
    Sql { file: PathBuf, message: String },

    /// A user query could not be parsed, planned or executed.
    #[error("query failed: {0}")]
    Query(#[source] datafusion::error::DataFusionError),

    /// A step header or step settings are invalid.
    #[error("{}: {message}", file.display())]
    StepSettings { file: PathBuf, message: String },

    /// An expectation failed: the step was not committed.
    #[error("step {step}: expectation {expectation} failed: {detail}")]
    Expectation {
        step: TableName,
        expectation: String,
        detail: String,
    },

    /// A source could not be ingested (unreadable file, too many rejected rows...).
    #[error("ingest of {table} failed: {message}")]
    Ingest { table: TableName, message: String },

    /// A step failed while executing or committing; the table is unchanged.
    #[error("step {step} failed: {source}")]
    Step {
        step: TableName,
        #[source]
        source: Box<Error>,
    },

    /// An ALS step could not read its input or train; nothing was published.
    #[error("ALS step {step}: {message}")]
    Als { step: TableName, message: String },

    /// A classifier step could not read its input or train; nothing was published.
    #[error("classifier step {step}: {message}")]
    Classifier { step: TableName, message: String },

    /// Rows cannot join a table: a column they share has another type.
    #[error("table {table}: {message}")]
    SchemaConflict { table: TableName, message: String },

    /// A step attempt ran longer than its `timeout` and was cancelled; it committed nothing.
    #[error("step {step} timed out after {} and was cancelled", humantime::format_duration(*timeout))]
    StepTimeout {
        step: TableName,
        timeout: std::time::Duration,
    },

    /// Another run holds the lake.
    #[error(
        "the lake is busy: {holder} holds {lock}; wait for it to finish (a lock left by a process \
         that is gone or whose lease ran out is recovered automatically)"
    )]
    LakeBusy { lock: String, holder: String },

    /// One or more steps failed during `strata run`; each has been reported already.
    #[error("{failed} step(s) failed, {skipped} skipped because an upstream step failed")]
    RunFailed { failed: usize, skipped: usize },

    /// DataFusion failed while executing a plan Strata built.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// Arrow failed while building or converting batches.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// The Delta log or a Delta operation failed.
    #[error("delta table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: deltalake::DeltaTableError,
    },

    /// `strata bench als` could not read its files or train.
    #[error(transparent)]
    Bench(#[from] crate::ml::als::BenchError),

    /// Output could not be serialised.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Exit code for the CLI: 2 for usage/config errors, 1 for failures while doing the work.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) | Error::Dag(_) | Error::StepSettings { .. } => 2,
            _ => 1,
        }
    }

    /// Wraps a deltalake error with the table it concerns.
    pub fn delta(table: impl std::fmt::Display, source: deltalake::DeltaTableError) -> Self {
        Error::Delta {
            table: table.to_string(),
            source,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The error and its sources on one line each, as the CLI prints them.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(&format!("\n  caused by: {next}"));
        }
        source = s.source();
    }
    text
}
