//! Raw sources: what a source is (`source`), where its files live (`location`), and turning delimited
//! text, JSON and Parquet files, or the pages of an HTTP JSON API (`http`), into Arrow record batches.
//!
//! Owns: the `[sources.<name>]` settings ([`SourceSpec`]), the file reader contract (`open_reader`,
//! `FileReader`, `Format`, `Reject`, `IngestError`), dispatch to the per-format modules, and the
//! physical-line reader the line-based text formats share. Does not own: writing batches anywhere or
//! what happens to rejects (`pipeline::ingest_step` stores them), or the config layering.
//!
//! Semantics: `open_reader` does all file-level work up front (open, header, inference, Parquet footer) and
//! fails with an `IngestError` naming the file; after that, a record that cannot become a row becomes a
//! `Reject` with its line number, raw text and reason, and reading goes on.
//!
//! Invariant: every data record is accounted for exactly once — as a good row or as a reject, never dropped —
//! so at every point `rows_read() + (all rejects produced so far) == lines_read()`. Memory is O(batch_rows)
//! (plus one record) for every format except `Format::Json`, whose whole file is read at once; to keep it
//! that way the caller should `take_rejects` after each batch (the reader also ends a batch early once
//! `batch_rows` rejects have piled up, so a file of garbage still yields, possibly empty, batches).

mod delimited;
pub mod http;
mod json;
pub mod location;
mod parquet;
mod schema;
pub mod source;

pub use location::Location;
pub use schema::{ColumnSpec, ColumnType, parse_columns};
pub use source::SourceSpec;

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use schema::BatchBuilder;

/// Text encoding of a delimited file. JSON is always UTF-8 (RFC 8259); Parquet carries its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Utf8,
    /// ISO-8859-1: byte 0xNN is the character U+00NN, so decoding can never fail.
    Latin1,
}

impl FromStr for Encoding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "utf8" | "utf-8" => Ok(Encoding::Utf8),
            "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1" => Ok(Encoding::Latin1),
            _ => Err(format!(
                "unknown encoding {s:?} (expected \"utf-8\" or \"latin-1\")"
            )),
        }
    }
}

/// How a delimited text file is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelimitedOptions {
    /// Field separator: "," or "::" or "\t" etc. May be several characters (only without quoting).
    pub delimiter: String,
    /// The first (non-blank) line holds column names.
    pub header: bool,
    /// Quote character (RFC 4180 style, doubled to escape). None = no quoting: every physical line is one
    /// record and quote characters are ordinary data.
    pub quote: Option<u8>,
    /// Field text meaning NULL for any column type, e.g. "NA" or "".
    pub null_value: Option<String>,
    pub encoding: Encoding,
}

impl Default for DelimitedOptions {
    /// RFC 4180 CSV: comma, header line, double quotes, no null token, UTF-8.
    fn default() -> Self {
        Self {
            delimiter: ",".into(),
            header: true,
            quote: Some(b'"'),
            null_value: None,
            encoding: Encoding::Utf8,
        }
    }
}

/// A raw file format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Delimited(DelimitedOptions),
    /// One JSON object per line.
    NdJson,
    /// A top-level JSON array of objects (or a single object); a file that turns out to be NDJSON is read
    /// as NDJSON.
    Json,
    Parquet,
}

impl Format {
    /// RFC 4180 CSV with a header line (see `DelimitedOptions::default`).
    pub fn csv_default() -> Self {
        Format::Delimited(DelimitedOptions::default())
    }

    /// MovieLens `.dat` files (`ratings.dat`, `movies.dat`, `users.dat`): "::"-separated, no header, no
    /// quoting, latin-1.
    pub fn movielens() -> Self {
        Format::Delimited(DelimitedOptions {
            delimiter: "::".into(),
            header: false,
            quote: None,
            null_value: None,
            encoding: Encoding::Latin1,
        })
    }
}

