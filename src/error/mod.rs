//! The crate-wide error type.
//!
//! Each variant carries the context a user needs to act (file, line, step, table, version) as
//! fields, and the typed error it wraps as its `#[source]`, not flattened into a string. Each
//! belongs to one [`Fault`], who is to blame, and that alone decides how it leaves Strata:
//!
//! | fault | examples | CLI exit | HTTP |
//! |---|---|---|---|
//! | [`Fault::User`] | config, flags, table names, step files | 2 | 400 |
//! | [`Fault::Data`] | rejected input, failed expectation, a failed step | 1 | 422 |
//! | [`Fault::System`] | storage, I/O, a panicked task | 1 | 500, detail only in the log |
//!
//! Some variants have a more precise HTTP status of their own (404 for a missing table, 409 for a
//! busy lake, 503 for unreachable storage); `api::error` maps those first.

pub mod chain;

use std::fmt;
use std::path::PathBuf;

pub use chain::error_chain;

use crate::catalog::table_name::{TableName, TableNameError};

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

    /// A fault inside Strata, not the user's and not the data's (a task that panicked, a URL
    /// Strata built that did not parse): exit 1, HTTP 500 with the detail only in the log.
    #[error("internal error: {0} (please report it)")]
    Internal(String),

    /// A server could not listen or stopped serving.
    #[error("{what}: {source}")]
    Serve {
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// A table name that does not parse (`silver.ratings` is the shape).
    #[error(transparent)]
    TableName(#[from] TableNameError),

    /// A table name that does not exist in the lake.
    #[error("table {0} does not exist (run `strata tables` to list the lake)")]
    TableNotFound(TableName),

    /// The lake's object store cannot be reached or used (bucket, credentials, endpoint,
    /// conditional writes); the message names the URL and what to check.
    #[error("{0}")]
    Storage(String),

    /// The Ballista cluster cannot be reached or used (scheduler down, executors lost, a version
    /// mismatch); the message names the scheduler and what to check.
    #[error("{0}")]
    Cluster(String),

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
    #[error(transparent)]
    Dag(#[from] DagError),

    /// A SQL file could not be parsed or planned.
    #[error("{}: {message}", file.display())]
    Sql { file: PathBuf, message: String },

    /// A user query could not be parsed, planned or executed.
    #[error("query failed: {0}")]
    Query(#[source] datafusion::error::DataFusionError),

    /// A step header or step settings are invalid.
    #[error("{}: {message}", file.display())]
    StepSettings { file: PathBuf, message: String },

    /// A named query file (`sql/api/<name>.sql`) is invalid.
    #[error("{}: {message}", file.display())]
    NamedQuery { file: PathBuf, message: String },

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

    /// An HTTP source could not be fetched; nothing was committed.
    #[error("ingest of {table} failed: {source}")]
    Fetch {
        table: TableName,
        #[source]
        source: crate::ingest::http::FetchError,
    },

    /// A step or query needed more memory than the limit allows: a DataFusion operator even after
    /// spilling to disk, or what Strata holds itself (a model in training).
    #[error(
        "{work} ran out of memory: {operator} could not get {wanted} more within the {limit}; \
         {remedy}"
    )]
    MemoryLimit {
        /// `step silver.movie_ratings` or `the query`.
        work: String,
        operator: String,
        wanted: String,
        /// The limit and where it came from; for DataFusion's operators, that spilling was tried.
        limit: String,
        /// What to change (and, for a step, that nothing was committed).
        remedy: String,
    },

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

    /// A training step's model could not be trained; nothing was published.
    #[error("{kind} step {step}: {source}")]
    Training {
        /// `ALS`, `classifier`.
        kind: &'static str,
        step: TableName,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

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

    /// A backfill day's step did not run because the same step of the day before did not
    /// complete (days are chained step by step, so later days never read a missing day).
    #[error(
        "{step}: not run, because {step} of {previous} did not complete (a backfill runs each step of its days in order)"
    )]
    PreviousDayIncomplete { step: TableName, previous: String },

    /// Days of a backfill failed (each day's run says why in `system.step_runs`).
    #[error(
        "{failed} day(s) of backfill {backfill_id} failed; fix the cause and run `strata backfill --resume {backfill_id}`"
    )]
    BackfillFailed { failed: usize, backfill_id: String },

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

    /// The object store listed a table's log shorter than it is (a stale listing; right after a
    /// commit too, when delta-rs lists the log again to load the version it wrote). Only a store
    /// causes it, so the message says so, and what to do.
    #[error(
        "delta table {table}: the object store listed its log shorter than it is (a stale \
         listing); what was committed stays committed: run again to go on ({source})"
    )]
    StaleListing {
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

/// The step files do not form a valid pipeline: every problem found, each naming its file or step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct DagError {
    pub problems: Vec<String>,
}

