//! `[sources.<name>]`: what a source is, as one typed enum whose `format` key picks the variant.
//!
//! Owns: the settings of every source kind ([`SourceSpec`]: each variant a struct that takes only its
//! own keys, `deny_unknown_fields`), their checks, and reading a source's TOML table with every
//! problem named by key ([`SourceSpec::from_toml`]). Does not own: the config layering (file < env <
//! flags, `config`), where files live and how they are listed ([`super::location`]), parsing files
//! (the format modules) or fetching APIs ([`super::http`]).
//!
//! Adding a source kind: a variant here (with `deserialize_with = "keyed"`, so errors name the key),
//! its settings struct implementing [`SourceKind`], its arm in [`SourceSpec::kind_mut`], a reader
//! module, and its arm in `pipeline::ingest_step::run`, the one place sources are read.

use std::path::Path;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use toml::{Table, Value};

use super::http::HttpSource;
use super::location::Location;
use super::schema::{ColumnSpec, parse_columns};
use super::{DelimitedOptions, Encoding};

/// The `format` values, in the order error messages list them (a unit test keeps it equal to the
/// variants below).
pub const FORMATS: [&str; 6] = ["csv", "movielens", "json", "ndjson", "parquet", "http"];

/// A declared raw source, ingested into `bronze.<name>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "format", rename_all = "lowercase")]
pub enum SourceSpec {
    /// Delimited text with a header line by default (RFC 4180 quoting).
    #[serde(deserialize_with = "keyed")]
    Csv(CsvSource),
    /// MovieLens `.dat` files: `::`-separated latin-1, no header, no quoting.
    #[serde(rename = "movielens", deserialize_with = "keyed")]
    MovieLens(FileSource),
    /// A JSON array of objects (or one object) per file.
    #[serde(deserialize_with = "keyed")]
    Json(FileSource),
    /// One JSON object per line.
    #[serde(deserialize_with = "keyed")]
    Ndjson(FileSource),
    #[serde(deserialize_with = "keyed")]
    Parquet(FileSource),
    /// An HTTP JSON API, fetched page by page and merged on a key.
    #[serde(deserialize_with = "keyed")]
    Http(HttpSource),
}

/// What each source kind's settings answer beyond their keys and types.
pub trait SourceKind {
    /// Problems that involve several keys or values serde cannot check, as (key, message).
    fn problems(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// Where the files are, for kinds read from files.
    fn location_mut(&mut self) -> Option<&mut Location> {
        None
    }
}

/// Files in a format with no options of its own: MovieLens, JSON, NDJSON, Parquet.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// A file or a directory (every non-hidden file in it), absolute, relative to the raw
    /// directory, or `s3://bucket/key` (a prefix ending in `/` for every object under it).
    pub path: Location,
    /// Declared columns; `None` infers them from the data.
    #[serde(default)]
    pub columns: Option<Columns>,
}

impl SourceKind for FileSource {
    fn location_mut(&mut self) -> Option<&mut Location> {
        Some(&mut self.path)
    }
}

/// `format = "csv"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSource {
    pub path: Location,
    #[serde(default)]
    pub columns: Option<Columns>,
    #[serde(default = "yes")]
    pub header: bool,
    #[serde(default = "comma")]
    pub delimiter: String,
    #[serde(default)]
    pub quote: Quote,
    /// Field text meaning NULL (`"NA"`, `""`).
    #[serde(default)]
    pub null_value: Option<String>,
    #[serde(default)]
    pub encoding: Encoding,
}

impl CsvSource {
    /// How the files are laid out.
    pub fn options(&self) -> DelimitedOptions {
        DelimitedOptions {
            delimiter: self.delimiter.clone(),
            header: self.header,
            quote: self.quote.0,
            null_value: self.null_value.clone(),
            encoding: self.encoding,
        }
    }
}

