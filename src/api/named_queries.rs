//! Named queries: `sql/api/<name>.sql`, each a read-only query with named, typed parameters,
//! served at `GET /v1/q/<name>?param=value` (like Datasette's canned queries, but versioned and
//! cached).
//!
//! A file holds one `SELECT` / `WITH` query. Its leading comment lines describe it (the OpenAPI
//! summary); `-- strata:` header lines declare its parameters, which the query reads as `$name`:
//! ```sql
//! -- The latest day's recommendations of one model for one advertiser.
//! -- strata: params.advertiser = "string"
//! -- strata: params.model = { type = "string", values = ["top_ctr", "top_product"] }
//! -- strata: params.days = { type = "int", default = 7, description = "days back" }
//! SELECT ... WHERE advertiser_id = $advertiser AND ...
//! ```
//! Types: `string`, `int` (BIGINT), `float` (DOUBLE), `date` (YYYY-MM-DD), `bool`. A parameter
//! with a `default` may be left out; `values` lists the only values accepted. A query may also
//! declare a path of its own, `-- strata: path = "/v1/advertisers/{advertiser}/recommendations"`,
//! whose `{segments}` are parameters; it must be under `/v1/`, clear of the server's endpoints,
//! and match no request another query's path matches.
//!
//! Owns: reading and checking the files when the server starts (every problem names the file),
//! and turning a request's parameters into typed values ([`NamedQuery::bind`]), which DataFusion
//! binds into the plan: a value is never pasted into SQL text. Not here: running the query and
//! caching its answer (`routes::named`), the OpenAPI entries (`api::openapi_get`).
//!
//! Invariant: every `$name` the query reads is declared and every declared parameter is read, so
//! a request is answered only with every placeholder bound to a value of its declared type.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::parser::Statement;
use serde::Deserialize;

use crate::catalog::TableName;
use crate::error::{Error, Result};
use crate::pipeline::settings::{HEADER_PREFIX, parse_header};
use crate::pipeline::step::sql::{parse_single_query, table_reads};
use crate::variables;

/// Where named queries live, under the SQL directory.
pub const API_DIR: &str = "api";

/// A parameter's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Float,
    Date,
    Bool,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Date => "date",
            ParamType::Bool => "bool",
        }
    }

    /// `text` as a value of this type, or what was expected.
    pub fn parse(self, text: &str) -> std::result::Result<ScalarValue, String> {
        match self {
            ParamType::String => Ok(ScalarValue::Utf8(Some(text.to_string()))),
            ParamType::Int => text
                .trim()
                .parse::<i64>()
                .map(|n| ScalarValue::Int64(Some(n)))
                .map_err(|_| "an integer".to_string()),
            ParamType::Float => match text.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(ScalarValue::Float64(Some(x))),
                _ => Err("a finite number".into()),
            },
            ParamType::Date => variables::parse_date(text.trim())
                .map(variables::date_value)
                .map_err(|_| "a date, YYYY-MM-DD".to_string()),
            ParamType::Bool => match text.trim() {
                "true" | "1" => Ok(ScalarValue::Boolean(Some(true))),
                "false" | "0" => Ok(ScalarValue::Boolean(Some(false))),
                _ => Err("true or false".into()),
            },
        }
    }
}

/// A parameter as declared: `"string"`, or a table with its type and options.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Declared {
    Type(ParamType),
    Full(FullParam),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FullParam {
    #[serde(rename = "type")]
    kind: ParamType,
    #[serde(default)]
    default: Option<toml::Value>,
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    #[serde(default)]
    params: BTreeMap<String, Declared>,
    /// A path of its own beside `/v1/q/<name>`, with parameters in it: `/v1/advertisers/{advertiser}/recommendations`.
    #[serde(default)]
    path: Option<String>,
}

/// The first segments after `/v1/` that the server's own endpoints use: a named query's `path`
/// may not start with one.
const RESERVED_SEGMENTS: [&str; 8] = [
    "tables", "query", "q", "users", "items", "models", "admin", "runs",
];

/// One declared parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub kind: ParamType,
    /// The value used when the request leaves the parameter out, as text (it is parsed like a
    /// request's); `None` makes the parameter required.
    pub default: Option<String>,
    /// The only values accepted, when listed.
    pub values: Option<Vec<String>>,
    pub description: Option<String>,
}

/// A request's parameters, typed and checked: ready to bind, and to key the cache with.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// Every parameter's value as text (defaults filled in), by name.
    pub text: BTreeMap<String, String>,
    pub values: HashMap<String, ScalarValue>,
}

