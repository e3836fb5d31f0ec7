//! Delimited text: CSV/TSV (with or without quoting) and MovieLens `::` files.
//!
//! Owns: cutting a file into records and fields, the header line, inference by sampling, and turning each
//! record into a row or a reject. Does not own: what a field's text means as a value (`schema`), or options
//! parsing (the caller builds `DelimitedOptions`).
//!
//! Two record splitters, picked by `quote`:
//! - no quoting: every physical line is one record, split on the (possibly multi-byte) delimiter. This is
//!   the hot path (`ratings.dat`): one reused line buffer, fields as byte ranges, no per-field allocation.
//! - quoting: the `csv` crate parses, so quoted delimiters, doubled quotes and quoted newlines follow
//!   RFC 4180. The csv crate's own `position().line()` is not used: it is wrong after blank lines and for
//!   CRLF files, and csv silently skips blank lines. Instead the exact bytes csv consumed for each record are
//!   captured (a `Tee` under the csv reader, using its byte positions), which gives the true line numbers,
//!   the blank lines to reject, and the raw text of rejects.
//!
//! Record rules (both splitters): lines end at "\n" and a trailing "\r" is dropped; a line with nothing on it
//! is an "empty line" reject (also before the header, which is the first non-blank line); a record with the
//! wrong field count is rejected before any field is parsed; NULL rules are `schema::is_null`'s. Known limit:
//! an unterminated quote makes the rest of the file one record (as in every RFC 4180 reader), held in memory
//! and then rejected for its field count.
//!
//! Invariant: every physical line is either part of exactly one record (a row or a reject), the header, or
//! an "empty line" reject.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::schema::{
    BatchBuilder, Cell, ColumnSpec, ColumnType, TypeGuess, is_null, parse_error, parse_value,
    schema_of, unique_names,
};
use super::{
    DelimitedOptions, Encoding, IngestError, LineInput, Progress, RowSource, TextSource, UTF8_BOM,
    decode_lossy, open_file, utf8_error,
};

/// How many records inference looks at.
const SAMPLE_RECORDS: usize = 1000;

/// Opens a delimited file: reads the header, infers the columns if none are declared, and returns the
/// schema, the column types and the row source positioned on the first data record. Blank lines before the
/// header are reported to `progress` as rejects.
pub(super) fn open(
    path: &Path,
    opts: &DelimitedOptions,
    columns: Option<&[ColumnSpec]>,
    progress: &mut Progress,
) -> Result<TextSource, IngestError> {
    if opts.delimiter.is_empty() {
        return Err(IngestError::EmptyDelimiter {
            path: path.to_path_buf(),
        });
    }
    if opts.quote.is_some() && opts.delimiter.len() != 1 {
        return Err(IngestError::QuotedMultiByteDelimiter {
            path: path.to_path_buf(),
            delimiter: opts.delimiter.clone(),
        });
    }
    let mut records = Records::open(path, opts)?;
    let header = if opts.header {
        read_header(&mut records, Some(progress), path)?
    } else {
        None
    };
    let specs = match columns {
        Some(declared) => {
            if let Some((line, names)) = &header
                && names.len() != declared.len()
            {
                return Err(IngestError::HeaderColumnCount {
                    path: path.to_path_buf(),
                    line: *line,
                    declared: declared.len(),
                    found: names.len(),
                });
            }
            declared.to_vec()
        }
        None => infer(
            path,
            opts,
            header.as_ref().map(|(_, names)| names.as_slice()),
        )?,
    };
    let schema = schema_of(&specs);
    let types: Vec<ColumnType> = specs.iter().map(|c| c.ty).collect();
    let source = DelimitedSource {
        records,
        encoding: opts.encoding,
        row: RowParser {
            names: specs.into_iter().map(|c| c.name).collect(),
            types: types.clone(),
            null_value: opts.null_value.clone(),
            cells: Vec::with_capacity(types.len()),
        },
    };
    Ok(TextSource {
        schema,
        types,
        rows: Box::new(source),
    })
}

/// Reads up to the header: the first non-blank record. Returns its line number and field texts, or None
/// for a file with no non-blank line.
fn read_header(
    records: &mut Records,
    mut progress: Option<&mut Progress>,
    path: &Path,
) -> Result<Option<(u64, Vec<String>)>, IngestError> {
    loop {
        match records.next()? {
            None => return Ok(None),
            Some(Record::Empty { line }) => {
                if let Some(p) = progress.as_deref_mut() {
                    p.reject(line, String::new(), EMPTY_LINE.into());
                }
            }
            Some(Record::Undecodable { line, .. }) => {
                return Err(IngestError::HeaderNotUtf8 {
                    path: path.to_path_buf(),
                    line,
                });
            }
            Some(Record::Fields {
                line, text, spans, ..
            }) => {
                let names = spans.iter().map(|&(s, e)| field(text, s, e).to_string());
                return Ok(Some((line, names.collect())));
            }
        }
    }
}

