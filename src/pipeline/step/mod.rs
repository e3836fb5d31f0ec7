//! Step kinds: what each kind of step is, where it is defined, what it writes, how `strata dag`
//! shows it and which module runs it, in one place.
//!
//! A step is an ingest (one per configured source, writing `bronze.<source>`), a SQL query
//! (`sql/<layer>/<name>.sql`), an ALS training (`sql/gold/<name>.als.toml`) or a classifier
//! training (`sql/<layer>/<name>.classifier.toml`). This module owns every fact that differs by
//! kind: the suffix that marks a step file ([`FileKind`]), the walk of the SQL directory that finds
//! step files ([`step_files`]), reading a definition into a [`Step`] (one submodule per kind:
//! [`ingest`], [`sql`], [`als`], [`classifier`]), and on [`Step`] where it is defined, the tables
//! it writes, its label and node [`Shape`] and the dispatch to the kind's runner.
//!
//! Not here: the graph (edges between steps, validation, order: [`crate::pipeline::dag`]), how a
//! graph is drawn ([`crate::pipeline::dag::render`], which knows shapes, not kinds), and what a kind
//! does when it runs (`ingest_step`, `sql_step`, `als_step`, `classifier_step`).
//!
//! Invariant: a file in the SQL directory is a step file of at most one kind (no suffix ends
//! another), and a step read from `sql/<layer>/<name><suffix>` is named `layer.name`.
//!
//! Adding a kind `foo`, defined by `sql/<layer>/<name>.foo.toml`, touches:
//! 1. its runner, `pipeline/foo_step` with `run(ctx, &table, &FooStep)` (and `pub mod foo_step;`
//!    in `pipeline/mod.rs`);
//! 2. its reader, `step/foo.rs` (plus `pub mod foo;` here): the file and its `[steps."layer.name"]`
//!    settings into a [`Step`] with its reads and retry policy;
//! 3. this file: a `StepKind::Foo` variant, a `FileKind::Foo` variant with its entry in
//!    [`FileKind::ALL`], and one arm in each `match` on them (`FileKind::suffix`, `StepFile::read`,
//!    `Step::origin`, `Step::writes`, `Step::label`, `Step::shape`, `Step::run`); the compiler
//!    names every arm that is missing.
//!
//! `dag`, its renderer and `run` need no change.

pub mod als;
pub mod classifier;
pub mod ingest;
pub mod sql;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use toml::Table;

use crate::catalog::{Layer, TableName};
use crate::engine::Engine;
use crate::error::{DagError, Error, Result};
use crate::pipeline::als_step::{self, AlsStep};
use crate::pipeline::classifier_step::{self, ClassifierStep};
use crate::pipeline::retry::RetryPolicy;
use crate::pipeline::{StepContext, StepResult, ingest_step, sql_step};

pub use crate::pipeline::sql_step::SqlStep;

/// What a step does.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// Ingest the configured source of this name into `bronze.<name>`; `variables` are the run
    /// variables its path is a template of.
    Ingest {
        source: String,
        variables: BTreeSet<String>,
    },
    /// Run a SQL query into the table.
    Sql(Box<SqlStep>),
    /// Train ALS and publish the recommendation tables.
    Als(Box<AlsStep>),
    /// Train a classifier and publish its predictions and model tables.
    Classifier(Box<ClassifierStep>),
}

/// How `strata dag` draws a step. A role rather than a kind, so the renderer needs no change when a
/// kind is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Data entering the lake.
    Source,
    /// A query over lake tables.
    Query,
    /// A training that publishes a model and its tables.
    Model,
}

/// One step of the pipeline and the tables it reads.
#[derive(Debug, Clone)]
pub struct Step {
    /// The step's name: the table it produces (an ALS step: `layer.<file stem>`).
    pub table: TableName,
    pub kind: StepKind,
    pub reads: BTreeSet<TableName>,
    /// The steps producing what this step reads (filled by [`crate::pipeline::dag::Dag::build`]).
    pub after: BTreeSet<TableName>,
    /// Retries, backoff and timeout of each attempt.
    pub retry: RetryPolicy,
}

impl Step {
    /// A step as read from its definition; the graph fills `after` later.
    pub fn new(
        table: TableName,
        kind: StepKind,
        reads: BTreeSet<TableName>,
        retry: RetryPolicy,
    ) -> Step {
        Step {
            table,
            kind,
            reads,
            after: BTreeSet::new(),
            retry,
        }
    }