impl Bound {
    pub fn params(&self) -> ParamValues {
        ParamValues::from(self.values.clone())
    }
}

/// Why a request's parameters were refused: an API error code and a message naming the parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub code: &'static str,
    pub message: String,
}

/// One named query.
#[derive(Debug, Clone)]
pub struct NamedQuery {
    pub name: String,
    pub file: PathBuf,
    pub sql: String,
    /// The leading comment lines, as one paragraph.
    pub description: String,
    pub params: Vec<Param>,
    /// The lake tables it reads.
    pub reads: BTreeSet<TableName>,
    /// Its own path beside `/v1/q/<name>`, whose `{param}` segments are parameters.
    pub path: Option<String>,
}

impl NamedQuery {
    /// Reads and checks one file.
    pub fn read(name: &str, file: &Path) -> Result<NamedQuery> {
        let sql = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        let problem = |message: String| Error::NamedQuery {
            file: file.to_path_buf(),
            message,
        };
        let header: Header = toml::Value::Table(parse_header(file, &sql)?)
            .try_into()
            .map_err(|e: toml::de::Error| {
                problem(format!(
                    "invalid `{HEADER_PREFIX}` header (params.<name> = \"string\" | \"int\" | \
                     \"float\" | \"date\" | \"bool\", or {{ type, default, values, description }}): {}",
                    e.message()
                ))
            })?;
        let statement = parse_single_query(file, &sql)?;
        let used = match &statement {
            Statement::Statement(query) => variables::sql_parameters(query),
            _ => BTreeSet::new(),
        };
        let mut params = Vec::new();
        for (name, declared) in header.params {
            let param = match declared {
                Declared::Type(kind) => Param {
                    name,
                    kind,
                    default: None,
                    values: None,
                    description: None,
                },
                Declared::Full(full) => Param {
                    default: full.default.map(|value| match value {
                        toml::Value::String(text) => text,
                        other => other.to_string(),
                    }),
                    name,
                    kind: full.kind,
                    values: full.values,
                    description: full.description,
                },
            };
            if let Some(default) = &param.default {
                param.check(default).map_err(|e| {
                    problem(format!("params.{} default: {}", param.name, e.message))
                })?;
            }
            if !used.contains(&param.name) {
                return Err(problem(format!(
                    "params.{0} is declared but the query never reads ${0}",
                    param.name
                )));
            }
            params.push(param);
        }
        if let Some(undeclared) = used.iter().find(|u| !params.iter().any(|p| &p.name == *u)) {
            return Err(problem(format!(
                "the query reads ${undeclared}: declare it, e.g. `-- strata: params.{undeclared} = \"string\"`"
            )));
        }
        if let Some(path) = &header.path {
            check_path(path, &params).map_err(problem)?;
        }
        Ok(NamedQuery {
            name: name.to_string(),
            file: file.to_path_buf(),
            description: description(&sql),
            reads: table_reads(file, &statement)?,
            sql,
            params,
            path: header.path,
        })
    }

    /// The parameters its `path` carries, in order.
    pub fn path_params(&self) -> Vec<&str> {
        self.path.as_deref().map(path_segments).unwrap_or_default()
    }

    /// The request's parameters (`given`, from the query string) as typed values: 400-worthy
    /// problems name the parameter (unknown, missing, mistyped, not one of the listed values).
    pub fn bind(&self, given: &BTreeMap<String, String>) -> std::result::Result<Bound, ParamError> {
        if let Some(unknown) = given
            .keys()
            .find(|k| !self.params.iter().any(|p| &p.name == *k))
        {
            return Err(ParamError {
                code: "unknown_param",
                message: format!(
                    "{} takes no parameter {unknown:?} (it takes: {})",
                    self.name,
                    self.param_list()
                ),
            });
        }
        let mut bound = Bound {
            text: BTreeMap::new(),
            values: HashMap::new(),
        };
        for param in &self.params {
            let text = match (given.get(&param.name), &param.default) {
                (Some(text), _) => text.clone(),
                (None, Some(default)) => default.clone(),
                (None, None) => {
                    return Err(ParamError {
                        code: "missing_param",
                        message: format!(
                            "{} needs the parameter {} ({}): /v1/q/{}?{}=...",
                            self.name,
                            param.name,
                            param.kind.as_str(),
                            self.name,
                            param.name
                        ),
                    });
                }
            };
            let value = param.check(&text)?;
            bound.values.insert(param.name.clone(), value);
            bound.text.insert(param.name.clone(), text);
        }
        Ok(bound)
    }

