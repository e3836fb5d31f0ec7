//! Ingesting a source of files (CSV, MovieLens, JSON, NDJSON, Parquet; local or on object storage).
//!
//! First run: every file of the source is parsed; good rows go to `bronze.<name>` with lineage columns
//! `_source_file` and `_ingested_at`; bad lines go to `bronze.<name>__rejects` with file, line, raw text
//! and reason; each file's path, size and SHA-256 are appended to `system.ingested_files`.
//! Rerun: a file whose size and checksum match its last ingestion is skipped; a changed file replaces
//! exactly its own rows (Delta replace-where on `_source_file`); new files are added.
//! Daily: a path template (`raw/ads_views/{ds}.csv`) reads only the run's day's file, so bronze
//! gains one day per run, and `--full-refresh` re-reads that day's file, never the others.
//! Streaming: a parser thread sends bounded batches to the Delta writer as it reads, so a file far
//! larger than memory is ingested in the memory of a few batches; only the rejected lines are kept.
//! Failure: when more than `ingest.max_reject_fraction` of the lines are rejected, or a file cannot be
//! read, the row stream ends with that error and the writer commits nothing. Commits go bronze, then
//! rejects, then the ingest log: if the process dies in between, the next run sees the file as not
//! ingested and replaces its rows in both tables again.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use tokio::sync::mpsc::Sender;

use super::{
    INGESTED_AT, SOURCE_FILE, as_strings, ingested_files_table, reject_rows, timestamp_type,
};
use crate::catalog::TableName;
use crate::error::{Error, Result};
use crate::ingest::location::SourceFile;
use crate::ingest::{self, ColumnSpec, Format, Location, Reject};
use crate::pipeline::commit::{self, CommitMeta, WriteMode, quote_literal};
use crate::pipeline::progress::StepProgress;
use crate::pipeline::{StepContext, StepResult, StepStatus};

/// Rejected lines shown in an error message.
const REJECT_EXAMPLES: usize = 5;

/// Batches sent to the Delta writer and not yet written: the ingest's memory, whatever the size
/// of the files (each batch is `ingest.batch_rows` rows).
const BATCHES_IN_FLIGHT: usize = 2;

/// What one file contributed: its good rows went to the writer; its rejects are kept.
struct ParsedFile {
    file: SourceFile,
    rows: u64,
    lines: u64,
    rejects: Vec<Reject>,
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
    // A path template (`raw/ads_views/{ds}.csv`) names one run's files: this run's day.
    let templated = !location.variables().is_empty();
    let location = &location.for_run(&ctx.vars).map_err(ingest_error)?;
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

