//! Fingerprints: what a step would compute from its inputs, and the up-to-date check that lets a
//! rerun with unchanged settings and input versions write nothing. SQL, ALS and classifier steps
//! all use this one implementation; ingest steps track files instead and do not.
//!
//! A fingerprint is the SHA-256 of a tag naming the step kind and its format (`sql-step-v1`,
//! `als-step-v1`, `classifier-step-v1`) followed by the canonical serialisation of what the step
//! was asked to do: the JSON that `serde` derives for its resolved settings (field names, in
//! declaration order; the SQL text beside the settings for SQL steps). It never hashes `Debug`
//! text, which changes whenever a type or field is renamed. It does not own where fingerprints are
//! stored: [`crate::pipeline::commit`] stamps them into each commit's metadata.
//!
//! Invariant: a step is up to date only when every table it writes exists and its primary table's
//! last commit carries the same fingerprint and the same version of every table the step reads;
//! `--full-refresh` is never up to date.
//!
//! Upgrading: ALS and classifier fingerprints are the values earlier versions wrote (same tags,
//! same serialisation), so their models are not retrained. SQL fingerprints used to hash the
//! `Debug` text of the settings; a SQL step whose last commit carries such a fingerprint is still
//! recognised (see [`Fingerprint::or_legacy`]) so that lakes written before do not rerun every
//! SQL step once (which would append its rows again for `append` steps). Its next real change
//! writes the new fingerprint.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::{TableName, row_count};
use crate::error::Result;
use crate::pipeline::commit;
use crate::pipeline::{StepContext, StepResult, StepStatus};

/// What a step would compute: the value stamped into its commits, and an older value a commit
/// may carry that means the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    value: String,
    legacy: Option<String>,
}

impl Fingerprint {
    /// The fingerprint of `settings` for a step of `kind` (`sql`, `als`, `classifier`).
    pub fn of(kind: &str, settings: &impl Serialize) -> Result<Fingerprint> {
        let mut hasher = Sha256::new();
        hasher.update(format!("{kind}-step-v1").as_bytes());
        hasher.update(serde_json::to_string(settings)?.as_bytes());
        Ok(Fingerprint {
            value: format!("{:x}", hasher.finalize()),
            legacy: None,
        })
    }

    /// Also accepts `legacy`, the value an earlier version wrote for the same step, as up to
    /// date. Only ever read, never written.
    pub fn or_legacy(self, legacy: String) -> Fingerprint {
        Fingerprint {
            legacy: Some(legacy),
            ..self
        }
    }

    /// The value stamped into commits.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Whether a commit's stored fingerprint says the same.
    fn matches(&self, stored: Option<&Value>) -> bool {
        let Some(stored) = stored.and_then(Value::as_str) else {
            return false;
        };
        stored == self.value || self.legacy.as_deref() == Some(stored)
    }
}

/// `Some(result)` when every table in `outputs` exists and `primary`'s last commit was made from
/// the same fingerprint and input versions: the step has nothing to do, and `detail` is its note.
pub async fn up_to_date(
    ctx: &StepContext,
    outputs: &[TableName],
    primary: &TableName,
    fingerprint: &Fingerprint,
    inputs: &BTreeMap<String, u64>,
    detail: &str,
) -> Result<Option<StepResult>> {
    if ctx.full_refresh {
        return Ok(None);
    }
    for table in outputs {
        if !ctx.lake.exists(table).await? {
            return Ok(None);
        }
    }
    let current = ctx.lake.open(primary).await?;
    let Some(meta) = commit::last_commit_meta(&current).await else {
        return Ok(None);
    };
    let same_settings = fingerprint.matches(meta.get(commit::META_FINGERPRINT));
    let same_inputs = meta.get(commit::META_INPUTS) == Some(&serde_json::json!(inputs));
    Ok((same_settings && same_inputs).then(|| StepResult {
        status: StepStatus::Unchanged,
        rows: row_count(&current).unwrap_or(0),
        version: current.version().unwrap_or(0),
        detail: detail.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::als_step::spec::AlsSpec;
    use crate::pipeline::classifier_step::spec::ClassifierSpec;

    /// Lakes written by earlier versions carry these values; a change here retrains every model
    /// once after an upgrade, so it must be deliberate (and documented in the module doc).
    #[test]
    fn training_fingerprints_are_the_values_earlier_versions_wrote() {
        let als = Fingerprint::of("als", &AlsSpec::default().resolved()).unwrap();
        assert_eq!(als.as_str(), ALS_DEFAULT);
        // A key added later counts only away from its default.
        let mut every_user = AlsSpec::default().resolved();
        every_user.eval.max_users = 0;
        assert_ne!(Fingerprint::of("als", &every_user).unwrap(), als);
        let classifier = ClassifierSpec {
            input: "silver.penguins".into(),
            label: "species".into(),
            features: vec!["bill_length_mm".into(), "island".into()],
            ..Default::default()
        };
        let classifier = Fingerprint::of("classifier", &classifier).unwrap();
        assert_eq!(classifier.as_str(), CLASSIFIER_PENGUINS);
    }

    const ALS_DEFAULT: &str = "8df552cfac2e0e017bdc45342bc782ab8c444b8d0150cb91c83c9c175cc1537c";
    const CLASSIFIER_PENGUINS: &str =
        "6a840eb88ab8e11ad7208f42d3960b48b11dc14cbb436c52b74faf7f072b74d3";

    #[test]
    fn a_legacy_value_is_recognised_but_never_written() {
        let fingerprint = Fingerprint::of("sql", &"SELECT 1").unwrap();
        let legacy = fingerprint.clone().or_legacy("old".into());
        assert_eq!(legacy.as_str(), fingerprint.as_str());
        assert!(legacy.matches(Some(&Value::from("old"))));
        assert!(legacy.matches(Some(&Value::from(fingerprint.as_str()))));
        assert!(!fingerprint.matches(Some(&Value::from("old"))));
        assert!(!legacy.matches(None));
    }

    #[test]
    fn kinds_and_settings_both_change_the_fingerprint() {
        let sql = Fingerprint::of("sql", &"SELECT 1").unwrap();
        assert_ne!(sql, Fingerprint::of("als", &"SELECT 1").unwrap());
        assert_ne!(sql, Fingerprint::of("sql", &"SELECT 2").unwrap());
        assert_eq!(sql, Fingerprint::of("sql", &"SELECT 1").unwrap());
    }
}
