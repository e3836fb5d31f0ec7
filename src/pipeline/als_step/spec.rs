//! What an ALS step is asked to do: `sql/gold/<name>.als.toml`, merged key by key with
//! `[steps."gold.<name>"]` from the config file (the config wins), as for SQL steps.
//!
//! ```toml
//! input = "silver.als_input"   # user_id, item_id, rating[, weight]
//! factors = 10
//! iterations = 10
//! regularization = 0.1
//! k = 20
//! [eval]
//! holdout_fraction = 0.2
//! ```
//!
//! Unknown keys and out-of-range values are errors naming the file.

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Table;

use crate::catalog::{Layer, TableName};
use crate::error::Result;
use crate::ml::als::AlsParams;

/// The file suffix that marks an ALS step in the SQL directory.
pub const FILE_SUFFIX: &str = ".als.toml";

/// The tables every ALS step writes, in commit order (`system.model_runs` is appended last).
pub const USER_RECOMMENDATIONS: &str = "user_recommendations";
pub const SIMILAR_ITEMS: &str = "similar_items";
pub const USER_FACTORS: &str = "user_factors";
pub const ITEM_FACTORS: &str = "item_factors";
pub const ITEM_POPULARITY: &str = "item_popularity";
pub const GOLD_OUTPUTS: [&str; 5] = [
    USER_FACTORS,
    ITEM_FACTORS,
    ITEM_POPULARITY,
    SIMILAR_ITEMS,
    USER_RECOMMENDATIONS,
];

/// The gold tables an ALS step writes.
pub fn gold_outputs() -> Vec<TableName> {
    GOLD_OUTPUTS
        .iter()
        .map(|name| TableName::new(Layer::Gold, *name))
        .collect()
}

/// A resolved ALS step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlsSpec {
    /// The table to train on.
    pub input: String,
    pub user_column: String,
    pub item_column: String,
    pub rating_column: String,
    /// Optional per-row weight (implicit only): the interaction strength is `rating * weight`.
    /// Used when the input has this column.
    pub weight_column: String,
    /// Rank of the factorisation.
    pub factors: usize,
    pub iterations: usize,
    /// Lambda; unset: 0.1 (Spark's regParam), 1.0 with biases. Always set after [`Self::resolve`]
    /// (as the fingerprint, written before this key could be left out, expects).
    pub regularization: Option<f32>,
    /// Explicit only: a row with n ratings is penalised by `regularization * n^exponent`; 1 is
    /// ALS-WR (Spark), 0.5 the weighted trace norm that works best with biases. Unset: 1, or 0.5
    /// with biases ([`AlsParams::default_regularization`]). Always set after [`Self::resolve`].
    pub regularization_exponent: Option<f32>,
    /// Implicit feedback (Hu, Koren, Volinsky 2008) instead of explicit ALS-WR.
    pub implicit: bool,
    /// Implicit only: confidence `1 + alpha * r`.
    pub alpha: f32,
    /// Explicit only: learn user and item biases around the global mean.
    pub biases: bool,
    /// Implicit only: conjugate-gradient steps per row and half-iteration.
    pub cg_steps: usize,
    pub seed: u64,
    /// Recommendations kept per user in `gold.user_recommendations`.
    pub k: usize,
    /// Neighbours kept per item in `gold.similar_items`.
    pub similar_k: usize,
    /// Worker threads for training and scoring; 0 means one per core.
    pub threads: usize,
    pub eval: EvalSpec,
}

impl Default for AlsSpec {
    fn default() -> Self {
        let params = AlsParams::default();
        Self {
            input: "silver.als_input".into(),
            user_column: "user_id".into(),
            item_column: "item_id".into(),
            rating_column: "rating".into(),
            weight_column: "weight".into(),
            factors: params.factors,
            iterations: params.iterations,
            regularization: None,
            regularization_exponent: None,
            implicit: params.implicit,
            alpha: params.alpha,
            biases: params.biases,
            cg_steps: params.cg_steps,
            seed: params.seed,
            k: 20,
            similar_k: 20,
            threads: 0,
            eval: EvalSpec::default(),
        }
    }
}

