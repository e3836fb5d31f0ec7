//! How `strata diff` shows a [`TableDiff`]: a summary first (versions, key, schema changes,
//! counts), then the sample rows of each kind as tables, changed rows as `column: old -> new`.
//! `--format json` prints the diff as the API returns it.

use serde_json::Value;

use crate::diff::TableDiff;
use crate::error::Result;
use crate::output::{self, Format};

pub fn render(diff: &TableDiff, format: Format) -> Result<String> {
    if format == Format::Json {
        return Ok(serde_json::to_string(diff)?);
    }
    let mut out = String::new();
    let matched = if diff.key.is_empty() {
        "every shared column (no key: rows are only added or removed)".to_string()
    } else {
        diff.key.join(", ")
    };
    out.push_str(&format!(
        "{}: version {} -> {}, rows matched on {matched}\n",
        diff.table, diff.from_version, diff.to_version
    ));
    let schema = &diff.schema;
    for c in &schema.added {
        out.push_str(&format!("column added: {} ({})\n", c.name, c.data_type));
    }
    for c in &schema.removed {
        out.push_str(&format!("column removed: {} ({})\n", c.name, c.data_type));
    }
    for c in &schema.retyped {
        out.push_str(&format!(
            "column retyped: {} {} -> {}\n",
            c.name, c.from, c.to
        ));
    }
    let n = &diff.counts;
    out.push_str(&format!(
        "rows {} -> {}: {} added, {} removed, {} changed\n",
        n.rows_from, n.rows_to, n.added, n.removed, n.changed
    ));
    for (title, rows, total) in [
        ("added", &diff.added, n.added),
        ("removed", &diff.removed, n.removed),
    ] {
        if rows.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title} ({} of {total}):\n", rows.len()));
        let columns: Vec<&str> = diff.columns.iter().map(String::as_str).collect();
        out.push_str(&output::rows(rows, &columns, Format::Table)?);
        out.push('\n');
    }
    if !diff.changed.is_empty() {
        out.push_str(&format!(
            "\nchanged ({} of {}):\n",
            diff.changed.len(),
            n.changed
        ));
        for row in &diff.changed {
            let key: Vec<String> = diff
                .key
                .iter()
                .map(|k| {
                    format!(
                        "{k}={}",
                        output::cell_text(row.key.get(k).unwrap_or(&Value::Null))
                    )
                })
                .collect();
            let cells: Vec<String> = row
                .cells
                .iter()
                .map(|c| {
                    format!(
                        "{}: {} -> {}",
                        c.column,
                        output::cell_text(&c.from),
                        output::cell_text(&c.to)
                    )
                })
                .collect();
            out.push_str(&format!("  {}  {}\n", key.join(" "), cells.join(", ")));
        }
    }
    Ok(out.trim_end().to_string())
}
