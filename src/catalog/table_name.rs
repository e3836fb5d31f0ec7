//! Table names: `layer.name`, the one name a table has in SQL, on disk and in the API.
//!
//! A leaf: it imports nothing of the crate, so errors, config and every module above can name
//! tables without a cycle.

use std::fmt;
use std::str::FromStr;

/// A table name or layer that does not parse; the message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TableNameError(pub String);

/// The layers of the lake. `System` holds Strata's own bookkeeping tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    Bronze,
    Silver,
    Gold,
    System,
}

impl Layer {
    pub const ALL: [Layer; 4] = [Layer::Bronze, Layer::Silver, Layer::Gold, Layer::System];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Bronze => "bronze",
            Layer::Silver => "silver",
            Layer::Gold => "gold",
            Layer::System => "system",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Layer {
    type Err = TableNameError;

    fn from_str(s: &str) -> Result<Self, TableNameError> {
        Layer::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                TableNameError(format!(
                    "unknown layer {s:?} (expected bronze, silver, gold or system)"
                ))
            })
    }
}

/// A table of the lake: `layer.name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub layer: Layer,
    pub name: String,
}

impl TableName {
    pub fn new(layer: Layer, name: impl Into<String>) -> Self {
        TableName {
            layer,
            name: name.into(),
        }
    }

    /// Names are lowercase identifiers (`[a-z_][a-z0-9_]*`), which also keeps them from escaping the
    /// lake directory.
    pub fn validate_name(name: &str) -> std::result::Result<(), String> {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        if first_ok
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && name.len() <= 128
        {
            Ok(())
        } else {
            Err(format!(
                "invalid table name {name:?}: use lowercase letters, digits and _ (starting with a letter or _)"
            ))
        }
    }

    /// The rejects table that collects the bad rows of this bronze table.
    pub fn rejects(&self) -> TableName {
        TableName::new(self.layer, format!("{}__rejects", self.name))
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.layer, self.name)
    }
}

impl FromStr for TableName {
    type Err = TableNameError;

    fn from_str(s: &str) -> Result<Self, TableNameError> {
        let Some((layer, name)) = s.split_once('.') else {
            return Err(TableNameError(format!(
                "invalid table {s:?}: write it as layer.name, e.g. silver.ratings"
            )));
        };
        let layer = layer.parse()?;
        TableName::validate_name(name).map_err(TableNameError)?;
        Ok(TableName::new(layer, name))
    }
}
