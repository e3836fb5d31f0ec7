//! Random-forest classification: feature encoding (`encoding`), the seeded forest with class
//! probabilities and a byte artifact (`model`), held-out evaluation (`metrics`) and the predict
//! latency benchmark (`bench`).

pub mod bench;
pub mod encoding;
pub mod metrics;
pub mod model;

pub use encoding::{Encoder, FeatureValue, FieldError};
pub use metrics::{Evaluation, evaluate, holdout};
pub use model::{Classifier, ForestParams, Prediction};
