//! The CSV, MovieLens `::` (latin-1) and JSON/NDJSON readers under mutated files, and round trips
//! of generated rows through them.
//!
//! Mutated files: opening either succeeds or fails with an `IngestError` (a file-level problem named
//! by file); after that every record is a row or a reject, never a panic: good rows plus rejects
//! equal the records read, rejects come in file order with line numbers inside the file, and where
//! a record is one physical line (unquoted text, NDJSON, CSV without quote characters) the header,
//! the rows and the rejects account for every line exactly once.
//! Round trips: rows written by a standard writer (the `csv` crate, `serde_json`, or `::`-joined
//! latin-1 bytes) come back as the same values with no rejects.

use std::path::{Path, PathBuf};

use arrow::array::{Array, Float64Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use strata::ingest::{
    ColumnSpec, DelimitedOptions, Format, IngestError, Reject, open_reader, parse_columns,
};

use super::{corpus, fuzz, mutated};

/// Small batches, so that batch boundaries fall inside the fuzzed files too.
const BATCH_ROWS: usize = 3;

/// What reading a whole file gave.
struct Outcome {
    batches: Vec<RecordBatch>,
    rows: u64,
    records: u64,
    rejects: Vec<Reject>,
}

/// Reads `path` to the end; `Err` only for a file-level failure when opening.
fn read_all(
    path: &Path,
    format: &Format,
    columns: Option<&[ColumnSpec]>,
) -> Result<Result<Outcome, IngestError>, TestCaseError> {
    let mut reader = match open_reader(path, format, columns, BATCH_ROWS) {
        Ok(reader) => reader,
        Err(e) => return Ok(Err(e)),
    };
    let mut batches = Vec::new();
    let mut rejects = Vec::new();
    while let Some(batch) = reader.next() {
        let batch = batch.map_err(|e| TestCaseError::fail(format!("error while reading: {e}")))?;
        rejects.extend(reader.take_rejects());
        batches.push(batch);
    }
    rejects.extend(reader.take_rejects());
    Ok(Ok(Outcome {
        batches,
        rows: reader.rows_read(),
        records: reader.lines_read(),
        rejects,
    }))
}

/// Writes `bytes` to the scratch file and reads it whole, requiring that it opens and that no
/// record is rejected: what a round trip of well-formed rows must give.
fn read_without_rejects(
    scratch: &Scratch,
    bytes: &[u8],
    format: &Format,
    columns: &[ColumnSpec],
) -> Result<Outcome, TestCaseError> {
    let path = scratch.write(bytes);
    let outcome =
        read_all(path, format, Some(columns))?.map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&outcome.rejects, &Vec::new());
    Ok(outcome)
}

/// The lines of `bytes` as the readers count them: ended by "\n", the last one possibly not.
fn physical_lines(bytes: &[u8]) -> u64 {
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    newlines + u64::from(bytes.last().is_some_and(|&b| b != b'\n'))
}

/// Whether some line has a character on it (after its "\r" and a leading byte-order mark).
fn has_nonblank_line(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .any(|line| !line.is_empty() && line != b"\r")
}

/// The accounting every reader owes: checked on any file that opened.
fn check_accounting(
    bytes: &[u8],
    outcome: &Outcome,
    one_line_records: bool,
    header: bool,
    ordered_strictly: bool,
) -> Result<(), TestCaseError> {
    let batch_rows: u64 = outcome.batches.iter().map(|b| b.num_rows() as u64).sum();
    prop_assert_eq!(batch_rows, outcome.rows, "rows in batches vs rows counted");
    prop_assert_eq!(
        outcome.rows + outcome.rejects.len() as u64,
        outcome.records,
        "rows + rejects vs records read"
    );
    let lines = physical_lines(bytes);
    let mut previous = 0;
    for reject in &outcome.rejects {
        prop_assert!(
            reject.line >= 1 && reject.line <= lines,
            "reject line {} outside 1..={lines}: {reject:?}",
            reject.line
        );
        if ordered_strictly {
            prop_assert!(reject.line > previous, "rejects out of order: {reject:?}");
        } else {
            prop_assert!(reject.line >= previous, "rejects out of order: {reject:?}");
        }
        prop_assert!(!reject.reason.is_empty(), "a reject without a reason");
        previous = reject.line;
    }
    if one_line_records {
        let header_lines = u64::from(header && has_nonblank_line(bytes));
        prop_assert_eq!(
            outcome.records + header_lines,
            lines,
            "every line must be the header, a row or a reject"
        );
    }
    Ok(())
}