/// Infers column specs from the first `SAMPLE_RECORDS` records that look like data: with a header, those
/// with the header's field count; without, those with the most common field count among them (so one
/// odd first line cannot dictate the schema). Uses its own pass over the file; the main pass starts over.
fn infer(
    path: &Path,
    opts: &DelimitedOptions,
    header: Option<&[String]>,
) -> Result<Vec<ColumnSpec>, IngestError> {
    let mut records = Records::open(path, opts)?;
    if opts.header {
        read_header(&mut records, None, path)?;
    }
    let null_value = opts.null_value.as_deref();
    // (field count, records with that count, per-column guesses), in first-seen order.
    let mut shapes: Vec<(usize, usize, Vec<TypeGuess>)> = Vec::new();
    let mut sampled = 0;
    while sampled < SAMPLE_RECORDS {
        let Some(record) = records.next()? else { break };
        let Record::Fields { text, spans, .. } = record else {
            continue;
        };
        if header.is_some_and(|h| h.len() != spans.len()) {
            continue;
        }
        let idx = match shapes.iter().position(|s| s.0 == spans.len()) {
            Some(i) => i,
            None => {
                shapes.push((spans.len(), 0, vec![TypeGuess::default(); spans.len()]));
                shapes.len() - 1
            }
        };
        let shape = &mut shapes[idx];
        shape.1 += 1;
        for (guess, &(s, e)) in shape.2.iter_mut().zip(spans) {
            let f = field(text, s, e);
            // Inference treats every empty field as missing, whatever the column turns out to be.
            if !f.is_empty() && null_value != Some(f) {
                guess.observe_text(f);
            }
        }
        sampled += 1;
    }
    // max_by_key keeps the last maximum; reverse so ties go to the shape seen first.
    let best = shapes.into_iter().rev().max_by_key(|s| s.1);
    let specs = match (header, best) {
        (Some(names), best) => {
            let guesses = best
                .map(|b| b.2)
                .unwrap_or_else(|| vec![TypeGuess::default(); names.len()]);
            unique_names(names)
                .into_iter()
                .zip(guesses)
                .map(|(n, g)| ColumnSpec::new(n, g.resolve()))
                .collect()
        }
        (None, Some((_, _, guesses))) => guesses
            .into_iter()
            .enumerate()
            .map(|(i, g)| ColumnSpec::new(format!("column_{}", i + 1), g.resolve()))
            .collect(),
        (None, None) => {
            return Err(IngestError::NothingToInfer {
                path: path.to_path_buf(),
            });
        }
    };
    Ok(specs)
}

const EMPTY_LINE: &str = "empty line";

/// The text of field `s..e`. Spans always fall on char boundaries (see `split`), so the fallback never
/// triggers; it exists so a bug cannot become a panic on user data.
#[inline]
fn field(text: &str, s: usize, e: usize) -> &str {
    text.get(s..e).unwrap_or_default()
}

struct DelimitedSource {
    records: Records,
    encoding: Encoding,
    row: RowParser,
}

impl RowSource for DelimitedSource {
    fn fill(
        &mut self,
        batch: &mut BatchBuilder,
        progress: &mut Progress,
    ) -> Result<bool, IngestError> {
        loop {
            if progress.batch_done(batch) {
                return Ok(false);
            }
            let Some(record) = self.records.next()? else {
                return Ok(true);
            };
            match record {
                Record::Empty { line } => progress.reject(line, String::new(), EMPTY_LINE.into()),
                Record::Undecodable { line, raw, reason } => {
                    progress.reject(line, decode_lossy(raw, self.encoding), reason)
                }
                Record::Fields {
                    line,
                    raw,
                    text,
                    spans,
                } => match self.row.parse(text, spans) {
                    Ok(()) => {
                        batch.append(&self.row.cells, text);
                        progress.accept();
                    }
                    Err(reason) => progress.reject(line, decode_lossy(raw, self.encoding), reason),
                },
            }
        }
    }
}

/// Turns one record's fields into staged cells, or the reason it cannot be a row.
struct RowParser {
    names: Vec<String>,
    types: Vec<ColumnType>,
    null_value: Option<String>,
    cells: Vec<Cell>,
}