    /// Where the step's work runs: SQL steps on the configured engine, every other kind (ingest,
    /// training) in this process.
    pub fn engine(&self, configured: &Engine) -> Engine {
        match &self.kind {
            StepKind::Sql(_) => configured.clone(),
            StepKind::Ingest { .. } | StepKind::Als(_) | StepKind::Classifier(_) => Engine::Local,
        }
    }

    /// The run variables the step reads: a SQL step's `$name` parameters, an ingest step's
    /// `{name}` path template. A run must give each a value.
    pub fn variables(&self) -> BTreeSet<String> {
        match &self.kind {
            StepKind::Sql(sql) => sql.variables.clone(),
            StepKind::Ingest { variables, .. } => variables.clone(),
            StepKind::Als(_) | StepKind::Classifier(_) => BTreeSet::new(),
        }
    }

    /// Where the step is defined, for messages: the step file or the config source.
    pub fn origin(&self) -> String {
        match &self.kind {
            StepKind::Ingest { source, .. } => format!("source {source}"),
            StepKind::Sql(sql) => sql.file.display().to_string(),
            StepKind::Als(als) => als.file.display().to_string(),
            StepKind::Classifier(c) => c.file.display().to_string(),
        }
    }

    /// The tables the step writes.
    pub fn writes(&self) -> Vec<TableName> {
        match &self.kind {
            StepKind::Ingest { .. } | StepKind::Sql(_) => vec![self.table.clone()],
            StepKind::Als(_) => als_step::spec::gold_outputs(),
            StepKind::Classifier(_) => classifier_step::spec::outputs(&self.table).to_vec(),
        }
    }

    /// The kind as `strata dag` prints it (a SQL step adds its materialization).
    pub fn label(&self) -> String {
        match &self.kind {
            StepKind::Ingest { .. } => "ingest".to_string(),
            StepKind::Sql(sql) => format!(
                "sql {}",
                sql.settings.materialization.unwrap_or_default().as_str()
            ),
            StepKind::Als(_) => "als".to_string(),
            StepKind::Classifier(_) => "classifier".to_string(),
        }
    }

    /// How `strata dag` draws the step.
    pub fn shape(&self) -> Shape {
        match &self.kind {
            StepKind::Ingest { .. } => Shape::Source,
            StepKind::Sql(_) => Shape::Query,
            StepKind::Als(_) | StepKind::Classifier(_) => Shape::Model,
        }
    }

    /// Runs one attempt of the step with the kind's runner.
    pub async fn run(&self, ctx: &StepContext) -> Result<StepResult> {
        let result = match &self.kind {
            StepKind::Ingest { source, .. } => ingest_step::run(ctx, &self.table, source).await,
            StepKind::Sql(sql) => sql_step::run(ctx, &self.table, sql, self.reads.iter()).await,
            StepKind::Als(als) => als_step::run(ctx, &self.table, als).await,
            StepKind::Classifier(c) => classifier_step::run(ctx, &self.table, c).await,
        };
        result.map_err(|e| {
            let work = format!("step {}", self.table);
            crate::memory::over_limit(e, &work, &ctx.session.memory, true)
        })
    }
}

/// The kinds of step defined by a file in the SQL directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    /// `<name>.sql`: a SQL step.
    Sql,
    /// `<name>.als.toml`: an ALS step.
    Als,
    /// `<name>.classifier.toml`: a classifier step.
    Classifier,
}

impl FileKind {
    /// Every file kind; messages list their suffixes in this order.
    pub const ALL: [FileKind; 3] = [FileKind::Sql, FileKind::Als, FileKind::Classifier];

    /// The end of a file name that marks a step file of this kind.
    pub fn suffix(self) -> &'static str {
        match self {
            FileKind::Sql => ".sql",
            FileKind::Als => als_step::spec::FILE_SUFFIX,
            FileKind::Classifier => classifier_step::spec::FILE_SUFFIX,
        }
    }

    /// The kind of step a file name defines and the name's stem; `None` for other files.
    fn of(file_name: &str) -> Option<(FileKind, &str)> {
        FileKind::ALL
            .into_iter()
            .find_map(|kind| Some((kind, file_name.strip_suffix(kind.suffix())?)))
    }
}

