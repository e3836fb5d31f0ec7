//! Reading an ALS step file, `sql/gold/<name>.als.toml`, into a [`Step`].
//!
//! The spec itself (keys, defaults, merging with `[steps."gold.<name>"]`) is `als_step::spec`'s;
//! this module adds what the graph needs: the tables the step reads (its `input` and
//! `eval.test_table`) and its retry policy, where `timeout` is refused (training and the
//! all-or-none publish cannot be interrupted safely).

use std::path::Path;

use toml::Table;

use crate::catalog::TableName;
use crate::error::Result;
use crate::pipeline::als_step::{AlsStep, spec::AlsSpec};
use crate::pipeline::step::{Step, StepKind, training_retry_policy};

/// Reads one ALS step file; `config` is its `[steps."gold.<name>"]` table.
pub fn read(name: &TableName, file: &Path, config: Option<&Table>) -> Result<Step> {
    let mut config = config.cloned().unwrap_or_default();
    let retry = training_retry_policy(name, file, &mut config, "ALS")?;
    let spec = AlsSpec::resolve(file, Some(&config))?;
    let reads = spec.reads().into_iter().collect();
    let kind = StepKind::Als(Box::new(AlsStep {
        file: file.to_path_buf(),
        spec,
    }));
    Ok(Step::new(name.clone(), kind, reads, retry))
}
