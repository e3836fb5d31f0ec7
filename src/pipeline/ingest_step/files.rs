//! Ingesting a source of files (CSV, MovieLens, JSON, NDJSON, Parquet; local or on object storage).
//!
//! First run: every file of the source is parsed; good rows go to `bronze.<name>` with lineage columns
//! `_source_file` and `_ingested_at`; bad lines go to `bronze.<name>__rejects` with file, line, raw text
//! and reason; each file's path, size and SHA-256 are appended to `system.ingested_files`.
//! Rerun: a file whose size and checksum match its last ingestion is skipped; a changed file replaces
//! exactly its own rows (Delta replace-where on `_source_file`); new files are added.
//! Failure: when more than `ingest.max_reject_fraction` of the lines are rejected, or a file cannot be
//! read, nothing is committed. Commits go rejects, then bronze, then the ingest log: if the process
//! dies in between, the next run sees the file as not ingested and replaces its rows again.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};

use super::{
    INGESTED_AT, SOURCE_FILE, as_strings, ingested_files_table, reject_rows, timestamp_type,
};
use crate::catalog::TableName;
use crate::error::{Error, Result};
use crate::ingest::location::SourceFile;
use crate::ingest::{self, ColumnSpec, Format, Location, Reject};
use crate::pipeline::commit::{self, CommitMeta, WriteMode, quote_literal};
use crate::pipeline::{StepContext, StepResult, StepStatus};

/// Rejected lines shown in an error message.
const REJECT_EXAMPLES: usize = 5;

/// What parsing one file produced.
struct ParsedFile {
    file: SourceFile,
    batches: Vec<RecordBatch>,
    schema: SchemaRef,
    rejects: Vec<Reject>,
    lines: u64,
}

