//! Response encodings of Arrow results: JSON (an object wrapping the rows), NDJSON, CSV and the
//! Arrow IPC stream format, chosen by `?format=` or the `Accept` header.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use axum::http::{HeaderMap, header};
use serde_json::Value;

use crate::api::error::{ApiError, ApiResult};

/// How rows are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Ndjson,
    Csv,
    Arrow,
}

pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

impl Encoding {
    /// `?format=` wins over `Accept`; JSON is the default.
    pub fn negotiate(format: Option<&str>, headers: &HeaderMap) -> ApiResult<Encoding> {
        if let Some(format) = format {
            return match format {
                "json" => Ok(Encoding::Json),
                "ndjson" => Ok(Encoding::Ndjson),
                "csv" => Ok(Encoding::Csv),
                "arrow" => Ok(Encoding::Arrow),
                other => Err(ApiError::bad_request(
                    "bad_format",
                    format!("format={other}: expected json, ndjson, csv or arrow"),
                )),
            };
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(if accept.contains(ARROW_STREAM) {
            Encoding::Arrow
        } else if accept.contains("application/x-ndjson") {
            Encoding::Ndjson
        } else if accept.contains("text/csv") {
            Encoding::Csv
        } else {
            Encoding::Json
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Ndjson => "ndjson",
            Encoding::Csv => "csv",
            Encoding::Arrow => "arrow",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::Ndjson => "application/x-ndjson",
            Encoding::Csv => "text/csv; charset=utf-8",
            Encoding::Arrow => ARROW_STREAM,
        }
    }

    /// Encodes `batches`. JSON wraps the rows: `{<envelope fields>, "rows": [...]}`; the other
    /// encodings carry only rows (the version travels in the ETag and `X-Strata-Version`).
    pub fn encode(
        self,
        schema: &SchemaRef,
        batches: &[RecordBatch],
        envelope: serde_json::Map<String, Value>,
    ) -> ApiResult<Vec<u8>> {
        match self {
            Encoding::Json => {
                let mut out =
                    serde_json::to_vec(&Value::Object(envelope)).map_err(ApiError::internal)?;
                // Splice the rows in without re-parsing them: `{...}` -> `{..., "rows": [...]}`.
                out.pop();
                if out.len() > 1 {
                    out.push(b',');
                }
                out.extend_from_slice(b"\"rows\":");
                out.extend_from_slice(&json_array(batches)?);
                out.push(b'}');
                Ok(out)
            }
            Encoding::Ndjson => {
                let mut out = Vec::new();
                {
                    let mut writer = arrow::json::WriterBuilder::new()
                        .with_explicit_nulls(true)
                        .build::<_, arrow::json::writer::LineDelimited>(&mut out);
                    for batch in batches {
                        writer.write(batch).map_err(ApiError::internal)?;
                    }
                    writer.finish().map_err(ApiError::internal)?;
                }
                Ok(out)
            }
            Encoding::Csv => {
                let mut out = Vec::new();
                {
                    let mut writer = arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(&mut out);
                    if batches.is_empty() {
                        writer
                            .write(&RecordBatch::new_empty(schema.clone()))
                            .map_err(csv_error)?;
                    }
                    for batch in batches {
                        writer.write(batch).map_err(csv_error)?;
                    }
                }
                Ok(out)
            }
            Encoding::Arrow => {
                let mut out = Vec::new();
                {
                    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, schema)
                        .map_err(ApiError::internal)?;
                    for batch in batches {
                        writer.write(batch).map_err(ApiError::internal)?;
                    }
                    writer.finish().map_err(ApiError::internal)?;
                }
                Ok(out)
            }
        }
    }
}

/// A column type as users know it: DataFusion reads strings as views (`Utf8View`), which are
/// plain strings to anyone reading the lake.
pub fn type_name(data_type: &arrow::datatypes::DataType) -> String {
    use arrow::datatypes::DataType;
    match data_type {
        DataType::List(inner) | DataType::LargeList(inner) => {
            format!("List({})", type_name(inner.data_type()))
        }
        DataType::Utf8View => DataType::Utf8.to_string(),
        DataType::BinaryView => DataType::Binary.to_string(),
        other => other.to_string(),
    }
}

/// CSV cannot hold nested values (lists, structs): say so instead of failing opaquely.
fn csv_error(e: arrow::error::ArrowError) -> ApiError {
    ApiError::bad_request(
        "bad_format",
        format!("these rows cannot be written as CSV ({e}); use format=json or select columns"),
    )
}

/// The rows of `batches` as one JSON array (nulls explicit).
pub fn json_array(batches: &[RecordBatch]) -> ApiResult<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut out);
        for batch in batches {
            writer.write(batch).map_err(ApiError::internal)?;
        }
        writer.finish().map_err(ApiError::internal)?;
    }
    if out.is_empty() {
        out.extend_from_slice(b"[]");
    }
    Ok(out)
}

/// One batch's rows as JSON values.
pub fn json_rows(batch: &RecordBatch) -> ApiResult<Vec<Value>> {
    let bytes = json_array(std::slice::from_ref(batch))?;
    match serde_json::from_slice(&bytes).map_err(ApiError::internal)? {
        Value::Array(rows) => Ok(rows),
        _ => Ok(Vec::new()),
    }
}
