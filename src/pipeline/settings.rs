//! Per-step settings: how a step's result is materialized and which expectations it must meet.
//!
//! Settings come from two places, merged key by key with the config file winning:
//! 1. the SQL file's header, leading comment lines of the form `-- strata: <TOML>`:
//!    ```sql
//!    -- strata: materialization = "merge"
//!    -- strata: unique_key = ["user_id", "movie_id"]
//!    -- strata: expect.not_null = ["user_id", "movie_id"]
//!    ```
//! 2. `[steps."silver.ratings"]` in the config file (same keys).
//!
//! Unknown keys are errors naming the file.
//!
//! A step that builds one day at a time replaces that day's rows and nothing else:
//! ```sql
//! -- strata: materialization = "replace_where"
//! -- strata: replace_where = "date = $ds"
//! -- strata: partition_by = ["date"]
//! ```
//! The predicate is SQL over the step's columns; its `$name` parameters are the run's variables,
//! bound as values. Every row of the result must satisfy it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Table;

use crate::error::{Error, Result};

/// The prefix of a header line carrying settings.
pub const HEADER_PREFIX: &str = "-- strata:";

/// How a step's result becomes the table's next version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Materialization {
    /// Replace the table's contents (schema changes allowed).
    #[default]
    Overwrite,
    /// Add the result's rows to the table.
    Append,
    /// Upsert on `unique_key`: matching rows are updated, new keys inserted (Delta MERGE).
    Merge,
    /// Replace exactly the rows matching `replace_where` (one day's partition), keep the rest.
    ReplaceWhere,
}

impl Materialization {
    pub fn as_str(self) -> &'static str {
        match self {
            Materialization::Overwrite => "overwrite",
            Materialization::Append => "append",
            Materialization::Merge => "merge",
            Materialization::ReplaceWhere => "replace_where",
        }
    }
}

/// Settings of one step as written by the user (header or config).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub materialization: Option<Materialization>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unique_key: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
    /// The rows a `replace_where` step replaces: a SQL predicate over its columns, with run
    /// variables as `$name` (`"date = $ds"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace_where: Option<String>,
    #[serde(skip_serializing_if = "Expectations::is_empty")]
    pub expect: Expectations,
}

/// Checks run on a step's result before it is committed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Expectations {
    /// Columns that must never be NULL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_null: Vec<String>,
    /// Keys that must be unique: `"movie_id"` or `["user_id", "movie_id"]` for a composite key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unique: Vec<UniqueKey>,
    /// Column -> the only values it may hold (NULL is left to `not_null`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub accepted_values: BTreeMap<String, Vec<toml::Value>>,
    /// Bounds on the number of rows of the result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_count: Option<RowCount>,
    /// SQL boolean predicates every row must satisfy (a row fails when the predicate is false or NULL).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
}

impl Expectations {
    pub fn is_empty(&self) -> bool {
        self.not_null.is_empty()
            && self.unique.is_empty()
            && self.accepted_values.is_empty()
            && self.row_count.is_none()
            && self.checks.is_empty()
    }
}

/// One or several columns forming a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UniqueKey {
    Column(String),
    Columns(Vec<String>),
}