    // A templated source's rows are only ever replaced file by file, even when the table is
    // new: the other days' files are other runs' input, and a backfill's days may run at once.
    // A full refresh re-reads this run's files.
    let exists = ctx.lake.exists(table).await?;
    let refresh_all = !templated && (!exists || ctx.full_refresh);
    let previous = if !exists || ctx.full_refresh {
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

    let ingested_at = ctx.started_at;
    let names: Vec<String> = changed.iter().map(|f| f.name.clone()).collect();
    let mode = if refresh_all {
        WriteMode::Overwrite {
            partition_by: Vec::new(),
        }
    } else {
        let list: Vec<Expr> = names.iter().map(|n| lit(n.as_str())).collect();
        WriteMode::ReplaceWhere {
            predicate: col(SOURCE_FILE).in_list(list, false),
            partition_by: Vec::new(),
        }
    };
    let meta = CommitMeta {
        run_id: ctx.run_id.clone(),
        step: table.to_string(),
        inputs: Default::default(),
        fingerprint: None,
    };

    // The first file's columns are bronze's columns: open it before the writer starts.
    let parse = Parse {
        format,
        columns: columns.map(<[ColumnSpec]>::to_vec),
        batch_rows: ctx.config.ingest.batch_rows,
        max_reject_fraction: ctx.config.ingest.max_reject_fraction,
        ingested_at,
        source_name: source_name.to_string(),
        scratch_copies: scratch.is_some(),
        progress: Arc::clone(&ctx.progress),
    };
    ctx.progress.phase("ingesting");
    let (parse, first) = tokio::task::spawn_blocking(move || {
        let first = parse.open(&changed[0]);
        (parse, first.map(|reader| (reader, changed)))
    })
    .await
    .map_err(|e| Error::Internal(format!("parser of {table} panicked: {e}")))?;
    let (first, changed) = first.map_err(ingest_error)?;
    let bronze_schema = with_lineage(&first.schema());

    // Rows stream from the parser thread to the Delta writer through a few batches in flight;
    // rejects and per-file counts stay with the parser and are committed after bronze.
    let (rows, received) = tokio::sync::mpsc::channel(BATCHES_IN_FLIGHT);
    let schema = Arc::clone(&bronze_schema);
    let parser = tokio::task::spawn_blocking(move || parse.all(changed, first, &schema, &rows));
    let progress = Arc::clone(&ctx.progress);
    let batches = futures::stream::unfold(Some(received), move |received| {
        let progress = Arc::clone(&progress);
        async move {
            let mut received = received?;
            match received.recv().await {
                Some(Ok(Some(batch))) => {
                    progress.wrote(batch.num_rows() as u64);
                    Some((Ok(batch), Some(received)))
                }
                Some(Ok(None)) => None,
                Some(Err(e)) => Some((Err(e), None)),
                // A parser that stops without saying the files ended (it panicked) must not let the
                // writer commit the rows it sent so far.
                None => Some((
                    Err(DataFusionError::Execution(
                        "the parser stopped before the last file ended".into(),
                    )),
                    None,
                )),
            }
        }
    });
    let stream = Box::pin(RecordBatchStreamAdapter::new(bronze_schema, batches));
    let session = ctx.lake.session(&ctx.session)?;
    let frame = crate::session::read_stream(&session, stream)?;
    let written = commit::commit_frame(&ctx.lake, table, frame, mode.clone(), &meta).await;
    let parsed = parser
        .await
        .map_err(|e| Error::Internal(format!("parser of {table} panicked: {e}")))?;
    let (parsed, version) = match (parsed, written) {
        (ParseEnd::Failed(message), _) => return Err(ingest_error(message)),
        (_, Err(e)) => return Err(e),
        (ParseEnd::Done(parsed), Ok(version)) => (parsed, version),
        (ParseEnd::Stopped, Ok(_)) => {
            return Err(Error::Internal(format!(
                "the writer of {table} stopped reading rows before the last file ended"
            )));
        }
    };
    let rejected: u64 = parsed.iter().map(|p| p.rejects.len() as u64).sum();

    ctx.progress.phase("committing");
    let rejects_batch = rejects_batch(&parsed, ingested_at)?;
    commit::commit(
        &ctx.lake,
        &table.rejects(),
        rejects_batch.schema(),
        vec![rejects_batch],
        mode,
        &meta,
    )
    .await?;

    let log_rows: Vec<(SourceFile, u64, u64)> = parsed
        .into_iter()
        .map(|p| {
            let rejected = p.rejects.len() as u64;
            (p.file, p.rows, rejected)
        })
        .collect();
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

/// How the changed files of one source are parsed, on a blocking thread.
struct Parse {
    format: Format,
    columns: Option<Vec<ColumnSpec>>,
    batch_rows: usize,
    max_reject_fraction: f64,
    ingested_at: DateTime<Utc>,
    source_name: String,
    /// The files are local copies of objects: errors name the object, not the copy.
    scratch_copies: bool,
    /// Rows as they are parsed, each file's bytes once it is in.
    progress: Arc<StepProgress>,
}

/// How the parser ended.
enum ParseEnd {
    /// Every file was sent and the rejects are within the limit.
    Done(Vec<ParsedFile>),
    /// A file could not be read, its columns differ from the first file's, or too many lines were
    /// rejected: the row stream ended with an error, so the write committed nothing.
    Failed(String),
    /// The writer stopped reading; its own error is the one to report.
    Stopped,
}

impl Parse {
    fn open(&self, file: &SourceFile) -> std::result::Result<ingest::FileReader, String> {
        ingest::open_reader(
            &file.path,
            &self.format,
            self.columns.as_deref(),
            self.batch_rows,
        )
        .map_err(|e| self.named(file, e.to_string()))
    }

    /// An error message that names the file as the user knows it (an object's URL, not its copy).
    fn named(&self, file: &SourceFile, message: String) -> String {
        if self.scratch_copies {
            message.replace(&file.path.display().to_string(), &file.name)
        } else {
            message
        }
    }

    /// Parses `files` in order (`first` is the first file's reader, already open) and sends each
    /// batch, with lineage columns, to `rows`, then `None` once every file is in and the rejects are
    /// within the limit. A failure is sent as the stream's last item so the writer aborts before it
    /// commits; a stream that ends without `None` fails too.
    fn all(
        &self,
        files: Vec<SourceFile>,
        first: ingest::FileReader,
        schema: &SchemaRef,
        rows: &Sender<DfResult<Option<RecordBatch>>>,
    ) -> ParseEnd {
        let fail = |message: String| {
            let _ = rows.blocking_send(Err(DataFusionError::External(message.clone().into())));
            ParseEnd::Failed(message)
        };
        let columns = first.schema();
        let first_name = files[0].name.clone();
        let mut next = Some(first);
        let mut parsed = Vec::with_capacity(files.len());
        for file in files {
            let mut reader = match next.take().map_or_else(|| self.open(&file), Ok) {
                Ok(reader) => reader,
                Err(message) => return fail(message),
            };
            if reader.schema().fields() != columns.fields() {
                return fail(format!(
                    "{first_name} has columns {} but {} has {}; declare `columns` for source {}",
                    column_list(&columns),
                    file.name,
                    column_list(&reader.schema()),
                    self.source_name
                ));
            }
            for batch in reader.by_ref() {
                let batch = batch
                    .map_err(|e| self.named(&file, e.to_string()))
                    .and_then(|batch| {
                        add_lineage(&batch, schema, &file.name, self.ingested_at)
                            .map_err(|e| e.to_string())
                    });
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(message) => return fail(message),
                };
                self.progress.read(batch.num_rows() as u64, 0);
                if rows.blocking_send(Ok(Some(batch))).is_err() {
                    return ParseEnd::Stopped;
                }
            }
            self.progress.read(0, file.size);
            parsed.push(ParsedFile {
                rows: reader.rows_read(),
                lines: reader.lines_read(),
                rejects: reader.take_rejects(),
                file,
            });
        }
        match self.too_many_rejects(&parsed) {
            Some(message) => fail(message),
            None if rows.blocking_send(Ok(None)).is_err() => ParseEnd::Stopped,
            None => ParseEnd::Done(parsed),
        }
    }

    /// The error when more than `ingest.max_reject_fraction` of all lines were rejected.
    fn too_many_rejects(&self, parsed: &[ParsedFile]) -> Option<String> {
        let lines: u64 = parsed.iter().map(|p| p.lines).sum();
        let rejected: u64 = parsed.iter().map(|p| p.rejects.len() as u64).sum();
        let fraction = if lines == 0 {
            0.0
        } else {
            rejected as f64 / lines as f64
        };
        if fraction <= self.max_reject_fraction {
            return None;
        }
        let examples: Vec<String> = parsed
            .iter()
            .flat_map(|p| p.rejects.iter().map(move |r| (p, r)))
            .take(REJECT_EXAMPLES)
            .map(|(p, r)| format!("  {}:{}: {} ({:?})", p.file.name, r.line, r.reason, r.raw))
            .collect();
        Some(format!(
            "{rejected} of {lines} lines rejected ({:.2}%), above ingest.max_reject_fraction = {}; nothing was committed. First rejects:\n{}",
            fraction * 100.0,
            self.max_reject_fraction,
            examples.join("\n")
        ))
    }
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