/// One fuzzed file on disk, rewritten for each input.
struct Scratch {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        Scratch { _dir: dir, path }
    }

    fn write(&self, bytes: &[u8]) -> &Path {
        std::fs::write(&self.path, bytes).unwrap();
        &self.path
    }
}

/// Runs a reader target: every seed input as it is, then mutated ones.
fn fuzz_reader(
    target: &str,
    format: Format,
    columns: Option<Vec<ColumnSpec>>,
    check: impl Fn(&[u8], &Outcome) -> Result<(), TestCaseError>,
) {
    let scratch = Scratch::new(target);
    let seeds = corpus(target);
    let test = |bytes: Vec<u8>| -> Result<(), TestCaseError> {
        let path = scratch.write(&bytes);
        match read_all(path, &format, columns.as_deref())? {
            Ok(outcome) => check(&bytes, &outcome),
            Err(e) => {
                let message = e.to_string();
                prop_assert!(
                    message.contains(&target.to_string()),
                    "a file-level error must name the file: {message}"
                );
                Ok(())
            }
        }
    };
    for seed in &seeds {
        test(seed.clone())
            .unwrap_or_else(|e| panic!("seed input {:?}: {e}", String::from_utf8_lossy(seed)));
    }
    fuzz(target, 4, mutated(seeds, 8), test);
}

fn csv(quote: Option<u8>) -> Format {
    Format::Delimited(DelimitedOptions {
        quote,
        ..DelimitedOptions::default()
    })
}

#[test]
fn fuzz_csv_reader() {
    fuzz_reader("csv", csv(Some(b'"')), None, |bytes, outcome| {
        let one_line_records = !bytes.contains(&b'"');
        check_accounting(bytes, outcome, one_line_records, true, true)
    });
}

#[test]
fn fuzz_csv_reader_without_quoting() {
    // The same seeds, read with quoting off: quote characters are data, each line a record.
    fuzz_reader("csv", csv(None), None, |bytes, outcome| {
        check_accounting(bytes, outcome, true, true, true)
    });
}

#[test]
fn fuzz_movielens_reader() {
    let columns = parse_columns("user_id bigint, movie_id bigint, rating int, ts timestamp");
    fuzz_reader(
        "movielens",
        Format::movielens(),
        Some(columns.unwrap()),
        |bytes, outcome| check_accounting(bytes, outcome, true, false, true),
    );
}

#[test]
fn fuzz_movielens_reader_inferring_columns() {
    fuzz_reader("movielens", Format::movielens(), None, |bytes, outcome| {
        check_accounting(bytes, outcome, true, false, true)
    });
}

#[test]
fn fuzz_ndjson_reader() {
    fuzz_reader("ndjson", Format::NdJson, None, |bytes, outcome| {
        check_accounting(bytes, outcome, true, false, true)
    });
}

#[test]
fn fuzz_json_reader() {
    // Array elements can start on one line, so rejects are in order but not strictly.
    fuzz_reader("json", Format::Json, None, |bytes, outcome| {
        check_accounting(bytes, outcome, false, false, false)
    });
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

/// Every cell of `column` over all batches, read with `value` from its Arrow array `A` (None for
/// NULL).
fn cells<A: Array + 'static, T>(
    outcome: &Outcome,
    column: usize,
    value: impl Fn(&A, usize) -> T,
) -> Vec<Option<T>> {
    let mut out = Vec::new();
    for batch in &outcome.batches {
        let array = batch
            .column(column)
            .as_any()
            .downcast_ref::<A>()
            .expect("the declared column type");
        out.extend((0..array.len()).map(|i| array.is_valid(i).then(|| value(array, i))));
    }
    out
}

fn strings(outcome: &Outcome, column: usize) -> Vec<Option<String>> {
    cells(outcome, column, |a: &StringArray, i| a.value(i).to_string())
}

fn int64s(outcome: &Outcome, column: usize) -> Vec<Option<i64>> {
    cells(outcome, column, |a: &Int64Array, i| a.value(i))
}

fn float64s(outcome: &Outcome, column: usize) -> Vec<Option<f64>> {
    cells(outcome, column, |a: &Float64Array, i| a.value(i))
}

/// A text field: any characters, with the ones CSV must quote (",", '"', newlines) over-represented.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            1 => prop::sample::select(vec![',', '"', '\n', '\r', ' ', '\t']),
        ],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