/// A record that did not become a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// 1-based physical line number where the record starts; 0 if the format is not line-based.
    pub line: u64,
    /// The record's raw text without its line terminator, decoded lossily if needed.
    pub raw: String,
    /// Why, e.g. "expected 4 fields, found 3" or "column rating: cannot parse \"x\" as int64".
    pub reason: String,
}

/// File-level failures: the file as a whole cannot be read as asked. Each names the file (and the line where
/// there is one); record-level problems are `Reject`s instead.
#[derive(thiserror::Error, Debug)]
pub enum IngestError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("{}:{line}: read failed: {source}", path.display())]
    Read {
        path: PathBuf,
        line: u64,
        source: io::Error,
    },
    #[error("{}: batch_rows must be at least 1", path.display())]
    ZeroBatchRows { path: PathBuf },
    #[error("{}: the declared column list is empty", path.display())]
    NoColumns { path: PathBuf },
    #[error("{}: the delimiter is empty", path.display())]
    EmptyDelimiter { path: PathBuf },
    #[error(
        "{}: delimiter {delimiter:?} has several bytes, which quoting does not support; set quote to none or use a one-byte delimiter",
        path.display()
    )]
    QuotedMultiByteDelimiter { path: PathBuf, delimiter: String },
    #[error(
        "{}:{line}: the header has {found} columns but {declared} are declared; fix the column list or set header = false",
        path.display()
    )]
    HeaderColumnCount {
        path: PathBuf,
        line: u64,
        declared: usize,
        found: usize,
    },
    #[error(
        "{}:{line}: the header is not valid UTF-8 (is the file latin-1? set its encoding)",
        path.display()
    )]
    HeaderNotUtf8 { path: PathBuf, line: u64 },
    #[error(
        "{}: no data to infer columns from; declare the columns or check the file",
        path.display()
    )]
    NothingToInfer { path: PathBuf },
    #[error("{}:{line}: not a readable JSON array: {problem}", path.display())]
    JsonArray {
        path: PathBuf,
        line: u64,
        problem: String,
    },
    #[error("{}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        source: ::parquet::errors::ParquetError,
    },
    #[error(
        "{}: column {column:?} not found in the file (it has: {available})",
        path.display()
    )]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: String,
    },
    #[error(
        "{}: column {column:?} is {from} in the file and cannot be converted to {to}",
        path.display()
    )]
    IncompatibleColumn {
        path: PathBuf,
        column: String,
        from: DataType,
        to: DataType,
    },
    #[error("{}: column {column:?}: {source}", path.display())]
    Cast {
        path: PathBuf,
        column: String,
        source: ArrowError,
    },
    #[error("{}: building a batch failed: {source}", path.display())]
    Batch { path: PathBuf, source: ArrowError },
}

/// A streaming reader: yields batches of at most `batch_rows` good rows; rejects accumulate and are taken
/// with `take_rejects`. Memory is O(batch_rows), never O(file) (except `Format::Json`, see the module doc).
pub struct FileReader {
    path: PathBuf,
    schema: SchemaRef,
    source: Source,
    progress: Progress,
    finished: bool,
}

enum Source {
    Text {
        rows: Box<dyn RowSource + Send>,
        batch: BatchBuilder,
    },
    Parquet(parquet::ParquetSource),
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("path", &self.path)
            .field("rows_read", &self.progress.rows)
            .field("lines_read", &self.progress.lines)
            .finish_non_exhaustive()
    }
}

impl FileReader {
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The rejects produced since the last call, in file order.
    pub fn take_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.progress.rejects)
    }

    /// Good rows so far.
    pub fn rows_read(&self) -> u64 {
        self.progress.rows
    }

    /// Data lines/records seen so far (good + rejected), excluding the header.
    pub fn lines_read(&self) -> u64 {
        self.progress.lines
    }

    /// The file this reader reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, IngestError> {
        match &mut self.source {
            Source::Parquet(p) => {
                let batch = p.next_batch()?;
                if let Some(b) = &batch {
                    self.progress.rows += b.num_rows() as u64;
                    self.progress.lines += b.num_rows() as u64;
                }
                Ok(batch)
            }
            Source::Text { rows, batch } => {
                self.progress.rejects_in_batch = 0;
                let eof = rows.fill(batch, &mut self.progress)?;
                // At the end, an empty batch carries nothing; before it, an empty batch means the reject
                // limit ended it and the caller gets a chance to drain the rejects.
                if eof && batch.len() == 0 {
                    return Ok(None);
                }
                let out = batch.finish().map_err(|source| IngestError::Batch {
                    path: self.path.clone(),
                    source,
                })?;
                Ok(Some(out))
            }
        }
    }
}

