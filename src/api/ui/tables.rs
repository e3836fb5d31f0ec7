//! The tables pages: the catalog; one table at any version (a preview with the API's filters,
//! sorting, paging and CSV download, its schema, and the history with the run that wrote each
//! version); the lineage of a version (the upstream versions it was computed from, recursively);
//! and the diff of two versions with the changed cells marked.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::html::{
    STYLE_HREF, api_error_page, cached_page, definitions_key, error_page, html, internal, text,
    versions_key,
};
use crate::api::error::{ApiError, ApiResult};
use crate::api::page::{At, PageRequest};
use crate::api::state::AppState;
use crate::catalog::TableName;
use crate::diff::TableDiff;
use crate::inspect::HistoryEntry;
use crate::pipeline::dag::Dag;

#[derive(Template)]
#[template(path = "tables.html")]
struct TablesPage {
    css_href: &'static str,
    tables: Vec<TableRow>,
}

struct TableRow {
    layer: String,
    table: String,
    version: u64,
    rows: String,
    last_commit: String,
    run_id: String,
}

pub(super) async fn tables_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    // Every table's pinned snapshot: the key, and what the page is computed from.
    let pinned = async {
        let mut snapshots = Vec::new();
        for table in state.lake.list().await? {
            if let Some(snapshot) = state.snapshots.latest_if_exists(&table).await? {
                snapshots.push(snapshot);
            }
        }
        ApiResult::Ok(snapshots)
    };
    let snapshots = match pinned.await {
        Ok(snapshots) => snapshots,
        Err(e) => return api_error_page(e),
    };
    let key: String = snapshots
        .iter()
        .map(|s| format!("|{}@{}", s.table, s.version))
        .collect();
    let make = async {
        let mut tables = Vec::with_capacity(snapshots.len());
        for snapshot in &snapshots {
            tables.push(crate::inspect::table_info(&snapshot.table, &snapshot.delta).await?);
        }
        html(&TablesPage {
            css_href: &STYLE_HREF,
            tables: tables
                .into_iter()
                .map(|t| TableRow {
                    layer: t.layer,
                    table: t.table,
                    version: t.version,
                    rows: t.rows.map(|r| r.to_string()).unwrap_or_default(),
                    last_commit: t.last_commit.unwrap_or_default(),
                    run_id: t.run_id.unwrap_or_default(),
                })
                .collect(),
        })
    };
    cached_page(&state, &headers, "ui_tables", format!("tables{key}"), make).await
}

#[derive(Template)]
#[template(path = "table.html")]
struct TablePage {
    css_href: &'static str,
    table: String,
    /// The version shown (the preview and schema read it).
    version: u64,
    latest: u64,
    /// The version the diff form starts from: the one before the latest.
    previous: u64,
    form: PreviewForm,
    preview: Preview,
    columns: Vec<ColumnRow>,
    history: Vec<HistoryRow>,
}

/// The preview form's fields as the user last submitted them.
#[derive(Default)]
struct PreviewForm {
    version: String,
    as_of: String,
    filters: Vec<String>,
    order_by: String,
    columns: String,
    limit: usize,
}

struct Preview {
    columns: Vec<SortableColumn>,
    rows: Vec<Vec<String>>,
    offset: usize,
    /// Links to the previous and next page, when there is one.
    newer: Option<String>,
    older: Option<String>,
    /// The same rows in the API's CSV encoding, up to `serve.max_page_rows`.
    csv_href: String,
}

struct SortableColumn {
    name: String,
    /// The page sorted by this column: ascending, or descending when it already is ascending.
    href: String,
    /// `ascending` / `descending` when the preview is sorted by it (for `aria-sort`).
    sorted: Option<&'static str>,
}

struct ColumnRow {
    name: String,
    data_type: String,
    nullable: bool,
}

struct HistoryRow {
    version: u64,
    timestamp: String,
    operation: String,
    rows_written: String,
    run_id: String,
    has_lineage: bool,
}

/// Rows in the preview unless the form asks for another count.
const PREVIEW_ROWS: usize = 50;
/// Empty filter fields in the form, so a user can add up to this many.
const FILTER_FIELDS: usize = 3;

/// The table named in a `/ui` path, or the page to answer instead.
async fn ui_table(state: &AppState, text: &str) -> Result<TableName, Response> {
    let not_found = || {
        error_page(
            StatusCode::NOT_FOUND,
            "Table not found",
            &format!("There is no table {text} in the lake."),
        )
    };
    let table: TableName = text.parse().map_err(|_| not_found())?;
    match state.snapshots.latest_if_exists(&table).await {
        Ok(Some(_)) => Ok(table),
        Ok(None) => Err(not_found()),
        Err(e) => Err(internal(e)),
    }
}

