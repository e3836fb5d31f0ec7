//! Read-only SQL over the lake: `strata query`, and the read-only rule SQL steps and
//! `POST /v1/query` plan with.
//!
//! Queries are planned with DDL, DML and `SET` disallowed (DataFusion `SQLOptions`), so nothing typed
//! here can change a table: `INSERT INTO silver.x` would otherwise commit a Delta version.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::prelude::SQLOptions;

use crate::catalog::{Lake, SessionOptions};
use crate::error::{Error, Result};

/// Session options for SQL that may only read: DDL, DML and `SET` are refused at planning time
/// (steps, `strata query`, `POST /v1/query`).
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A query's full result.
#[derive(Debug)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// Runs one read-only statement and collects its result.
pub async fn run(lake: &Arc<Lake>, options: &SessionOptions, sql: &str) -> Result<QueryResult> {
    let ctx = lake.session(options)?;
    let frame = ctx
        .sql_with_options(sql, read_only())
        .await
        .map_err(Error::Query)?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(Error::Query)?;
    Ok(QueryResult { schema, batches })
}