impl RowParser {
    #[inline]
    fn parse(&mut self, text: &str, spans: &[(usize, usize)]) -> Result<(), String> {
        if spans.len() != self.types.len() {
            return Err(format!(
                "expected {} fields, found {}",
                self.types.len(),
                spans.len()
            ));
        }
        self.cells.clear();
        let null_value = self.null_value.as_deref();
        for (i, (&(s, e), &ty)) in spans.iter().zip(&self.types).enumerate() {
            let f = field(text, s, e);
            let cell = if is_null(f, ty, null_value) {
                Cell::Null
            } else if ty == ColumnType::Utf8 {
                Cell::Text { start: s, end: e }
            } else {
                match parse_value(ty, f) {
                    Some(c) => c,
                    None => return Err(parse_error(&self.names[i], ty, f)),
                }
            };
            self.cells.push(cell);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Record splitting
// ---------------------------------------------------------------------------------------------------------

/// One record as the splitters see it.
enum Record<'a> {
    /// A line with no characters (after removing "\r"). Never a row, even for a one-column file: a blank
    /// line is far more often an artefact than a single empty value.
    Empty { line: u64 },
    /// Not decodable in the file's encoding (only possible for UTF-8).
    Undecodable {
        line: u64,
        raw: &'a [u8],
        reason: String,
    },
    /// Decoded text and the byte ranges of its fields within it. `raw` is the record as it is in the file.
    Fields {
        line: u64,
        raw: &'a [u8],
        text: &'a str,
        spans: &'a [(usize, usize)],
    },
}

enum Records {
    Lines(LineRecords),
    Csv(Box<CsvRecords>),
}

impl Records {
    fn open(path: &Path, opts: &DelimitedOptions) -> Result<Self, IngestError> {
        Ok(match opts.quote {
            None => Records::Lines(LineRecords {
                input: LineInput::open(path, opts.encoding == Encoding::Utf8)?,
                delimiter: opts.delimiter.as_bytes().to_vec(),
                encoding: opts.encoding,
                scratch: String::new(),
                spans: Vec::new(),
            }),
            Some(quote) => Records::Csv(Box::new(CsvRecords::open(path, opts, quote)?)),
        })
    }

    #[inline]
    fn next(&mut self) -> Result<Option<Record<'_>>, IngestError> {
        match self {
            Records::Lines(l) => l.next(),
            Records::Csv(c) => c.next(),
        }
    }
}

/// Unquoted records: one physical line each.
struct LineRecords {
    input: LineInput,
    delimiter: Vec<u8>,
    encoding: Encoding,
    scratch: String,
    spans: Vec<(usize, usize)>,
}

impl LineRecords {
    #[inline]
    fn next(&mut self) -> Result<Option<Record<'_>>, IngestError> {
        let Some(line) = self.input.next_line()? else {
            return Ok(None);
        };
        let (number, bytes) = (line.number, line.bytes);
        if bytes.is_empty() {
            return Ok(Some(Record::Empty { line: number }));
        }
        let text = match self.encoding {
            Encoding::Utf8 => match std::str::from_utf8(bytes) {
                Ok(t) => t,
                Err(e) => {
                    return Ok(Some(Record::Undecodable {
                        line: number,
                        raw: bytes,
                        reason: utf8_error(e),
                    }));
                }
            },
            Encoding::Latin1 => latin1(bytes, &mut self.scratch),
        };
        split(text.as_bytes(), &self.delimiter, &mut self.spans);
        Ok(Some(Record::Fields {
            line: number,
            raw: bytes,
            text,
            spans: &self.spans,
        }))
    }
}

/// Decodes latin-1. ASCII (almost every line) is borrowed as is; otherwise each byte becomes U+00XX in
/// `scratch`. Splitting then happens on the decoded text, so a non-ASCII delimiter written in the config
/// (UTF-8) still matches its latin-1 byte.
#[inline]
fn latin1<'a>(bytes: &'a [u8], scratch: &'a mut String) -> &'a str {
    if bytes.is_ascii()
        && let Ok(text) = std::str::from_utf8(bytes)
    {
        return text;
    }
    scratch.clear();
    scratch.extend(bytes.iter().map(|&b| char::from(b)));
    scratch
}

/// Splits `text` on `delimiter` into `spans`. Because both are UTF-8, every match starts on a char
/// boundary (UTF-8 is self-synchronising), so the spans can index the `&str`.
#[inline]
fn split(text: &[u8], delimiter: &[u8], spans: &mut Vec<(usize, usize)>) {
    spans.clear();
    let Some(&first) = delimiter.first() else {
        spans.push((0, text.len()));
        return;
    };
    let mut start = 0;
    let mut i = 0;
    while let Some(off) = text[i..].iter().position(|&b| b == first) {
        let at = i + off;
        if text[at..].starts_with(delimiter) {
            spans.push((start, at));
            i = at + delimiter.len();
            start = i;
        } else {
            i = at + 1;
        }
    }
    spans.push((start, text.len()));
}

/// Quoted records via the csv crate, with exact line accounting from the consumed bytes.
struct CsvRecords {
    path: PathBuf,
    reader: csv::Reader<Tee>,
    record: csv::ByteRecord,
    encoding: Encoding,
    scratch: String,
    spans: Vec<(usize, usize)>,
    /// Line number of the first line not yet reported.
    next_line: u64,
    /// The csv reader's byte position after the last record read.
    position: u64,
    /// Length of the current chunk in the tee (consumed before the next read).
    chunk_len: usize,
    /// Blank lines at the start of the current chunk still to report.
    pending_empty: u64,
    /// The current chunk's record is still to report.
    record_ready: bool,
    /// The current record's raw text: offsets into the current chunk.
    raw_range: (usize, usize),
    /// "\n"s in the current record including its terminator, i.e. lines it spans.
    record_lines: u64,
    /// The record's line ended with "\r\n": the last field carries the "\r" and loses it.
    crlf: bool,
    eof: bool,
}

