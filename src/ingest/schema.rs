//! Column types, column specs, type inference and the typed Arrow builders every text format appends to.
//!
//! Owns: the `ColumnType` vocabulary (config names ↔ Arrow types), `parse_columns` (the config syntax),
//! the text → value rules shared by all text formats (what counts as NULL, how numbers, booleans, dates and
//! timestamps are read), the inference lattice (Int64 → Float64 → Boolean → Utf8) and `BatchBuilder`.
//! Does not own: splitting files into records or fields (`delimited`, `json`), nor Parquet, whose values
//! arrive already typed.
//!
//! Invariant: a row reaches `BatchBuilder::append` only after every one of its cells parsed, so a rejected
//! record never leaves a partial row behind in the builders (Arrow builders cannot be rolled back).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::kernels::cast_utils::Parser;
use arrow::datatypes::{
    DataType, Date32Type, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

/// The column types a declared schema can name. Deliberately small: these are the types raw files carry;
/// anything richer is derived later in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    Utf8,
    Int32,
    Int64,
    Float64,
    Boolean,
    Date32,
    /// Microseconds since the Unix epoch, UTC.
    TimestampMicros,
}

impl ColumnType {
    /// The Arrow type a column of this type is stored as.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Date32 => DataType::Date32,
            ColumnType::TimestampMicros => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
        }
    }
}

impl From<ColumnType> for DataType {
    fn from(ty: ColumnType) -> Self {
        ty.data_type()
    }
}

impl fmt::Display for ColumnType {
    /// The canonical config spelling, also used in reject reasons ("cannot parse \"x\" as int64").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Utf8 => "string",
            ColumnType::Int32 => "int32",
            ColumnType::Int64 => "int64",
            ColumnType::Float64 => "float64",
            ColumnType::Boolean => "boolean",
            ColumnType::Date32 => "date",
            ColumnType::TimestampMicros => "timestamp",
        })
    }
}

impl FromStr for ColumnType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ty = match s.trim().to_ascii_lowercase().as_str() {
            "string" | "text" | "varchar" | "utf8" => ColumnType::Utf8,
            "int" | "integer" | "int32" => ColumnType::Int32,
            "bigint" | "long" | "int64" => ColumnType::Int64,
            "double" | "float" | "float64" | "real" => ColumnType::Float64,
            "bool" | "boolean" => ColumnType::Boolean,
            "date" => ColumnType::Date32,
            "timestamp" => ColumnType::TimestampMicros,
            _ => {
                return Err(format!(
                    "unknown column type {s:?} (expected one of string, int, bigint, double, boolean, date, timestamp)"
                ));
            }
        };
        Ok(ty)
    }
}

/// One declared column: a name and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: String,
    pub ty: ColumnType,
}

impl ColumnSpec {
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Self {
        Self {
            name: name.into(),
            ty,
        }
    }
}

/// Parses "user_id bigint, movie_id bigint, title string" (the config syntax) into specs; errors name the bad part.
///
/// Names are compared case-insensitively for duplicates because SQL folds unquoted identifiers, so `Id` and
/// `id` would be the same column to every query downstream.
pub fn parse_columns(spec: &str) -> Result<Vec<ColumnSpec>, String> {
    if spec.trim().is_empty() {
        return Err("no columns declared (expected e.g. \"user_id bigint, title string\")".into());
    }
    let mut out: Vec<ColumnSpec> = Vec::new();
    for (i, part) in spec.split(',').enumerate() {
        let n = i + 1;
        let part = part.trim();
        let mut words = part.split_whitespace();
        let (name, ty) = match (words.next(), words.next(), words.next()) {
            (None, _, _) => return Err(format!("column {n} is empty (stray comma?)")),
            (Some(name), None, _) => {
                return Err(format!(
                    "column {n} {name:?}: missing type (expected \"{name} <type>\")"
                ));
            }
            (Some(name), Some(ty), None) => (name, ty),
            (Some(_), Some(_), Some(_)) => {
                return Err(format!(
                    "column {n} {part:?}: expected \"<name> <type>\" (names cannot contain spaces)"
                ));
            }
        };
        let ty: ColumnType = ty.parse().map_err(|e| format!("column {name:?}: {e}"))?;
        if out.iter().any(|c| c.name.eq_ignore_ascii_case(name)) {
            return Err(format!("column {name:?} is declared twice"));
        }
        out.push(ColumnSpec::new(name, ty));
    }
    Ok(out)
}

