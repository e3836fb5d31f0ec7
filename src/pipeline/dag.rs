//! The step graph: which tables the pipeline builds and in what order.
//!
//! Nodes are ingest steps (one per configured source, producing `bronze.<source>`), SQL steps (one
//! per `sql/<layer>/<name>.sql`, producing `layer.name`), ALS steps (`sql/gold/<name>.als.toml`,
//! producing the gold recommendation tables) and classifier steps
//! (`sql/<layer>/<name>.classifier.toml`, producing `<name>_predictions` and `<name>_model`).
//! Edges are read from the SQL itself with DataFusion's `resolve_table_references` (and from a
//! training step's `input`): nobody declares the DAG by hand.
//!
//! Invariants after [`Dag::build`]: every SQL file is a single `SELECT`/`WITH` query; every table it
//! reads is produced by another step or already exists in the lake; the graph has no cycle; `order`
//! lists the steps so that each comes after everything it reads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use datafusion::common::TableReference;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use toml::Table;

use crate::catalog::{Lake, Layer, TableName};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pipeline::als_step::{self, AlsStep, spec::AlsSpec};
use crate::pipeline::classifier_step::{self, ClassifierStep, spec::ClassifierSpec};
use crate::pipeline::retry::{self, RetryPolicy};
use crate::pipeline::settings::{self, StepSettings};

/// Table functions that may appear in FROM clauses; they are not tables.
const TABLE_FUNCTIONS: [&str; 4] = ["table_version", "table_as_of", "generate_series", "range"];

/// What a step does.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// Ingest the configured source of this name into `bronze.<name>`.
    Ingest { source: String },
    /// Run a SQL query into the table.
    Sql(Box<SqlStep>),
    /// Train ALS and publish the recommendation tables.
    Als(Box<AlsStep>),
    /// Train a classifier and publish its predictions and model tables.
    Classifier(Box<ClassifierStep>),
}

#[derive(Debug, Clone)]
pub struct SqlStep {
    pub file: PathBuf,
    pub sql: String,
    pub settings: StepSettings,
}

/// One step of the pipeline and the tables it reads.
#[derive(Debug, Clone)]
pub struct Step {
    /// The step's name: the table it produces (an ALS step: `layer.<file stem>`).
    pub table: TableName,
    pub kind: StepKind,
    pub reads: BTreeSet<TableName>,
    /// The steps producing what this step reads (filled by [`Dag::build`]).
    pub after: BTreeSet<TableName>,
    /// Retries, backoff and timeout of each attempt.
    pub retry: RetryPolicy,
}

impl Step {
    /// Where the step is defined, for messages: the SQL file or the config source.
    pub fn origin(&self) -> String {
        match &self.kind {
            StepKind::Ingest { source } => format!("source {source}"),
            StepKind::Sql(sql) => sql.file.display().to_string(),
            StepKind::Als(als) => als.file.display().to_string(),
            StepKind::Classifier(c) => c.file.display().to_string(),
        }
    }

    /// The tables the step writes.
    pub fn writes(&self) -> Vec<TableName> {
        match &self.kind {
            StepKind::Als(_) => als_step::spec::gold_outputs(),
            StepKind::Classifier(_) => classifier_step::spec::outputs(&self.table).to_vec(),
            _ => vec![self.table.clone()],
        }
    }