impl CsvRecords {
    fn open(path: &Path, opts: &DelimitedOptions, quote: u8) -> Result<Self, IngestError> {
        let tee = Tee {
            inner: open_file(path)?,
            seen: Vec::new(),
            consumed: 0,
        };
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(opts.delimiter.as_bytes()[0])
            .quote(quote)
            .double_quote(true)
            // "\n" only, like the unquoted path: a lone "\r" is data, and a "\r\n" line's "\r" is removed
            // from the last field below. With the default CRLF terminator csv would also end records at a
            // bare "\r".
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(64 * 1024)
            .from_reader(tee);
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            record: csv::ByteRecord::new(),
            encoding: opts.encoding,
            scratch: String::new(),
            spans: Vec::new(),
            next_line: 1,
            position: 0,
            chunk_len: 0,
            pending_empty: 0,
            record_ready: false,
            raw_range: (0, 0),
            record_lines: 0,
            crlf: false,
            eof: false,
        })
    }

    fn next(&mut self) -> Result<Option<Record<'_>>, IngestError> {
        loop {
            if self.pending_empty > 0 {
                self.pending_empty -= 1;
                let line = self.next_line;
                self.next_line += 1;
                return Ok(Some(Record::Empty { line }));
            }
            if self.record_ready {
                self.record_ready = false;
                return Ok(Some(self.current()));
            }
            if self.eof {
                return Ok(None);
            }
            self.read_chunk()?;
        }
    }

    /// Reads the next record and works out, from the bytes csv consumed for it, which blank lines precede
    /// it and where its raw text is. csv consumes, per record: the blank lines before it (it skips them),
    /// the record, and its "\n"; at the end, any trailing blank lines.
    fn read_chunk(&mut self) -> Result<(), IngestError> {
        let first = self.position == 0;
        self.reader.get_mut().consume(self.chunk_len);
        let got = self
            .reader
            .read_byte_record(&mut self.record)
            .map_err(|e| IngestError::Read {
                path: self.path.clone(),
                line: self.next_line,
                source: io::Error::from(e),
            })?;
        let position = self.reader.position().byte();
        self.chunk_len = usize::try_from(position - self.position).unwrap_or(usize::MAX);
        self.position = position;
        let chunk = self.reader.get_ref().chunk(self.chunk_len);
        // csv drops a UTF-8 BOM itself; skip it here too so it is neither a blank line nor raw text.
        let mut start = 0;
        if first && chunk.starts_with(UTF8_BOM) {
            start = UTF8_BOM.len();
        }
        let blank = chunk[start..].iter().take_while(|&&b| b == b'\n').count();
        self.pending_empty = blank as u64;
        start += blank;
        if !got {
            self.eof = true;
            return Ok(());
        }
        let rest = &chunk[start..];
        self.record_lines = rest.iter().filter(|&&b| b == b'\n').count() as u64;
        let mut end = chunk.len();
        if chunk[start..end].ends_with(b"\n") {
            end -= 1;
        }
        self.crlf = chunk[start..end].ends_with(b"\r");
        if self.crlf {
            end -= 1;
        }
        self.raw_range = (start, end);
        self.record_ready = true;
        Ok(())
    }

    /// The record read by `read_chunk`, decoded.
    fn current(&mut self) -> Record<'_> {
        let line = self.next_line;
        self.next_line += self.record_lines;
        let chunk = self.reader.get_ref().chunk(self.chunk_len);
        let raw = chunk
            .get(self.raw_range.0..self.raw_range.1)
            .unwrap_or_default();
        if raw.is_empty() {
            // A "\r\n" blank line: csv saw a record holding just "\r".
            return Record::Empty { line };
        }
        let fields = self.record.as_slice();
        let direct = match self.encoding {
            Encoding::Utf8 => match std::str::from_utf8(fields) {
                Ok(t) => Some(t),
                Err(_) => {
                    // Report the position in the line as written, not in the unescaped fields.
                    let reason = match std::str::from_utf8(raw) {
                        Err(e) => utf8_error(e),
                        Ok(_) => "invalid UTF-8".into(),
                    };
                    return Record::Undecodable { line, raw, reason };
                }
            },
            // ASCII latin-1 is its own UTF-8; anything else is widened byte by byte below.
            Encoding::Latin1 if fields.is_ascii() => std::str::from_utf8(fields).ok(),
            Encoding::Latin1 => None,
        };
        self.spans.clear();
        let text: &str = match direct {
            Some(t) => {
                let record = &self.record;
                self.spans.extend(
                    (0..record.len())
                        .filter_map(|i| record.range(i))
                        .map(|r| (r.start, r.end)),
                );
                t
            }
            None => {
                self.scratch.clear();
                for f in self.record.iter() {
                    let s = self.scratch.len();
                    self.scratch.extend(f.iter().map(|&b| char::from(b)));
                    self.spans.push((s, self.scratch.len()));
                }
                &self.scratch
            }
        };
        if self.crlf
            && let Some(last) = self.spans.last_mut()
            && last.1 > last.0
            && text.as_bytes()[last.1 - 1] == b'\r'
        {
            last.1 -= 1;
        }
        Record::Fields {
            line,
            raw,
            text,
            spans: &self.spans,
        }
    }
}

