//! Run variables: `strata run --var ds=2026-11-30`, what they are, and the three places they are
//! used, with one syntax each:
//! - in SQL (step queries, `replace_where` predicates) as named parameters, `$ds`, bound as
//!   values by DataFusion (never pasted into the SQL text);
//! - in source paths as templates, `raw/ads_views/{ds}.csv`;
//! - in `system.runs`, as the run's `variables` (a JSON object).
//!
//! Types: `ds` is the run's logical date and must be `YYYY-MM-DD`; it binds as a `DATE`. Every
//! other variable binds as a string (`CAST($n AS BIGINT)` in SQL where a number is meant).
//! Names are lower-case identifiers (`[a-z_][a-z0-9_]*`).
//!
//! A leaf: imports no module of the crate. `run_options` carries a run's [`RunVars`], `pipeline`
//! binds them, `ingest` fills its path templates.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::ControlFlow;

use chrono::NaiveDate;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::sqlparser::ast::{Expr, Statement, Value, Visit, visit_expressions};

/// The variable holding a run's logical date (Airflow's `ds`).
pub const DS: &str = "ds";

/// The variables of one run, by name; every value is valid for its name's type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunVars(BTreeMap<String, String>);

impl RunVars {
    /// Variables from `name=value` pairs (the `--var` flags), each checked.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<RunVars, String> {
        let mut vars = BTreeMap::new();
        for pair in pairs {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(format!(
                    "--var {pair}: write NAME=VALUE, e.g. --var ds=2026-11-30"
                ));
            };
            if vars.insert(name.to_string(), value.to_string()).is_some() {
                return Err(format!("--var {name} is given twice"));
            }
        }
        RunVars::try_from_map(vars)
    }

    /// Variables from a map (a request body, a schedule), each checked.
    pub fn try_from_map(vars: BTreeMap<String, String>) -> Result<RunVars, String> {
        for (name, value) in &vars {
            check_name(name)?;
            if name == DS {
                parse_date(value).map_err(|e| format!("variable ds={value:?}: {e}"))?;
            }
        }
        Ok(RunVars(vars))
    }

    /// Only `ds`, set to `date`.
    pub fn for_date(date: NaiveDate) -> RunVars {
        RunVars(BTreeMap::from([(
            DS.to_string(),
            date.format("%Y-%m-%d").to_string(),
        )]))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The run's logical date, when it has one.
    pub fn ds(&self) -> Option<NaiveDate> {
        self.get(DS).and_then(|text| parse_date(text).ok())
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Those of `names` with no value here.
    pub fn missing<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
        names
            .into_iter()
            .filter(|name| !self.0.contains_key(*name))
            .map(String::as_str)
            .collect()
    }

    /// The values of `names` (those that exist), for a fingerprint: a step that reads `$ds` for
    /// one day is not up to date with the commit it made for another.
    pub fn subset<'a>(&'a self, names: &'a BTreeSet<String>) -> BTreeMap<&'a str, &'a str> {
        names
            .iter()
            .filter_map(|name| Some((name.as_str(), self.get(name)?)))
            .collect()
    }

    /// The typed value of one variable: `ds` a `DATE`, any other a string.
    pub fn value(&self, name: &str) -> Option<ScalarValue> {
        let text = self.get(name)?;
        Some(if name == DS {
            date_value(parse_date(text).expect("checked when the variables were made"))
        } else {
            ScalarValue::Utf8(Some(text.to_string()))
        })
    }

    /// The variables among `names` as named query parameters (`$name`), typed.
    pub fn params(&self, names: &BTreeSet<String>) -> ParamValues {
        let values: HashMap<String, ScalarValue> = names
            .iter()
            .filter_map(|name| Some((name.clone(), self.value(name)?)))
            .collect();
        ParamValues::from(values)
    }

    /// `template` with every `{name}` replaced by that variable's value; the error names the
    /// first variable that has none.
    pub fn fill(&self, template: &str) -> Result<String, String> {
        let mut filled = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            filled.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find('}') {
                Some(close) if check_name(&after[..close]).is_ok() => {
                    let name = &after[..close];
                    let value = self.get(name).ok_or_else(|| name.to_string())?;
                    filled.push_str(value);
                    rest = &after[close + 1..];
                }
                _ => {
                    filled.push('{');
                    rest = after;
                }
            }
        }
        filled.push_str(rest);
        Ok(filled)
    }

    /// The variables as a JSON object, as `system.runs` stores them.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("a map of strings serialises")
    }

    /// The variables `system.runs` stored ([`RunVars::to_json`]), checked again.
    pub fn from_json(text: &str) -> Result<RunVars, String> {
        let vars =
            serde_json::from_str(text).map_err(|e| format!("run variables {text:?}: {e}"))?;
        RunVars::try_from_map(vars)
    }
}

impl fmt::Display for RunVars {
    /// `ds=2026-11-30 region=eu`, as the command line shows a run's variables.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&pairs.join(" "))
    }
}

