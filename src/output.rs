//! Rendering command output: Arrow results and metadata rows as a text table, CSV or JSON.
//!
//! `--format json` always prints exactly one JSON array of objects (machine-readable; other tools
//! rely on it). Text tables are for people and may change.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use serde_json::Value;

use crate::error::Result;

/// Output format of commands that print rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Csv,
    Json,
}

/// Renders a query result.
pub fn batches(schema: &SchemaRef, batches: &[RecordBatch], format: Format) -> Result<String> {
    match format {
        Format::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                let empty = RecordBatch::new_empty(schema.clone());
                return Ok(arrow::util::pretty::pretty_format_batches(&[empty])?.to_string());
            }
            Ok(arrow::util::pretty::pretty_format_batches(batches)?.to_string())
        }
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                if batches.is_empty() {
                    writer.write(&RecordBatch::new_empty(schema.clone()))?;
                }
                for batch in batches {
                    writer.write(batch)?;
                }
            }
            Ok(String::from_utf8_lossy(&out).trim_end().to_string())
        }
        Format::Json => {
            let mut out = Vec::new();
            {
                let mut writer = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::JsonArray>(&mut out);
                for batch in batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
            }
            if out.is_empty() {
                return Ok("[]".into());
            }
            Ok(String::from_utf8_lossy(&out).to_string())
        }
    }
}

/// Renders serializable rows (table list, history...) with `columns` in that order. JSON keeps every
/// field; CSV is not offered for these and falls back to the text table.
pub fn rows<T: Serialize>(rows: &[T], columns: &[&str], format: Format) -> Result<String> {
    let values: Vec<Value> = rows
        .iter()
        .map(serde_json::to_value)
        .collect::<std::result::Result<_, _>>()?;
    match format {
        Format::Json => Ok(serde_json::to_string(&values)?),
        Format::Table | Format::Csv => {
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Disabled);
            table.set_header(columns.to_vec());
            for value in &values {
                let cells: Vec<String> = columns
                    .iter()
                    .map(|key| match value.get(*key) {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                    })
                    .collect();
                table.add_row(cells);
            }
            Ok(table.to_string())
        }
    }
}

/// A JSON value as a cell shows it: strings without quotes, anything else as JSON (`null`, `4`).
pub fn cell_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