/// How the step measures the model before it goes live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSpec {
    /// Fraction of the input's (user, item) pairs held out for test, chosen by a seeded hash of
    /// the pair (so the split does not depend on row order). Default 0.2 without `test_table`;
    /// 0 turns evaluation off.
    pub holdout_fraction: Option<f64>,
    pub seed: u64,
    /// A table of test ratings (same columns as the input) instead of a random holdout.
    pub test_table: Option<String>,
    /// After evaluating, train the published model on every input row (the evaluated model saw
    /// only the training part). Off: the evaluated model is the one published.
    pub refit: bool,
    /// Test ratings at or above this are relevant for the ranking metrics.
    pub relevance_threshold: f32,
    /// The ranking metrics average over at most this many users with relevant test items, a
    /// sample drawn by a seeded hash of the user id (0: every user). RMSE always uses every test
    /// pair. `system.model_runs.ndcg_at_10_ci95` says how precise the sampled NDCG is.
    /// Left out of the serialised settings at its default, so the fingerprint of a step written
    /// before this key existed is unchanged and upgrading does not retrain (the model does not
    /// depend on it); any other value is part of the fingerprint.
    #[serde(skip_serializing_if = "is_default_max_users")]
    pub max_users: usize,
}

const DEFAULT_EVAL_MAX_USERS: usize = 20_000;

fn is_default_max_users(max_users: &usize) -> bool {
    *max_users == DEFAULT_EVAL_MAX_USERS
}

impl Default for EvalSpec {
    fn default() -> Self {
        Self {
            holdout_fraction: None,
            seed: 42,
            test_table: None,
            refit: true,
            relevance_threshold: 4.0,
            max_users: DEFAULT_EVAL_MAX_USERS,
        }
    }
}

impl AlsSpec {
    /// Reads the step file, merges the config's settings over it and validates the result.
    pub fn resolve(file: &Path, config: Option<&Table>) -> Result<AlsSpec> {
        let spec =
            crate::pipeline::settings::read_step_file(file, config, "ALS", AlsSpec::validate)?;
        Ok(spec.resolved())
    }

    /// The spec with every default that depends on other keys filled in (the regularization).
    pub fn resolved(mut self) -> AlsSpec {
        let params = self.params();
        self.regularization = Some(params.regularization);
        self.regularization_exponent = Some(params.regularization_exponent);
        self
    }

    fn validate(&self) -> std::result::Result<(), String> {
        self.params().validate().map_err(|e| e.to_string())?;
        self.input_table()?;
        self.test_table()?;
        if self.k == 0 || self.similar_k == 0 {
            return Err("k and similar_k must be at least 1".into());
        }
        if self.iterations == 0 {
            return Err("iterations must be at least 1".into());
        }
        if let Some(f) = self.eval.holdout_fraction {
            if !(0.0..1.0).contains(&f) {
                return Err(format!("eval.holdout_fraction must be in [0, 1), got {f}"));
            }
            if self.eval.test_table.is_some() {
                return Err("set either eval.test_table or eval.holdout_fraction, not both".into());
            }
        }
        Ok(())
    }

    /// The holdout fraction in use: 0 with a test table, 0.2 when not set.
    pub fn holdout_fraction(&self) -> f64 {
        match (&self.eval.test_table, self.eval.holdout_fraction) {
            (Some(_), _) => 0.0,
            (None, f) => f.unwrap_or(0.2),
        }
    }

    pub fn input_table(&self) -> std::result::Result<TableName, String> {
        self.input
            .parse()
            .map_err(|e| format!("input = {:?}: {e}", self.input))
    }