    fn kind_label(&self) -> String {
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
}

/// The validated step graph.
#[derive(Debug, Clone)]
pub struct Dag {
    steps: BTreeMap<TableName, Step>,
    order: Vec<TableName>,
}

impl Dag {
    /// Reads the SQL directory and the configured sources and checks the graph.
    pub async fn build(config: &Config, lake: &Lake) -> Result<Dag> {
        // Tables a step may read without a producer: those already in the lake.
        let existing: std::collections::BTreeSet<TableName> =
            lake.list().await?.into_iter().collect();
        let mut steps = BTreeMap::new();
        let mut problems = Vec::new();
        for source in config.sources.keys() {
            let table = TableName::new(Layer::Bronze, source.clone());
            let mut settings = config.steps.get(&table).cloned().unwrap_or_default();
            let retry = RetryPolicy::take_from(&mut settings).unwrap_or_else(|message| {
                problems.push(format!("config [steps.\"{table}\"]: {message}"));
                RetryPolicy::default()
            });
            if let Some(key) = settings.keys().next() {
                problems.push(format!(
                    "config [steps.\"{table}\"]: unknown key {key:?} (an ingest step takes {})",
                    retry::KEYS.join(", ")
                ));
            }
            steps.insert(
                table.clone(),
                Step {
                    table,
                    kind: StepKind::Ingest {
                        source: source.clone(),
                    },
                    reads: BTreeSet::new(),
                    after: BTreeSet::new(),
                    retry,
                },
            );
        }
        for (table, file, kind) in step_files(&config.sql_dir)? {
            let settings = config.steps.get(&table);
            let step = match kind {
                FileKind::Sql => read_sql_step(&table, &file, settings),
                FileKind::Als => read_als_step(&table, &file, settings),
                FileKind::Classifier => read_classifier_step(&table, &file, settings),
            };
            match step {
                Ok(step) => {
                    if let Some(existing) = steps.get(&table) {
                        problems.push(format!(
                            "{}: table {table} is also produced by {}",
                            file.display(),
                            existing.origin()
                        ));
                    } else {
                        steps.insert(table, step);
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        let mut producers: BTreeMap<TableName, TableName> = BTreeMap::new();
        for step in steps.values() {
            for written in step.writes() {
                if let Some(other) = producers.insert(written.clone(), step.table.clone()) {
                    problems.push(format!(
                        "{}: table {written} is also produced by {}",
                        step.origin(),
                        steps[&other].origin()
                    ));
                }
            }
        }
        for step in steps.values_mut() {
            for read in &step.reads {
                match producers.get(read) {
                    Some(producer) if producer == &step.table => problems.push(format!(
                        "cycle: {} reads {read}, which it writes",
                        step.origin()
                    )),
                    Some(producer) => {
                        step.after.insert(producer.clone());
                    }
                    None if existing.contains(read) => {}
                    None => problems.push(format!(
                        "{}: reads {read}, which no step produces and the lake does not hold",
                        step.origin()
                    )),
                }
            }
        }
        for table in config.steps.keys() {
            if !steps.contains_key(table) {
                problems.push(format!(
                    "config [steps.\"{table}\"]: no step file {}/{}/{}.sql (or {}{}, {}{})",
                    config.sql_dir.display(),
                    table.layer,
                    table.name,
                    table.name,
                    als_step::spec::FILE_SUFFIX,
                    table.name,
                    classifier_step::spec::FILE_SUFFIX
                ));
            }
        }
        if !problems.is_empty() {
            return Err(Error::Dag(problems.join("\n")));
        }
        let order = topological_order(&steps)?;
        Ok(Dag { steps, order })
    }

    /// Steps in dependency order.
    pub fn ordered(&self) -> impl Iterator<Item = &Step> {
        self.order.iter().map(|t| &self.steps[t])
    }

    pub fn step(&self, table: &TableName) -> Option<&Step> {
        self.steps.get(table)
    }

    /// The steps to run for `--select` (plus everything downstream of them with `downstream`).
    /// A selection names a step or a table a step writes. An empty selection means every step.
    pub fn select(&self, selected: &[TableName], downstream: bool) -> Result<BTreeSet<TableName>> {
        if selected.is_empty() {
            return Ok(self.steps.keys().cloned().collect());
        }
        let mut chosen = BTreeSet::new();
        for table in selected {
            let step = self
                .steps
                .values()
                .find(|s| &s.table == table || s.writes().contains(table))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--select {table}: no step produces it (see `strata dag`)"
                    ))
                })?;
            chosen.insert(step.table.clone());
        }
        if downstream {
            // `order` is topological, so one pass in order reaches every transitive dependant.
            for table in &self.order {
                if self.steps[table].after.iter().any(|r| chosen.contains(r)) {
                    chosen.insert(table.clone());
                }
            }
        }
        Ok(chosen)
    }