pub(super) async fn table_page(
    State(state): State<Arc<AppState>>,
    Path(table): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let table = match ui_table(&state, &table).await {
        Ok(table) => table,
        Err(page) => return page,
    };
    // The API's page parameters, less the empty fields a submitted form leaves behind.
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
    // The latest version fixes the history shown and what `as_of` resolves to.
    let key = match versions_key(&state, std::slice::from_ref(&table)).await {
        Ok(versions) => format!("table|{}{versions}", encode(&pairs)),
        Err(e) => return api_error_page(e),
    };
    let make = async { html(&table_view(&state, &table, &pairs).await?) };
    cached_page(&state, &headers, "ui_table", key, make).await
}

async fn table_view(
    state: &AppState,
    table: &TableName,
    pairs: &[(String, String)],
) -> ApiResult<TablePage> {
    let max_rows = state.config.serve.max_page_rows;
    let request = PageRequest::parse(Some(&encode(pairs)), PREVIEW_ROWS, max_rows)?;
    let latest = state.snapshots.latest(table).await?;
    let snapshot = match request.at {
        At::Latest => latest.clone(),
        At::Version(v) => state.snapshots.at_version(table, v).await?,
        At::AsOf(at) => state.snapshots.as_of(table, at).await?,
    };
    let ctx = crate::session::scratch_session();
    let frame = request.apply(ctx.read_table(Arc::clone(&snapshot.provider))?)?;
    let shown: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let batches = frame.collect().await?;
    let mut rows = Vec::new();
    for batch in &batches {
        for row in crate::api::encode::json_rows(batch)? {
            rows.push(shown.iter().map(|c| text(&row, c)).collect::<Vec<_>>());
        }
    }
    let history = crate::inspect::history(&state.lake, table).await?;
    let page_href = |changes: &[(&str, String)], drop: &[&str]| -> String {
        let mut kept: Vec<(String, String)> = pairs
            .iter()
            .filter(|(key, _)| !drop.contains(&key.as_str()))
            .filter(|(key, _)| !changes.iter().any(|(k, _)| k == key))
            .cloned()
            .collect();
        kept.extend(changes.iter().map(|(k, v)| (k.to_string(), v.clone())));
        format!("/ui/tables/{table}?{}", encode(&kept))
    };
    let sorted_by = |column: &str| match request.order_by.as_slice() {
        [(name, ascending)] if name == column => Some(if *ascending {
            "ascending"
        } else {
            "descending"
        }),
        _ => None,
    };
    let columns = shown
        .iter()
        .map(|name| SortableColumn {
            href: page_href(
                &[(
                    "order_by",
                    if sorted_by(name) == Some("ascending") {
                        format!("-{name}")
                    } else {
                        name.clone()
                    },
                )],
                &["offset"],
            ),
            sorted: sorted_by(name),
            name: name.clone(),
        })
        .collect();
    let (offset, limit) = (request.offset, request.limit);
    let preview = Preview {
        columns,
        offset,
        newer: (offset > 0)
            .then(|| page_href(&[("offset", offset.saturating_sub(limit).to_string())], &[])),
        // A full page may have more after it.
        older: (limit > 0 && rows.len() == limit)
            .then(|| page_href(&[("offset", (offset + limit).to_string())], &[])),
        csv_href: {
            let mut csv: Vec<(String, String)> = pairs
                .iter()
                .filter(|(key, _)| !["offset", "limit", "format"].contains(&key.as_str()))
                .cloned()
                .collect();
            csv.push(("limit".into(), max_rows.to_string()));
            csv.push(("format".into(), "csv".into()));
            format!("/ui/tables/{table}/rows?{}", encode(&csv))
        },
        rows,
    };
    let field = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut filters: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| v.clone())
        .collect();
    filters.resize(filters.len().max(FILTER_FIELDS), String::new());
    let optional = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok(TablePage {
        css_href: &STYLE_HREF,
        table: table.to_string(),
        version: snapshot.version,
        latest: latest.version,
        previous: latest.version.saturating_sub(1),
        form: PreviewForm {
            version: field("version"),
            as_of: field("as_of"),
            filters,
            order_by: field("order_by"),
            columns: field("columns"),
            limit,
        },
        preview,
        columns: snapshot
            .provider
            .schema()
            .fields()
            .iter()
            .map(|f| ColumnRow {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
            })
            .collect(),
        history: history
            .iter()
            .map(|h| HistoryRow {
                version: h.version,
                timestamp: optional(&h.timestamp),
                operation: optional(&h.operation),
                rows_written: h.rows_written.map(|r| r.to_string()).unwrap_or_default(),
                run_id: optional(&h.run_id),
                has_lineage: !h.inputs.is_empty(),
            })
            .collect(),
    })
}

