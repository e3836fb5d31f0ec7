//! The step graph: which tables the pipeline builds and in what order.
//!
//! Nodes are the steps [`crate::pipeline::step`] reads: one ingest step per configured source and
//! one step per step file in the SQL directory. Edges come from what each step reads (a SQL step's
//! table references, a training step's `input`): nobody declares the DAG by hand. This module owns
//! building and checking the graph, its order and `--select`. It matches on no step kind: it asks
//! `step` for the ingest steps of the configured sources and for the step files of the SQL
//! directory, and works with what every [`Step`] answers (reads, writes, origin). It draws nothing
//! (that is [`render`]'s).
//!
//! Invariants after [`Dag::build`]: every table is written by at most one step; every table a step
//! reads is produced by another step or already exists in the lake; the graph has no cycle; `order`
//! lists the steps so that each comes after everything it reads.

pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{Lake, TableName};
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{DagError, Error, Result};
use crate::pipeline::step::{self, Step, StepKind, ingest};

pub use render::DagFormat;

/// The validated step graph.
#[derive(Debug, Clone)]
pub struct Dag {
    steps: BTreeMap<TableName, Step>,
    order: Vec<TableName>,
    /// The configured engine, so the graph can say where each step runs.
    engine: Engine,
}

impl Dag {
    /// Reads the SQL directory and the configured sources and checks the graph.
    pub async fn build(config: &Config, lake: &Lake) -> Result<Dag> {
        // Tables a step may read without a producer: those already in the lake.
        let existing: BTreeSet<TableName> = lake.list().await?.into_iter().collect();
        let mut steps = BTreeMap::new();
        let mut problems = Vec::new();
        for (source, spec) in &config.sources {
            let (step, mut wrong) = ingest::read(source, spec, &config.steps);
            problems.append(&mut wrong);
            steps.insert(step.table.clone(), step);
        }
        for file in step::step_files(&config.sql_dir)? {
            match file.read(config.steps.get(&file.table)) {
                Ok(step) => {
                    if let Some(existing) = steps.get(&file.table) {
                        problems.push(format!(
                            "{}: table {} is also produced by {}",
                            file.path.display(),
                            file.table,
                            existing.origin()
                        ));
                    } else {
                        steps.insert(file.table, step);
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
                    "config [steps.\"{table}\"]: no step file {}",
                    step::step_file_names(&config.sql_dir, table)
                ));
            }
        }
        if !problems.is_empty() {
            return Err(DagError { problems }.into());
        }
        let order = topological_order(&steps)?;
        Ok(Dag {
            steps,
            order,
            engine: config.engine.clone(),
        })
    }

    /// Steps in dependency order.
    pub fn ordered(&self) -> impl Iterator<Item = &Step> {
        self.order.iter().map(|t| &self.steps[t])
    }

    pub fn step(&self, table: &TableName) -> Option<&Step> {
        self.steps.get(table)
    }

    /// The columns that identify a row of `table` (what `strata diff` matches rows on): its SQL
    /// step's `unique_key`, else the first key of its `unique` expectations; empty when neither
    /// is declared or no SQL step builds the table.
    pub fn natural_key(&self, table: &TableName) -> Vec<String> {
        let Some(StepKind::Sql(sql)) = self.step(table).map(|s| &s.kind) else {
            return Vec::new();
        };
        if !sql.settings.unique_key.is_empty() {
            return sql.settings.unique_key.clone();
        }
        sql.settings
            .expect
            .unique
            .first()
            .map(|key| key.columns())
            .unwrap_or_default()
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
    Err(DagError::new(describe_cycle(steps, &unsorted)).into())
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
    use crate::pipeline::retry::RetryPolicy;
    use crate::pipeline::settings::StepSettings;
    use crate::pipeline::step::{SqlStep, StepKind};

    fn step(table: &str, reads: &[&str]) -> Step {
        Step {
            table: table.parse().unwrap(),
            kind: StepKind::Sql(Box::new(SqlStep {
                file: format!("sql/{}.sql", table.replace('.', "/")).into(),
                sql: String::new(),
                settings: StepSettings::default(),
                variables: Default::default(),
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
}
