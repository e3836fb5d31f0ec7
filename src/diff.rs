//! What changed in a table between two of its versions: `strata diff` and
//! `GET /v1/tables/{table}/diff`.
//!
//! Owns the comparison: schema changes by column name, then rows added, removed and (with a key)
//! changed, counted first and shown as a few rows each. Both versions are registered in one
//! DataFusion session as `old` and `new` and compared with SQL, so memory is bounded by
//! DataFusion's operators and the run's pool (joins and set differences spill), never by the
//! table's size. Which key identifies a row is the caller's choice (see
//! [`crate::pipeline::natural_key`]); without one, rows are compared on every column shared by
//! both versions, as multisets.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema};
use datafusion::prelude::SessionContext;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::catalog::{Lake, SessionOptions, TableName, provider};
use crate::error::{Error, Result};
use crate::pipeline::commit::quote_ident;

/// Rows shown per kind of change unless the caller asks for another number.
pub const DEFAULT_SAMPLE_ROWS: usize = 20;

/// The difference between two versions of one table.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TableDiff {
    pub table: String,
    pub from_version: u64,
    pub to_version: u64,
    /// The columns rows are matched on; empty: every column both versions share (no row can
    /// then be "changed", only added or removed).
    pub key: Vec<String>,
    /// The columns both versions share, in the newer version's order: the columns of `added`
    /// and `removed` rows.
    pub columns: Vec<String>,
    pub schema: SchemaChanges,
    pub counts: DiffCounts,
    /// Up to `limit` rows of the newer version that the older one does not have.
    #[schema(value_type = Vec<Object>)]
    pub added: Vec<Value>,
    /// Up to `limit` rows of the older version that the newer one does not have.
    #[schema(value_type = Vec<Object>)]
    pub removed: Vec<Value>,
    /// Up to `limit` rows present in both (by key) whose other shared columns differ.
    pub changed: Vec<ChangedRow>,
}

