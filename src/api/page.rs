//! A table page request (`GET /v1/tables/{table}?...`): parsing the query string and applying it to
//! a DataFrame.
//!
//! `limit`, `offset`, `columns=a,b`, `order_by=a,-b` (or `b:desc`), `filter=col:op:value` (repeatable;
//! ops `eq ne lt le gt ge like in contains is_null not_null`; `in` takes `a|b|c`), `version=N` or
//! `as_of=RFC3339`, `format`. Filter values become typed literals of the column's type, never SQL
//! text, so nothing in a query string can inject SQL.

use std::sync::Arc;

use arrow::array::{Array, StringArray};
use arrow::datatypes::{DataType, Schema};
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{Expr, SortExpr, col, lit};
use datafusion::prelude::DataFrame;

use crate::api::error::{ApiError, ApiResult};

/// Which version of the table to read.
#[derive(Debug, Clone, PartialEq)]
pub enum At {
    Latest,
    Version(u64),
    AsOf(chrono::DateTime<chrono::Utc>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: String,
    pub op: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    pub limit: usize,
    pub offset: usize,
    pub columns: Option<Vec<String>>,
    pub order_by: Vec<(String, bool)>,
    pub filters: Vec<Filter>,
    pub at: At,
    pub format: Option<String>,
    /// The query string in a canonical order, for cache keys.
    pub canonical: String,
}

const OPS: [&str; 11] = [
    "eq", "ne", "lt", "le", "gt", "ge", "like", "in", "contains", "is_null", "not_null",
];

impl PageRequest {
    /// Parses the raw query string; `limit` defaults to `default_limit` and is capped at `max_limit`.
    pub fn parse(raw: Option<&str>, default_limit: usize, max_limit: usize) -> ApiResult<Self> {
        let mut page = PageRequest {
            limit: default_limit,
            offset: 0,
            columns: None,
            order_by: Vec::new(),
            filters: Vec::new(),
            at: At::Latest,
            format: None,
            canonical: String::new(),
        };
        let mut pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        pairs.sort();
        page.canonical = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let bad = |code: &'static str, message: String| ApiError::bad_request(code, message);
        for (key, value) in pairs {
            match key.as_str() {
                "limit" => {
                    let limit: usize = value
                        .parse()
                        .map_err(|_| bad("bad_limit", format!("limit={value}: not a count")))?;
                    page.limit = limit.min(max_limit);
                }
                "offset" => {
                    page.offset = value
                        .parse()
                        .map_err(|_| bad("bad_offset", format!("offset={value}: not a count")))?;
                }
                "columns" => {
                    page.columns = Some(value.split(',').map(|c| c.trim().to_string()).collect());
                }
                "order_by" => {
                    for term in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                        page.order_by.push(parse_order(term)?);
                    }
                }
                "filter" => page.filters.push(parse_filter(&value)?),
                "version" => {
                    let version = value.parse().map_err(|_| {
                        bad(
                            "bad_version",
                            format!("version={value}: not a version number"),
                        )
                    })?;
                    page.at = At::Version(version);
                }
                "as_of" => {
                    let at = crate::catalog::parse_timestamp(&value)
                        .map_err(|e| bad("bad_as_of", format!("as_of={value}: {e}")))?;
                    page.at = At::AsOf(at);
                }
                "format" => page.format = Some(value),
                other => {
                    return Err(bad(
                        "bad_parameter",
                        format!(
                            "unknown parameter {other:?} (expected limit, offset, columns, \
                             order_by, filter, version, as_of, format)"
                        ),
                    ));
                }
            }
        }
        Ok(page)
    }

    /// Applies filters, order, projection and the page window to a scan of the table.
    pub fn apply(&self, frame: DataFrame) -> ApiResult<DataFrame> {
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let mut frame = frame;
        for filter in &self.filters {
            frame = frame.filter(filter_expr(&schema, filter)?)?;
        }
        if !self.order_by.is_empty() {
            let sort: Vec<SortExpr> = self
                .order_by
                .iter()
                .map(|(c, asc)| Ok(column(&schema, c, "order_by")?.sort(*asc, !*asc)))
                .collect::<ApiResult<_>>()?;
            frame = frame.sort(sort)?;
        }
        if let Some(columns) = &self.columns {
            let exprs: Vec<Expr> = columns
                .iter()
                .map(|c| column(&schema, c, "columns"))
                .collect::<ApiResult<_>>()?;
            frame = frame.select(exprs)?;
        }
        Ok(frame.limit(self.offset, Some(self.limit))?)
    }
}

fn parse_order(term: &str) -> ApiResult<(String, bool)> {
    if let Some(name) = term.strip_prefix('-') {
        return Ok((name.to_string(), false));
    }
    match term.rsplit_once(':') {
        Some((name, "desc")) => Ok((name.to_string(), false)),
        Some((name, "asc")) => Ok((name.to_string(), true)),
        Some((_, dir)) => Err(ApiError::bad_request(
            "bad_order_by",
            format!("order_by={term}: direction {dir:?} is not asc or desc"),
        )),
        None => Ok((term.to_string(), true)),
    }
}

fn parse_filter(text: &str) -> ApiResult<Filter> {
    let mut parts = text.splitn(3, ':');
    let column = parts.next().unwrap_or_default().to_string();
    let op = parts.next().unwrap_or_default().to_string();
    let value = parts.next().map(str::to_string);
    if column.is_empty() || !OPS.contains(&op.as_str()) {
        return Err(ApiError::bad_request(
            "bad_filter",
            format!(
                "filter={text}: expected column:op:value with op one of {}",
                OPS.join(", ")
            ),
        ));
    }
    let needs_value = !matches!(op.as_str(), "is_null" | "not_null");
    if needs_value != value.is_some() {
        return Err(ApiError::bad_request(
            "bad_filter",
            format!(
                "filter={text}: {op} {} a value",
                if needs_value { "needs" } else { "takes no" }
            ),
        ));
    }
    Ok(Filter { column, op, value })
}