/// The `{name}` variables a path template uses, in order of first use.
pub fn template_names(template: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if check_name(&after[..close]).is_ok() => {
                names.insert(after[..close].to_string());
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    names
}

/// The named parameters (`$name`) a parsed SQL statement uses; positional ones (`$1`) are not
/// run variables and are left out.
pub fn sql_parameters(statement: &Statement) -> BTreeSet<String> {
    placeholders(statement)
}

/// The `$name` placeholders anywhere in a parsed statement or expression.
fn placeholders(sql: &impl Visit) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let _ = visit_expressions(sql, |expr| {
        if let Expr::Value(value) = expr
            && let Value::Placeholder(text) = &value.value
            && let Some(name) = text.strip_prefix('$')
            && check_name(name).is_ok()
        {
            names.insert(name.to_string());
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

/// The named parameters in a SQL expression (a `replace_where` predicate), or why it does not
/// parse as one.
pub fn expression_parameters(sql: &str) -> Result<BTreeSet<String>, String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::Token;
    let mut parser = Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .map_err(|e| e.to_string())?;
    let expr = parser.parse_expr().map_err(|e| e.to_string())?;
    if parser.peek_token().token != Token::EOF {
        return Err(format!(
            "unexpected {} after the predicate",
            parser.peek_token()
        ));
    }
    Ok(placeholders(&expr))
}

/// `YYYY-MM-DD`, strictly.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let shape_ok = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) if shape_ok => Ok(date),
        _ => Err("not a date: write YYYY-MM-DD, e.g. 2026-11-30".into()),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "variable name {name:?}: use lower-case letters, digits and _ (e.g. ds)"
        ))
    }
}

/// A date as Arrow's `Date32` counts it: days since 1970-01-01.
pub fn days_since_epoch(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
    (date - epoch).num_days() as i32
}

/// A date as a typed SQL value (`DATE`).
pub fn date_value(date: NaiveDate) -> ScalarValue {
    ScalarValue::Date32(Some(days_since_epoch(date)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_must_be_a_date_and_names_identifiers() {
        let vars = RunVars::parse(["ds=2026-11-30", "region=eu"]).unwrap();
        assert_eq!(vars.to_string(), "ds=2026-11-30 region=eu");
        assert_eq!(vars.ds(), NaiveDate::from_ymd_opt(2026, 11, 30));
        assert_eq!(
            vars.value("ds"),
            Some(ScalarValue::Date32(Some(20_787))),
            "days since 1970-01-01"
        );
        assert_eq!(vars.value("region"), Some(ScalarValue::from("eu")));
        for bad in [
            "ds=2026-13-01",
            "ds=2026-1-5",
            "ds=yesterday",
            "ds=2026-11-30 ",
        ] {
            let err = RunVars::parse([bad]).unwrap_err();
            assert!(err.contains("YYYY-MM-DD"), "{bad}: {err}");
        }
        assert!(RunVars::parse(["Ds=1"]).unwrap_err().contains("lower-case"));
        assert!(RunVars::parse(["ds"]).unwrap_err().contains("NAME=VALUE"));
        assert!(
            RunVars::parse(["a=1", "a=2"])
                .unwrap_err()
                .contains("twice")
        );
        assert_eq!(vars.to_json(), r#"{"ds":"2026-11-30","region":"eu"}"#);
        assert_eq!(RunVars::from_json(&vars.to_json()), Ok(vars));
        assert!(RunVars::from_json(r#"{"ds":"soon"}"#).is_err());
    }

    #[test]
    fn templates_fill_named_variables_and_leave_other_braces() {
        let vars = RunVars::for_date(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        assert_eq!(
            vars.fill("raw/ads_views/{ds}.csv").unwrap(),
            "raw/ads_views/2026-11-01.csv"
        );
        assert_eq!(
            vars.fill("a/{Not A Name}/{ds}").unwrap(),
            "a/{Not A Name}/2026-11-01"
        );
        assert_eq!(vars.fill("{region}/x").unwrap_err(), "region");
        assert_eq!(
            template_names("{ds}/{region}/{ds}.csv {x y}"),
            BTreeSet::from(["ds".to_string(), "region".to_string()])
        );
    }

    #[test]
    fn sql_parameters_are_the_named_placeholders() {
        let mut statements = datafusion::sql::parser::DFParser::parse_sql(
            "WITH d AS (SELECT * FROM silver.x WHERE date = $ds) \
             SELECT $ds AS date, '$not' AS text, $1 FROM d WHERE r = $region",
        )
        .unwrap();
        let Some(datafusion::sql::parser::Statement::Statement(statement)) = statements.pop_front()
        else {
            panic!("a query")
        };
        assert_eq!(
            sql_parameters(&statement),
            BTreeSet::from(["ds".to_string(), "region".to_string()])
        );
        assert_eq!(
            expression_parameters("date = $ds AND x > 1").unwrap(),
            BTreeSet::from(["ds".to_string()])
        );
        assert!(expression_parameters("date = $ds; DROP TABLE x").is_err());
        assert!(expression_parameters("date =").is_err());
    }
}