impl SourceKind for CsvSource {
    fn problems(&self) -> Vec<(&'static str, String)> {
        if self.delimiter.is_empty() {
            vec![("delimiter", "must not be empty".into())]
        } else {
            Vec::new()
        }
    }

    fn location_mut(&mut self) -> Option<&mut Location> {
        Some(&mut self.path)
    }
}

fn yes() -> bool {
    true
}

fn comma() -> String {
    ",".into()
}

/// Declared columns: `"user_id bigint, title string"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Columns(pub Vec<ColumnSpec>);

impl<'de> Deserialize<'de> for Columns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_columns(&text).map(Columns).map_err(D::Error::custom)
    }
}

/// A CSV quote character; `""` turns quoting off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote(pub Option<u8>);

impl Default for Quote {
    fn default() -> Self {
        Quote(Some(b'"'))
    }
}

impl<'de> Deserialize<'de> for Quote {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_bytes() {
            [] => Ok(Quote(None)),
            [c] if c.is_ascii() => Ok(Quote(Some(*c))),
            _ => Err(D::Error::custom(format!(
                "must be one ASCII character or \"\", got {text:?}"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Encoding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Location {
    /// As written: a relative path is made relative to the raw directory by
    /// [`SourceSpec::from_toml`], which knows it.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Location::parse(&text).map_err(D::Error::custom)
    }
}

impl SourceSpec {
    /// Reads one `[sources.<name>]` table. Paths are made relative to `raw_dir`. Every problem is
    /// returned as (key within the source, message): keys that do not apply to the format, values
    /// of the wrong type, missing keys and cross-key checks, all at once.
    pub fn from_toml(table: &Table, raw_dir: &Path) -> Result<SourceSpec, Vec<(String, String)>> {
        let format = match table.get("format") {
            None => {
                return Err(vec![(
                    "format".into(),
                    format!("missing (one of {})", FORMATS.join(", ")),
                )]);
            }
            Some(Value::String(format)) => format.clone(),
            Some(other) => {
                return Err(vec![(
                    "format".into(),
                    format!(
                        "must be a string (one of {}), got {}",
                        FORMATS.join(", "),
                        other.type_str()
                    ),
                )]);
            }
        };
        // serde stops at the first problem: report it, drop the key it names and read again, so a
        // user sees every problem of the source at once.
        let mut table = table.clone();
        let mut problems: Vec<(String, String)> = Vec::new();
        let mut spec = loop {
            let error = match SourceSpec::deserialize(Value::Table(table.clone())) {
                Ok(spec) => break spec,
                Err(e) => e,
            };
            let problem = keyed_problem(&error.to_string(), &format);
            let already = problems.iter().any(|(key, _)| *key == problem.key);
            let removed = !problem.key.is_empty() && remove_key(&mut table, &problem.key);
            if !already {
                problems.push((problem.key, problem.message));
            }
            if !removed || problem.missing {
                return Err(problems);
            }
        };
        let kind = spec.kind_mut();
        problems.extend(
            kind.problems()
                .into_iter()
                .map(|(key, message)| (key.to_string(), message)),
        );
        if let Some(location) = kind.location_mut() {
            match location.clone().under(raw_dir) {
                Ok(resolved) => *location = resolved,
                Err(message) => problems.push(("path".into(), message)),
            }
        }
        if problems.is_empty() {
            Ok(spec)
        } else {
            Err(problems)
        }
    }

    /// Where the source's files are, for kinds read from files (a path may be a template of run
    /// variables, `raw/ads_views/{ds}.csv`).
    pub fn location(&self) -> Option<&Location> {
        match self {
            SourceSpec::Csv(s) => Some(&s.path),
            SourceSpec::MovieLens(s)
            | SourceSpec::Json(s)
            | SourceSpec::Ndjson(s)
            | SourceSpec::Parquet(s) => Some(&s.path),
            SourceSpec::Http(_) => None,
        }
    }

    /// The variant's settings, for what every kind answers.
    fn kind_mut(&mut self) -> &mut dyn SourceKind {
        match self {
            SourceSpec::Csv(s) => s,
            SourceSpec::MovieLens(s)
            | SourceSpec::Json(s)
            | SourceSpec::Ndjson(s)
            | SourceSpec::Parquet(s) => s,
            SourceSpec::Http(s) => s,
        }
    }
}

/// One problem read off a serde error.
struct KeyedProblem {
    /// Dotted key within the source (`header`, `pagination.kind`); empty when none is named.
    key: String,
    message: String,
    /// A required key is missing (nothing to drop and read again).
    missing: bool,
}

/// Turns a serde/toml error into (key, message). toml writes the key a value error concerns as a
/// last line "in `a.b`"; serde names unknown and missing keys in backquotes.
fn keyed_problem(text: &str, format: &str) -> KeyedProblem {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut at = String::new();
    let mut message_lines = Vec::new();
    for line in lines {
        match line.strip_prefix("in `").and_then(|l| l.strip_suffix('`')) {
            Some(key) => at = key.to_string(),
            None => message_lines.push(line),
        }
    }
    let message = message_lines.join(" ");
    let join = |at: &str, key: &str| {
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        }
    };
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let takes = expected
            .trim_start_matches(", expected ")
            .trim_start_matches("one of ")
            .replace("` or `", ", ")
            .replace('`', "");
        let message = if at.is_empty() {
            format!("not a key of format = {format:?} sources (they take {takes})")
        } else {
            format!("unknown key (expected {takes})")
        };
        return KeyedProblem {
            key: join(&at, field),
            message,
            missing: false,
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        let key = join(&at, field);
        let message = match key.as_str() {
            "path" => "missing (a file or directory under ingest.raw_dir, or s3://bucket/key)",
            "url" => "missing (the API endpoint, e.g. https://api.example.com/v1/items)",
            _ => "missing",
        };
        return KeyedProblem {
            key,
            message: message.into(),
            missing: true,
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && at == "format"
    {
        let given = rest.split('`').next().unwrap_or_default();
        return KeyedProblem {
            key: at,
            message: format!("unknown format {given:?} (one of {})", FORMATS.join(", ")),
            missing: true,
        };
    }
    KeyedProblem {
        missing: at.is_empty(),
        key: at,
        message,
    }
}

/// Removes a dotted key from a table; whether it was there.
fn remove_key(table: &mut Table, dotted: &str) -> bool {
    match dotted.split_once('.') {
        None => table.remove(dotted).is_some(),
        Some((first, rest)) => match table.get_mut(first) {
            Some(Value::Table(inner)) => remove_key(inner, rest),
            _ => false,
        },
    }
}

/// Reads a variant's settings from the table serde buffered for it, through toml, so that a value
/// of the wrong type is reported with its key (serde's buffer for tagged enums loses it).
fn keyed<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let table = Table::deserialize(d)?;
    Value::Table(table)
        .try_into::<T>()
        .map_err(D::Error::custom)
}

impl SourceKind for HttpSource {
    /// What the types cannot say: the URL (with its variables' defaults, when all have one) must
    /// parse as http(s), a body needs POST, the merge key must name a field.
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        match super::http::substitute_env(&self.url, |_| None).map(|text| url::Url::parse(&text)) {
            Ok(Ok(url)) if !matches!(url.scheme(), "http" | "https") => {
                errors.push(("url", format!("{url} is not an http(s) URL")))
            }
            Ok(Err(e)) => errors.push(("url", format!("not a valid URL: {e}"))),
            _ => {}
        }
        if self.body.is_some() && self.method == super::http::Method::Get {
            errors.push(("body", "a body needs method = \"POST\"".into()));
        }
        if self.merge_key.is_empty() {
            errors.push(("merge_key", "must not be empty".into()));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn read(text: &str) -> Result<SourceSpec, Vec<(String, String)>> {
        SourceSpec::from_toml(&text.parse::<Table>().unwrap(), Path::new("/raw"))
    }

    #[test]
    fn every_listed_format_is_a_variant() {
        for format in FORMATS {
            let text = if format == "http" {
                "url = \"https://api.example.com/x\"".to_string()
            } else {
                "path = \"x\"".to_string()
            };
            let spec = read(&format!("format = \"{format}\"\n{text}\n"));
            assert!(spec.is_ok(), "{format}: {spec:?}");
        }
    }

    #[test]
    fn a_key_of_another_format_is_named_with_the_format() {
        let problems =
            read("format = \"parquet\"\npath = \"x\"\nheader = true\ncolumns = \"a nosuchtype\"\n")
                .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        let about = |key: &str| {
            problems
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, m)| m.clone())
                .unwrap_or_else(|| panic!("no problem about {key}: {problems:?}"))
        };
        assert!(
            about("header")
                .contains("not a key of format = \"parquet\" sources (they take path, columns)"),
            "{problems:?}"
        );
        assert!(
            about("columns").contains("unknown column type"),
            "{problems:?}"
        );
    }

    #[test]
    fn wrong_types_and_missing_keys_name_their_key() {
        let problems = read("format = \"csv\"\nheader = \"yes\"\nquote = \"ab\"\n").unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["header", "quote", "path"], "{problems:?}");
        assert!(problems[0].1.contains("expected a boolean"), "{problems:?}");
        assert!(problems[2].1.starts_with("missing"), "{problems:?}");

        let problems = read("path = \"x\"\n").unwrap_err();
        assert_eq!(problems[0].0, "format");
        assert!(problems[0].1.contains("missing (one of csv, movielens"));
        let problems = read("format = \"cvs\"\npath = \"x\"\n").unwrap_err();
        assert!(
            problems[0].1.contains("unknown format \"cvs\""),
            "{problems:?}"
        );
    }

    #[test]
    fn nested_keys_are_named_by_their_path() {
        let problems = read(
            "format = \"http\"\nurl = \"https://a.example/x\"\npagination = { kind = \"page\", size = 3 }\n",
        )
        .unwrap_err();
        assert_eq!(problems[0].0, "pagination.size", "{problems:?}");
    }

    #[test]
    fn paths_under_a_raw_dir_on_object_storage_are_urls() {
        let table = "format = \"parquet\"\npath = \"events/\"\n"
            .parse::<Table>()
            .unwrap();
        let SourceSpec::Parquet(source) =
            SourceSpec::from_toml(&table, Path::new("s3://bucket/landing")).unwrap()
        else {
            panic!("expected parquet");
        };
        let Location::Remote(url) = source.path else {
            panic!("expected a URL, got {:?}", source.path);
        };
        assert_eq!(url.as_str(), "s3://bucket/landing/events/");
    }

    #[test]
    fn csv_defaults_and_paths_under_the_raw_dir() {
        let SourceSpec::Csv(csv) = read("format = \"csv\"\npath = \"events/\"\n").unwrap() else {
            panic!("expected csv");
        };
        assert_eq!(csv.path, Location::Local(PathBuf::from("/raw/events/")));
        assert_eq!(csv.options(), DelimitedOptions::default());
        let SourceSpec::Csv(csv) = read(
            "format = \"csv\"\npath = \"x\"\nquote = \"\"\nencoding = \"latin-1\"\ndelimiter = \";\"\n",
        )
        .unwrap() else {
            panic!("expected csv");
        };
        assert_eq!(csv.quote, Quote(None));
        assert_eq!(csv.encoding, Encoding::Latin1);
        assert_eq!(
            read("format = \"csv\"\npath = \"x\"\ndelimiter = \"\"\n").unwrap_err(),
            [("delimiter".to_string(), "must not be empty".to_string())]
        );
    }
}