/// Ingests the files at `location`, parsed as `format`, into `table`.
pub async fn run(
    ctx: &StepContext,
    table: &TableName,
    source_name: &str,
    location: &Location,
    format: Format,
    columns: Option<&[ColumnSpec]>,
) -> Result<StepResult> {
    let ingest_error = |message: String| Error::Ingest {
        table: table.clone(),
        message,
    };

    // Downloaded copies of object-store sources live as long as this ingest.
    let options: HashMap<String, String> = ctx
        .config
        .lake
        .storage_options
        .clone()
        .into_iter()
        .collect();
    let raw_dir = &ctx.config.ingest.raw_dir;
    let (scratch, files) = match location.files(raw_dir, &options).await {
        Err(Error::Io { path, source }) if source.kind() == std::io::ErrorKind::NotFound => {
            let sample = if ctx.config.sample.generate_if_empty && path.starts_with(raw_dir) {
                format!(
                    "; to get the generated sample back, empty {} and run again",
                    raw_dir.display()
                )
            } else {
                String::new()
            };
            return Err(ingest_error(format!(
                "{} does not exist: put the source's files there, or change \
                 [sources.{source_name}] path{sample}",
                path.display()
            )));
        }
        other => other?,
    };
    if files.is_empty() {
        return Err(ingest_error(format!("{location} holds no files to ingest")));
    }

    let refresh_all = ctx.full_refresh || !ctx.lake.exists(table).await?;
    let previous = if refresh_all {
        HashMap::new()
    } else {
        last_ingested(ctx, source_name).await?
    };
    let (changed, unchanged): (Vec<SourceFile>, Vec<SourceFile>) = files
        .into_iter()
        .partition(|f| previous.get(&f.name) != Some(&(f.size, f.checksum.clone())));
    if changed.is_empty() {
        let current = ctx.lake.open(table).await?;
        return Ok(StepResult {
            status: StepStatus::Unchanged,
            rows: crate::catalog::row_count(&current).unwrap_or(0),
            version: current.version().unwrap_or(0),
            detail: format!("{} file(s) unchanged", unchanged.len()),
        });
    }

    let columns: Option<Vec<ColumnSpec>> = columns.map(<[ColumnSpec]>::to_vec);
    let batch_rows = ctx.config.ingest.batch_rows;
    let mut parsed = Vec::with_capacity(changed.len());
    for file in changed {
        let format = format.clone();
        let columns = columns.clone();
        // Errors name the file as the user knows it (an object's URL, not its scratch copy).
        let scratch_name = scratch
            .is_some()
            .then(|| (file.path.display().to_string(), file.name.clone()));
        let one = tokio::task::spawn_blocking(move || {
            parse_file(file, &format, columns.as_deref(), batch_rows)
        })
        .await
        .map_err(|e| Error::Internal(format!("parser of {table} panicked: {e}")))?
        .map_err(|e| {
            let message = e.to_string();
            ingest_error(match &scratch_name {
                Some((local, url)) => message.replace(local, url),
                None => message,
            })
        })?;
        parsed.push(one);
    }

    let lines: u64 = parsed.iter().map(|p| p.lines).sum();
    let rejected: u64 = parsed.iter().map(|p| p.rejects.len() as u64).sum();
    let fraction = if lines == 0 {
        0.0
    } else {
        rejected as f64 / lines as f64
    };
    if fraction > ctx.config.ingest.max_reject_fraction {
        let examples: Vec<String> = parsed
            .iter()
            .flat_map(|p| p.rejects.iter().map(move |r| (p, r)))
            .take(REJECT_EXAMPLES)
            .map(|(p, r)| format!("  {}:{}: {} ({:?})", p.file.name, r.line, r.reason, r.raw))
            .collect();
        return Err(ingest_error(format!(
            "{rejected} of {lines} lines rejected ({:.2}%), above ingest.max_reject_fraction = {}; nothing was committed. First rejects:\n{}",
            fraction * 100.0,
            ctx.config.ingest.max_reject_fraction,
            examples.join("\n")
        )));
    }

    let schema = parsed[0].schema.clone();
    if let Some(other) = parsed.iter().find(|p| p.schema.fields() != schema.fields()) {
        return Err(ingest_error(format!(
            "{} has columns {} but {} has {}; declare `columns` for source {source_name}",
            parsed[0].file.name,
            column_list(&schema),
            other.file.name,
            column_list(&other.schema)
        )));
    }

    let ingested_at = ctx.started_at;
    let names: Vec<String> = parsed.iter().map(|p| p.file.name.clone()).collect();
    let mode = if refresh_all {
        WriteMode::Overwrite {
            partition_by: Vec::new(),
        }
    } else {
        let list: Vec<String> = names.iter().map(|n| quote_literal(n)).collect();
        WriteMode::ReplaceWhere {
            predicate: format!("{SOURCE_FILE} IN ({})", list.join(", ")),
        }
    };
    let meta = CommitMeta {
        run_id: ctx.run_id.clone(),
        step: table.to_string(),
        inputs: Default::default(),
        fingerprint: None,
    };

    let rejects_batch = rejects_batch(&parsed, ingested_at)?;
    commit::commit(
        &ctx.lake,
        &table.rejects(),
        rejects_batch.schema(),
        vec![rejects_batch],
        mode.clone(),
        &meta,
    )
    .await?;

    let bronze_schema = with_lineage(&schema);
    let mut bronze_batches = Vec::new();
    let mut log_rows = Vec::new();
    for file in parsed {
        let rows: u64 = file.batches.iter().map(|b| b.num_rows() as u64).sum();
        for batch in file.batches {
            bronze_batches.push(add_lineage(
                &batch,
                &bronze_schema,
                &file.file.name,
                ingested_at,
            )?);
        }
        log_rows.push((file.file, rows, file.rejects.len() as u64));
    }
    let version =
        commit::commit(&ctx.lake, table, bronze_schema, bronze_batches, mode, &meta).await?;

    let log = ingest_log_batch(ctx, source_name, &log_rows, version, ingested_at)?;
    commit::commit(
        &ctx.lake,
        &ingested_files_table(),
        log.schema(),
        vec![log],
        WriteMode::Append {
            partition_by: Vec::new(),
        },
        &meta,
    )
    .await?;

    let rows = crate::catalog::row_count(&ctx.lake.open(table).await?).unwrap_or(0);
    Ok(StepResult {
        status: StepStatus::Committed,
        rows,
        version,
        detail: format!(
            "{} file(s) ingested, {} unchanged, {rejected} rejected line(s){}",
            log_rows.len(),
            unchanged.len(),
            if rejected > 0 {
                format!(" -> {}", table.rejects())
            } else {
                String::new()
            }
        ),
    })
}

fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_file(
    file: SourceFile,
    format: &Format,
    columns: Option<&[ColumnSpec]>,
    batch_rows: usize,
) -> std::result::Result<ParsedFile, ingest::IngestError> {
    let mut reader = ingest::open_reader(&file.path, format, columns, batch_rows)?;
    let schema = reader.schema();
    let mut batches = Vec::new();
    for batch in reader.by_ref() {
        batches.push(batch?);
    }
    let rejects = reader.take_rejects();
    let lines = reader.lines_read();
    Ok(ParsedFile {
        file,
        batches,
        schema,
        rejects,
        lines,
    })
}

fn with_lineage(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(SOURCE_FILE, DataType::Utf8, false));
    fields.push(Field::new(INGESTED_AT, timestamp_type(), false));
    Arc::new(Schema::new(fields))
}

fn add_lineage(
    batch: &RecordBatch,
    schema: &SchemaRef,
    file: &str,
    at: DateTime<Utc>,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![file; n])));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![at.timestamp_micros(); n]).with_timezone("UTC"),
    ));
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

fn rejects_batch(parsed: &[ParsedFile], at: DateTime<Utc>) -> Result<RecordBatch> {
    let rejects = parsed.iter().flat_map(|p| {
        p.rejects.iter().map(move |r| {
            (
                p.file.name.as_str(),
                r.line as i64,
                r.raw.as_str(),
                r.reason.as_str(),
            )
        })
    });
    reject_rows(rejects, at)
}

fn ingest_log_batch(
    ctx: &StepContext,
    source: &str,
    files: &[(SourceFile, u64, u64)],
    bronze_version: u64,
    at: DateTime<Utc>,
) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("size", DataType::Int64, false),
        Field::new("checksum", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("rejected", DataType::Int64, false),
        Field::new("bronze_version", DataType::Int64, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("ingested_at", timestamp_type(), false),
    ]));
    let n = files.len();
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![source; n])),
            Arc::new(StringArray::from_iter_values(
                files.iter().map(|(f, _, _)| f.name.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                files.iter().map(|(f, _, _)| f.size as i64),
            )),
            Arc::new(StringArray::from_iter_values(
                files.iter().map(|(f, _, _)| f.checksum.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                files.iter().map(|(_, r, _)| *r as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                files.iter().map(|(_, _, j)| *j as i64),
            )),
            Arc::new(Int64Array::from(vec![bronze_version as i64; n])),
            Arc::new(StringArray::from(vec![ctx.run_id.as_str(); n])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![at.timestamp_micros(); n])
                    .with_timezone("UTC"),
            ),
        ],
    )?)
}

/// The size and checksum each file of the source had when last ingested.
async fn last_ingested(ctx: &StepContext, source: &str) -> Result<HashMap<String, (u64, String)>> {
    let log = ingested_files_table();
    if !ctx.lake.exists(&log).await? {
        return Ok(HashMap::new());
    }
    let session = ctx.lake.session(&ctx.session)?;
    let sql = format!(
        "SELECT path, size, checksum FROM system.ingested_files WHERE source = {} ORDER BY ingested_at",
        quote_literal(source)
    );
    let batches = session.sql(&sql).await?.collect().await?;
    let mut last = HashMap::new();
    for batch in batches {
        let paths = as_strings(batch.column(0).as_ref())?;
        let sizes = arrow::compute::cast(batch.column(1), &DataType::Int64)?;
        let sizes = sizes
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("cast to Int64 gives Int64Array");
        let checksums = as_strings(batch.column(2).as_ref())?;
        for i in 0..batch.num_rows() {
            // Ordered by time, so the last entry per path wins.
            last.insert(
                paths.value(i).to_string(),
                (sizes.value(i) as u64, checksums.value(i).to_string()),
            );
        }
    }
    Ok(last)
}