    fn param_list(&self) -> String {
        if self.params.is_empty() {
            return "none".into();
        }
        self.params
            .iter()
            .map(|p| format!("{} ({})", p.name, p.kind.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Param {
    /// `text` as this parameter's value, or why not.
    fn check(&self, text: &str) -> std::result::Result<ScalarValue, ParamError> {
        let value = self.kind.parse(text).map_err(|expected| ParamError {
            code: "bad_param",
            message: format!("parameter {}: expected {expected}, got {text:?}", self.name),
        })?;
        if let Some(values) = &self.values
            && !values.iter().any(|v| v == text)
        {
            return Err(ParamError {
                code: "bad_param",
                message: format!(
                    "parameter {}: {text:?} is not one of {}",
                    self.name,
                    values.join(", ")
                ),
            });
        }
        Ok(value)
    }
}

/// The `{name}` segments of a path.
fn path_segments(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// A named query's own path: under `/v1/`, clear of the server's endpoints, each `{segment}` a
/// declared parameter with no default (a path segment is always given).
fn check_path(path: &str, params: &[Param]) -> std::result::Result<(), String> {
    let shape_ok = path.starts_with("/v1/")
        && !path.ends_with('/')
        && path[1..].split('/').all(|segment| {
            !segment.is_empty()
                && (segment.starts_with('{') && segment.ends_with('}')
                    || segment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        });
    if !shape_ok {
        return Err(format!(
            "path = {path:?}: write /v1/<segments>, each a name or a {{parameter}}, e.g. \
             \"/v1/advertisers/{{advertiser}}/recommendations\""
        ));
    }
    let first = path["/v1/".len()..].split('/').next().unwrap_or_default();
    if RESERVED_SEGMENTS.contains(&first) {
        return Err(format!(
            "path = {path:?} is under /v1/{first}, which the server's own endpoints use"
        ));
    }
    for segment in path_segments(path) {
        match params.iter().find(|p| p.name == segment) {
            None => {
                return Err(format!(
                    "path = {path:?}: {{{segment}}} is not a declared parameter"
                ));
            }
            Some(p) if p.default.is_some() => {
                return Err(format!(
                    "path = {path:?}: {{{segment}}} has a default, but a path segment is always given"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The leading comment lines of a query file (header lines excluded), joined.
fn description(sql: &str) -> String {
    let mut lines = Vec::new();
    for line in sql.lines() {
        let line = line.trim();
        if line.starts_with(HEADER_PREFIX) {
            continue;
        }
        match line.strip_prefix("--") {
            Some(text) => lines.push(text.trim().to_string()),
            None if line.is_empty() => continue,
            None => break,
        }
    }
    lines.join(" ").trim().to_string()
}

/// Every named query of a SQL directory, by name.
#[derive(Debug, Clone, Default)]
pub struct NamedQueries(BTreeMap<String, Arc<NamedQuery>>);

impl NamedQueries {
    /// Reads `<sql_dir>/api/*.sql` (none when the directory does not exist).
    pub fn load(sql_dir: &Path) -> Result<NamedQueries> {
        let dir = sql_dir.join(API_DIR);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(NamedQueries::default());
        };
        let mut queries = BTreeMap::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".sql"))
            else {
                continue;
            };
            TableName::validate_name(name).map_err(|message| Error::NamedQuery {
                file: path.clone(),
                message: format!("the file name is the endpoint's name: {message}"),
            })?;
            let query = NamedQuery::read(name, &path)?;
            queries.insert(name.to_string(), Arc::new(query));
        }
        // Two paths of the same shape (`/v1/a/{x}` and `/v1/a/{y}`) would both match a request.
        let mut shapes: BTreeMap<String, &str> = BTreeMap::new();
        for query in queries.values() {
            let Some(path) = &query.path else { continue };
            let shape: Vec<&str> = path
                .split('/')
                .map(|s| if s.starts_with('{') { "{}" } else { s })
                .collect();
            if let Some(other) = shapes.insert(shape.join("/"), &query.name) {
                return Err(Error::NamedQuery {
                    file: query.file.clone(),
                    message: format!(
                        "path = {path:?} matches the same requests as the path of named query {other}"
                    ),
                });
            }
        }
        Ok(NamedQueries(queries))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<NamedQuery>> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<NamedQuery>> {
        self.0.values()
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> Result<NamedQuery> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.sql");
        std::fs::write(&file, text).unwrap();
        NamedQuery::read("q", &file)
    }

    const RECOMMENDATIONS: &str = "-- One advertiser's list.\n\
        -- strata: params.advertiser = \"string\"\n\
        -- strata: params.model = { type = \"string\", values = [\"top_ctr\", \"top_product\"], default = \"top_ctr\" }\n\
        -- strata: params.days = { type = \"int\", default = 7 }\n\
        SELECT * FROM gold.top_ctr WHERE advertiser_id = $advertiser AND $model = 'top_ctr' AND $days > 0";

    #[test]
    fn parameters_are_typed_checked_and_defaulted() {
        let q = query(RECOMMENDATIONS).unwrap();
        assert_eq!(q.description, "One advertiser's list.");
        assert_eq!(q.reads, BTreeSet::from(["gold.top_ctr".parse().unwrap()]));
        let given = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let bound = q.bind(&given(&[("advertiser", "adv' OR 1=1 --")])).unwrap();
        assert_eq!(
            bound.values["advertiser"],
            ScalarValue::from("adv' OR 1=1 --"),
            "a value stays data"
        );
        assert_eq!(bound.values["days"], ScalarValue::Int64(Some(7)));
        assert_eq!(bound.text["model"], "top_ctr");
        assert_eq!(q.bind(&given(&[])).unwrap_err().code, "missing_param");
        let err = q
            .bind(&given(&[("advertiser", "a"), ("days", "seven")]))
            .unwrap_err();
        assert_eq!(err.code, "bad_param");
        assert!(
            err.message.contains("days") && err.message.contains("integer"),
            "{}",
            err.message
        );
        let err = q
            .bind(&given(&[("advertiser", "a"), ("model", "als")]))
            .unwrap_err();
        assert!(
            err.message.contains("top_ctr, top_product"),
            "{}",
            err.message
        );
        let err = q
            .bind(&given(&[("advertiser", "a"), ("x", "1")]))
            .unwrap_err();
        assert_eq!(err.code, "unknown_param");
    }

    #[test]
    fn every_placeholder_is_declared_and_every_declaration_read() {
        let err = query("SELECT $a").unwrap_err().to_string();
        assert!(err.contains("declare it"), "{err}");
        let err = query("-- strata: params.a = \"int\"\n-- strata: params.b = \"int\"\nSELECT $a")
            .unwrap_err()
            .to_string();
        assert!(err.contains("params.b is declared"), "{err}");
        let err = query("-- strata: params.a = \"uuid\"\nSELECT $a")
            .unwrap_err()
            .to_string();
        assert!(err.contains("q.sql"), "{err}");
        let err = query("-- strata: params.a = { type = \"int\", default = \"x\" }\nSELECT $a")
            .unwrap_err()
            .to_string();
        assert!(err.contains("params.a default"), "{err}");
        assert!(
            query("DELETE FROM gold.x").is_err(),
            "read-only: one SELECT"
        );
    }

    #[test]
    fn a_declared_path_carries_declared_parameters_clear_of_the_servers_endpoints() {
        let with_path = |path: &str| {
            query(&format!(
                "-- strata: path = \"{path}\"\n-- strata: params.a = \"string\"\n\
                 -- strata: params.b = {{ type = \"int\", default = 1 }}\nSELECT $a, $b"
            ))
        };
        let q = with_path("/v1/things/{a}/list").unwrap();
        assert_eq!(q.path_params(), ["a"]);
        for (path, problem) in [
            ("/v1/things/{c}", "not a declared parameter"),
            ("/v1/things/{b}", "has a default"),
            ("/v1/tables/{a}", "server's own endpoints"),
            ("/v1/q/{a}", "server's own endpoints"),
            ("/things/{a}", "write /v1/"),
            ("/v1/things/{a}/", "write /v1/"),
            ("/v1/th ings", "write /v1/"),
        ] {
            let err = with_path(path).unwrap_err().to_string();
            assert!(err.contains(problem), "{path}: {err}");
        }
    }

    #[test]
    fn types_parse_strictly() {
        assert_eq!(
            ParamType::Float.parse("1.5"),
            Ok(ScalarValue::Float64(Some(1.5)))
        );
        assert!(ParamType::Float.parse("NaN").is_err());
        assert!(ParamType::Date.parse("2026-02-30").is_err());
        assert_eq!(
            ParamType::Bool.parse("1"),
            Ok(ScalarValue::Boolean(Some(true)))
        );
        assert!(ParamType::Int.parse("1e3").is_err());
    }
}
