//! A random-forest classifier over encoded records: training with a seed, class probabilities,
//! and a byte artifact to store in the lake and load back in the server.
//!
//! smartcore trains the forest. Its `RandomForestClassifier` predicts labels only and keeps its
//! trees private, so the fitted forest is re-read (through `serde_json::Value`, which keeps every
//! `f64` exact) into [`Trees`], a struct with the same field names; each tree's own
//! `predict_proba` then gives its vote, and the probabilities are the vote fractions over the
//! trees. The argmax uses smartcore's tie-break (the first maximum), so the predicted class is the
//! one `RandomForestClassifier::predict` gives.

use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::DecisionTreeClassifier;

use super::encoding::{Encoder, FeatureValue, FieldError};

type Matrix = DenseMatrix<f64>;
type Forest = RandomForestClassifier<f64, u32, Matrix, Vec<u32>>;
type Tree = DecisionTreeClassifier<f64, u32, Matrix, Vec<u32>>;

/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    pub trees: u16,
    /// 0: grow until pure.
    pub max_depth: u16,
    /// Features tried at each split; 0: the square root of the column count.
    pub features_per_split: usize,
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            trees: 100,
            max_depth: 0,
            features_per_split: 0,
            seed: 42,
        }
    }
}

/// The trees of a fitted forest: the fields of smartcore's forest that prediction needs.
#[derive(Debug, Serialize, Deserialize)]
struct Trees {
    trees: Option<Vec<Tree>>,
    classes: Option<Vec<u32>>,
}

/// A trained classifier: the encoder, the trees and the class names.
#[derive(Debug, Serialize, Deserialize)]
pub struct Classifier {
    pub encoder: Encoder,
    /// Class names; label `i` of the forest is `classes[i]`.
    pub classes: Vec<String>,
    pub params: ForestParams,
    trees: Trees,
}

/// A prediction: the class and the probability of every class (in [`Classifier::classes`] order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub class: String,
    pub probabilities: Vec<f64>,
}

impl Classifier {
    /// Trains on encoded-ready records and their class names.
    pub fn train(
        encoder: Encoder,
        records: &[Vec<FeatureValue>],
        labels: &[String],
        params: ForestParams,
    ) -> Result<Classifier, String> {
        if records.is_empty() {
            return Err("no training rows".into());
        }
        let mut classes: Vec<String> = labels.to_vec();
        classes.sort();
        classes.dedup();
        if classes.len() < 2 {
            return Err(format!(
                "only one class ({:?}) in the training rows",
                classes
            ));
        }
        let rows: Vec<Vec<f64>> = records
            .iter()
            .map(|r| encoder.encode(r))
            .collect::<Result<_, FieldError>>()
            .map_err(|e| e.to_string())?;
        let y: Vec<u32> = labels
            .iter()
            .map(|l| classes.binary_search(l).expect("every label is a class") as u32)
            .collect();
        let x = DenseMatrix::from_2d_vec(&rows).map_err(|e| e.to_string())?;
        let mut settings = RandomForestClassifierParameters::default()
            .with_n_trees(params.trees.max(1))
            .with_seed(params.seed);
        if params.max_depth > 0 {
            settings = settings.with_max_depth(params.max_depth);
        }
        if params.features_per_split > 0 {
            settings = settings.with_m(params.features_per_split);
        }
        let forest: Forest =
            RandomForestClassifier::fit(&x, &y, settings).map_err(|e| e.to_string())?;
        let trees: Trees = serde_json::to_value(&forest)
            .and_then(serde_json::from_value)
            .map_err(|e| format!("cannot read the fitted forest's trees: {e}"))?;
        Ok(Classifier {
            encoder,
            classes,
            params,
            trees,
        })
    }

