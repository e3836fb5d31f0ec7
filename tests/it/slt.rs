//! Golden SQL tests: every `tests/slt/*.slt` file runs against a fresh temp lake with the repository's
//! SQL steps.
//!
//! Besides plain queries over the lake, two statements drive the lake:
//! - `CREATE TABLE layer.name AS <query>` commits the query's result as that Delta table (how a file
//!   sets up bronze inputs by hand);
//! - `RUN PIPELINE` runs every SQL step of `sql/` (no sources), failing with the step errors.
//!
//! Regenerate expected results after a deliberate change with
//! `SLT_COMPLETE=1 cargo test slt` and review the diff.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use sqllogictest::{DBOutput, DefaultColumnType};
use strata::catalog::{Lake, TableName};
use strata::config::{Config, Overrides};
use strata::pipeline::commit::{self, CommitMeta, WriteMode};
use strata::pipeline::run::{RunOptions, run};

use crate::support::project::repo_dir;

struct LakeDb {
    lake: Arc<Lake>,
    config: Arc<Config>,
    _dir: tempfile::TempDir,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SltError(String);

impl LakeDb {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("strata.toml");
        std::fs::write(
            &config_file,
            format!(
                "[lake]\nroot = \"lake\"\n[sql]\ndir = {:?}\n[sample]\ngenerate_if_empty = false\n\
                 [sources.unused]\nformat = \"csv\"\npath = \"unused.csv\"\n",
                repo_dir().join("sql").display().to_string()
            ),
        )
        .unwrap();
        let mut config =
            Config::load(Some(&config_file), &[], &Overrides::default(), dir.path()).unwrap();
        // Bronze tables come from CREATE TABLE statements, not from files.
        config.sources.clear();
        let lake = Arc::new(Lake::from_config(&config.lake).unwrap());
        LakeDb {
            lake,
            config: Arc::new(config),
            _dir: dir,
        }
    }

    async fn create_table_as(&self, name: &str, query: &str) -> Result<(), SltError> {
        let table: TableName = name
            .parse()
            .map_err(|e: strata::catalog::TableNameError| SltError(e.to_string()))?;
        let ctx = self
            .lake
            .session(&self.config.session_options().unwrap())
            .map_err(err)?;
        let frame = ctx.sql(query).await.map_err(err)?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await.map_err(err)?;
        let mode = WriteMode::Overwrite {
            partition_by: Vec::new(),
        };
        commit::commit(
            &self.lake,
            &table,
            schema,
            batches,
            mode,
            &CommitMeta::default(),
        )
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn run_pipeline(&self) -> Result<(), SltError> {
        let summary = run(Arc::clone(&self.config), &RunOptions::default(), &mut ())
            .await
            .map_err(err)?;
        let errors: Vec<String> = summary
            .steps
            .iter()
            .filter_map(|s| s.error.clone())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SltError(errors.join("\n")))
        }
    }
}

fn err(e: impl std::fmt::Display) -> SltError {
    SltError(e.to_string())
}

#[async_trait]
impl sqllogictest::AsyncDB for LakeDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        if sql.trim().eq_ignore_ascii_case("RUN PIPELINE") {
            self.run_pipeline().await?;
            return Ok(DBOutput::StatementComplete(0));
        }
        let statements = DFParser::parse_sql(sql).map_err(err)?;
        if let Some(Statement::Statement(inner)) = statements.front()
            && let SqlStatement::CreateTable(create) = inner.as_ref()
        {
            let query = create
                .query
                .as_ref()
                .ok_or_else(|| SltError("CREATE TABLE needs AS <query>".into()))?;
            self.create_table_as(&create.name.to_string(), &query.to_string())
                .await?;
            return Ok(DBOutput::StatementComplete(0));
        }
        let result = strata::query::run(&self.lake, &self.config.session_options().unwrap(), sql)
            .await
            .map_err(err)?;
        let types = vec![DefaultColumnType::Any; result.schema.fields().len()];
        let mut rows = Vec::new();
        for batch in &result.batches {
            rows.extend(format_rows(batch).map_err(err)?);
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "strata"
    }
}

/// Cells as text: NULL as `NULL`, floats rounded to 4 decimals so results are stable.
fn format_rows(batch: &RecordBatch) -> Result<Vec<Vec<String>>, arrow::error::ArrowError> {
    let options = FormatOptions::default().with_null("NULL");
    let formatters: Vec<ArrayFormatter> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut cells = Vec::with_capacity(batch.num_columns());
        for (column, formatter) in batch.columns().iter().zip(&formatters) {
            let cell = match column.data_type() {
                DataType::Float64 | DataType::Float32 if column.is_valid(row) => {
                    let value = arrow::compute::cast(&column.slice(row, 1), &DataType::Float64)?;
                    let value = value
                        .as_any()
                        .downcast_ref::<arrow::array::Float64Array>()
                        .expect("cast to Float64")
                        .value(0);
                    format!("{value:.4}")
                }
                _ => formatter.value(row).to_string(),
            };
            cells.push(if cell.is_empty() {
                "(empty)".into()
            } else {
                cell
            });
        }
        rows.push(cells);
    }
    Ok(rows)
}

fn slt_files() -> Vec<PathBuf> {
    let dir = repo_dir().join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

async fn run_file(path: &Path) {
    let mut runner = sqllogictest::Runner::new(|| async { Ok(LakeDb::new()) });
    if std::env::var_os("SLT_COMPLETE").is_some() {
        runner
            .update_test_file(
                path,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            )
            .await
            .unwrap();
        return;
    }
    if let Err(e) = runner.run_file_async(path).await {
        panic!("{}: {}", path.display(), e.display(true));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_sql_files() {
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files in tests/slt");
    for file in files {
        run_file(&file).await;
    }
}
