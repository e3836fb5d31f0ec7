//! Reading an ingest step: one per configured source, writing `bronze.<source>`.
//!
//! The step has no file: the source is defined in the config (`[sources.<name>]`, owned by
//! `config` and run by `ingest_step`), and `[steps."bronze.<source>"]` may only set its retry policy.
//! Invariant: the step is built even when its settings are wrong, so the graph can still check what
//! it writes; the problems are returned beside it.

use std::collections::{BTreeMap, BTreeSet};

use toml::Table;

use crate::catalog::{Layer, TableName};
use crate::ingest::SourceSpec;
use crate::pipeline::retry::{self, RetryPolicy};
use crate::pipeline::step::{Step, StepKind};

/// The ingest step of `source` (its settings `spec`), with its retry policy from `steps` (the
/// config's `[steps]`), and every problem with those settings, each naming the config key.
pub fn read(
    source: &str,
    spec: &SourceSpec,
    steps: &BTreeMap<TableName, Table>,
) -> (Step, Vec<String>) {
    let table = TableName::new(Layer::Bronze, source);
    let mut problems = Vec::new();
    let mut settings = steps.get(&table).cloned().unwrap_or_default();
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
    let kind = StepKind::Ingest {
        source: source.to_string(),
        variables: spec
            .location()
            .map(|location| location.variables())
            .unwrap_or_default(),
    };
    (Step::new(table, kind, BTreeSet::new(), retry), problems)
}