/// The Arrow schema for a list of specs. Every column is nullable: raw files can always carry a missing value.
pub(super) fn schema_of(columns: &[ColumnSpec]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.ty.data_type(), true))
            .collect::<Vec<_>>(),
    ))
}

/// Makes header names usable as column names: trimmed, never empty (`column_<n>`, 1-based) and unique
/// (a repeated name gets `_2`, `_3`, ...). Duplicates are found case-insensitively, as in `parse_columns`.
pub(super) fn unique_names(raw: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, name) in raw.iter().enumerate() {
        let base = match name.trim() {
            "" => format!("column_{}", i + 1),
            t => t.to_string(),
        };
        let taken = |c: &str, out: &[String]| out.iter().any(|o| o.eq_ignore_ascii_case(c));
        let mut candidate = base.clone();
        let mut k = 2;
        while taken(&candidate, &out) {
            candidate = format!("{base}_{k}");
            k += 1;
        }
        out.push(candidate);
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Text → value rules
// ---------------------------------------------------------------------------------------------------------

/// One parsed value, staged before the row is appended. `Text` is a byte range into the text the row was
/// parsed from, so string cells cost no allocation; the other variants carry the value itself (dates as days,
/// timestamps as microseconds, Int32 as an already range-checked i64).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text { start: usize, end: usize },
}

/// Whether a field is NULL. The configured null token means NULL for every type (so "NA" in a string column
/// is NULL, not the text "NA"). An empty field is NULL for every non-string column, because there is no
/// other sensible number/date/boolean for it, but stays the empty string in a string column unless the
/// null token is "" — CSV writers use an empty field both for "" and for "missing", and only the user knows
/// which one a string column means.
#[inline]
pub(super) fn is_null(field: &str, ty: ColumnType, null_value: Option<&str>) -> bool {
    null_value == Some(field) || (field.is_empty() && ty != ColumnType::Utf8)
}

/// Parses a non-NULL field of a non-string column. Surrounding ASCII spaces/tabs are ignored ("1, 2" is
/// common in hand-written files). Returns None when the text is not a value of that type.
///
/// Accepted spellings: integers with an optional sign (Int32 range-checked); anything Rust's `f64` parser
/// accepts (including `NaN`, `inf`, `1e-3`); booleans true/false, t/f, yes/no, y/n, 1/0 in any case; dates
/// `YYYY-MM-DD`; timestamps in RFC 3339 / `YYYY-MM-DD HH:MM:SS[.f]` form (no offset means UTC) or a bare
/// integer, read as Unix epoch seconds because that is how MovieLens and most log exports store them.
#[inline]
pub(super) fn parse_value(ty: ColumnType, field: &str) -> Option<Cell> {
    let t = field.trim_matches([' ', '\t']);
    match ty {
        ColumnType::Int64 => parse_i64(t.as_bytes()).map(Cell::Int),
        ColumnType::Int32 => parse_i64(t.as_bytes())
            .filter(|v| i32::try_from(*v).is_ok())
            .map(Cell::Int),
        ColumnType::Float64 => t.parse::<f64>().ok().map(Cell::Float),
        ColumnType::Boolean => parse_bool(t).map(Cell::Bool),
        ColumnType::Date32 => Date32Type::parse(t).map(|d| Cell::Int(i64::from(d))),
        ColumnType::TimestampMicros => match parse_i64(t.as_bytes()) {
            Some(secs) => secs.checked_mul(1_000_000).map(Cell::Int),
            None => TimestampMicrosecondType::parse(t).map(Cell::Int),
        },
        // Strings never fail; callers stage them as `Cell::Text` ranges themselves.
        ColumnType::Utf8 => None,
    }
}

