//! Reading a classifier step file, `sql/<layer>/<name>.classifier.toml`, into a [`Step`].
//!
//! The spec itself is `classifier_step::spec`'s; this module adds what the graph needs: the one
//! table the step reads (its `input`) and its retry policy, where, as for ALS steps, `timeout` is
//! refused.

use std::collections::BTreeSet;
use std::path::Path;

use toml::Table;

use crate::catalog::TableName;
use crate::error::{Error, Result};
use crate::pipeline::classifier_step::{ClassifierStep, spec::ClassifierSpec};
use crate::pipeline::step::{Step, StepKind, training_retry_policy};

/// Reads one classifier step file; `config` is its `[steps."layer.name"]` table.
pub fn read(name: &TableName, file: &Path, config: Option<&Table>) -> Result<Step> {
    let mut config = config.cloned().unwrap_or_default();
    let retry = training_retry_policy(name, file, &mut config, "classifier")?;
    let spec = ClassifierSpec::resolve(file, Some(&config))?;
    let input = spec.input_table().map_err(|message| Error::StepSettings {
        file: file.to_path_buf(),
        message,
    })?;
    let kind = StepKind::Classifier(Box::new(ClassifierStep {
        file: file.to_path_buf(),
        spec,
    }));
    Ok(Step::new(
        name.clone(),
        kind,
        BTreeSet::from([input]),
        retry,
    ))
}
