//! Turning feature records (named numbers and categories) into the numeric rows a random forest
//! reads, and checking records at prediction time.
//!
//! Numeric features pass through unscaled: tree splits only compare values within one feature, so
//! scaling changes nothing for a forest (it would for distance- or gradient-based models). Each
//! categorical feature becomes one 0/1 column per category seen in training, in sorted order; a
//! missing (null) category seen in training is a category of its own (`null`), so records with an
//! unknown sex still score. The categories are those of the whole input table (the classifier
//! step fits the encoder on every row, held-out ones included: the vocabulary, not the labels). A
//! category the input never had is an error naming the field and the known values: silently
//! zeroing it would score a record the model knows nothing about.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// One feature value of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValue {
    Number(f64),
    Category(String),
    Null,
}

/// The category a null takes.
pub const NULL_CATEGORY: &str = "null";

/// How one feature is encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FeatureKind {
    Numeric,
    /// The categories seen in training, sorted; one output column each.
    Categorical(Vec<String>),
}

/// A feature name and its encoding, in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    pub kind: FeatureKind,
}

/// The fitted encoding of every feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoder {
    pub features: Vec<Feature>,
}

/// Why a record cannot be encoded; names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl Encoder {
    /// Learns the categories of `categorical` features from the training records (each record
    /// holds one value per feature, in `names` order).
    pub fn fit(names: &[String], categorical: &[String], records: &[Vec<FeatureValue>]) -> Encoder {
        let features = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let kind = if categorical.contains(name) {
                    let seen: BTreeSet<String> = records
                        .iter()
                        .map(|r| match &r[i] {
                            FeatureValue::Category(c) => c.clone(),
                            FeatureValue::Number(n) => n.to_string(),
                            FeatureValue::Null => NULL_CATEGORY.to_string(),
                        })
                        .collect();
                    FeatureKind::Categorical(seen.into_iter().collect())
                } else {
                    FeatureKind::Numeric
                };
                Feature {
                    name: name.clone(),
                    kind,
                }
            })
            .collect();
        Encoder { features }
    }

    /// Output column names: numeric features as they are, categories as `feature=value`.
    pub fn columns(&self) -> Vec<String> {
        self.features
            .iter()
            .flat_map(|f| match &f.kind {
                FeatureKind::Numeric => vec![f.name.clone()],
                FeatureKind::Categorical(categories) => categories
                    .iter()
                    .map(|c| format!("{}={c}", f.name))
                    .collect(),
            })
            .collect()
    }

    /// A JSON record's value of every feature, in feature order (the shape the API receives).
    /// Fields the model does not read are ignored, so a whole input row may be sent; a feature
    /// that is absent is an error (null is how a record says "unknown").
    pub fn values_from_json(
        &self,
        record: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<FeatureValue>, FieldError> {
        use serde_json::Value;
        self.features
            .iter()
            .map(|feature| {
                let error = |message: String| FieldError {
                    field: feature.name.clone(),
                    message,
                };
                let categorical = matches!(feature.kind, FeatureKind::Categorical(_));
                match record.get(&feature.name) {
                    None if categorical => Err(error(
                        "missing field (send null for an unknown category)".into(),
                    )),
                    None => Err(error("missing field (a number is required)".into())),
                    Some(Value::Null) => Ok(FeatureValue::Null),
                    Some(Value::Number(n)) => {
                        Ok(FeatureValue::Number(n.as_f64().unwrap_or(f64::NAN)))
                    }
                    Some(Value::String(s)) => Ok(FeatureValue::Category(s.clone())),
                    Some(Value::Bool(b)) => Ok(FeatureValue::Category(b.to_string())),
                    Some(Value::Array(_)) => {
                        Err(error("expected a number or a string, got an array".into()))
                    }
                    Some(Value::Object(_)) => {
                        Err(error("expected a number or a string, got an object".into()))
                    }
                }
            })
            .collect()
    }

    /// The numeric row of one record (values in feature order).
    pub fn encode(&self, record: &[FeatureValue]) -> Result<Vec<f64>, FieldError> {
        let mut row = Vec::with_capacity(self.features.len() + 4);
        for (feature, value) in self.features.iter().zip(record) {
            let error = |message: String| FieldError {
                field: feature.name.clone(),
                message,
            };
            match (&feature.kind, value) {
                (FeatureKind::Numeric, FeatureValue::Number(n)) if n.is_finite() => row.push(*n),
                (FeatureKind::Numeric, FeatureValue::Number(n)) => {
                    return Err(error(format!("{n} is not a finite number")));
                }
                (FeatureKind::Numeric, FeatureValue::Null) => {
                    return Err(error("missing (a number is required)".into()));
                }
                (FeatureKind::Numeric, FeatureValue::Category(c)) => {
                    return Err(error(format!("{c:?} is not a number")));
                }
                (FeatureKind::Categorical(categories), value) => {
                    let category = match value {
                        FeatureValue::Category(c) => c.clone(),
                        FeatureValue::Null => NULL_CATEGORY.to_string(),
                        FeatureValue::Number(n) => n.to_string(),
                    };
                    let Some(at) = categories.iter().position(|c| *c == category) else {
                        return Err(error(format!(
                            "unknown category {category:?} (known: {})",
                            categories.join(", ")
                        )));
                    };
                    row.extend((0..categories.len()).map(|i| if i == at { 1.0 } else { 0.0 }));
                }
            }
        }
        if record.len() != self.features.len() {
            return Err(FieldError {
                field: "record".into(),
                message: format!(
                    "{} values for {} features",
                    record.len(),
                    self.features.len()
                ),
            });
        }
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn categories_become_sorted_one_hot_columns_and_nulls_a_category() {
        let records = vec![
            vec![
                FeatureValue::Number(39.1),
                FeatureValue::Category("Torgersen".into()),
                FeatureValue::Category("male".into()),
            ],
            vec![
                FeatureValue::Number(46.5),
                FeatureValue::Category("Biscoe".into()),
                FeatureValue::Null,
            ],
        ];
        let encoder = Encoder::fit(
            &names(&["bill", "island", "sex"]),
            &names(&["island", "sex"]),
            &records,
        );
        assert_eq!(
            encoder.columns(),
            [
                "bill",
                "island=Biscoe",
                "island=Torgersen",
                "sex=male",
                "sex=null"
            ]
        );
        assert_eq!(
            encoder.encode(&records[1]).unwrap(),
            [46.5, 1.0, 0.0, 0.0, 1.0]
        );
    }

    #[test]
    fn bad_records_are_refused_naming_the_field() {
        let records = vec![vec![
            FeatureValue::Number(1.0),
            FeatureValue::Category("Dream".into()),
        ]];
        let encoder = Encoder::fit(&names(&["bill", "island"]), &names(&["island"]), &records);
        let error = |record: Vec<FeatureValue>| encoder.encode(&record).unwrap_err().to_string();
        assert_eq!(
            error(vec![
                FeatureValue::Null,
                FeatureValue::Category("Dream".into())
            ]),
            "bill: missing (a number is required)"
        );
        assert_eq!(
            error(vec![
                FeatureValue::Category("long".into()),
                FeatureValue::Category("Dream".into())
            ]),
            "bill: \"long\" is not a number"
        );
        assert_eq!(
            error(vec![
                FeatureValue::Number(2.0),
                FeatureValue::Category("Atlantis".into())
            ]),
            "island: unknown category \"Atlantis\" (known: Dream)"
        );
    }

    #[test]
    fn json_records_name_missing_and_mistyped_fields_and_ignore_extras() {
        let records = vec![vec![
            FeatureValue::Number(1.0),
            FeatureValue::Category("Dream".into()),
        ]];
        let encoder = Encoder::fit(&names(&["bill", "island"]), &names(&["island"]), &records);
        let values = |json: serde_json::Value| {
            encoder
                .values_from_json(json.as_object().unwrap())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            values(serde_json::json!({"bill": 2, "island": null, "species": "x"})).unwrap(),
            [FeatureValue::Number(2.0), FeatureValue::Null]
        );
        assert_eq!(
            values(serde_json::json!({"bill": 2})).unwrap_err(),
            "island: missing field (send null for an unknown category)"
        );
        assert_eq!(
            values(serde_json::json!({"island": "Dream"})).unwrap_err(),
            "bill: missing field (a number is required)"
        );
        assert_eq!(
            values(serde_json::json!({"bill": [1], "island": "Dream"})).unwrap_err(),
            "bill: expected a number or a string, got an array"
        );
    }
}
