//! What a classifier step is asked to do: `sql/<layer>/<name>.classifier.toml`, merged key by key
//! with `[steps."<layer>.<name>"]` from the config file (the config wins), as for ALS steps.
//!
//! ```toml
//! input = "silver.penguins"
//! label = "species"
//! features = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex"]
//! id_column = "penguin_id"   # optional: copied to the predictions
//! trees = 100
//! test_fraction = 0.2
//! seed = 42                 # the forest's and the split's (split_seed = N seeds the split alone)
//! ```
//!
//! Unknown keys and out-of-range values are errors naming the file.

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Table;

use crate::catalog::TableName;
use crate::error::Result;
use crate::ml::forest::ForestParams;

/// The file suffix that marks a classifier step in the SQL directory.
pub const FILE_SUFFIX: &str = ".classifier.toml";

/// The columns a step adds to the test rows in `<name>_predictions`.
pub const PREDICTED: &str = "predicted";
pub const PROBABILITY: &str = "probability";
pub const PROBABILITIES: &str = "probabilities";
pub const CORRECT: &str = "correct";

/// A resolved classifier step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierSpec {
    /// The table to train on.
    pub input: String,
    /// The column holding the class.
    pub label: String,
    /// The columns the model reads, in order.
    pub features: Vec<String>,
    /// Features one-hot encoded as categories. Default: the text and boolean features; list a
    /// numeric column here to treat its values as categories (a year, a code).
    pub categorical: Option<Vec<String>>,
    /// A column identifying rows, copied to the predictions so they join back to the input.
    pub id_column: Option<String>,
    /// About this fraction of the input rows is held out to measure the model (chosen per row by a
    /// seeded hash of its id, see [`crate::ml::forest::holdout`]).
    pub test_fraction: f64,
    /// Seeds the forest (and the split, unless `split_seed` is set): the same input and settings
    /// train the same model.
    pub seed: u64,
    /// Seeds the train/test split alone, to compare forests of several seeds on the same rows.
    pub split_seed: Option<u64>,
    pub trees: u16,
    /// 0: grow each tree until its leaves are pure.
    pub max_depth: u16,
    /// Features tried at each split; 0: the square root of the encoded column count.
    pub features_per_split: usize,
}

impl Default for ClassifierSpec {
    fn default() -> Self {
        let forest = ForestParams::default();
        Self {
            input: String::new(),
            label: String::new(),
            features: Vec::new(),
            categorical: None,
            id_column: None,
            test_fraction: 0.2,
            seed: forest.seed,
            split_seed: None,
            trees: forest.trees,
            max_depth: forest.max_depth,
            features_per_split: forest.features_per_split,
        }
    }
}

