//! JSON: NDJSON (one object per line) and JSON documents (a top-level array of objects, or one object).
//!
//! Owns: cutting a JSON file into records (lines or array elements), inference from the first objects, and
//! turning each object into a row or a reject. Does not own: text → value rules for strings that must be
//! parsed (dates, timestamps, numbers written as strings), which are `schema`'s, shared with delimited files.
//!
//! Records and line numbers: for NDJSON each physical line is a record and `Reject::line` is its line. For a
//! JSON array the whole file is read into memory (the one O(file) format), the array is cut into elements by
//! a bracket/string-aware scan, and each element is a record whose `line` is the physical line it starts on.
//! A `Format::Json` file that is not an array is parsed as one object if it is one, else read as NDJSON.
//!
//! Invariant: every line (NDJSON) or element (array) becomes exactly one row or one reject: blank lines,
//! unparsable JSON, non-objects and field type mismatches are rejects. Declared columns pick fields by name:
//! missing or null → NULL, extra fields ignored.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::schema::{
    BatchBuilder, Cell, ColumnSpec, ColumnType, TypeGuess, is_null, parse_value, schema_of,
    unique_names,
};
use super::{Encoding, open_file};
use super::{
    IngestError, LineInput, Progress, RowSource, TextSource, UTF8_BOM, decode_lossy, utf8_error,
};

/// How many objects inference looks at.
const SAMPLE_OBJECTS: usize = 1000;

/// Opens a JSON file (`array_format`: `Format::Json`, else NDJSON) and returns the schema, the column types
/// and the row source positioned on the first record.
pub(super) fn open(
    path: &Path,
    array_format: bool,
    columns: Option<&[ColumnSpec]>,
) -> Result<TextSource, IngestError> {
    let mut input = Input::open(path, array_format)?;
    let (specs, keys) = match columns {
        Some(declared) => (
            declared.to_vec(),
            declared.iter().map(|c| c.name.clone()).collect(),
        ),
        None => {
            let (specs, keys) = infer(path, &mut input)?;
            input.rewind()?;
            (specs, keys)
        }
    };
    let schema = schema_of(&specs);
    let types: Vec<ColumnType> = specs.iter().map(|c| c.ty).collect();
    let source = JsonSource {
        input,
        keys,
        types: types.clone(),
        cells: Vec::with_capacity(types.len()),
        scratch: String::new(),
    };
    Ok(TextSource {
        schema,
        types,
        rows: Box::new(source),
    })
}

/// Column specs (names made unique and non-empty) and the JSON keys they come from, in first-seen order over
/// the first `SAMPLE_OBJECTS` objects.
fn infer(path: &Path, input: &mut Input) -> Result<(Vec<ColumnSpec>, Vec<String>), IngestError> {
    let mut keys: Vec<String> = Vec::new();
    let mut guesses: Vec<TypeGuess> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut sampled = 0;
    while sampled < SAMPLE_OBJECTS {
        let Some((_, bytes)) = input.next()? else {
            break;
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            continue;
        };
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        sampled += 1;
        // serde_json's map is sorted by key; the order in the text comes from a separate scan.
        order.clear();
        object_keys(text, &mut order);
        for key in order.drain(..) {
            if !index.contains_key(&key) {
                index.insert(key.clone(), keys.len());
                keys.push(key);
                guesses.push(TypeGuess::default());
            }
        }
        for (key, value) in &map {
            if let Some(&i) = index.get(key)
                && !value.is_null()
            {
                guesses[i].observe_json(value);
            }
        }
    }
    if keys.is_empty() {
        return Err(IngestError::NothingToInfer {
            path: path.to_path_buf(),
        });
    }
    let specs = unique_names(&keys)
        .into_iter()
        .zip(&guesses)
        .map(|(name, g)| ColumnSpec::new(name, g.resolve()))
        .collect();
    Ok((specs, keys))
}

/// Appends the keys of the top-level object in `text` (already known to parse as an object), in the order
/// they are written. Key strings are decoded with serde_json so escapes come out right.
fn object_keys(text: &str, out: &mut Vec<String>) {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if depth == 1
                    && expect_key
                    && let Some(Ok(key)) = text.get(start..=i).map(serde_json::from_str::<String>)
                {
                    out.push(key);
                }
                expect_key = false;
            }
            b'{' => {
                depth += 1;
                expect_key = depth == 1;
            }
            b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expect_key = true,
            _ => {}
        }
        i += 1;
    }
}