/// `/ui/tables/{table}/rows`: `GET /v1/tables/{table}` itself (same parameters, encodings and
/// cache) behind the dashboard's sign-in, for the preview's download link.
pub(super) async fn rows_download(
    state: State<Arc<AppState>>,
    table: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
) -> Response {
    match crate::api::routes::tables::table_read(state, table, query, headers).await {
        Ok(response) => response,
        Err(e) => api_error_page(e),
    }
}

/// A query string from its pairs.
fn encode(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[derive(Template)]
#[template(path = "lineage.html")]
struct LineagePage {
    css_href: &'static str,
    table: String,
    version: u64,
    entries: Vec<LineageEntry>,
}

/// One table version in the lineage tree, `depth` levels above the page's table.
struct LineageEntry {
    depth: usize,
    table: String,
    version: u64,
    step: String,
    run_id: String,
    committed: String,
    /// Whether the table's log still has this version (so it can be linked).
    in_log: bool,
    /// Why the tree stops here, when it does before the sources.
    note: Option<&'static str>,
}

/// Levels of lineage followed before the page stops (a guard; pipelines are far shallower).
const LINEAGE_DEPTH: usize = 32;

#[derive(Debug, Deserialize)]
pub(super) struct LineageParams {
    version: Option<u64>,
}

pub(super) async fn lineage_page(
    State(state): State<Arc<AppState>>,
    Path(table): Path<String>,
    Query(params): Query<LineageParams>,
    headers: HeaderMap,
) -> Response {
    let table = match ui_table(&state, &table).await {
        Ok(table) => table,
        Err(page) => return page,
    };
    // A version's lineage is in its commit and never changes; "latest" moves with the table.
    let at = match params.version {
        Some(version) => format!("|{table}@{version}"),
        None => match versions_key(&state, std::slice::from_ref(&table)).await {
            Ok(versions) => versions,
            Err(e) => return api_error_page(e),
        },
    };
    let make = async { html(&lineage(&state, &table, params.version).await?) };
    cached_page(&state, &headers, "ui_lineage", format!("lineage{at}"), make).await
}

/// Walks the commit metadata from `table` at `version` (default: latest) up to the sources:
/// each commit names the input versions it was computed from.
async fn lineage(
    state: &AppState,
    table: &TableName,
    version: Option<u64>,
) -> ApiResult<LineagePage> {
    let mut histories: HashMap<TableName, Vec<HistoryEntry>> = HashMap::new();
    let version = match version {
        Some(v) => v,
        None => state.snapshots.latest(table).await?.version,
    };
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    // Depth-first, inputs in name order, so the page reads as an indented tree.
    let mut stack = vec![(0usize, table.to_string(), version)];
    while let Some((depth, name, version)) = stack.pop() {
        let mut entry = LineageEntry {
            depth,
            table: name.clone(),
            version,
            step: String::new(),
            run_id: String::new(),
            committed: String::new(),
            in_log: false,
            note: None,
        };
        let parsed: Option<TableName> = name.parse().ok();
        let commit = match &parsed {
            Some(parsed) => {
                if !histories.contains_key(parsed) {
                    let history = match crate::inspect::history(&state.lake, parsed).await {
                        Ok(history) => history,
                        Err(crate::error::Error::TableNotFound(_)) => Vec::new(),
                        Err(e) => return Err(e.into()),
                    };
                    histories.insert(parsed.clone(), history);
                }
                histories[parsed].iter().find(|h| h.version == version)
            }
            None => None,
        };
        match commit {
            None => entry.note = Some("this version is no longer in the table's log"),
            Some(commit) => {
                entry.in_log = true;
                entry.step = commit.step.clone().unwrap_or_default();
                entry.run_id = commit.run_id.clone().unwrap_or_default();
                entry.committed = commit.timestamp.clone().unwrap_or_default();
                if !seen.insert((name.clone(), version)) {
                    entry.note = Some("its inputs are shown above");
                } else if depth >= LINEAGE_DEPTH {
                    entry.note = Some("deeper lineage not shown");
                } else {
                    if commit.inputs.is_empty() && commit.run_id.is_none() {
                        entry.note = Some("written outside a Strata step: no inputs recorded");
                    }
                    for (input, input_version) in commit.inputs.iter().rev() {
                        stack.push((depth + 1, input.clone(), *input_version));
                    }
                }
            }
        }
        entries.push(entry);
    }
    Ok(LineagePage {
        css_href: &STYLE_HREF,
        table: table.to_string(),
        version,
        entries,
    })
}

#[derive(Template)]
#[template(path = "diff.html")]
struct DiffPage {
    css_href: &'static str,
    diff: TableDiff,
    schema_lines: Vec<String>,
    columns: Vec<String>,
    sections: Vec<RowsSection>,
    changed_columns: Vec<String>,
    changed: Vec<Vec<ChangedCellView>>,
}

struct RowsSection {
    title: &'static str,
    total: u64,
    rows: Vec<Vec<String>>,
}

struct ChangedCellView {
    value: String,
    change: Option<(String, String)>,
}

#[derive(Debug, Deserialize)]
pub(super) struct DiffParams {
    from: Option<u64>,
    to: Option<u64>,
    key: Option<String>,
}

pub(super) async fn diff_page(
    State(state): State<Arc<AppState>>,
    Path(table): Path<String>,
    Query(params): Query<DiffParams>,
    headers: HeaderMap,
) -> Response {
    let table = match ui_table(&state, &table).await {
        Ok(table) => table,
        Err(page) => return page,
    };
    let Some(from) = params.from else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Which versions?",
            "Choose the version to compare from on the table's page.",
        );
    };
    let given_key = params
        .key
        .as_deref()
        .map(str::trim)
        .filter(|list| !list.is_empty());
    // Without `to` the diff runs to the latest version; without `key`, the step's key is used.
    let versions = match versions_key(&state, std::slice::from_ref(&table)).await {
        Ok(versions) => versions,
        Err(e) => return api_error_page(e),
    };
    let cache_key = format!(
        "diff|{from}|{:?}|{}{versions}{}",
        params.to,
        given_key.unwrap_or_default(),
        given_key.map_or_else(|| definitions_key(&state), |_| String::new())
    );
    let computed = async {
        let key: Vec<String> = match given_key {
            Some(list) => list.split(',').map(|c| c.trim().to_string()).collect(),
            None => Dag::build(&state.config, &state.lake)
                .await?
                .natural_key(&table),
        };
        let options = state.query_session_options()?;
        let limit = crate::diff::DEFAULT_SAMPLE_ROWS;
        crate::diff::diff(&state.lake, &options, &table, from, params.to, &key, limit).await
    };
    let make = async {
        let _slot = state.query_slot().await?;
        match computed.await {
            Ok(diff) => html(&diff_view(diff)),
            // The whole chain: it names the column or version that was wrong.
            Err(e) if e.fault() == crate::error::Fault::User => Err(ApiError::bad_request(
                "bad_diff",
                format!(
                    "Cannot compare these versions: {}",
                    crate::error::error_chain(&e)
                ),
            )),
            Err(e) => Err(e.into()),
        }
    };
    cached_page(&state, &headers, "ui_diff", cache_key, make).await
}