fn column(schema: &Schema, name: &str, parameter: &str) -> ApiResult<Expr> {
    if schema.field_with_name(name).is_err() {
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(ApiError::bad_request(
            "unknown_column",
            format!(
                "{parameter}: no column {name:?} (columns: {})",
                columns.join(", ")
            ),
        ));
    }
    Ok(col(Column::from_name(name)))
}

/// `value` as a literal of `data_type`, or a 400 naming the filter.
fn typed_literal(value: &str, data_type: &DataType, filter: &str) -> ApiResult<ScalarValue> {
    let text = StringArray::from(vec![value]);
    let converted = arrow::compute::cast(&text, data_type)
        .ok()
        .filter(|array| array.is_valid(0))
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_filter",
                format!("filter={filter}: {value:?} is not a valid {data_type}"),
            )
        })?;
    ScalarValue::try_from_array(&converted, 0).map_err(ApiError::internal)
}

fn filter_expr(schema: &Schema, filter: &Filter) -> ApiResult<Expr> {
    let text = format!(
        "{}:{}{}",
        filter.column,
        filter.op,
        filter
            .value
            .as_deref()
            .map(|v| format!(":{v}"))
            .unwrap_or_default()
    );
    let target = column(schema, &filter.column, "filter")?;
    let field = schema
        .field_with_name(&filter.column)
        .map_err(ApiError::internal)?;
    let value = filter.value.as_deref().unwrap_or_default();
    let scalar = |v: &str| typed_literal(v, field.data_type(), &text).map(lit);
    Ok(match filter.op.as_str() {
        "eq" => target.eq(scalar(value)?),
        "ne" => target.not_eq(scalar(value)?),
        "lt" => target.lt(scalar(value)?),
        "le" => target.lt_eq(scalar(value)?),
        "gt" => target.gt(scalar(value)?),
        "ge" => target.gt_eq(scalar(value)?),
        "like" => target.like(lit(value)),
        "in" => {
            let values = value
                .split('|')
                .map(scalar)
                .collect::<ApiResult<Vec<_>>>()?;
            target.in_list(values, false)
        }
        "contains" => {
            let element = match field.data_type() {
                DataType::List(inner) | DataType::LargeList(inner) => inner.data_type().clone(),
                other => {
                    return Err(ApiError::bad_request(
                        "bad_filter",
                        format!(
                            "filter={text}: contains needs a list column, {} is {other}",
                            filter.column
                        ),
                    ));
                }
            };
            let needle = typed_literal(value, &element, &text)?;
            datafusion::functions_nested::expr_fn::array_has(target, lit(needle))
        }
        "is_null" => target.is_null(),
        "not_null" => target.is_not_null(),
        _ => unreachable!("ops are checked when parsed"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_parameter_and_caps_the_limit() {
        let page = PageRequest::parse(
            Some("limit=50000&offset=10&columns=a,b&order_by=a,-b&filter=a:eq:3&filter=b:is_null&version=2"),
            100,
            1000,
        )
        .unwrap();
        assert_eq!(page.limit, 1000);
        assert_eq!(page.offset, 10);
        assert_eq!(page.columns, Some(vec!["a".into(), "b".into()]));
        assert_eq!(page.order_by, vec![("a".into(), true), ("b".into(), false)]);
        assert_eq!(page.filters.len(), 2);
        assert_eq!(page.at, At::Version(2));
        let same = PageRequest::parse(
            Some("version=2&filter=b:is_null&filter=a:eq:3&order_by=a,-b&columns=a,b&offset=10&limit=50000"),
            100,
            1000,
        )
        .unwrap();
        assert_eq!(
            page.canonical, same.canonical,
            "parameter order does not change the key"
        );
    }

    #[test]
    fn bad_parameters_are_400_with_a_code() {
        for (query, code) in [
            ("filter=a:approx:3", "bad_filter"),
            ("filter=a:eq", "bad_filter"),
            ("filter=a:is_null:x", "bad_filter"),
            ("limit=ten", "bad_limit"),
            ("as_of=yesterday", "bad_as_of"),
            ("order_by=a:up", "bad_order_by"),
            ("sort=a", "bad_parameter"),
        ] {
            let err = PageRequest::parse(Some(query), 100, 1000).unwrap_err();
            assert_eq!(err.code, code, "{query}");
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn filter_values_are_typed_literals_not_sql() {
        let schema = Schema::new(vec![
            arrow::datatypes::Field::new("id", DataType::Int64, false),
            arrow::datatypes::Field::new("name", DataType::Utf8, true),
        ]);
        let injection = Filter {
            column: "name".into(),
            op: "eq".into(),
            value: Some("x' OR '1'='1".into()),
        };
        let expr = filter_expr(&schema, &injection).unwrap();
        assert_eq!(expr, col("name").eq(lit("x' OR '1'='1")));
        let not_a_number = Filter {
            column: "id".into(),
            op: "eq".into(),
            value: Some("1 OR 1=1".into()),
        };
        assert_eq!(
            filter_expr(&schema, &not_a_number).unwrap_err().code,
            "bad_filter"
        );
        let unknown = Filter {
            column: "nope".into(),
            op: "eq".into(),
            value: Some("1".into()),
        };
        assert_eq!(
            filter_expr(&schema, &unknown).unwrap_err().code,
            "unknown_column"
        );
    }
}