impl ClassifierSpec {
    /// Reads the step file, merges the config's settings over it and validates the result.
    pub fn resolve(file: &Path, config: Option<&Table>) -> Result<ClassifierSpec> {
        crate::pipeline::settings::read_step_file(
            file,
            config,
            "classifier",
            ClassifierSpec::validate,
        )
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.input.is_empty() {
            return Err("input is required (the table to train on, e.g. \"silver.x\")".into());
        }
        self.input_table()?;
        if self.label.is_empty() {
            return Err("label is required (the column holding the class)".into());
        }
        if self.features.is_empty() {
            return Err("features is required (the columns the model reads)".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for feature in &self.features {
            if !seen.insert(feature) {
                return Err(format!("features lists {feature:?} twice"));
            }
            if *feature == self.label {
                return Err(format!(
                    "features lists the label {feature:?}: the model would read the answer"
                ));
            }
            if Some(feature) == self.id_column.as_ref() {
                return Err(format!("features lists the id_column {feature:?}"));
            }
        }
        if self.id_column.as_ref() == Some(&self.label) {
            return Err(format!(
                "id_column and label are both {:?}: the id identifies rows, the label is the class",
                self.label
            ));
        }
        for column in self.input_columns() {
            if [PREDICTED, PROBABILITY, PROBABILITIES, CORRECT].contains(&column.as_str()) {
                return Err(format!(
                    "column {column:?} would clash with the column the predictions add; \
                     rename it in the step that builds {}",
                    self.input
                ));
            }
        }
        for name in self.categorical.iter().flatten() {
            if !self.features.contains(name) {
                return Err(format!(
                    "categorical lists {name:?}, which is not in features"
                ));
            }
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(format!(
                "test_fraction must be in (0, 1), got {}",
                self.test_fraction
            ));
        }
        if self.trees == 0 {
            return Err("trees must be at least 1".into());
        }
        Ok(())
    }

    pub fn input_table(&self) -> std::result::Result<TableName, String> {
        self.input
            .parse()
            .map_err(|e| format!("input = {:?}: {e}", self.input))
    }

    /// The columns read from the input: the id (if any), the features, the label.
    pub fn input_columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = self.id_column.iter().cloned().collect();
        columns.extend(self.features.iter().cloned());
        columns.push(self.label.clone());
        columns
    }

    /// The seed of the train/test split.
    pub fn split_seed(&self) -> u64 {
        self.split_seed.unwrap_or(self.seed)
    }

    pub fn forest_params(&self) -> ForestParams {
        ForestParams {
            trees: self.trees,
            max_depth: self.max_depth,
            features_per_split: self.features_per_split,
            seed: self.seed,
        }
    }
}

/// The tables a classifier step named `<layer>.<name>` writes: its predictions for the test rows
/// and its model (one row: the artifact; each training is a new Delta version).
pub fn outputs(step: &TableName) -> [TableName; 2] {
    [predictions_table(step), model_table(step)]
}

pub fn predictions_table(step: &TableName) -> TableName {
    TableName::new(step.layer, format!("{}_predictions", step.name))
}

pub fn model_table(step: &TableName) -> TableName {
    TableName::new(step.layer, format!("{}_model", step.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str, config: Option<&str>) -> Result<ClassifierSpec> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("species.classifier.toml");
        std::fs::write(&file, text).unwrap();
        let config: Option<Table> = config.map(|c| c.parse().unwrap());
        ClassifierSpec::resolve(&file, config.as_ref())
    }

    const MINIMAL: &str = "input = \"silver.penguins\"\nlabel = \"species\"\n\
                           features = [\"bill_length_mm\", \"island\"]\n";

    #[test]
    fn defaults_are_a_hundred_trees_and_a_fifth_held_out() {
        let spec = resolve(MINIMAL, None).unwrap();
        assert_eq!(spec.input_table().unwrap().to_string(), "silver.penguins");
        assert_eq!((spec.trees, spec.test_fraction, spec.seed), (100, 0.2, 42));
        assert_eq!(
            spec.input_columns(),
            ["bill_length_mm", "island", "species"]
        );
    }

    #[test]
    fn config_wins_key_by_key() {
        let spec = resolve(
            &format!("{MINIMAL}trees = 50\n"),
            Some("trees = 7\nseed = 3"),
        )
        .unwrap();
        assert_eq!((spec.trees, spec.seed, spec.split_seed()), (7, 3, 3));
        let spec = resolve(MINIMAL, Some("seed = 3\nsplit_seed = 42")).unwrap();
        assert_eq!((spec.seed, spec.split_seed()), (3, 42));
    }

    #[test]
    fn bad_settings_name_the_file_and_the_key() {
        for (text, needle) in [
            (
                "label = \"species\"\nfeatures = [\"a\"]",
                "input is required",
            ),
            (
                "input = \"silver.p\"\nfeatures = [\"a\"]",
                "label is required",
            ),
            (
                "input = \"silver.p\"\nlabel = \"s\"",
                "features is required",
            ),
            (&format!("{MINIMAL}tree = 3"), "tree"),
            (&format!("{MINIMAL}test_fraction = 1.0"), "test_fraction"),
            (&format!("{MINIMAL}trees = 0"), "trees"),
            (&format!("{MINIMAL}categorical = [\"sex\"]"), "sex"),
            (
                "input = \"silver.p\"\nlabel = \"s\"\nfeatures = [\"s\"]",
                "the label",
            ),
            (
                "input = \"silver.p\"\nlabel = \"s\"\nfeatures = [\"predicted\"]",
                "clash",
            ),
            (
                "input = \"penguins\"\nlabel = \"s\"\nfeatures = [\"a\"]",
                "input",
            ),
            (
                &format!("{MINIMAL}id_column = \"species\""),
                "id_column and label",
            ),
        ] {
            let err = resolve(text, None).unwrap_err().to_string();
            assert!(err.contains("species.classifier.toml"), "{err}");
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
