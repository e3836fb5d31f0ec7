//! How good a classifier is on held-out rows: accuracy, per-class precision and recall, and the
//! confusion matrix, and the seeded, keyed split that holds the rows out.

use serde::Serialize;

use crate::ml::als::model::SplitMix64;

/// Evaluation of predicted against actual classes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub accuracy: f64,
    pub classes: Vec<ClassMetrics>,
    /// `confusion[actual][predicted]`, rows and columns in class order.
    pub confusion: Vec<Vec<u64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub class: String,
    /// Of the rows predicted as this class, the share that are; `None` when none were predicted.
    pub precision: Option<f64>,
    /// Of the rows of this class, the share predicted as it; `None` when the class has no rows.
    pub recall: Option<f64>,
    pub support: u64,
}

/// Compares `predicted` with `actual` (indexes into `classes`).
pub fn evaluate(classes: &[String], actual: &[usize], predicted: &[usize]) -> Evaluation {
    let k = classes.len();
    let mut confusion = vec![vec![0u64; k]; k];
    for (a, p) in actual.iter().zip(predicted) {
        confusion[*a][*p] += 1;
    }
    let total = actual.len() as f64;
    let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
    let classes = classes
        .iter()
        .enumerate()
        .map(|(i, class)| {
            let predicted_as: u64 = (0..k).map(|a| confusion[a][i]).sum();
            let support: u64 = confusion[i].iter().sum();
            let share = |n: u64, of: u64| (of > 0).then(|| n as f64 / of as f64);
            ClassMetrics {
                class: class.clone(),
                precision: share(confusion[i][i], predicted_as),
                recall: share(confusion[i][i], support),
                support,
            }
        })
        .collect();
    Evaluation {
        accuracy: if total > 0.0 {
            correct as f64 / total
        } else {
            0.0
        },
        classes,
        confusion,
    }
}

/// Which rows are test rows: each row is held out when a seeded hash of its key (an id, or the
/// row's values) falls in the lowest `test_fraction` of the hash range, so about that fraction is
/// held out. The decision is per row, not positional: it does not depend on the order the table's
/// files are read in, and a row keeps its side when rows are added or removed. With two or more
/// rows each side gets at least one (the row with the lowest or highest hash crosses over).
pub fn holdout(keys: &[String], test_fraction: f64, seed: u64) -> Vec<bool> {
    let hashes: Vec<u64> = keys
        .iter()
        .map(|key| seeded_hash(key.as_bytes(), seed))
        .collect();
    let cut = (test_fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    let mut is_test: Vec<bool> = hashes.iter().map(|&h| h < cut).collect();
    if keys.len() >= 2 {
        let extreme = |pick_max: bool| {
            let order = (0..hashes.len()).map(|i| (hashes[i], i));
            let found = if pick_max { order.max() } else { order.min() };
            found.map(|(_, i)| i).expect("at least two rows")
        };
        if is_test.iter().all(|t| !t) {
            is_test[extreme(false)] = true;
        } else if is_test.iter().all(|t| *t) {
            is_test[extreme(true)] = false;
        }
    }
    is_test
}

/// FNV-1a over the bytes, mixed with the seed by SplitMix64: stable across platforms and Rust
/// versions (std's hasher promises neither).
fn seeded_hash(bytes: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    SplitMix64::new(h ^ seed.rotate_left(32)).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_recall_and_confusion_follow_their_definitions() {
        let classes: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        // actual:    a a a b b c
        // predicted: a a b b b a
        let e = evaluate(&classes, &[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 1, 0]);
        assert_eq!(
            e.confusion,
            vec![vec![2, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]
        );
        assert!((e.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(e.classes[0].precision, Some(2.0 / 3.0));
        assert_eq!(e.classes[0].recall, Some(2.0 / 3.0));
        assert_eq!(e.classes[1].precision, Some(2.0 / 3.0));
        assert_eq!(e.classes[1].recall, Some(1.0));
        assert_eq!(
            (e.classes[2].precision, e.classes[2].recall),
            (None, Some(0.0))
        );
    }

    #[test]
    fn the_holdout_is_seeded_sized_and_per_row() {
        let keys: Vec<String> = (0..1000).map(|i| format!("row-{i}")).collect();
        let a = holdout(&keys, 0.2, 7);
        let held = a.iter().filter(|t| **t).count();
        assert!((170..=230).contains(&held), "{held} of 1000 held out");
        assert_eq!(a, holdout(&keys, 0.2, 7));
        assert_ne!(a, holdout(&keys, 0.2, 8));

        // Each row keeps its side when rows are added, and when the rows are read in another
        // order.
        let more: Vec<String> = (0..1500).rev().map(|i| format!("row-{i}")).collect();
        let b = holdout(&more, 0.2, 7);
        for (key, side) in keys.iter().zip(&a) {
            let at = more.iter().position(|k| k == key).unwrap();
            assert_eq!(b[at], *side, "{key} changed sides");
        }

        // Two rows: one each side, whatever the fraction.
        let two = ["a".to_string(), "b".to_string()];
        for fraction in [0.0001, 0.5, 0.9999] {
            assert_eq!(holdout(&two, fraction, 1).iter().filter(|t| **t).count(), 1);
        }
    }
}