/// A step file found in the SQL directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StepFile {
    /// The table the step is named after: `layer.<stem>`.
    pub table: TableName,
    pub path: PathBuf,
    pub kind: FileKind,
}

impl StepFile {
    /// Reads the file into a step; `settings` is its `[steps."layer.name"]` table from the config.
    pub fn read(&self, settings: Option<&Table>) -> Result<Step> {
        match self.kind {
            FileKind::Sql => sql::read(&self.table, &self.path, settings),
            FileKind::Als => als::read(&self.table, &self.path, settings),
            FileKind::Classifier => classifier::read(&self.table, &self.path, settings),
        }
    }
}

/// Every step file `<sql_dir>/<layer>/<name><suffix>`, sorted. Other files are ignored; a step file
/// with an invalid name or in the `system` layer is an error.
pub fn step_files(sql_dir: &Path) -> Result<Vec<StepFile>> {
    let mut files = Vec::new();
    if !sql_dir.is_dir() {
        return Ok(files);
    }
    for layer in [Layer::Bronze, Layer::Silver, Layer::Gold, Layer::System] {
        let dir = sql_dir.join(layer.as_str());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            let file_name = path
                .file_name()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let Some((kind, stem)) = FileKind::of(file_name) else {
                continue;
            };
            let stem = stem.to_string();
            if layer == Layer::System {
                return Err(Error::Dag(DagError::new(format!(
                    "{}: the system layer is Strata's own; put steps under bronze, silver or gold",
                    path.display()
                ))));
            }
            TableName::validate_name(&stem).map_err(|message| {
                Error::Dag(DagError::new(format!("{}: {message}", path.display())))
            })?;
            files.push(StepFile {
                table: TableName::new(layer, stem),
                path,
                kind,
            });
        }
    }
    files.sort();
    Ok(files)
}

/// The files that would define a step for `table`, for a message about settings with no step:
/// `<sql_dir>/silver/x.sql (or x.als.toml, x.classifier.toml)`.
pub fn step_file_names(sql_dir: &Path, table: &TableName) -> String {
    let [first, others @ ..] = FileKind::ALL;
    let others: Vec<String> = others
        .iter()
        .map(|kind| format!("{}{}", table.name, kind.suffix()))
        .collect();
    format!(
        "{}/{}/{}{} (or {})",
        sql_dir.display(),
        table.layer,
        table.name,
        first.suffix(),
        others.join(", ")
    )
}

/// Takes the retry policy of a training step out of its config settings. `timeout` is refused:
/// training and the all-or-none publish cannot be interrupted safely.
fn training_retry_policy(
    name: &TableName,
    file: &Path,
    config: &mut Table,
    kind: &str,
) -> Result<RetryPolicy> {
    let policy_error = |message: String| Error::StepSettings {
        file: file.to_path_buf(),
        message: format!("config [steps.\"{name}\"]: {message}"),
    };
    let retry = RetryPolicy::take_from(config).map_err(policy_error)?;
    if retry.timeout.is_some() {
        return Err(policy_error(format!(
            "timeout is not supported for {kind} steps (training and the all-or-none publish \
             cannot be interrupted safely); use retries"
        )));
    }
    Ok(retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_suffix_ends_another() {
        for a in FileKind::ALL {
            for b in FileKind::ALL {
                if a != b {
                    assert!(!a.suffix().ends_with(b.suffix()), "{a:?} ends with {b:?}");
                }
            }
        }
    }

    #[test]
    fn a_file_name_has_one_kind_and_a_stem() {
        assert_eq!(FileKind::of("x.sql"), Some((FileKind::Sql, "x")));
        assert_eq!(FileKind::of("x.als.toml"), Some((FileKind::Als, "x")));
        assert_eq!(
            FileKind::of("x.classifier.toml"),
            Some((FileKind::Classifier, "x"))
        );
        assert_eq!(FileKind::of("x.toml"), None);
        assert_eq!(FileKind::of("README.md"), None);
    }

    #[test]
    fn step_file_names_lists_every_suffix() {
        let table: TableName = "silver.x".parse().unwrap();
        assert_eq!(
            step_file_names(Path::new("sql"), &table),
            "sql/silver/x.sql (or x.als.toml, x.classifier.toml)"
        );
    }
}