impl UniqueKey {
    pub fn columns(&self) -> Vec<String> {
        match self {
            UniqueKey::Column(c) => vec![c.clone()],
            UniqueKey::Columns(cs) => cs.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RowCount {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

/// The header lines of a SQL file as one TOML table.
pub fn parse_header(file: &Path, sql: &str) -> Result<Table> {
    let mut toml_text = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if let Some(setting) = trimmed.strip_prefix(HEADER_PREFIX) {
            toml_text.push_str(setting.trim());
            toml_text.push('\n');
        } else if trimmed.is_empty() || trimmed.starts_with("--") {
            continue;
        } else {
            break;
        }
    }
    toml_text.parse::<Table>().map_err(|e| Error::StepSettings {
        file: file.to_path_buf(),
        message: format!("invalid `{HEADER_PREFIX}` header: {}", e.message()),
    })
}

/// Merges the header's settings with the config's (config wins key by key) and validates them.
pub fn resolve(file: &Path, header: Table, config: Option<&Table>) -> Result<StepSettings> {
    let mut merged = header;
    if let Some(config) = config {
        merge(&mut merged, config);
    }
    let settings: StepSettings =
        toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| Error::StepSettings {
                file: file.to_path_buf(),
                message: format!("invalid step settings: {}", e.message()),
            })?;
    if settings.materialization == Some(Materialization::Merge) && settings.unique_key.is_empty() {
        return Err(Error::StepSettings {
            file: file.to_path_buf(),
            message: "materialization = \"merge\" needs unique_key = [\"column\", ...]".into(),
        });
    }
    let replacing = settings.materialization == Some(Materialization::ReplaceWhere);
    if replacing != settings.replace_where.is_some() {
        let message = if replacing {
            "materialization = \"replace_where\" needs replace_where = \"<predicate>\", e.g. \"date = $ds\""
        } else {
            "replace_where is only read with materialization = \"replace_where\""
        };
        return Err(Error::StepSettings {
            file: file.to_path_buf(),
            message: message.into(),
        });
    }
    Ok(settings)
}

/// Reads a training step's TOML file (`<name>.als.toml`, `<name>.classifier.toml`), merges the
/// config's `[steps."layer.name"]` over it key by key (the config wins), deserialises it and runs
/// `validate`. Every problem is an error naming the file; `kind` names the step kind in messages.
pub fn read_step_file<T: serde::de::DeserializeOwned>(
    file: &Path,
    config: Option<&Table>,
    kind: &str,
    validate: impl FnOnce(&T) -> std::result::Result<(), String>,
) -> Result<T> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let settings_error = |message: String| Error::StepSettings {
        file: file.to_path_buf(),
        message,
    };
    let mut merged: Table = text
        .parse()
        .map_err(|e: toml::de::Error| settings_error(e.message().to_string()))?;
    if let Some(config) = config {
        merge(&mut merged, config);
    }
    let spec: T = toml::Value::Table(merged)
        .try_into()
        .map_err(|e: toml::de::Error| {
            settings_error(format!(
                "invalid {kind} step settings (file or config [steps]): {}",
                e.message()
            ))
        })?;
    validate(&spec).map_err(settings_error)?;
    Ok(spec)
}

pub fn merge(into: &mut Table, from: &Table) {
    for (key, value) in from {
        match (into.get_mut(key), value) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQL: &str = "-- strata: materialization = \"merge\"\n\
        -- strata: unique_key = [\"user_id\", \"movie_id\"]\n\
        -- a plain comment\n\
        -- strata: expect.not_null = [\"user_id\"]\n\
        -- strata: expect.unique = [[\"user_id\", \"movie_id\"], \"rating_id\"]\n\
        SELECT 1\n\
        -- strata: materialization = \"append\"\n";

    #[test]
    fn header_lines_before_the_query_are_settings() {
        let header = parse_header(Path::new("x.sql"), SQL).unwrap();
        let settings = resolve(Path::new("x.sql"), header, None).unwrap();
        assert_eq!(settings.materialization, Some(Materialization::Merge));
        assert_eq!(settings.unique_key, ["user_id", "movie_id"]);
        assert_eq!(settings.expect.not_null, ["user_id"]);
        assert_eq!(
            settings.expect.unique[0].columns(),
            ["user_id".to_string(), "movie_id".to_string()]
        );
        assert_eq!(
            settings.expect.unique[1].columns(),
            ["rating_id".to_string()]
        );
    }

    #[test]
    fn config_overrides_header_key_by_key() {
        let header = parse_header(Path::new("x.sql"), SQL).unwrap();
        let config: Table = "materialization = \"overwrite\"\nexpect.checks = [\"a > 0\"]"
            .parse()
            .unwrap();
        let settings = resolve(Path::new("x.sql"), header, Some(&config)).unwrap();
        assert_eq!(settings.materialization, Some(Materialization::Overwrite));
        assert_eq!(settings.expect.not_null, ["user_id"]);
        assert_eq!(settings.expect.checks, ["a > 0"]);
    }

    #[test]
    fn unknown_keys_and_merge_without_key_are_errors_naming_the_file() {
        let header = parse_header(
            Path::new("sql/silver/x.sql"),
            "-- strata: materialisation = \"merge\"\nSELECT 1",
        )
        .unwrap();
        let err = resolve(Path::new("sql/silver/x.sql"), header, None).unwrap_err();
        assert!(err.to_string().contains("sql/silver/x.sql"), "{err}");
        assert!(err.to_string().contains("materialisation"), "{err}");

        let header = parse_header(
            Path::new("y.sql"),
            "-- strata: materialization = \"merge\"\nSELECT 1",
        )
        .unwrap();
        let err = resolve(Path::new("y.sql"), header, None).unwrap_err();
        assert!(err.to_string().contains("unique_key"), "{err}");
    }
}