struct JsonSource {
    input: Input,
    /// The JSON key of each column (column names may differ: see `unique_names`).
    keys: Vec<String>,
    types: Vec<ColumnType>,
    cells: Vec<Cell>,
    /// Text of this row's string cells; `Cell::Text` ranges index into it.
    scratch: String,
}

impl RowSource for JsonSource {
    fn fill(
        &mut self,
        batch: &mut BatchBuilder,
        progress: &mut Progress,
    ) -> Result<bool, IngestError> {
        let blank_reason = match self.input {
            Input::Lines(_) => "empty line",
            Input::Elements { .. } => "empty array element",
        };
        loop {
            if progress.batch_done(batch) {
                return Ok(false);
            }
            let Some((line, bytes)) = self.input.next()? else {
                return Ok(true);
            };
            let outcome = if bytes.trim_ascii().is_empty() {
                Err(blank_reason.to_string())
            } else {
                row(
                    bytes,
                    &self.keys,
                    &self.types,
                    &mut self.cells,
                    &mut self.scratch,
                )
            };
            match outcome {
                Ok(()) => {
                    batch.append(&self.cells, &self.scratch);
                    progress.accept();
                }
                Err(reason) => progress.reject(line, decode_lossy(bytes, Encoding::Utf8), reason),
            }
        }
    }
}

/// Parses one record into `cells` (string cells into `scratch`), or says why it cannot be a row.
fn row(
    bytes: &[u8],
    keys: &[String],
    types: &[ColumnType],
    cells: &mut Vec<Cell>,
    scratch: &mut String,
) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(utf8_error)?;
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err(format!("expected a JSON object, found {}", kind(&value)));
    };
    cells.clear();
    scratch.clear();
    for (key, &ty) in keys.iter().zip(types) {
        let cell = match map.get(key) {
            None | Some(Value::Null) => Cell::Null,
            Some(v) => cell(key, ty, v, scratch)?,
        };
        cells.push(cell);
    }
    Ok(())
}

/// One JSON value as a cell of a `ty` column. Strings go through the same text rules as delimited files
/// (JSON has no date type, and numbers are often quoted); "" is NULL for non-string columns, as there.
/// Numbers must fit exactly: an integral float such as 5.0 is accepted for an integer column, 5.5 is not.
fn cell(key: &str, ty: ColumnType, v: &Value, scratch: &mut String) -> Result<Cell, String> {
    let mismatch = || {
        let mut shown = v.to_string();
        if shown.len() > 60 {
            let cut = (0..=57)
                .rev()
                .find(|&i| shown.is_char_boundary(i))
                .unwrap_or(0);
            shown.truncate(cut);
            shown.push_str("...");
        }
        format!("field {key}: expected {ty}, found {} {shown}", kind(v))
    };
    if ty == ColumnType::Utf8 {
        let start = scratch.len();
        match v {
            Value::String(s) => scratch.push_str(s),
            // Numbers, booleans and nested values keep their JSON text.
            other => {
                let _ = write!(scratch, "{other}");
            }
        }
        return Ok(Cell::Text {
            start,
            end: scratch.len(),
        });
    }
    match (ty, v) {
        (_, Value::String(s)) if is_null(s, ty, None) => Ok(Cell::Null),
        (_, Value::String(s)) => {
            parse_value(ty, s).ok_or_else(|| format!("field {key}: cannot parse {s:?} as {ty}"))
        }
        (ColumnType::Int64 | ColumnType::Int32, Value::Number(n)) => {
            let int = n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            });
            match int {
                Some(i) if ty == ColumnType::Int64 || i32::try_from(i).is_ok() => Ok(Cell::Int(i)),
                _ => Err(mismatch()),
            }
        }
        (ColumnType::Float64, Value::Number(n)) => n.as_f64().map(Cell::Float).ok_or_else(mismatch),
        (ColumnType::Boolean, Value::Bool(b)) => Ok(Cell::Bool(*b)),
        // Epoch seconds, as for delimited files.
        (ColumnType::TimestampMicros, Value::Number(n)) => n
            .as_i64()
            .and_then(|s| s.checked_mul(1_000_000))
            .map(Cell::Int)
            .ok_or_else(mismatch),
        _ => Err(mismatch()),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