impl Iterator for FileReader {
    type Item = Result<RecordBatch, IngestError>;

    /// After an error or the last batch, returns None forever.
    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.next_batch() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(e) => {
                self.finished = true;
                Some(Err(e))
            }
        }
    }
}

/// Opens `path`. `columns`: declared schema, or None to infer. Errors here are file-level (cannot open,
/// header/declared-column count mismatch, empty file when inference needs data, parquet footer broken...).
pub fn open_reader(
    path: &Path,
    format: &Format,
    columns: Option<&[ColumnSpec]>,
    batch_rows: usize,
) -> Result<FileReader, IngestError> {
    let path_buf = path.to_path_buf();
    if batch_rows == 0 {
        return Err(IngestError::ZeroBatchRows { path: path_buf });
    }
    if columns.is_some_and(|c| c.is_empty()) {
        return Err(IngestError::NoColumns { path: path_buf });
    }
    let mut progress = Progress::new(batch_rows);
    let (schema, source) = match format {
        Format::Parquet => {
            let p = parquet::ParquetSource::open(path, columns, batch_rows)?;
            (p.schema(), Source::Parquet(p))
        }
        Format::Delimited(_) | Format::NdJson | Format::Json => {
            let text = match format {
                Format::Delimited(opts) => delimited::open(path, opts, columns, &mut progress)?,
                _ => json::open(path, *format == Format::Json, columns)?,
            };
            let batch = BatchBuilder::new(text.schema.clone(), &text.types, batch_rows);
            let source = Source::Text {
                rows: text.rows,
                batch,
            };
            (text.schema, source)
        }
    };
    Ok(FileReader {
        path: path_buf,
        schema,
        source,
        progress,
        finished: false,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Shared by the text formats
// ---------------------------------------------------------------------------------------------------------

/// Counters and rejects of one reader; text sources report every record here exactly once.
struct Progress {
    rejects: Vec<Reject>,
    rows: u64,
    lines: u64,
    rejects_in_batch: usize,
    batch_rows: usize,
}

impl Progress {
    fn new(batch_rows: usize) -> Self {
        Self {
            rejects: Vec::new(),
            rows: 0,
            lines: 0,
            rejects_in_batch: 0,
            batch_rows,
        }
    }

    /// Records a rejected record.
    fn reject(&mut self, line: u64, raw: String, reason: String) {
        self.rejects.push(Reject { line, raw, reason });
        self.lines += 1;
        self.rejects_in_batch += 1;
    }

    /// Records a record that became a row.
    #[inline]
    fn accept(&mut self) {
        self.rows += 1;
        self.lines += 1;
    }

    /// Whether the current batch must end now: it is full, or enough rejects piled up during it that the
    /// caller should get a chance to take them.
    #[inline]
    fn batch_done(&self, batch: &BatchBuilder) -> bool {
        batch.len() >= self.batch_rows || self.rejects_in_batch >= self.batch_rows
    }
}

/// What a text format's `open` hands back: the schema, its column types, and the record loop positioned on
/// the first data record.
struct TextSource {
    schema: SchemaRef,
    types: Vec<ColumnType>,
    rows: Box<dyn RowSource + Send>,
}

/// A text format's record loop.
trait RowSource {
    /// Reads records into `batch` (good rows) and `progress` (every record) until `progress.batch_done`
    /// or the end of the file. Returns whether the end of the file was reached.
    fn fill(
        &mut self,
        batch: &mut BatchBuilder,
        progress: &mut Progress,
    ) -> Result<bool, IngestError>;
}

/// One physical line, as read by `LineInput`.
struct Line<'a> {
    /// 1-based.
    number: u64,
    /// Without "\n", without a trailing "\r", without a UTF-8 byte-order mark on line 1.
    bytes: &'a [u8],
}

/// Reads a file line by line into one reused buffer, numbering the lines. Lines are split on "\n" only; a
/// "\r" elsewhere in a line is data.
struct LineInput {
    path: PathBuf,
    reader: BufReader<File>,
    buf: Vec<u8>,
    next_number: u64,
    strip_bom: bool,
}

impl LineInput {
    /// `strip_bom`: drop a UTF-8 byte-order mark on line 1 (only right for UTF-8 text: in latin-1 those bytes
    /// are the characters "ï»¿").
    fn open(path: &Path, strip_bom: bool) -> Result<Self, IngestError> {
        let file = open_file(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(256 * 1024, file),
            buf: Vec::with_capacity(1024),
            next_number: 1,
            strip_bom,
        })
    }

    fn next_line(&mut self) -> Result<Option<Line<'_>>, IngestError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| IngestError::Read {
                path: self.path.clone(),
                line: self.next_number,
                source,
            })?;
        if n == 0 {
            return Ok(None);
        }
        let number = self.next_number;
        self.next_number += 1;
        let mut bytes = &self.buf[..];
        if let [rest @ .., b'\n'] = bytes {
            bytes = rest;
        }
        if let [rest @ .., b'\r'] = bytes {
            bytes = rest;
        }
        if number == 1 && self.strip_bom {
            bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        }
        Ok(Some(Line { number, bytes }))
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