/// Columns added, removed or retyped between the versions (by name).
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SchemaChanges {
    pub added: Vec<Column>,
    pub removed: Vec<Column>,
    pub retyped: Vec<Retyped>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Column {
    pub name: String,
    /// Arrow's name for the type, e.g. `Int64`, `Utf8`, `Timestamp(µs, "UTC")`.
    pub data_type: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Retyped {
    pub name: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct DiffCounts {
    pub rows_from: u64,
    pub rows_to: u64,
    pub added: u64,
    pub removed: u64,
    /// 0 without a key.
    pub changed: u64,
}

/// One changed row: its key and the cells that differ.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ChangedRow {
    #[schema(value_type = Object)]
    pub key: Map<String, Value>,
    pub cells: Vec<ChangedCell>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ChangedCell {
    pub column: String,
    #[schema(value_type = Object)]
    pub from: Value,
    #[schema(value_type = Object)]
    pub to: Value,
}

/// Compares `table` at version `from` with version `to` (the latest when `None`), matching rows
/// on `key` (every shared column when empty), showing at most `limit` rows of each kind.
pub async fn diff(
    lake: &Arc<Lake>,
    options: &SessionOptions,
    table: &TableName,
    from: u64,
    to: Option<u64>,
    key: &[String],
    limit: usize,
) -> Result<TableDiff> {
    let to = match to {
        Some(v) => v,
        None => lake.open(table).await?.version().unwrap_or(0),
    };
    let ctx = lake.session(options)?;
    for (alias, version) in [("old", from), ("new", to)] {
        let delta = lake.open_version(table, version).await?;
        let provider = provider(&delta).await.map_err(Error::Query)?;
        ctx.register_table(alias, provider).map_err(Error::Query)?;
    }
    let old = table_schema(&ctx, "old").await?;
    let new = table_schema(&ctx, "new").await?;
    let schema = schema_changes(&old, &new);
    let shared: Vec<&str> = new
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|name| old.field_with_name(name).is_ok())
        .collect();
    for column in key {
        if !shared.contains(&column.as_str()) {
            return Err(Error::Usage(format!(
                "diff of {table}: key column {column:?} is not in both versions {from} and {to} \
                 (shared columns: {})",
                shared.join(", ")
            )));
        }
    }
    // Rows are matched one to one: a key repeated in either version would pair every copy with
    // every other and report changes that are not there.
    if !key.is_empty() {
        let list = key
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Vec<_>>()
            .join(", ");
        for (alias, version) in [("old", from), ("new", to)] {
            let repeated = count(
                &ctx,
                &format!(
                    "SELECT count(*) FROM (SELECT {list} FROM {alias} GROUP BY {list} \
                     HAVING count(*) > 1)"
                ),
            )
            .await?;
            if repeated > 0 {
                return Err(Error::Usage(format!(
                    "diff of {table}: the key ({}) is not unique in version {version} \
                     ({repeated} values repeat): pass --key (or key=) with columns that \
                     identify a row",
                    key.join(", ")
                )));
            }
        }
    }
    // A retyped column is compared as text, so that 1 (Int32) and 1 (Int64) are equal.
    let retyped = |name: &str| schema.retyped.iter().any(|r| r.name == name);
    let expr = |side: &str, name: &str| {
        let column = format!("{side}.{}", quote_ident(name));
        if retyped(name) {
            format!("CAST({column} AS VARCHAR)")
        } else {
            column
        }
    };
    let select = |side: &str| -> String {
        shared
            .iter()
            .map(|c| format!("{} AS {}", expr(side, c), quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };

    let counted = |sql: String| {
        let ctx = ctx.clone();
        async move { count(&ctx, &format!("SELECT count(*) FROM ({sql})")).await }
    };
    let rows_from = count(&ctx, "SELECT count(*) FROM old").await?;
    let rows_to = count(&ctx, "SELECT count(*) FROM new").await?;

    // The shared columns outside the key: those a changed row can differ in.
    let mut others: Vec<&str> = Vec::new();
    let (added_sql, removed_sql, changed_sql) = if key.is_empty() {
        let (old_rows, new_rows) = (select("old"), select("new"));
        (
            format!("SELECT {new_rows} FROM new EXCEPT ALL SELECT {old_rows} FROM old"),
            format!("SELECT {old_rows} FROM old EXCEPT ALL SELECT {new_rows} FROM new"),
            None,
        )
    } else {
        // Parenthesised: sqlparser reads `a IS NOT DISTINCT FROM b AND c` as `... FROM (b AND c)`.
        let on = key
            .iter()
            .map(|k| {
                format!(
                    "({} IS NOT DISTINCT FROM {})",
                    expr("old", k),
                    expr("new", k)
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        others = shared
            .iter()
            .copied()
            .filter(|c| !key.iter().any(|k| k == c))
            .collect();
        let differs = if others.is_empty() {
            "FALSE".to_string()
        } else {
            others
                .iter()
                .map(|c| format!("({} IS DISTINCT FROM {})", expr("old", c), expr("new", c)))
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        let mut columns: Vec<String> = key
            .iter()
            .map(|k| format!("{} AS {}", expr("new", k), quote_ident(&format!("key.{k}"))))
            .collect();
        for c in &others {
            columns.push(format!(
                "{} AS {}",
                expr("old", c),
                quote_ident(&format!("from.{c}"))
            ));
            columns.push(format!(
                "{} AS {}",
                expr("new", c),
                quote_ident(&format!("to.{c}"))
            ));
        }
        (
            format!(
                "SELECT {} FROM new WHERE NOT EXISTS (SELECT 1 FROM old WHERE {on})",
                select("new")
            ),
            format!(
                "SELECT {} FROM old WHERE NOT EXISTS (SELECT 1 FROM new WHERE {on})",
                select("old")
            ),
            Some(format!(
                "SELECT {} FROM old JOIN new ON {on} WHERE {differs}",
                columns.join(", ")
            )),
        )
    };
    let counts = DiffCounts {
        rows_from,
        rows_to,
        added: counted(added_sql.clone()).await?,
        removed: counted(removed_sql.clone()).await?,
        changed: match &changed_sql {
            Some(sql) => counted(sql.clone()).await?,
            None => 0,
        },
    };
    let sample = |sql: &str, n: u64| {
        let ctx = ctx.clone();
        let sql = format!("{sql} LIMIT {}", limit.min(n as usize));
        async move {
            if n == 0 {
                return Ok(Vec::new());
            }
            rows(&ctx, &sql).await
        }
    };
    let added = sample(&added_sql, counts.added).await?;
    let removed = sample(&removed_sql, counts.removed).await?;
    let changed = match &changed_sql {
        Some(sql) => sample(sql, counts.changed)
            .await?
            .into_iter()
            .map(|row| changed_row(row, key, &others))
            .collect(),
        None => Vec::new(),
    };
    Ok(TableDiff {
        table: table.to_string(),
        from_version: from,
        to_version: to,
        key: key.to_vec(),
        columns: shared.iter().map(|c| c.to_string()).collect(),
        schema,
        counts,
        added,
        removed,
        changed,
    })
}

async fn table_schema(ctx: &SessionContext, name: &str) -> Result<Arc<Schema>> {
    let frame = ctx.table(name).await.map_err(Error::Query)?;
    Ok(Arc::new(frame.schema().as_arrow().clone()))
}

/// Changes by column name, in the newer version's column order (removed ones in the older's).
fn schema_changes(old: &Schema, new: &Schema) -> SchemaChanges {
    let column = |name: &str, t: &DataType| Column {
        name: name.to_string(),
        data_type: t.to_string(),
    };
    let mut changes = SchemaChanges::default();
    for field in new.fields() {
        match old.field_with_name(field.name()) {
            Err(_) => changes.added.push(column(field.name(), field.data_type())),
            Ok(before) if before.data_type() != field.data_type() => {
                changes.retyped.push(Retyped {
                    name: field.name().clone(),
                    from: before.data_type().to_string(),
                    to: field.data_type().to_string(),
                })
            }
            Ok(_) => {}
        }
    }
    for field in old.fields() {
        if new.field_with_name(field.name()).is_err() {
            changes
                .removed
                .push(column(field.name(), field.data_type()));
        }
    }
    changes
}

/// A joined row (`key.*`, `from.*`, `to.*` columns) as its key and the cells that differ, in
/// the order of `others`.
fn changed_row(row: Value, key: &[String], others: &[&str]) -> ChangedRow {
    let row = match row {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let mut changed = ChangedRow {
        key: Map::new(),
        cells: Vec::new(),
    };
    for k in key {
        let value = row.get(&format!("key.{k}")).cloned().unwrap_or(Value::Null);
        changed.key.insert(k.clone(), value);
    }
    for column in others {
        let cell = |side: &str| {
            row.get(&format!("{side}.{column}"))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let (from, to) = (cell("from"), cell("to"));
        if from != to {
            changed.cells.push(ChangedCell {
                column: column.to_string(),
                from,
                to,
            });
        }
    }
    changed
}

async fn collect(ctx: &SessionContext, sql: &str) -> Result<(Arc<Schema>, Vec<RecordBatch>)> {
    let frame = ctx.sql(sql).await.map_err(Error::Query)?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    Ok((schema, frame.collect().await.map_err(Error::Query)?))
}

async fn count(ctx: &SessionContext, sql: &str) -> Result<u64> {
    let (_, batches) = collect(ctx, sql).await?;
    Ok(batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0).max(0) as u64)
        })
        .unwrap_or(0))
}

/// The rows `sql` answers as JSON objects (nulls kept, so a cell that became null shows).
async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<Value>> {
    let (schema, batches) = collect(ctx, sql).await?;
    let text = crate::output::batches(&schema, &batches, crate::output::Format::Json)?;
    Ok(serde_json::from_str(&text)?)
}
