//! Expectations: data-quality checks on a step's result, run before anything is committed.
//!
//! The result is registered as an in-memory table and each expectation becomes one SQL query over it
//! (`not_null`, `unique`, `accepted_values`, `row_count`, free-form `checks`). Every expectation is
//! evaluated, and all failures are reported together with a few offending rows each, so one run tells
//! the user everything that is wrong.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::catalog::TableName;
use crate::error::{Error, Result};
use crate::pipeline::commit::{quote_ident, quote_literal};
use crate::pipeline::settings::Expectations;

/// How many offending rows an error message shows per failed expectation.
const SAMPLE_ROWS: usize = 5;

/// One failed expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// `not_null(user_id)`, `unique(user_id, movie_id)`, `check(rating BETWEEN 1 AND 5)`, ...
    pub expectation: String,
    /// How many rows (or keys) violate it.
    pub violations: u64,
    /// A few offending rows as JSON lines.
    pub sample: Vec<String>,
}

/// Checks the table registered as `result` in `ctx` against `expect`; `Err(Error::Expectation)`
/// lists every failure.
pub async fn check(step: &TableName, ctx: &SessionContext, expect: &Expectations) -> Result<()> {
    if expect.is_empty() {
        return Ok(());
    }
    let failures = evaluate_registered(ctx, expect)
        .await
        .map_err(|e| Error::Expectation {
            step: step.clone(),
            expectation: "(evaluation)".into(),
            detail: format!("could not evaluate expectations: {e}"),
        })?;
    if failures.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = failures.iter().map(|f| f.expectation.as_str()).collect();
    let mut detail = String::new();
    for failure in &failures {
        detail.push_str(&format!(
            "\n  {}: {} violation(s)",
            failure.expectation, failure.violations
        ));
        for row in &failure.sample {
            detail.push_str(&format!("\n    {row}"));
        }
    }
    Err(Error::Expectation {
        step: step.clone(),
        expectation: names.join(", "),
        detail,
    })
}

/// Evaluates every expectation over in-memory batches and returns the failures.
pub async fn evaluate(
    schema: SchemaRef,
    batches: &[RecordBatch],
    expect: &Expectations,
) -> datafusion::error::Result<Vec<Failure>> {
    let ctx = crate::session::scratch_session();
    let table = MemTable::try_new(schema, vec![batches.to_vec()])?;
    ctx.register_table("result", Arc::new(table))?;
    evaluate_registered(&ctx, expect).await
}

/// Evaluates every expectation over the table registered as `result` (streaming queries: memory is
/// bounded by DataFusion's operators, not by the result size). Returns the failures.
pub async fn evaluate_registered(
    ctx: &SessionContext,
    expect: &Expectations,
) -> datafusion::error::Result<Vec<Failure>> {
    let ctx = ctx.clone();
    let mut failures = Vec::new();

    for column in &expect.not_null {
        let predicate = format!("{} IS NULL", quote_ident(column));
        if let Some(f) = violations(&ctx, format!("not_null({column})"), &predicate).await? {
            failures.push(f);
        }
    }

    for key in &expect.unique {
        let columns = key.columns();
        let list = columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let duplicates = format!(
            "SELECT {list}, count(*) AS duplicate_rows FROM result GROUP BY {list} HAVING count(*) > 1"
        );
        let name = format!("unique({})", columns.join(", "));
        let count = scalar_count(&ctx, &format!("SELECT count(*) FROM ({duplicates})")).await?;
        if count > 0 {
            let sample =
                sample_rows(&ctx, &format!("{duplicates} ORDER BY duplicate_rows DESC")).await?;
            failures.push(Failure {
                expectation: name,
                violations: count,
                sample,
            });
        }
    }

    for (column, values) in &expect.accepted_values {
        let literals: Vec<String> = values.iter().map(toml_literal).collect();
        let predicate = format!(
            "{c} IS NOT NULL AND {c} NOT IN ({})",
            literals.join(", "),
            c = quote_ident(column)
        );
        let name = format!("accepted_values({column})");
        if let Some(f) = violations(&ctx, name, &predicate).await? {
            failures.push(f);
        }
    }

    if let Some(bounds) = expect.row_count {
        let rows = scalar_count(&ctx, "SELECT count(*) FROM result").await?;
        let below = bounds.min.is_some_and(|min| rows < min);
        let above = bounds.max.is_some_and(|max| rows > max);
        if below || above {
            let range = format!(
                "{}..{}",
                bounds.min.map(|v| v.to_string()).unwrap_or_default(),
                bounds.max.map(|v| v.to_string()).unwrap_or_default()
            );
            failures.push(Failure {
                expectation: format!("row_count({range})"),
                violations: 1,
                sample: vec![format!("the result has {rows} rows")],
            });
        }
    }

    for check in &expect.checks {
        let predicate = format!("({check}) IS NOT TRUE");
        if let Some(f) = violations(&ctx, format!("check({check})"), &predicate).await? {
            failures.push(f);
        }
    }
    Ok(failures)
}