impl DagError {
    /// One problem.
    pub fn new(problem: impl Into<String>) -> Self {
        DagError {
            problems: vec![problem.into()],
        }
    }
}

/// Who is at fault for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// What the user asked for or configured is wrong: they fix it and try again.
    User,
    /// The data, or a step working on it, failed; or the lake is not in the state asked about.
    Data,
    /// Strata or what it runs on failed: storage, the disk, a bug.
    System,
}

impl Error {
    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            // A step that failed because storage or Strata failed is not the data's fault.
            Error::Step { source, .. } => match source.fault() {
                Fault::System => Fault::System,
                Fault::User | Fault::Data => Fault::Data,
            },
            Error::Config(_)
            | Error::Usage(_)
            | Error::TableName(_)
            | Error::Dag(_)
            | Error::StepSettings { .. }
            | Error::NamedQuery { .. } => Fault::User,
            Error::TableNotFound(_)
            | Error::VersionNotFound { .. }
            | Error::Sql { .. }
            | Error::Query(_)
            | Error::Expectation { .. }
            | Error::Ingest { .. }
            | Error::Fetch { .. }
            | Error::Als { .. }
            | Error::Classifier { .. }
            | Error::Training { .. }
            | Error::SchemaConflict { .. }
            | Error::StepTimeout { .. }
            | Error::MemoryLimit { .. }
            | Error::LakeBusy { .. }
            | Error::RunFailed { .. }
            | Error::BackfillFailed { .. }
            | Error::PreviousDayIncomplete { .. }
            | Error::Bench(_) => Fault::Data,
            Error::Internal(_)
            | Error::Serve { .. }
            | Error::Storage(_)
            | Error::Cluster(_)
            | Error::Unhealthy(_)
            | Error::Io { .. }
            | Error::DataFusion(_)
            | Error::Arrow(_)
            | Error::Delta { .. }
            | Error::StaleListing { .. }
            | Error::Json(_) => Fault::System,
        }
    }

    /// Exit code for the CLI: 2 when the user is at fault, 1 for failures while doing the work.
    pub fn exit_code(&self) -> i32 {
        match self.fault() {
            Fault::User => 2,
            Fault::Data | Fault::System => 1,
        }
    }

    /// Wraps a deltalake error with the table it concerns.
    pub fn delta(table: impl std::fmt::Display, source: deltalake::DeltaTableError) -> Self {
        // Delta kernel's words (text only) for a log listed shorter than it is.
        if source.to_string().contains("LogSegment end version") {
            return Error::StaleListing {
                table: table.to_string(),
                source,
            };
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_listed_short_is_named_a_stale_listing_with_what_to_do() {
        let short = deltalake::DeltaTableError::Generic(
            "Generic delta kernel error: LogSegment end version 1 not the same as the specified \
             end version 2"
                .into(),
        );
        let error = Error::delta("system.step_runs", short);
        assert!(matches!(error, Error::StaleListing { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("system.step_runs") && message.contains("run again"),
            "{message}"
        );
        let other = Error::delta(
            "system.step_runs",
            deltalake::DeltaTableError::Generic("boom".into()),
        );
        assert!(matches!(other, Error::Delta { .. }));
    }
}