#[test]
fn fuzz_csv_round_trip() {
    let scratch = Scratch::new("round_trip.csv");
    let columns = parse_columns("id bigint, name string, score double").unwrap();
    let rows = prop::collection::vec((any::<i64>(), text(), any::<f64>()), 0..20);
    fuzz("csv_round_trip", 2, rows, |rows| {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(["id", "name", "score"]).unwrap();
        for (id, name, score) in &rows {
            writer
                .write_record([id.to_string(), name.clone(), score.to_string()])
                .unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let outcome = read_without_rejects(&scratch, &bytes, &csv(Some(b'"')), &columns)?;
        prop_assert_eq!(
            int64s(&outcome, 0),
            rows.iter().map(|r| Some(r.0)).collect::<Vec<_>>()
        );
        prop_assert_eq!(
            strings(&outcome, 1),
            rows.iter().map(|r| Some(r.1.clone())).collect::<Vec<_>>()
        );
        let scores: Vec<u64> = float64s(&outcome, 2)
            .into_iter()
            .map(|s| s.unwrap().to_bits())
            .collect();
        let expected: Vec<u64> = rows.iter().map(|r| canonical_nan(r.2).to_bits()).collect();
        prop_assert_eq!(scores, expected);
        Ok(())
    });
}

/// NaN's payload does not survive text; every NaN reads back as the canonical one.
fn canonical_nan(x: f64) -> f64 {
    if x.is_nan() { f64::NAN } else { x }
}

#[test]
fn fuzz_movielens_round_trip() {
    let scratch = Scratch::new("round_trip.dat");
    let columns = parse_columns("movie_id bigint, title string, genres string").unwrap();
    // Latin-1 text without the delimiter's ':' or line ends, not blank (a blank line is no record).
    let latin1_text = prop::collection::vec(
        any::<u8>().prop_filter("no ':' or line end", |b| !matches!(b, b':' | b'\n')),
        0..16,
    );
    let rows = prop::collection::vec((any::<i64>(), latin1_text.clone(), latin1_text), 0..20);
    fuzz("movielens_round_trip", 2, rows, |rows| {
        let mut bytes = Vec::new();
        for (id, title, genres) in &rows {
            bytes.extend_from_slice(id.to_string().as_bytes());
            bytes.extend_from_slice(b"::");
            bytes.extend_from_slice(title);
            bytes.extend_from_slice(b"::");
            bytes.extend_from_slice(genres);
            bytes.push(b'\n');
        }
        let outcome = read_without_rejects(&scratch, &bytes, &Format::movielens(), &columns)?;
        let latin1 = |b: &Vec<u8>| -> String { b.iter().map(|&c| char::from(c)).collect() };
        // A "\r" ending the last field is the line's "\r\n" ending, not data.
        let last_field = |b: &Vec<u8>| latin1(&b.strip_suffix(b"\r").unwrap_or(b).to_vec());
        prop_assert_eq!(
            int64s(&outcome, 0),
            rows.iter().map(|r| Some(r.0)).collect::<Vec<_>>()
        );
        prop_assert_eq!(
            strings(&outcome, 1),
            rows.iter().map(|r| Some(latin1(&r.1))).collect::<Vec<_>>()
        );
        prop_assert_eq!(
            strings(&outcome, 2),
            rows.iter()
                .map(|r| Some(last_field(&r.2)))
                .collect::<Vec<_>>()
        );
        Ok(())
    });
}

#[test]
fn fuzz_ndjson_round_trip() {
    let scratch = Scratch::new("round_trip.ndjson");
    let columns = parse_columns("id bigint, name string, score double").unwrap();
    let score = prop_oneof![
        Just(None),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(Some)
    ];
    let rows = prop::collection::vec((any::<i64>(), prop::option::of(text()), score), 0..20);
    fuzz("ndjson_round_trip", 2, rows, |rows| {
        let mut bytes = Vec::new();
        for (id, name, score) in &rows {
            let object = serde_json::json!({"id": id, "name": name, "score": score});
            serde_json::to_writer(&mut bytes, &object).unwrap();
            bytes.push(b'\n');
        }
        let outcome = read_without_rejects(&scratch, &bytes, &Format::NdJson, &columns)?;
        prop_assert_eq!(
            int64s(&outcome, 0),
            rows.iter().map(|r| Some(r.0)).collect::<Vec<_>>()
        );
        prop_assert_eq!(
            strings(&outcome, 1),
            rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>()
        );
        prop_assert_eq!(
            float64s(&outcome, 2),
            rows.iter().map(|r| r.2).collect::<Vec<_>>()
        );
        Ok(())
    });
}