// ---------------------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------------------

enum Input {
    Lines(LineInput),
    /// A whole JSON document in memory, cut into records (array elements, or the one object).
    Elements {
        bytes: Vec<u8>,
        elements: Vec<Element>,
        next: usize,
    },
}

struct Element {
    start: usize,
    end: usize,
    line: u64,
}

impl Input {
    fn open(path: &Path, array_format: bool) -> Result<Self, IngestError> {
        if !array_format {
            return Ok(Input::Lines(LineInput::open(path, true)?));
        }
        let bytes = read_all(path)?;
        let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(&bytes);
        let offset = bytes.len() - body.len();
        let Some(first) = body.iter().position(|b| !b.is_ascii_whitespace()) else {
            // Nothing but whitespace: no records.
            return Ok(Input::Elements {
                bytes,
                elements: Vec::new(),
                next: 0,
            });
        };
        let first = offset + first;
        let elements = if bytes[first] == b'[' {
            split_array(&bytes, first).map_err(|(line, problem)| IngestError::JsonArray {
                path: path.to_path_buf(),
                line,
                problem,
            })?
        } else if serde_json::from_slice::<Value>(&bytes[first..]).is_ok() {
            // One JSON value filling the file: a single record (an object becomes one row).
            let end = bytes.len()
                - bytes
                    .iter()
                    .rev()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count();
            vec![Element {
                start: first,
                end,
                line: line_at(&bytes, first),
            }]
        } else {
            // Several values, e.g. NDJSON: read it as lines, without holding the file.
            return Ok(Input::Lines(LineInput::open(path, true)?));
        };
        Ok(Input::Elements {
            bytes,
            elements,
            next: 0,
        })
    }

    /// Starts over at the first record (after inference).
    fn rewind(&mut self) -> Result<(), IngestError> {
        match self {
            Input::Lines(lines) => *lines = LineInput::open(&lines.path.clone(), true)?,
            Input::Elements { next, .. } => *next = 0,
        }
        Ok(())
    }

    /// The next record: its line number and bytes (a line without its terminator, or an element's text).
    fn next(&mut self) -> Result<Option<(u64, &[u8])>, IngestError> {
        match self {
            Input::Lines(lines) => Ok(lines.next_line()?.map(|l| (l.number, l.bytes))),
            Input::Elements {
                bytes,
                elements,
                next,
            } => {
                let Some(e) = elements.get(*next) else {
                    return Ok(None);
                };
                *next += 1;
                Ok(Some((e.line, &bytes[e.start..e.end])))
            }
        }
    }
}

fn read_all(path: &Path) -> Result<Vec<u8>, IngestError> {
    let mut file = open_file(path)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|source| IngestError::Read {
        path: PathBuf::from(path),
        line: 0,
        source,
    })?;
    Ok(bytes)
}

/// 1-based line number of byte `at`.
fn line_at(bytes: &[u8], at: usize) -> u64 {
    1 + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64
}