    pub fn test_table(&self) -> std::result::Result<Option<TableName>, String> {
        self.eval
            .test_table
            .as_deref()
            .map(|t| {
                t.parse()
                    .map_err(|e| format!("eval.test_table = {t:?}: {e}"))
            })
            .transpose()
    }

    /// The tables the step reads.
    pub fn reads(&self) -> Vec<TableName> {
        let mut reads: Vec<TableName> = self.input_table().into_iter().collect();
        reads.extend(self.test_table().ok().flatten());
        reads
    }

    /// The training hyper-parameters.
    pub fn params(&self) -> AlsParams {
        let (regularization, exponent) =
            AlsParams::default_regularization(self.implicit, self.biases);
        AlsParams {
            factors: self.factors,
            iterations: self.iterations,
            regularization: self.regularization.unwrap_or(regularization),
            regularization_exponent: self.regularization_exponent.unwrap_or(exponent),
            alpha: self.alpha,
            seed: self.seed,
            implicit: self.implicit,
            biases: self.biases,
            cg_steps: self.cg_steps,
            k: self.k,
        }
    }

    /// Whether a model is evaluated before it goes live.
    pub fn evaluates(&self) -> bool {
        self.eval.test_table.is_some() || self.holdout_fraction() > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str, config: Option<&str>) -> Result<AlsSpec> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("recommendations.als.toml");
        std::fs::write(&file, text).unwrap();
        let config: Option<Table> = config.map(|c| c.parse().unwrap());
        AlsSpec::resolve(&file, config.as_ref())
    }

    #[test]
    fn an_empty_file_is_spark_like_explicit_als_with_a_holdout() {
        let spec = resolve("", None).unwrap();
        assert_eq!(spec.input_table().unwrap().to_string(), "silver.als_input");
        assert_eq!((spec.factors, spec.iterations, spec.k), (10, 10, 20));
        assert!(spec.evaluates());
        assert_eq!(spec.reads().len(), 1);
    }

    #[test]
    fn config_wins_key_by_key() {
        let spec = resolve(
            "factors = 32\nimplicit = true\n[eval]\nholdout_fraction = 0.1\n",
            Some("factors = 8\neval.refit = false"),
        )
        .unwrap();
        assert_eq!(spec.factors, 8);
        assert!(spec.implicit);
        assert_eq!(spec.holdout_fraction(), 0.1);
        assert!(!spec.eval.refit);
    }

    #[test]
    fn bad_settings_name_the_file_and_the_key() {
        for (text, needle) in [
            ("factor = 3", "factor"),
            ("factors = 0", "factors"),
            ("input = \"als_input\"", "input"),
            ("[eval]\nholdout_fraction = 1.5", "holdout_fraction"),
            (
                "[eval]\ntest_table = \"silver.t\"\nholdout_fraction = 0.2",
                "either",
            ),
            ("implicit = true\nbiases = true", "biases"),
        ] {
            let err = resolve(text, None).unwrap_err().to_string();
            assert!(err.contains("recommendations.als.toml"), "{err}");
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn biases_without_a_regularization_get_the_weighted_trace_norm_and_a_set_key_wins() {
        let lambda = |text: &str| {
            let p = resolve(text, None).unwrap().params();
            (p.regularization, p.regularization_exponent)
        };
        assert_eq!(lambda(""), (0.1, 1.0));
        assert_eq!(lambda("implicit = true"), (0.1, 1.0));
        assert_eq!(lambda("biases = true"), (1.0, 0.5));
        assert_eq!(lambda("biases = true\nregularization = 0.2"), (0.2, 0.5));
        assert_eq!(
            lambda("biases = true\nregularization_exponent = 1.0"),
            (1.0, 1.0)
        );
    }

    #[test]
    fn a_test_table_is_read_too() {
        let spec = resolve("[eval]\ntest_table = \"silver.als_test\"", None).unwrap();
        let reads: Vec<String> = spec.reads().iter().map(|t| t.to_string()).collect();
        assert_eq!(reads, ["silver.als_input", "silver.als_test"]);
    }
}