/// Keeps a copy of the bytes the csv reader has pulled from the file but whose record has not been
/// processed yet, so each record's exact raw bytes can be looked up by csv's byte positions. Holds about
/// one read-ahead buffer plus one record.
struct Tee {
    inner: File,
    seen: Vec<u8>,
    /// `seen[..consumed]` belongs to records already processed; dropped on the next read.
    consumed: usize,
}

impl Tee {
    fn consume(&mut self, n: usize) {
        self.consumed = (self.consumed + n).min(self.seen.len());
    }

    /// The next `len` unprocessed bytes (the current record's chunk).
    fn chunk(&self, len: usize) -> &[u8] {
        let end = self.consumed.saturating_add(len).min(self.seen.len());
        &self.seen[self.consumed..end]
    }
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.consumed > 0 {
            self.seen.drain(..self.consumed);
            self.consumed = 0;
        }
        let n = self.inner.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        Array, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::DataType;
    use arrow::record_batch::RecordBatch;

    use super::super::{
        ColumnSpec, DelimitedOptions, Encoding, FileReader, Format, IngestError, Reject,
        open_reader, parse_columns, temp_file,
    };

    fn csv_opts() -> DelimitedOptions {
        DelimitedOptions::default()
    }

    fn cols(spec: &str) -> Vec<ColumnSpec> {
        parse_columns(spec).expect("valid column spec")
    }

    /// Reads everything; returns the batches and all rejects, checking the accounting invariant.
    fn read_all(mut reader: FileReader) -> (Vec<RecordBatch>, Vec<Reject>) {
        let mut batches = Vec::new();
        let mut rejects = Vec::new();
        while let Some(batch) = reader.next() {
            batches.push(batch.expect("no file-level error"));
            rejects.extend(reader.take_rejects());
        }
        rejects.extend(reader.take_rejects());
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(reader.rows_read(), rows as u64);
        assert_eq!(
            reader.lines_read(),
            (rows + rejects.len()) as u64,
            "every data line is a row or a reject"
        );
        (batches, rejects)
    }

    fn read(
        bytes: &[u8],
        format: Format,
        columns: Option<&[ColumnSpec]>,
    ) -> (Vec<RecordBatch>, Vec<Reject>) {
        let (_dir, path) = temp_file("data.txt", bytes);
        let reader = open_reader(&path, &format, columns, 1024).expect("opens");
        read_all(reader)
    }

    fn strings(batches: &[RecordBatch], col: usize) -> Vec<Option<String>> {
        batches
            .iter()
            .flat_map(|b| {
                let a = b
                    .column(col)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("utf8");
                a.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>()
            })
            .collect()
    }

    fn ints(batches: &[RecordBatch], col: usize) -> Vec<Option<i64>> {
        batches
            .iter()
            .flat_map(|b| {
                let a = b
                    .column(col)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("int64");
                a.iter().collect::<Vec<_>>()
            })
            .collect()
    }

    fn floats(batches: &[RecordBatch], col: usize) -> Vec<Option<f64>> {
        batches
            .iter()
            .flat_map(|b| {
                let a = b
                    .column(col)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("f64");
                a.iter().collect::<Vec<_>>()
            })
            .collect()
    }

