//! Expectations: data-quality checks on a step's result, run before anything is committed.
//!
//! The result is registered as a table and the expectations become SQL queries over it: one scan
//! counts every row-level one (`not_null`, `accepted_values`, `row_count`, free-form `checks`),
//! and each `unique` key is one grouping, or one sort of packed keys when its columns are integers
//! ([`distinct_keys`]). Every expectation is
//! evaluated, and all failures are reported together with a few offending rows each, so one run tells
//! the user everything that is wrong.

mod distinct_keys;

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

    // Every row-level expectation (not_null, accepted_values, checks) and the row count are
    // counted in one scan of the result; offending rows are fetched only for those that fail.
    let not_null: Vec<(String, String)> = expect
        .not_null
        .iter()
        .map(|column| {
            let predicate = format!("{} IS NULL", quote_ident(column));
            (format!("not_null({column})"), predicate)
        })
        .collect();
    let accepted: Vec<(String, String)> = expect
        .accepted_values
        .iter()
        .map(|(column, values)| {
            let literals: Vec<String> = values.iter().map(toml_literal).collect();
            let predicate = format!(
                "{c} IS NOT NULL AND {c} NOT IN ({})",
                literals.join(", "),
                c = quote_ident(column)
            );
            (format!("accepted_values({column})"), predicate)
        })
        .collect();
    let checks: Vec<(String, String)> = expect
        .checks
        .iter()
        .map(|check| (format!("check({check})"), format!("({check}) IS NOT TRUE")))
        .collect();
    let row_level: Vec<&(String, String)> =
        not_null.iter().chain(&accepted).chain(&checks).collect();
    let mut counts = vec![0];
    if !row_level.is_empty() || expect.row_count.is_some() {
        let mut columns = vec!["count(*)".to_string()];
        columns.extend(
            row_level
                .iter()
                .map(|(_, predicate)| format!("count(*) FILTER (WHERE {predicate})")),
        );
        counts = scalar_counts(&ctx, &format!("SELECT {} FROM result", columns.join(", "))).await?;
    }
    let rows = counts[0];
    let mut violations = counts.into_iter().skip(1);
    let not_null_failures = failed(&ctx, &not_null, &mut violations).await?;
    let accepted_failures = failed(&ctx, &accepted, &mut violations).await?;
    let check_failures = failed(&ctx, &checks, &mut violations).await?;

    // Reported in the order the expectations are documented: not_null, unique,
    // accepted_values, row_count, checks.
    let mut failures = not_null_failures;

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
        if distinct_keys::all_distinct(&ctx, &columns, rows).await? == Some(true) {
            continue;
        }
        let count = scalar_counts(&ctx, &format!("SELECT count(*) FROM ({duplicates})")).await?[0];
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

    failures.extend(accepted_failures);

    if let Some(bounds) = expect.row_count {
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

    failures.extend(check_failures);
    Ok(failures)
}

/// The failures among `expectations` (name, predicate), given their violation counts in order;
/// each with a few offending rows.
async fn failed(
    ctx: &SessionContext,
    expectations: &[(String, String)],
    violations: &mut impl Iterator<Item = u64>,
) -> datafusion::error::Result<Vec<Failure>> {
    let mut failures = Vec::new();
    for (name, predicate) in expectations {
        let count = violations.next().unwrap_or(0);
        if count > 0 {
            let sample =
                sample_rows(ctx, &format!("SELECT * FROM result WHERE {predicate}")).await?;
            failures.push(Failure {
                expectation: name.clone(),
                violations: count,
                sample,
            });
        }
    }
    Ok(failures)
}

/// The counts in the one row `sql` answers (each an `Int64` column).
async fn scalar_counts(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<Vec<u64>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(vec![0]);
    };
    Ok(batch
        .columns()
        .iter()
        .map(|column| {
            column
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map_or(0, |a| a.value(0).max(0) as u64)
        })
        .collect())
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