/// Counts rows matching `predicate`; a failure when there are any.
async fn violations(
    ctx: &SessionContext,
    name: String,
    predicate: &str,
) -> datafusion::error::Result<Option<Failure>> {
    let count = scalar_count(
        ctx,
        &format!("SELECT count(*) FROM result WHERE {predicate}"),
    )
    .await?;
    if count == 0 {
        return Ok(None);
    }
    let sample = sample_rows(ctx, &format!("SELECT * FROM result WHERE {predicate}")).await?;
    Ok(Some(Failure {
        expectation: name,
        violations: count,
        sample,
    }))
}

async fn scalar_count(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<u64> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let count = batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0);
    Ok(count.max(0) as u64)
}

async fn sample_rows(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<Vec<String>> {
    let batches = ctx
        .sql(&format!("{sql} LIMIT {SAMPLE_ROWS}"))
        .await?
        .collect()
        .await?;
    let mut out = Vec::new();
    let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
    writer.write_batches(&batches.iter().collect::<Vec<_>>())?;
    writer.finish()?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_string)
        .collect())
}

fn toml_literal(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => quote_literal(s),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::settings::{RowCount, UniqueKey};
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    fn sample() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("grade", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(2), None])),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    Some("z"),
                    Some("a"),
                ])),
            ],
        )
        .unwrap();
        (schema, vec![batch])
    }

    #[tokio::test]
    async fn every_failed_expectation_is_reported_with_offending_rows() {
        let (schema, batches) = sample();
        let expect = Expectations {
            not_null: vec!["id".into(), "grade".into()],
            unique: vec![UniqueKey::Column("id".into())],
            accepted_values: [(
                "grade".to_string(),
                vec![toml::Value::from("a"), toml::Value::from("b")],
            )]
            .into(),
            row_count: Some(RowCount {
                min: Some(10),
                max: None,
            }),
            checks: vec!["id > 1".into()],
        };
        let failures = evaluate(schema, &batches, &expect).await.unwrap();
        let names: Vec<&str> = failures.iter().map(|f| f.expectation.as_str()).collect();
        assert_eq!(
            names,
            [
                "not_null(id)",
                "unique(id)",
                "accepted_values(grade)",
                "row_count(10..)",
                "check(id > 1)"
            ]
        );
        assert_eq!(failures[0].sample, [r#"{"grade":"a"}"#]);
        assert_eq!(failures[1].sample, [r#"{"id":2,"duplicate_rows":2}"#]);
        // id = 1 fails `id > 1`, and so does the NULL id (NULL is not TRUE).
        assert_eq!(failures[4].violations, 2);
    }

    #[tokio::test]
    async fn passing_expectations_give_no_failures() {
        let (schema, batches) = sample();
        let expect = Expectations {
            not_null: vec!["grade".into()],
            unique: vec![UniqueKey::Columns(vec!["id".into(), "grade".into()])],
            row_count: Some(RowCount {
                min: Some(1),
                max: Some(4),
            }),
            ..Default::default()
        };
        assert!(
            evaluate(schema, &batches, &expect)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