/// Cuts the array opening at `open` into element spans (trimmed), tracking strings and nesting so commas
/// inside values do not split. Elements are not validated here: each is parsed on its own later, so one
/// bad element is one reject. Fails (file-level) only when the array structure itself is broken: not
/// closed, or followed by more content.
fn split_array(b: &[u8], open: usize) -> Result<Vec<Element>, (u64, String)> {
    let mut line = line_at(b, open);
    let mut i = open + 1;
    let mut elements = Vec::new();
    let skip_ws = |i: &mut usize, line: &mut u64| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            if b[*i] == b'\n' {
                *line += 1;
            }
            *i += 1;
        }
    };
    skip_ws(&mut i, &mut line);
    if i < b.len() && b[i] == b']' {
        i += 1;
    } else {
        loop {
            skip_ws(&mut i, &mut line);
            let (start, start_line) = (i, line);
            let mut depth = 0usize;
            let mut in_string = false;
            while i < b.len() {
                let c = b[i];
                if c == b'\n' {
                    line += 1;
                }
                if in_string {
                    match c {
                        b'\\' => i += 1,
                        b'"' => in_string = false,
                        _ => {}
                    }
                } else {
                    match c {
                        b'"' => in_string = true,
                        b'[' | b'{' => depth += 1,
                        b']' | b'}' if depth > 0 => depth -= 1,
                        b']' | b'}' => break,
                        b',' if depth == 0 => break,
                        _ => {}
                    }
                }
                i += 1;
            }
            if i >= b.len() {
                return Err((line, "the array is not closed (truncated file?)".into()));
            }
            let end = start + b[start..i].trim_ascii_end().len();
            elements.push(Element {
                start,
                end,
                line: start_line,
            });
            match b[i] {
                b',' => i += 1,
                b']' => {
                    i += 1;
                    break;
                }
                _ => return Err((line, "unexpected '}' in the array".into())),
            }
        }
    }
    skip_ws(&mut i, &mut line);
    if i < b.len() {
        return Err((
            line,
            "unexpected content after the array's closing ']'".into(),
        ));
    }
    Ok(elements)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::DataType;
    use arrow::record_batch::RecordBatch;

    use super::super::{
        ColumnSpec, FileReader, Format, IngestError, Reject, open_reader, parse_columns, temp_file,
    };
    use super::object_keys;

    fn read_all(mut reader: FileReader) -> (Vec<RecordBatch>, Vec<Reject>) {
        let mut batches = Vec::new();
        for batch in reader.by_ref() {
            batches.push(batch.expect("no file-level error"));
        }
        let rejects = reader.take_rejects();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(reader.lines_read(), (rows + rejects.len()) as u64);
        (batches, rejects)
    }

    fn read(
        bytes: &[u8],
        format: Format,
        columns: Option<&[ColumnSpec]>,
    ) -> (Vec<RecordBatch>, Vec<Reject>) {
        let (_dir, path) = temp_file("data.json", bytes);
        read_all(open_reader(&path, &format, columns, 100).expect("opens"))
    }

    fn column<'a, T: 'static>(batches: &'a [RecordBatch], name: &str) -> &'a T {
        assert_eq!(batches.len(), 1);
        batches[0]
            .column_by_name(name)
            .expect("column exists")
            .as_any()
            .downcast_ref::<T>()
            .expect("column type")
    }

    fn reject(line: u64, raw: &str, reason: &str) -> Reject {
        Reject {
            line,
            raw: raw.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn ndjson_declared_columns_good_and_bad_lines() {
        let data = b"{\"id\":1,\"name\":\"a\",\"score\":2.5,\"extra\":true}\n\
                     not json\n\
                     [1,2]\n\
                     {\"id\":\"x\"}\n\
                     \n\
                     {\"id\":2}\n\
                     {\"id\":\"3\",\"name\":{\"nested\":[1]},\"score\":4}\r\n\
                     {\"id\":true}\n\
                     {\"id\":5.0,\"name\":null}";
        let spec = parse_columns("id bigint, name string, score double").unwrap();
        let (batches, rejects) = read(data, Format::NdJson, Some(&spec));
        assert_eq!(rejects.len(), 5, "{rejects:#?}");
        assert_eq!((rejects[0].line, rejects[0].raw.as_str()), (2, "not json"));
        assert!(
            rejects[0].reason.starts_with("invalid JSON: "),
            "{}",
            rejects[0].reason
        );
        assert_eq!(
            rejects[1],
            reject(3, "[1,2]", "expected a JSON object, found array")
        );
        assert_eq!(
            rejects[2],
            reject(4, "{\"id\":\"x\"}", "field id: cannot parse \"x\" as int64")
        );
        assert_eq!(rejects[3], reject(5, "", "empty line"));
        assert_eq!(
            rejects[4],
            reject(
                8,
                "{\"id\":true}",
                "field id: expected int64, found boolean true"
            )
        );
        let ids = column::<Int64Array>(&batches, "id");
        assert_eq!(
            ids.iter().collect::<Vec<_>>(),
            vec![Some(1), Some(2), Some(3), Some(5)]
        );
        let names = column::<StringArray>(&batches, "name");
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            vec![Some("a"), None, Some("{\"nested\":[1]}"), None]
        );
        let scores = column::<Float64Array>(&batches, "score");
        assert_eq!(
            scores.iter().collect::<Vec<_>>(),
            vec![Some(2.5), None, Some(4.0), None]
        );
    }

    #[test]
    fn ndjson_inference_keeps_first_seen_key_order_and_types() {
        let data = b"{\"zeta\":1,\"alpha\":1.5,\"ok\":true,\"tags\":[\"a\"],\"s\":\"x\"}\n\
                     {\"zeta\":2,\"alpha\":2,\"ok\":false,\"tags\":{\"k\":1},\"s\":3,\"late\":null}\n\
                     {\"zeta\":\"three\"}\n";
        let (_dir, path) = temp_file("d.ndjson", data);
        let reader = open_reader(&path, &Format::NdJson, None, 100).unwrap();
        let schema = reader.schema();
        let got: Vec<(&str, &DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("zeta", &DataType::Utf8),
                ("alpha", &DataType::Float64),
                ("ok", &DataType::Boolean),
                ("tags", &DataType::Utf8),
                ("s", &DataType::Utf8),
                ("late", &DataType::Utf8),
            ]
        );
        let (batches, rejects) = read_all(reader);
        assert!(rejects.is_empty());
        let zeta = column::<StringArray>(&batches, "zeta");
        assert_eq!(
            zeta.iter().collect::<Vec<_>>(),
            vec![Some("1"), Some("2"), Some("three")]
        );
        let tags = column::<StringArray>(&batches, "tags");
        assert_eq!(tags.value(0), "[\"a\"]");
        assert_eq!(tags.value(1), "{\"k\":1}");
        let ok = column::<BooleanArray>(&batches, "ok");
        assert_eq!(
            ok.iter().collect::<Vec<_>>(),
            vec![Some(true), Some(false), None]
        );
    }

    #[test]
    fn json_array_elements_carry_their_start_line() {
        let data = b"[\n  {\"id\": 1, \"name\": \"a, [b]\"},\n  {\"id\": 2,\n   \"name\": \"c\"},\n  \"nope\",\n  {\"id\": \"x\"}\n]\n";
        let (_dir, path) = temp_file("a.json", data);
        let reader = open_reader(&path, &Format::Json, None, 100).unwrap();
        // "x" was among the sampled values, so inference made `id` a string column.
        assert_eq!(reader.schema().field(0).data_type(), &DataType::Utf8);
        let spec = parse_columns("id bigint, name string").unwrap();
        let (batches, rejects) = read(data, Format::Json, Some(&spec));
        assert_eq!(
            rejects,
            vec![
                reject(5, "\"nope\"", "expected a JSON object, found string"),
                reject(
                    6,
                    "{\"id\": \"x\"}",
                    "field id: cannot parse \"x\" as int64"
                ),
            ]
        );
        let names = column::<StringArray>(&batches, "name");
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            vec![Some("a, [b]"), Some("c")]
        );
    }

    #[test]
    fn json_format_accepts_ndjson_and_single_objects() {
        let (batches, rejects) = read(b"{\"a\":1}\n{\"a\":2}\nbad\n", Format::Json, None);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].line, 3);
        assert_eq!(column::<Int64Array>(&batches, "a").len(), 2);

        let (batches, rejects) = read(b"\n{\n  \"a\": 7\n}\n", Format::Json, None);
        assert!(rejects.is_empty());
        assert_eq!(column::<Int64Array>(&batches, "a").value(0), 7);

        let (batches, rejects) = read(b"[]", Format::Json, Some(&parse_columns("a int").unwrap()));
        assert!(batches.is_empty() && rejects.is_empty());
    }

    #[test]
    fn broken_json_array_is_a_file_level_error() {
        let (_dir, path) = temp_file("t.json", b"[{\"a\":1},\n{\"a\":2");
        let err = open_reader(&path, &Format::Json, None, 10).unwrap_err();
        assert!(
            matches!(err, IngestError::JsonArray { line: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("t.json:2"), "{err}");

        let (_dir, path) = temp_file("e.ndjson", b"\n\n");
        assert!(matches!(
            open_reader(&path, &Format::NdJson, None, 10),
            Err(IngestError::NothingToInfer { .. })
        ));
    }

    #[test]
    fn object_keys_in_written_order_with_escapes_and_nesting() {
        let mut keys = Vec::new();
        object_keys(
            r#"{"b":{"x":1,"y":[{"z":2}]},"a\"q":"v,w","c":[1,{"d":3}]}"#,
            &mut keys,
        );
        assert_eq!(keys, vec!["b", "a\"q", "c"]);
    }
}