/// Decimal integer with optional sign, no spaces, overflow-checked. Hand-written because it is the hot path
/// (`ratings.dat` is four integers a line) and works on bytes without building a `&str` per field.
#[inline]
pub(super) fn parse_i64(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulate negatively so i64::MIN, whose magnitude has no positive i64, parses too.
    let mut acc: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        acc = acc.checked_mul(10)?.checked_sub(i64::from(d))?;
    }
    if neg { Some(acc) } else { acc.checked_neg() }
}

fn parse_bool(t: &str) -> Option<bool> {
    const TRUE: [&str; 5] = ["true", "t", "yes", "y", "1"];
    const FALSE: [&str; 5] = ["false", "f", "no", "n", "0"];
    if TRUE.iter().any(|w| t.eq_ignore_ascii_case(w)) {
        Some(true)
    } else if FALSE.iter().any(|w| t.eq_ignore_ascii_case(w)) {
        Some(false)
    } else {
        None
    }
}

/// The reject reason for a field that does not parse as its column's type.
pub(super) fn parse_error(column: &str, ty: ColumnType, field: &str) -> String {
    format!("column {column}: cannot parse {field:?} as {ty}")
}

// ---------------------------------------------------------------------------------------------------------
// Inference
// ---------------------------------------------------------------------------------------------------------

/// What the sampled values of one text column could all be. Starts at "anything" and narrows.
#[derive(Debug, Clone, Copy)]
pub(super) struct TypeGuess {
    seen_value: bool,
    int: bool,
    float: bool,
    boolean: bool,
}

impl Default for TypeGuess {
    fn default() -> Self {
        Self {
            seen_value: false,
            int: true,
            float: true,
            boolean: true,
        }
    }
}

impl TypeGuess {
    /// Feeds one non-NULL text field.
    pub(super) fn observe_text(&mut self, field: &str) {
        let t = field.trim_matches([' ', '\t']);
        self.seen_value = true;
        if self.int {
            self.int = parse_i64(t.as_bytes()).is_some();
        }
        // Require a digit: Rust's f64 parser accepts "nan"/"inf"/"infinity", and a name column holding "Nan"
        // must not become Float64. Declared Float64 columns still accept those spellings.
        if self.float {
            self.float = t.bytes().any(|b| b.is_ascii_digit()) && t.parse::<f64>().is_ok();
        }
        if self.boolean {
            self.boolean = t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false");
        }
    }

    /// Feeds one non-NULL JSON value: only JSON's own types count (the string "5" stays a string).
    pub(super) fn observe_json(&mut self, v: &serde_json::Value) {
        self.seen_value = true;
        let (int, float, boolean) = match v {
            serde_json::Value::Number(n) => (n.is_i64(), true, false),
            serde_json::Value::Bool(_) => (false, false, true),
            _ => (false, false, false),
        };
        self.int &= int;
        self.float &= float;
        self.boolean &= boolean;
    }