    /// The graph as text (`strata dag`): `text`, `dot` or `mermaid`.
    pub fn render(&self, format: DagFormat) -> String {
        let mut out = String::new();
        match format {
            DagFormat::Text => {
                for step in self.ordered() {
                    let kind = step.kind_label();
                    let reads: Vec<String> = step.reads.iter().map(|t| t.to_string()).collect();
                    let _ = write!(out, "{} [{kind}] <- {}", step.table, step.origin());
                    if !reads.is_empty() {
                        let _ = write!(out, " reads {}", reads.join(", "));
                    }
                    let writes = step.writes();
                    if writes != [step.table.clone()] {
                        let writes: Vec<String> = writes.iter().map(|t| t.to_string()).collect();
                        let _ = write!(out, " writes {}", writes.join(", "));
                    }
                    out.push('\n');
                }
            }
            DagFormat::Dot => {
                out.push_str("digraph strata {\n  rankdir=LR;\n");
                for step in self.ordered() {
                    let shape = match step.kind {
                        StepKind::Ingest { .. } => "cylinder",
                        StepKind::Sql(_) => "box",
                        StepKind::Als(_) | StepKind::Classifier(_) => "component",
                    };
                    let _ = writeln!(out, "  \"{}\" [shape={shape}];", step.table);
                    for read in &step.after {
                        let _ = writeln!(out, "  \"{read}\" -> \"{}\";", step.table);
                    }
                }
                out.push_str("}\n");
            }
            DagFormat::Mermaid => {
                out.push_str("flowchart LR\n");
                for step in self.ordered() {
                    let id = mermaid_id(&step.table);
                    match step.kind {
                        StepKind::Ingest { .. } => {
                            let _ = writeln!(out, "  {id}[(\"{}\")]", step.table);
                        }
                        StepKind::Sql(_) => {
                            let _ = writeln!(out, "  {id}[\"{}\"]", step.table);
                        }
                        StepKind::Als(_) | StepKind::Classifier(_) => {
                            let _ = writeln!(out, "  {id}[[\"{}\"]]", step.table);
                        }
                    }
                    for read in &step.after {
                        let _ = writeln!(out, "  {} --> {id}", mermaid_id(read));
                    }
                }
            }
        }
        out
    }
}

/// Output formats of `strata dag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DagFormat {
    Text,
    Dot,
    Mermaid,
}

fn mermaid_id(table: &TableName) -> String {
    format!("{}_{}", table.layer, table.name)
}

/// What a file in the SQL directory defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FileKind {
    /// `<name>.sql`: a SQL step.
    Sql,
    /// `<name>.als.toml`: an ALS step.
    Als,
    /// `<name>.classifier.toml`: a classifier step.
    Classifier,
}

/// Every `<sql_dir>/<layer>/<name>.sql`, `<name>.als.toml` and `<name>.classifier.toml`, sorted. Other files are ignored; a
/// step file with an invalid name or in the `system` layer is an error.
fn step_files(sql_dir: &Path) -> Result<Vec<(TableName, PathBuf, FileKind)>> {
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
            let (stem, kind) = if let Some(stem) =
                file_name.strip_suffix(als_step::spec::FILE_SUFFIX)
            {
                (stem.to_string(), FileKind::Als)
            } else if let Some(stem) = file_name.strip_suffix(classifier_step::spec::FILE_SUFFIX) {
                (stem.to_string(), FileKind::Classifier)
            } else if let Some(stem) = file_name.strip_suffix(".sql") {
                (stem.to_string(), FileKind::Sql)
            } else {
                continue;
            };
            if layer == Layer::System {
                return Err(Error::Dag(format!(
                    "{}: the system layer is Strata's own; put steps under bronze, silver or gold",
                    path.display()
                )));
            }
            TableName::validate_name(&stem)
                .map_err(|message| Error::Dag(format!("{}: {message}", path.display())))?;
            files.push((TableName::new(layer, stem), path, kind));
        }
    }
    files.sort();
    Ok(files)
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

/// Reads one ALS step file; it reads its `input` (and `eval.test_table`). Its retry policy comes
/// from the config (`timeout` is refused: training cannot be interrupted safely mid-publish).
fn read_als_step(name: &TableName, file: &Path, config: Option<&Table>) -> Result<Step> {
    let mut config = config.cloned().unwrap_or_default();
    let retry = training_retry_policy(name, file, &mut config, "ALS")?;
    let spec = AlsSpec::resolve(file, Some(&config))?;
    Ok(Step {
        retry,
        table: name.clone(),
        reads: spec.reads().into_iter().collect(),
        kind: StepKind::Als(Box::new(AlsStep {
            file: file.to_path_buf(),
            spec,
        })),
        after: BTreeSet::new(),
    })
}

/// Reads one classifier step file; it reads its `input`. Retries come from the config; as for
/// ALS steps, `timeout` is refused.
fn read_classifier_step(name: &TableName, file: &Path, config: Option<&Table>) -> Result<Step> {
    let mut config = config.cloned().unwrap_or_default();
    let retry = training_retry_policy(name, file, &mut config, "classifier")?;
    let spec = ClassifierSpec::resolve(file, Some(&config))?;
    let input = spec.input_table().map_err(|message| Error::StepSettings {
        file: file.to_path_buf(),
        message,
    })?;
    Ok(Step {
        retry,
        table: name.clone(),
        reads: BTreeSet::from([input]),
        kind: StepKind::Classifier(Box::new(ClassifierStep {
            file: file.to_path_buf(),
            spec,
        })),
        after: BTreeSet::new(),
    })
}

