//! Layered TOML configuration, independent of what the keys mean: built-in defaults < a file <
//! `STRATA_*` environment variables < flags, deep-merged, each leaf key remembering which layer set it
//! so a problem can name its origin.
//!
//! Owns: reading a file or the environment into a [`Layer`], resolving relative paths against the
//! layer's directory, checking one layer against a raw shape (unknown keys, types), and merging.
//! Does not own: what the keys mean or their validation (`config`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use crate::error::Problem;

/// Where a layer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LayerKind {
    Defaults,
    File,
    Environment,
    Flags,
}

/// One layer of configuration: where it came from, the directory its relative paths are relative to,
/// and its values.
pub(super) struct Layer {
    pub kind: LayerKind,
    pub origin: String,
    pub base_dir: PathBuf,
    pub values: Table,
}

/// Reads a config file into a layer; paths in it are resolved against its directory.
pub(super) fn file_layer(path: &Path, cwd: &Path, problems: &mut Vec<Problem>) -> Option<Layer> {
    let origin = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(Problem {
                origin,
                key: String::new(),
                message: format!("cannot read config file: {e}"),
            });
            return None;
        }
    };
    let values = match text.parse::<Table>() {
        Ok(values) => values,
        Err(e) => {
            problems.push(Problem {
                origin,
                key: String::new(),
                message: e.to_string().trim_end().to_string(),
            });
            return None;
        }
    };
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let base_dir = abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cwd.to_path_buf());
    Some(Layer {
        kind: LayerKind::File,
        origin,
        base_dir,
        values,
    })
}

/// Turns each `STRATA_A__B=value` variable into a one-key layer. Values are read as TOML values when
/// they parse as one (`0.05`, `true`, `["a"]`), else as strings (`/data/lake`).
pub(super) fn env_layers(
    env: &[(String, String)],
    cwd: &Path,
    problems: &mut Vec<Problem>,
) -> Vec<Layer> {
    let mut layers = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("STRATA_") else {
            continue;
        };
        // STRATA_CONFIG names the file itself (read by the CLI), not a key.
        if rest == "CONFIG" {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if path.iter().any(String::is_empty) {
            problems.push(Problem {
                origin: format!("environment {name}"),
                key: String::new(),
                message: "malformed variable name: use STRATA_SECTION__KEY".into(),
            });
            continue;
        }
        let parsed = format!("v = {value}")
            .parse::<Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| Value::String(value.clone()));
        let mut values = Table::new();
        insert_path(&mut values, &path, parsed);
        layers.push(Layer {
            kind: LayerKind::Environment,
            origin: format!("environment {name}"),
            base_dir: cwd.to_path_buf(),
            values,
        });
    }
    layers
}

fn insert_path(table: &mut Table, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            if let Value::Table(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// Deserializes one layer on its own as `T`, collecting every unknown key and the first type error.
pub(super) fn check_layer<T: DeserializeOwned>(layer: &Layer, problems: &mut Vec<Problem>) {
    let mut unknown = Vec::new();
    let result: Result<T, _> =
        serde_ignored::deserialize(Value::Table(layer.values.clone()), |path| {
            unknown.push(path.to_string())
        });
    for key in unknown {
        problems.push(Problem {
            origin: layer.origin.clone(),
            key,
            message: "unknown key".into(),
        });
    }
    if let Err(e) = result {
        problems.push(Problem {
            origin: layer.origin.clone(),
            key: String::new(),
            message: e.to_string().trim_end().to_string(),
        });
    }
}

/// How layers combine beyond a deep merge.
pub(super) struct MergeRules<'a> {
    /// Keys whose values are paths, resolved against the directory of the layer that set them.
    pub path_keys: &'a [&'a [&'a str]],
    /// Sections a config file replaces whole instead of merging into (a file that declares its own
    /// sources replaces the default MovieLens sources); the environment adjusts single keys.
    pub replaced_by_files: &'a [&'a str],
}

/// Deep-merges the layers in order by `rules`, and records which layer set each leaf key (for error
/// messages).
pub(super) fn merge_layers(
    layers: Vec<Layer>,
    rules: &MergeRules<'_>,
) -> (Table, BTreeMap<String, String>) {
    let mut merged = Table::new();
    let mut origins = BTreeMap::new();
    for mut layer in layers {
        for key in rules.path_keys {
            resolve_path_key(&mut layer.values, key, &layer.base_dir);
        }
        if layer.kind == LayerKind::File {
            for section in rules.replaced_by_files {
                if layer.values.contains_key(*section) {
                    merged.remove(*section);
                }
            }
        }
        merge_table(&mut merged, layer.values, "", &layer.origin, &mut origins);
    }
    (merged, origins)
}

fn resolve_path_key(values: &mut Table, key: &[&str], base: &Path) {
    let Some((last, sections)) = key.split_last() else {
        return;
    };
    let mut table = values;
    for section in sections {
        let Some(Value::Table(inner)) = table.get_mut(*section) else {
            return;
        };
        table = inner;
    }
    if let Some(Value::String(s)) = table.get_mut(*last) {
        let p = Path::new(s.as_str());
        // An empty value means "not set", not "this directory".
        if !s.is_empty() && p.is_relative() && !s.contains("://") {
            *s = normalize(&base.join(p)).display().to_string();
        }
    }
}

/// Removes `.` and `..` components without touching the filesystem (the directory may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn merge_table(
    into: &mut Table,
    from: Table,
    prefix: &str,
    origin: &str,
    origins: &mut BTreeMap<String, String>,
) {
    for (key, value) in from {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (into.get_mut(&key), value) {
            (Some(Value::Table(existing)), Value::Table(incoming)) => {
                merge_table(existing, incoming, &path, origin, origins);
            }
            (_, value) => {
                record_origins(&value, &path, origin, origins);
                into.insert(key, value);
            }
        }
    }
}

fn record_origins(value: &Value, path: &str, origin: &str, origins: &mut BTreeMap<String, String>) {
    match value {
        Value::Table(t) => {
            for (k, v) in t {
                record_origins(v, &format!("{path}.{k}"), origin, origins);
            }
        }
        _ => {
            origins.insert(path.to_string(), origin.to_string());
        }
    }
}