    /// The narrowest type that fits every observed value; a column with no values is Utf8.
    pub(super) fn resolve(self) -> ColumnType {
        if !self.seen_value {
            ColumnType::Utf8
        } else if self.int {
            ColumnType::Int64
        } else if self.float {
            ColumnType::Float64
        } else if self.boolean {
            ColumnType::Boolean
        } else {
            ColumnType::Utf8
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Typed builders
// ---------------------------------------------------------------------------------------------------------

enum ColumnBuilder {
    Utf8(StringBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl ColumnBuilder {
    fn new(ty: ColumnType, rows: usize) -> Self {
        match ty {
            // 16 bytes a string is a guess; the value buffer grows if it is wrong.
            ColumnType::Utf8 => ColumnBuilder::Utf8(StringBuilder::with_capacity(rows, rows * 16)),
            ColumnType::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(rows)),
            ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(rows)),
            ColumnType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(rows)),
            ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
            ColumnType::Date32 => ColumnBuilder::Date32(Date32Builder::with_capacity(rows)),
            ColumnType::TimestampMicros => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            ),
        }
    }

    /// Appends one staged cell. The cell was produced by `parse_value`/the format for this column's type,
    /// so a variant that does not belong to the column cannot occur; it is stored as NULL rather than
    /// panicking, keeping the row count of every column equal.
    #[inline]
    fn append(&mut self, cell: Cell, text: &str) {
        match (self, cell) {
            (ColumnBuilder::Utf8(b), Cell::Text { start, end }) => {
                b.append_value(text.get(start..end).unwrap_or_default())
            }
            (ColumnBuilder::Int64(b), Cell::Int(v)) => b.append_value(v),
            (ColumnBuilder::Int32(b), Cell::Int(v)) => b.append_option(i32::try_from(v).ok()),
            (ColumnBuilder::Float64(b), Cell::Float(v)) => b.append_value(v),
            (ColumnBuilder::Boolean(b), Cell::Bool(v)) => b.append_value(v),
            (ColumnBuilder::Date32(b), Cell::Int(v)) => b.append_option(i32::try_from(v).ok()),
            (ColumnBuilder::Timestamp(b), Cell::Int(v)) => b.append_value(v),
            (ColumnBuilder::Utf8(b), _) => b.append_null(),
            (ColumnBuilder::Int32(b), _) => b.append_null(),
            (ColumnBuilder::Int64(b), _) => b.append_null(),
            (ColumnBuilder::Float64(b), _) => b.append_null(),
            (ColumnBuilder::Boolean(b), _) => b.append_null(),
            (ColumnBuilder::Date32(b), _) => b.append_null(),
            (ColumnBuilder::Timestamp(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Date32(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}

/// Accumulates good rows of one batch, column by column, straight into Arrow builders.
pub(super) struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    rows: usize,
}

impl BatchBuilder {
    /// `rows` is only the initial capacity (capped, so a huge `batch_rows` on a tiny file costs nothing).
    pub(super) fn new(schema: SchemaRef, types: &[ColumnType], rows: usize) -> Self {
        let rows = rows.min(64 * 1024);
        Self {
            schema,
            columns: types.iter().map(|t| ColumnBuilder::new(*t, rows)).collect(),
            rows: 0,
        }
    }

    /// Appends one fully parsed row; `cells` has one entry per column, `Text` ranges index into `text`.
    #[inline]
    pub(super) fn append(&mut self, cells: &[Cell], text: &str) {
        for (builder, cell) in self.columns.iter_mut().zip(cells) {
            builder.append(*cell, text);
        }
        self.rows += 1;
    }

    pub(super) fn len(&self) -> usize {
        self.rows
    }

    /// Takes the rows appended so far as a batch and leaves the builder empty for the next one.
    pub(super) fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_type_names_are_case_insensitive() {
        for (s, ty) in [
            ("STRING", ColumnType::Utf8),
            ("Text", ColumnType::Utf8),
            ("varchar", ColumnType::Utf8),
            ("utf8", ColumnType::Utf8),
            ("INT", ColumnType::Int32),
            ("integer", ColumnType::Int32),
            ("int32", ColumnType::Int32),
            ("BigInt", ColumnType::Int64),
            ("long", ColumnType::Int64),
            ("int64", ColumnType::Int64),
            ("double", ColumnType::Float64),
            ("FLOAT", ColumnType::Float64),
            ("float64", ColumnType::Float64),
            ("real", ColumnType::Float64),
            ("bool", ColumnType::Boolean),
            ("Boolean", ColumnType::Boolean),
            ("date", ColumnType::Date32),
            ("TIMESTAMP", ColumnType::TimestampMicros),
        ] {
            assert_eq!(s.parse::<ColumnType>(), Ok(ty), "{s}");
        }
        assert!("strng".parse::<ColumnType>().unwrap_err().contains("strng"));
        assert_eq!(
            ColumnType::TimestampMicros.data_type(),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn parse_columns_reads_config_syntax_and_names_bad_parts() {
        let cols = parse_columns("user_id bigint, movie_id  BIGINT ,title string").unwrap();
        assert_eq!(
            cols,
            vec![
                ColumnSpec::new("user_id", ColumnType::Int64),
                ColumnSpec::new("movie_id", ColumnType::Int64),
                ColumnSpec::new("title", ColumnType::Utf8),
            ]
        );
        assert!(
            parse_columns("a int, b strng")
                .unwrap_err()
                .contains("\"b\"")
        );
        assert!(parse_columns("a int, title").unwrap_err().contains("title"));
        assert!(
            parse_columns("a int,,b int")
                .unwrap_err()
                .contains("column 2")
        );
        assert!(parse_columns("a b c").unwrap_err().contains("a b c"));
        assert!(parse_columns("a int, A int").unwrap_err().contains("twice"));
        assert!(parse_columns("  ").is_err());
    }

    #[test]
    fn parse_i64_handles_signs_and_overflow() {
        assert_eq!(parse_i64(b"978300760"), Some(978_300_760));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"+7"), Some(7));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [&b""[..], b"-", b"1.0", b"1a", b" 1", b"0x10"] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn values_parse_per_type() {
        assert_eq!(parse_value(ColumnType::Int32, " 42 "), Some(Cell::Int(42)));
        assert_eq!(parse_value(ColumnType::Int32, "3000000000"), None);
        assert_eq!(
            parse_value(ColumnType::Float64, "2.5"),
            Some(Cell::Float(2.5))
        );
        assert_eq!(
            parse_value(ColumnType::Boolean, "TRUE"),
            Some(Cell::Bool(true))
        );
        assert_eq!(parse_value(ColumnType::Boolean, "maybe"), None);
        assert_eq!(
            parse_value(ColumnType::Date32, "1970-01-02"),
            Some(Cell::Int(1))
        );
        assert_eq!(parse_value(ColumnType::Date32, "1970-13-02"), None);
        assert_eq!(
            parse_value(ColumnType::TimestampMicros, "978300760"),
            Some(Cell::Int(978_300_760_000_000))
        );
        assert_eq!(
            parse_value(ColumnType::TimestampMicros, "1970-01-01T00:00:01Z"),
            Some(Cell::Int(1_000_000))
        );
        assert_eq!(
            parse_value(ColumnType::TimestampMicros, "1970-01-01 01:00:00+01:00"),
            Some(Cell::Int(0))
        );
    }

    #[test]
    fn null_rules() {
        assert!(is_null("NA", ColumnType::Utf8, Some("NA")));
        assert!(is_null("", ColumnType::Int64, None));
        assert!(!is_null("", ColumnType::Utf8, None));
        assert!(is_null("", ColumnType::Utf8, Some("")));
    }

    #[test]
    fn inference_picks_narrowest_type() {
        let guess = |vals: &[&str]| {
            let mut g = TypeGuess::default();
            vals.iter().for_each(|v| g.observe_text(v));
            g.resolve()
        };
        assert_eq!(guess(&["1", "-2"]), ColumnType::Int64);
        assert_eq!(guess(&["1", "2.5"]), ColumnType::Float64);
        assert_eq!(guess(&["true", "FALSE"]), ColumnType::Boolean);
        assert_eq!(guess(&["1", "x"]), ColumnType::Utf8);
        assert_eq!(guess(&["Nan", "Inf"]), ColumnType::Utf8);
        assert_eq!(guess(&[]), ColumnType::Utf8);
    }

    #[test]
    fn unique_names_fill_and_dedupe() {
        let raw = ["a", "", "a", " b ", "A"].map(String::from);
        assert_eq!(unique_names(&raw), vec!["a", "column_2", "a_2", "b", "A_3"]);
    }
}