    /// Predicts one record; a bad record is an error naming the field.
    pub fn predict(&self, record: &[FeatureValue]) -> Result<Prediction, FieldError> {
        let row = self.encoder.encode(record)?;
        let width = row.len();
        let x = DenseMatrix::new(1, width, row, false).map_err(|e| FieldError {
            field: "record".into(),
            message: e.to_string(),
        })?;
        let trees = self.trees.trees.as_deref().unwrap_or_default();
        // Tree labels index `trees.classes`, which are the sorted labels the forest saw: 0..k.
        let labels = self.trees.classes.as_deref().unwrap_or_default();
        let mut probabilities = vec![0.0; self.classes.len()];
        for tree in trees {
            let votes = tree.predict_proba(&x).map_err(|e| FieldError {
                field: "record".into(),
                message: e.to_string(),
            })?;
            for (column, label) in labels.iter().enumerate() {
                probabilities[*label as usize] += *votes.get((0, column));
            }
        }
        let n = trees.len().max(1) as f64;
        probabilities.iter_mut().for_each(|p| *p /= n);
        let mut best = 0;
        for (i, p) in probabilities.iter().enumerate() {
            if *p > probabilities[best] {
                best = i;
            }
        }
        Ok(Prediction {
            class: self.classes[best].clone(),
            probabilities,
        })
    }

    /// The model as bytes, to store in the lake.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        bincode::serialize(self).map_err(|e| e.to_string())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Classifier, String> {
        bincode::deserialize(bytes).map_err(|e| format!("not a classifier model: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::als::model::SplitMix64;

    /// Three classes separated by two numeric features and, loosely, a category.
    fn synthetic(n: usize, seed: u64) -> (Vec<Vec<FeatureValue>>, Vec<String>) {
        let mut rng = SplitMix64::new(seed);
        let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let names = ["adelie", "chinstrap", "gentoo"];
        let (mut records, mut labels) = (Vec::new(), Vec::new());
        for i in 0..n {
            let class = i % 3;
            let island = if uniform() < 0.8 {
                class
            } else {
                (class + 1) % 3
            };
            records.push(vec![
                FeatureValue::Number(class as f64 * 3.0 + uniform() * 2.0),
                FeatureValue::Number(10.0 - class as f64 * 2.0 + uniform() * 1.5),
                FeatureValue::Category(["biscoe", "dream", "torgersen"][island].into()),
            ]);
            labels.push(names[class].to_string());
        }
        (records, labels)
    }

    fn encoder(records: &[Vec<FeatureValue>]) -> Encoder {
        let names: Vec<String> = ["a", "b", "island"].iter().map(|s| s.to_string()).collect();
        Encoder::fit(&names, &names[2..], records)
    }

    #[test]
    fn a_seeded_forest_learns_separable_classes_and_round_trips_through_bytes() {
        let (train, train_labels) = synthetic(240, 1);
        let (test, test_labels) = synthetic(60, 2);
        let params = ForestParams {
            trees: 30,
            ..Default::default()
        };
        let model = Classifier::train(encoder(&train), &train, &train_labels, params).unwrap();
        assert_eq!(model.classes, ["adelie", "chinstrap", "gentoo"]);
        let correct = test
            .iter()
            .zip(&test_labels)
            .filter(|(r, l)| model.predict(r).unwrap().class == **l)
            .count();
        assert!(correct >= 57, "{correct}/60 correct");

        let prediction = model.predict(&test[0]).unwrap();
        assert!((prediction.probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let best = prediction.probabilities.iter().cloned().fold(0.0, f64::max);
        let at = model
            .classes
            .iter()
            .position(|c| *c == prediction.class)
            .unwrap();
        assert_eq!(prediction.probabilities[at], best);

        let again = Classifier::train(encoder(&train), &train, &train_labels, params).unwrap();
        let loaded = Classifier::from_bytes(&model.to_bytes().unwrap()).unwrap();
        for record in &test {
            let expected = model.predict(record).unwrap();
            assert_eq!(
                again.predict(record).unwrap(),
                expected,
                "same seed, same model"
            );
            assert_eq!(
                loaded.predict(record).unwrap(),
                expected,
                "bytes round trip"
            );
        }
    }

    #[test]
    fn a_single_class_is_refused() {
        let (records, _) = synthetic(10, 3);
        let labels = vec!["adelie".to_string(); 10];
        let err = Classifier::train(
            encoder(&records),
            &records,
            &labels,
            ForestParams::default(),
        )
        .unwrap_err();
        assert!(err.contains("only one class"), "{err}");
    }
}