/// A diff laid out for the page: rows as cells in the shared columns' order, changed rows as the
/// key and the columns that changed in any of them.
fn diff_view(diff: TableDiff) -> DiffPage {
    let as_cells = |rows: &[Value]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|row| diff.columns.iter().map(|c| text(row, c)).collect())
            .collect()
    };
    let sections = vec![
        RowsSection {
            title: "Added",
            total: diff.counts.added,
            rows: as_cells(&diff.added),
        },
        RowsSection {
            title: "Removed",
            total: diff.counts.removed,
            rows: as_cells(&diff.removed),
        },
    ];
    let mut changed_columns = diff.key.clone();
    for column in &diff.columns {
        let changes = diff
            .changed
            .iter()
            .any(|r| r.cells.iter().any(|c| &c.column == column));
        if changes && !changed_columns.contains(column) {
            changed_columns.push(column.clone());
        }
    }
    let changed = diff
        .changed
        .iter()
        .map(|row| {
            changed_columns
                .iter()
                .map(
                    |column| match row.cells.iter().find(|c| &c.column == column) {
                        Some(cell) => ChangedCellView {
                            value: String::new(),
                            change: Some((
                                crate::output::cell_text(&cell.from),
                                crate::output::cell_text(&cell.to),
                            )),
                        },
                        None => ChangedCellView {
                            value: row
                                .key
                                .get(column)
                                .map(crate::output::cell_text)
                                .unwrap_or_default(),
                            change: None,
                        },
                    },
                )
                .collect()
        })
        .collect();
    let schema = &diff.schema;
    let mut schema_lines = Vec::new();
    schema_lines.extend(
        schema
            .added
            .iter()
            .map(|c| format!("added {} ({})", c.name, c.data_type)),
    );
    schema_lines.extend(
        schema
            .removed
            .iter()
            .map(|c| format!("removed {} ({})", c.name, c.data_type)),
    );
    schema_lines.extend(
        schema
            .retyped
            .iter()
            .map(|c| format!("{}: {} → {}", c.name, c.from, c.to)),
    );
    DiffPage {
        css_href: &STYLE_HREF,
        columns: diff.columns.clone(),
        schema_lines,
        sections,
        changed_columns,
        changed,
        diff,
    }
}