    fn reject(line: u64, raw: &str, reason: &str) -> Reject {
        Reject {
            line,
            raw: raw.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn movielens_movies_latin1_decodes_accents() {
        let data = b"1::Toy Story (1995)::Animation|Children's|Comedy\n\
                     2::Caf\xe9 Society (1995)::Drama\r\n\
                     3::Cr\xe8me: Br\xfbl\xe9e (2000)::Comedy\n";
        let spec = cols("movie_id bigint, title string, genres string");
        let (batches, rejects) = read(data, Format::movielens(), Some(&spec));
        assert_eq!(rejects, vec![]);
        assert_eq!(ints(&batches, 0), vec![Some(1), Some(2), Some(3)]);
        assert_eq!(
            strings(&batches, 1),
            vec![
                Some("Toy Story (1995)".into()),
                Some("Café Society (1995)".into()),
                Some("Crème: Brûlée (2000)".into()),
            ]
        );
        assert_eq!(
            strings(&batches, 2)[1],
            Some("Drama".into()),
            "\\r stripped"
        );
    }

    #[test]
    fn movielens_ratings_infer_as_int64_columns() {
        let data = b"1::1193::5::978300760\n1::661::3::978302109\n";
        let (_dir, path) = temp_file("ratings.dat", data);
        let reader = open_reader(&path, &Format::movielens(), None, 100).unwrap();
        let schema = reader.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["column_1", "column_2", "column_3", "column_4"]);
        assert!(
            schema
                .fields()
                .iter()
                .all(|f| f.data_type() == &DataType::Int64)
        );
        let (batches, rejects) = read_all(reader);
        assert!(rejects.is_empty());
        assert_eq!(
            ints(&batches, 3),
            vec![Some(978_300_760), Some(978_302_109)]
        );
    }

    #[test]
    fn csv_quotes_with_delimiter_and_newline_keep_line_numbers() {
        let data = b"id,name,score\n\
                     1,\"Smith, John\",3.5\n\
                     2,\"multi\nline\",4\n\
                     3,bad,x\n\
                     4,short\n\
                     \n\
                     5,\"say \"\"hi\"\"\",1e1\n\
                     6,\"two\n\nbreaks\",\n\
                     7,bad,y";
        let spec = cols("id bigint, name string, score double");
        let (batches, rejects) = read(data, Format::csv_default(), Some(&spec));
        assert_eq!(
            rejects,
            vec![
                reject(5, "3,bad,x", "column score: cannot parse \"x\" as float64"),
                reject(6, "4,short", "expected 3 fields, found 2"),
                reject(7, "", "empty line"),
                reject(12, "7,bad,y", "column score: cannot parse \"y\" as float64"),
            ]
        );
        assert_eq!(ints(&batches, 0), vec![Some(1), Some(2), Some(5), Some(6)]);
        assert_eq!(
            strings(&batches, 1),
            vec![
                Some("Smith, John".into()),
                Some("multi\nline".into()),
                Some("say \"hi\"".into()),
                Some("two\n\nbreaks".into()),
            ]
        );
        assert_eq!(
            floats(&batches, 2),
            vec![Some(3.5), Some(4.0), Some(10.0), None]
        );
    }

    #[test]
    fn csv_crlf_blank_lines_and_bom_are_accounted() {
        let data = b"\xEF\xBB\xBFa,b\r\n1,2\r\n\r\n\n3,x\r\n\"4\",\"5\"\r\n\r\n";
        let spec = cols("a bigint, b bigint");
        let (batches, rejects) = read(data, Format::csv_default(), Some(&spec));
        assert_eq!(
            rejects,
            vec![
                reject(3, "", "empty line"),
                reject(4, "", "empty line"),
                reject(5, "3,x", "column b: cannot parse \"x\" as int64"),
                reject(7, "", "empty line"),
            ]
        );
        assert_eq!(ints(&batches, 0), vec![Some(1), Some(4)]);
        assert_eq!(ints(&batches, 1), vec![Some(2), Some(5)]);
    }

    #[test]
    fn trailing_blank_lines_are_rejects_in_both_splitters() {
        for quote in [Some(b'"'), None] {
            let opts = DelimitedOptions {
                quote,
                ..csv_opts()
            };
            let (batches, rejects) = read(b"a\n\n1\n\n\n", Format::Delimited(opts), None);
            assert_eq!(
                rejects,
                vec![
                    reject(2, "", "empty line"),
                    reject(4, "", "empty line"),
                    reject(5, "", "empty line"),
                ],
                "quote {quote:?}"
            );
            assert_eq!(ints(&batches, 0), vec![Some(1)]);
        }
    }

    #[test]
    fn custom_delimiter_and_null_token() {
        let opts = DelimitedOptions {
            delimiter: ";".into(),
            null_value: Some("NA".into()),
            ..csv_opts()
        };
        let data = b"name;n;x\n\"a;b\";NA;1.5\nNA;7;\n;8;NA\n";
        let spec = cols("name string, n int, x double");
        let (batches, rejects) = read(data, Format::Delimited(opts), Some(&spec));
        assert!(rejects.is_empty(), "{rejects:?}");
        assert_eq!(
            strings(&batches, 0),
            vec![Some("a;b".into()), None, Some(String::new())],
            "NA is NULL even for strings; an empty string field stays \"\""
        );
        let n = batches[0]
            .column(1)
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap();
        assert_eq!(n.iter().collect::<Vec<_>>(), vec![None, Some(7), Some(8)]);
        assert_eq!(
            floats(&batches, 2),
            vec![Some(1.5), None, None],
            "empty number is NULL"
        );

        // Tab-separated, unquoted: quotes are plain data.
        let opts = DelimitedOptions {
            delimiter: "\t".into(),
            quote: None,
            ..csv_opts()
        };
        let (batches, rejects) = read(b"a\tb\n\"x\t2\n", Format::Delimited(opts), None);
        assert!(rejects.is_empty());
        assert_eq!(strings(&batches, 0), vec![Some("\"x".into())]);
        assert_eq!(ints(&batches, 1), vec![Some(2)]);
    }

    #[test]
    fn unquoted_rejects_have_exact_lines_and_raw_text() {
        let data = b"1::10::5::100\n\
                     2::20::5\n\
                     3::x::5::100\n\
                     \n\
                     4::\xff\xfe::5::100\n\
                     5::50::4::100\r\n\
                     6::60::4::100::extra\n\
                     7::70::3::100";
        let opts = DelimitedOptions {
            encoding: Encoding::Utf8,
            ..match Format::movielens() {
                Format::Delimited(o) => o,
                _ => unreachable!(),
            }
        };
        let spec = cols("user_id bigint, movie_id bigint, rating int, ts timestamp");
        let (batches, rejects) = read(data, Format::Delimited(opts), Some(&spec));
        assert_eq!(
            rejects,
            vec![
                reject(2, "2::20::5", "expected 4 fields, found 3"),
                reject(
                    3,
                    "3::x::5::100",
                    "column movie_id: cannot parse \"x\" as int64"
                ),
                reject(4, "", "empty line"),
                reject(5, "4::\u{FFFD}\u{FFFD}::5::100", "invalid UTF-8 at byte 4"),
                reject(7, "6::60::4::100::extra", "expected 4 fields, found 5"),
            ]
        );
        assert_eq!(ints(&batches, 0), vec![Some(1), Some(5), Some(7)]);
        let ts = batches[0]
            .column(3)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(ts.value(0), 100_000_000, "epoch seconds → microseconds");
        assert_eq!(
            batches[0].schema().field(3).data_type(),
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn quoted_invalid_utf8_is_rejected_with_position_in_line() {
        let data = b"a,b\n1,\"ok\"\n2,\"b\xc3(d\"\n3,z\n";
        let (batches, rejects) = read(data, Format::csv_default(), None);
        assert_eq!(
            rejects,
            vec![reject(3, "2,\"b\u{FFFD}(d\"", "invalid UTF-8 at byte 5")]
        );
        assert_eq!(
            strings(&batches, 1),
            vec![Some("ok".into()), Some("z".into())]
        );
    }

    #[test]
    fn latin1_csv_with_quotes() {
        let opts = DelimitedOptions {
            encoding: Encoding::Latin1,
            ..csv_opts()
        };
        let (batches, rejects) = read(
            b"t,n\n\"na\xefve, \xe9t\xe9\",1\n",
            Format::Delimited(opts),
            None,
        );
        assert!(rejects.is_empty());
        assert_eq!(strings(&batches, 0), vec![Some("naïve, été".into())]);
    }

    #[test]
    fn inference_picks_int_float_bool_string() {
        let data = b"id,score,flag,name,empty,id\n\
                     1,2.5,true,alice,,x\n\
                     2,3,FALSE,bob,,y\n\
                     ,-1e3,,7,,z\n\
                     9,bad\n";
        let (_dir, path) = temp_file("t.csv", data);
        let reader = open_reader(&path, &Format::csv_default(), None, 10).unwrap();
        let schema = reader.schema();
        let got: Vec<(&str, &DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("id", &DataType::Int64),
                ("score", &DataType::Float64),
                ("flag", &DataType::Boolean),
                ("name", &DataType::Utf8),
                ("empty", &DataType::Utf8),
                ("id_2", &DataType::Utf8),
            ]
        );
        let (batches, rejects) = read_all(reader);
        assert_eq!(
            rejects,
            vec![reject(5, "9,bad", "expected 6 fields, found 2")]
        );
        let flags = batches[0]
            .column(2)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap();
        assert_eq!(
            flags.iter().collect::<Vec<_>>(),
            vec![Some(true), Some(false), None]
        );
        assert_eq!(ints(&batches, 0), vec![Some(1), Some(2), None]);
    }

    #[test]
    fn inference_then_later_misfit_is_a_reject_not_an_error() {
        let mut data = String::new();
        for i in 0..1500 {
            data.push_str(&format!("{i}\n"));
        }
        data.push_str("not a number\n");
        let opts = DelimitedOptions {
            header: false,
            ..csv_opts()
        };
        let (batches, rejects) = read(data.as_bytes(), Format::Delimited(opts), None);
        assert_eq!(batches[0].schema().field(0).data_type(), &DataType::Int64);
        assert_eq!(
            rejects,
            vec![reject(
                1501,
                "not a number",
                "column column_1: cannot parse \"not a number\" as int64"
            )]
        );
    }

    #[test]
    fn inference_without_header_uses_most_common_field_count() {
        let opts = DelimitedOptions {
            header: false,
            quote: None,
            ..csv_opts()
        };
        let (batches, rejects) = read(b"title only\n1,a\n2,b\n", Format::Delimited(opts), None);
        assert_eq!(batches[0].num_columns(), 2);
        assert_eq!(
            rejects,
            vec![reject(1, "title only", "expected 2 fields, found 1")]
        );
    }

    #[test]
    fn dates_and_timestamps() {
        let data = b"d,t\n2024-02-29,2024-02-29T12:00:00Z\n2023-02-29,0\n";
        let spec = cols("d date, t timestamp");
        let (batches, rejects) = read(data, Format::csv_default(), Some(&spec));
        assert_eq!(
            rejects,
            vec![reject(
                3,
                "2023-02-29,0",
                "column d: cannot parse \"2023-02-29\" as date"
            )]
        );
        let d = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Date32Array>()
            .unwrap();
        assert_eq!(d.value(0), 19_782);
        let t = batches[0]
            .column(1)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(t.value(0), 1_709_208_000_000_000);
    }

    #[test]
    fn batch_rows_splits_ten_rows_into_four_batches() {
        let data: String = (1..=10).map(|i| format!("{i},{i}\n")).collect();
        for format in [
            Format::Delimited(DelimitedOptions {
                header: false,
                ..csv_opts()
            }),
            Format::Delimited(DelimitedOptions {
                header: false,
                quote: None,
                ..csv_opts()
            }),
        ] {
            let (_dir, path) = temp_file("t.csv", data.as_bytes());
            let reader = open_reader(&path, &format, None, 3).unwrap();
            let (batches, _) = read_all(reader);
            let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
            assert_eq!(sizes, vec![3, 3, 3, 1]);
            assert_eq!(ints(&batches, 0), (1..=10).map(Some).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_file_of_garbage_still_yields_so_rejects_can_be_drained() {
        let data: String = (0..10).map(|_| "x\n").collect();
        let spec = cols("n bigint");
        let (_dir, path) = temp_file("bad.csv", data.as_bytes());
        let opts = DelimitedOptions {
            header: false,
            ..csv_opts()
        };
        let mut reader = open_reader(&path, &Format::Delimited(opts), Some(&spec), 3).unwrap();
        let mut per_batch = Vec::new();
        while let Some(b) = reader.next() {
            assert_eq!(b.unwrap().num_rows(), 0);
            per_batch.push(reader.take_rejects().len());
        }
        per_batch.push(reader.take_rejects().len());
        assert_eq!(per_batch, vec![3, 3, 3, 1]);
        assert_eq!(reader.lines_read(), 10);
    }

    #[test]
    fn file_level_errors_name_the_file() {
        let (_dir, path) = temp_file("h.csv", b"a,b,c\n1,2,3\n");
        let err = open_reader(
            &path,
            &Format::csv_default(),
            Some(&cols("a int, b int")),
            10,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            IngestError::HeaderColumnCount {
                declared: 2,
                found: 3,
                line: 1,
                ..
            }
        ));
        assert!(err.to_string().contains("h.csv:1"), "{err}");

        let (_dir, path) = temp_file("empty.csv", b"");
        let err = open_reader(&path, &Format::csv_default(), None, 10).unwrap_err();
        assert!(matches!(err, IngestError::NothingToInfer { .. }));
        assert!(err.to_string().contains("empty.csv"));
        // Declared columns: an empty file is simply no rows.
        let reader = open_reader(&path, &Format::csv_default(), Some(&cols("a int")), 10).unwrap();
        assert_eq!(read_all(reader).0.len(), 0);

        let missing = std::path::Path::new("/nonexistent/strata/x.csv");
        let err = open_reader(missing, &Format::csv_default(), None, 10).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/strata/x.csv"));

        let opts = DelimitedOptions {
            delimiter: "::".into(),
            ..csv_opts()
        };
        let (_dir, path) = temp_file("q.csv", b"a\n");
        assert!(matches!(
            open_reader(&path, &Format::Delimited(opts), None, 10),
            Err(IngestError::QuotedMultiByteDelimiter { .. })
        ));

        let (_dir, path) = temp_file("l1.csv", b"caf\xe9,b\n1,2\n");
        assert!(matches!(
            open_reader(&path, &Format::csv_default(), None, 10),
            Err(IngestError::HeaderNotUtf8 { line: 1, .. })
        ));
    }

    #[test]
    fn header_only_file_infers_string_columns() {
        let (batches, rejects) = read(b"a,b\n", Format::csv_default(), None);
        assert!(batches.is_empty() && rejects.is_empty());
        let (_dir, path) = temp_file("h.csv", b"a,b\n");
        let reader = open_reader(&path, &Format::csv_default(), None, 10).unwrap();
        assert_eq!(reader.schema().field(1).data_type(), &DataType::Utf8);
    }
}