/// Reads and parses one SQL step; its reads come from the query's table references.
fn read_sql_step(table: &TableName, file: &Path, config: Option<&Table>) -> Result<Step> {
    let sql = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let mut merged = settings::parse_header(file, &sql)?;
    if let Some(config) = config {
        settings::merge(&mut merged, config);
    }
    let retry = RetryPolicy::take_from(&mut merged).map_err(|message| Error::StepSettings {
        file: file.to_path_buf(),
        message,
    })?;
    let settings = settings::resolve(file, merged, None)?;
    let statement = parse_single_query(file, &sql)?;
    let (references, _ctes) =
        resolve_table_references(&statement, true).map_err(|e| Error::Sql {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
    let mut reads = BTreeSet::new();
    for reference in references {
        if let Some(read) = referenced_table(file, &reference)? {
            if &read == table {
                return Err(Error::Dag(format!(
                    "cycle: {} reads its own table {table}",
                    file.display()
                )));
            }
            reads.insert(read);
        }
    }
    Ok(Step {
        table: table.clone(),
        kind: StepKind::Sql(Box::new(SqlStep {
            file: file.to_path_buf(),
            sql,
            settings,
        })),
        reads,
        after: BTreeSet::new(),
        retry,
    })
}

/// Parses the file as exactly one `SELECT` / `WITH` query.
pub fn parse_single_query(file: &Path, sql: &str) -> Result<Statement> {
    let sql_error = |message: String| Error::Sql {
        file: file.to_path_buf(),
        message,
    };
    let mut statements = DFParser::parse_sql(sql).map_err(|e| sql_error(e.to_string()))?;
    if statements.len() != 1 {
        return Err(sql_error(format!(
            "a step file holds exactly one SELECT query, found {} statements",
            statements.len()
        )));
    }
    let statement = statements.pop_front().expect("one statement");
    match &statement {
        Statement::Statement(inner) if matches!(inner.as_ref(), SqlStatement::Query(_)) => {
            Ok(statement)
        }
        other => Err(sql_error(format!(
            "a step file holds one SELECT query, found: {}",
            first_words(&other.to_string())
        ))),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(4).collect::<Vec<_>>().join(" ")
}

/// Maps a table reference to a lake table; table functions map to `None`.
fn referenced_table(file: &Path, reference: &TableReference) -> Result<Option<TableName>> {
    let dag_error = |message: String| Error::Dag(format!("{}: {message}", file.display()));
    match reference {
        TableReference::Bare { table } => {
            if TABLE_FUNCTIONS.contains(&table.as_ref()) {
                Ok(None)
            } else {
                Err(dag_error(format!(
                    "unqualified table {table}: name lake tables as layer.name, e.g. silver.{table}"
                )))
            }
        }
        TableReference::Partial { schema, table } => format!("{schema}.{table}")
            .parse::<TableName>()
            .map(Some)
            .map_err(|e| dag_error(e.to_string())),
        TableReference::Full {
            catalog,
            schema,
            table,
        } => {
            if catalog.as_ref() != "datafusion" {
                return Err(dag_error(format!("unknown catalog {catalog}")));
            }
            format!("{schema}.{table}")
                .parse::<TableName>()
                .map(Some)
                .map_err(|e| dag_error(e.to_string()))
        }
    }
}

/// Kahn's algorithm with a sorted ready set, so the order is deterministic. On a cycle, names the files
/// along it.
fn topological_order(steps: &BTreeMap<TableName, Step>) -> Result<Vec<TableName>> {
    let mut remaining: BTreeMap<&TableName, usize> = steps
        .values()
        .map(|s| {
            let internal = s.after.iter().filter(|r| steps.contains_key(*r)).count();
            (&s.table, internal)
        })
        .collect();
    let mut ready: BTreeSet<&TableName> = remaining
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(t, _)| *t)
        .collect();
    let mut order = Vec::with_capacity(steps.len());
    while let Some(next) = ready.pop_first() {
        remaining.remove(next);
        order.push(next.clone());
        for step in steps.values() {
            if step.after.contains(next) {
                let n = remaining.get_mut(&step.table).expect("unvisited step");
                *n -= 1;
                if *n == 0 {
                    ready.insert(&step.table);
                }
            }
        }
    }
    if remaining.is_empty() {
        return Ok(order);
    }
    let unsorted: BTreeSet<&TableName> = remaining.keys().copied().collect();
    Err(Error::Dag(describe_cycle(steps, &unsorted)))
}

/// Walks read edges among the steps Kahn's algorithm could not sort until one repeats: that loop is a
/// cycle. Every unsorted step reads another unsorted step, so the walk always finds one.
fn describe_cycle(steps: &BTreeMap<TableName, Step>, unsorted: &BTreeSet<&TableName>) -> String {
    let start = *unsorted.first().expect("a cycle has at least one step");
    let mut path = vec![start];
    loop {
        let current = path.last().expect("non-empty path");
        let next = steps[*current]
            .after
            .iter()
            .find(|r| unsorted.contains(r))
            .expect("every unsorted step reads another unsorted step");
        if let Some(pos) = path.iter().position(|t| *t == next) {
            let cycle: Vec<String> = path[pos..]
                .iter()
                .chain(std::iter::once(&next))
                .map(|t| format!("{} ({})", t, steps[*t].origin()))
                .collect();
            return format!("cycle between steps: {}", cycle.join(" reads "));
        }
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(table: &str, reads: &[&str]) -> Step {
        Step {
            table: table.parse().unwrap(),
            kind: StepKind::Sql(Box::new(SqlStep {
                file: format!("sql/{}.sql", table.replace('.', "/")).into(),
                sql: String::new(),
                settings: StepSettings::default(),
            })),
            reads: reads.iter().map(|r| r.parse().unwrap()).collect(),
            after: reads.iter().map(|r| r.parse().unwrap()).collect(),
            retry: RetryPolicy::default(),
        }
    }

    fn graph(steps: Vec<Step>) -> BTreeMap<TableName, Step> {
        steps.into_iter().map(|s| (s.table.clone(), s)).collect()
    }

    #[test]
    fn order_puts_every_step_after_what_it_reads() {
        let steps = graph(vec![
            step("gold.b", &["silver.a", "silver.c"]),
            step("silver.a", &["bronze.raw"]),
            step("silver.c", &["silver.a"]),
            step("bronze.raw", &[]),
        ]);
        let order = topological_order(&steps).unwrap();
        let names: Vec<String> = order.iter().map(|t| t.to_string()).collect();
        assert_eq!(names, ["bronze.raw", "silver.a", "silver.c", "gold.b"]);
    }

    #[test]
    fn a_cycle_names_the_files_on_it() {
        let steps = graph(vec![
            step("silver.a", &["silver.b"]),
            step("silver.b", &["silver.c"]),
            step("silver.c", &["silver.a"]),
            step("gold.d", &["silver.c"]),
        ]);
        let err = topological_order(&steps).unwrap_err().to_string();
        for file in ["sql/silver/a.sql", "sql/silver/b.sql", "sql/silver/c.sql"] {
            assert!(err.contains(file), "{err}");
        }
        assert!(!err.contains("gold/d"), "{err}");
    }

    #[test]
    fn only_a_single_select_is_a_step() {
        let file = Path::new("sql/silver/x.sql");
        assert!(parse_single_query(file, "WITH a AS (SELECT 1) SELECT * FROM a").is_ok());
        let err = parse_single_query(file, "SELECT 1; SELECT 2").unwrap_err();
        assert!(err.to_string().contains("2 statements"), "{err}");
        let err = parse_single_query(file, "DROP TABLE silver.x").unwrap_err();
        assert!(err.to_string().contains("sql/silver/x.sql"), "{err}");
        let err = parse_single_query(file, "SELEC 1").unwrap_err();
        assert!(err.to_string().contains("sql/silver/x.sql"), "{err}");
    }

    #[test]
    fn references_map_to_tables_and_table_functions_are_not_tables() {
        let file = Path::new("f.sql");
        let stmt = parse_single_query(
            file,
            "WITH r AS (SELECT * FROM silver.ratings) \
             SELECT * FROM r JOIN gold.x USING (id) \
             UNION ALL SELECT * FROM table_version('gold.x', 1)",
        )
        .unwrap();
        let (refs, _) = resolve_table_references(&stmt, true).unwrap();
        let tables: Vec<String> = refs
            .iter()
            .filter_map(|r| referenced_table(file, r).unwrap())
            .map(|t| t.to_string())
            .collect();
        assert_eq!(tables, ["gold.x", "silver.ratings"]);
        let stmt = parse_single_query(file, "SELECT * FROM ratings").unwrap();
        let (refs, _) = resolve_table_references(&stmt, true).unwrap();
        assert!(referenced_table(file, &refs[0]).is_err());
    }
}