fn open_file(path: &Path) -> Result<File, IngestError> {
    File::open(path).map_err(|source| IngestError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// The reject reason for bytes that are not UTF-8; the position is 1-based, like line numbers.
fn utf8_error(e: std::str::Utf8Error) -> String {
    format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1)
}

/// Raw text of a record for a reject: latin-1 decodes exactly, UTF-8 lossily (U+FFFD for bad bytes).
fn decode_lossy(bytes: &[u8], encoding: Encoding) -> String {
    match encoding {
        Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        Encoding::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Test helper: writes `bytes` to a file in a fresh temporary directory (kept alive by the returned guard).
#[cfg(test)]
fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    (dir, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_presets() {
        let Format::Delimited(ml) = Format::movielens() else {
            panic!("movielens is delimited")
        };
        assert_eq!(
            (ml.delimiter.as_str(), ml.header, ml.quote, ml.encoding),
            ("::", false, None, Encoding::Latin1)
        );
        let Format::Delimited(csv) = Format::csv_default() else {
            panic!("csv is delimited")
        };
        assert_eq!(
            (csv.delimiter.as_str(), csv.header, csv.quote),
            (",", true, Some(b'"'))
        );
        assert_eq!("Latin-1".parse::<Encoding>(), Ok(Encoding::Latin1));
        assert!("ebcdic".parse::<Encoding>().is_err());
    }

    #[test]
    fn options_are_checked_before_reading() {
        let (_dir, path) = temp_file("x.csv", b"a\n1\n");
        assert!(matches!(
            open_reader(&path, &Format::csv_default(), None, 0),
            Err(IngestError::ZeroBatchRows { .. })
        ));
        assert!(matches!(
            open_reader(&path, &Format::csv_default(), Some(&[]), 10),
            Err(IngestError::NoColumns { .. })
        ));
        let empty_delim = Format::Delimited(DelimitedOptions {
            delimiter: String::new(),
            ..DelimitedOptions::default()
        });
        assert!(matches!(
            open_reader(&path, &empty_delim, None, 10),
            Err(IngestError::EmptyDelimiter { .. })
        ));
    }

    #[test]
    fn reader_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<FileReader>();
    }
}
