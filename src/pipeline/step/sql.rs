//! Reading a SQL step file, `sql/<layer>/<name>.sql`, into a [`Step`].
//!
//! A SQL step file holds exactly one `SELECT`/`WITH` query, optionally under a settings header
//! (`settings::parse_header`), merged key by key with `[steps."layer.name"]` from the config (the
//! config wins). Its reads are not declared: they are the query's table references, found with
//! DataFusion's `resolve_table_references`, so nobody writes the DAG by hand. Running the query is
//! `sql_step`'s.
//!
//! Invariant: every read of a SQL step is a qualified lake table (`layer.name`), never the step's
//! own table; table functions in `FROM` are not reads.

use std::collections::BTreeSet;
use std::path::Path;

use datafusion::common::TableReference;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use toml::Table;

use crate::catalog::TableName;
use crate::error::{DagError, Error, Result};
use crate::pipeline::retry::RetryPolicy;
use crate::pipeline::settings;
use crate::pipeline::sql_step::SqlStep;
use crate::pipeline::step::{Step, StepKind};
use crate::variables;

/// Table functions that may appear in FROM clauses; they are not tables.
const TABLE_FUNCTIONS: [&str; 4] = ["table_version", "table_as_of", "generate_series", "range"];

/// Reads and parses one SQL step; its reads come from the query's table references.
pub fn read(table: &TableName, file: &Path, config: Option<&Table>) -> Result<Step> {
    let sql = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let mut merged = settings::parse_header(file, &sql)?;
    if let Some(config) = config {
        settings::merge(&mut merged, config);
    }
    let retry = RetryPolicy::take_from(&mut merged).map_err(|message| Error::StepSettings {
        file: file.to_path_buf(),
        message,
    })?;
    let settings = settings::resolve(file, merged, None)?;
    let statement = parse_single_query(file, &sql)?;
    let reads = table_reads(file, &statement)?;
    if reads.contains(table) {
        return Err(Error::Dag(DagError::new(format!(
            "cycle: {} reads its own table {table}",
            file.display()
        ))));
    }
    let mut variables = match &statement {
        Statement::Statement(query) => variables::sql_parameters(query),
        _ => BTreeSet::new(),
    };
    if let Some(predicate) = &settings.replace_where {
        let used =
            variables::expression_parameters(predicate).map_err(|e| Error::StepSettings {
                file: file.to_path_buf(),
                message: format!("replace_where = {predicate:?} is not a SQL predicate: {e}"),
            })?;
        variables.extend(used);
    }
    let kind = StepKind::Sql(Box::new(SqlStep {
        file: file.to_path_buf(),
        sql,
        settings,
        variables,
    }));
    Ok(Step::new(table.clone(), kind, reads, retry))
}

/// The lake tables a parsed query reads: its table references (not CTEs, not table functions),
/// each a qualified `layer.name`. The error names `file`.
pub fn table_reads(file: &Path, statement: &Statement) -> Result<BTreeSet<TableName>> {
    let (references, _ctes) =
        resolve_table_references(statement, true).map_err(|e| Error::Sql {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
    let mut reads = BTreeSet::new();
    for reference in references {
        if let Some(read) = referenced_table(file, &reference)? {
            reads.insert(read);
        }
    }
    Ok(reads)
}

/// Parses the file as exactly one `SELECT` / `WITH` query.
pub fn parse_single_query(file: &Path, sql: &str) -> Result<Statement> {
    let sql_error = |message: String| Error::Sql {
        file: file.to_path_buf(),
        message,
    };
    let mut statements = DFParser::parse_sql(sql).map_err(|e| sql_error(e.to_string()))?;
    if statements.len() != 1 {
        return Err(sql_error(format!(
            "a step file holds exactly one SELECT query, found {} statements",
            statements.len()
        )));
    }
    let statement = statements.pop_front().expect("one statement");
    match &statement {
        Statement::Statement(inner) if matches!(inner.as_ref(), SqlStatement::Query(_)) => {
            Ok(statement)
        }
        other => Err(sql_error(format!(
            "a step file holds one SELECT query, found: {}",
            first_words(&other.to_string())
        ))),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(4).collect::<Vec<_>>().join(" ")
}

/// Maps a table reference to a lake table; table functions map to `None`.
fn referenced_table(file: &Path, reference: &TableReference) -> Result<Option<TableName>> {
    let dag_error =
        |message: String| Error::Dag(DagError::new(format!("{}: {message}", file.display())));
    match reference {
        TableReference::Bare { table } => {
            if TABLE_FUNCTIONS.contains(&table.as_ref()) {
                Ok(None)
            } else {
                Err(dag_error(format!(
                    "unqualified table {table}: name lake tables as layer.name, e.g. silver.{table}"
                )))
            }
        }
        TableReference::Partial { schema, table } => format!("{schema}.{table}")
            .parse::<TableName>()
            .map(Some)
            .map_err(|e| dag_error(e.to_string())),
        TableReference::Full {
            catalog,
            schema,
            table,
        } => {
            if catalog.as_ref() != "datafusion" {
                return Err(dag_error(format!("unknown catalog {catalog}")));
            }
            format!("{schema}.{table}")
                .parse::<TableName>()
                .map(Some)
                .map_err(|e| dag_error(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_single_select_is_a_step() {
        let file = Path::new("sql/silver/x.sql");
        assert!(parse_single_query(file, "WITH a AS (SELECT 1) SELECT * FROM a").is_ok());
        let err = parse_single_query(file, "SELECT 1; SELECT 2").unwrap_err();
        assert!(err.to_string().contains("2 statements"), "{err}");
        let err = parse_single_query(file, "DROP TABLE silver.x").unwrap_err();
        assert!(err.to_string().contains("sql/silver/x.sql"), "{err}");
        let err = parse_single_query(file, "SELEC 1").unwrap_err();
        assert!(err.to_string().contains("sql/silver/x.sql"), "{err}");
    }

    #[test]
    fn references_map_to_tables_and_table_functions_are_not_tables() {
        let file = Path::new("f.sql");
        let stmt = parse_single_query(
            file,
            "WITH r AS (SELECT * FROM silver.ratings) \
             SELECT * FROM r JOIN gold.x USING (id) \
             UNION ALL SELECT * FROM table_version('gold.x', 1)",
        )
        .unwrap();
        let (refs, _) = resolve_table_references(&stmt, true).unwrap();
        let tables: Vec<String> = refs
            .iter()
            .filter_map(|r| referenced_table(file, r).unwrap())
            .map(|t| t.to_string())
            .collect();
        assert_eq!(tables, ["gold.x", "silver.ratings"]);
        let stmt = parse_single_query(file, "SELECT * FROM ratings").unwrap();
        let (refs, _) = resolve_table_references(&stmt, true).unwrap();
        assert!(referenced_table(file, &refs[0]).is_err());
    }
}
