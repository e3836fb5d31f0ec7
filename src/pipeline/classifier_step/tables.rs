//! The rows a classifier step publishes: its predictions for the held-out rows and the one-row
//! model table that carries the artifact the API loads.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Float64Array, Float64Builder, Int64Array, ListArray,
    MapBuilder, MapFieldNames, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
    UInt64Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use super::Trained;
use super::artifact::ARTIFACT_FORMAT;
use super::spec::{CORRECT, ClassifierSpec, PREDICTED, PROBABILITIES, PROBABILITY};
use crate::error::Result;
use crate::ml::forest::Classifier;
use crate::pipeline::model_runs::TrainingRun;

/// The test rows as read (id, features, label), plus `predicted`, `probability` (of the predicted
/// class), `probabilities` (class -> probability) and `correct`: the shape of Spark's
/// `model.transform(test)`.
pub fn predictions(rows: &RecordBatch, trained: &Trained) -> Result<RecordBatch> {
    let test: Vec<u64> = (0..rows.num_rows() as u64)
        .filter(|&r| trained.is_test[r as usize])
        .collect();
    let test = UInt64Array::from(test);
    let mut fields: Vec<Field> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns: Vec<ArrayRef> = rows
        .columns()
        .iter()
        .map(|c| arrow::compute::take(c, &test, None))
        .collect::<std::result::Result<_, _>>()?;
    let label = columns.last().expect("the label is read last").clone();
    let label = arrow::compute::cast(&label, &DataType::Utf8)?;
    let label = label
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8");

    let classes = &trained.model.classes;
    let predictions = &trained.predictions;
    let predicted: Vec<&str> = predictions.iter().map(|p| p.class.as_str()).collect();
    let probability: Vec<f64> = predictions
        .iter()
        .map(|p| {
            let at = classes.iter().position(|c| *c == p.class).unwrap_or(0);
            p.probabilities[at]
        })
        .collect();
    let correct: Vec<bool> = predicted
        .iter()
        .enumerate()
        .map(|(r, class)| label.value(r) == *class)
        .collect();
    let names = MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    };
    let mut map = MapBuilder::new(Some(names), StringBuilder::new(), Float64Builder::new());
    for prediction in predictions {
        for (class, p) in classes.iter().zip(&prediction.probabilities) {
            map.keys().append_value(class);
            map.values().append_value(*p);
        }
        map.append(true)?;
    }
    let map = map.finish();

    fields.push(Field::new(PREDICTED, DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from(predicted)));
    fields.push(Field::new(PROBABILITY, DataType::Float64, false));
    columns.push(Arc::new(Float64Array::from(probability)));
    fields.push(Field::new(
        PROBABILITIES,
        arrow::array::Array::data_type(&map).clone(),
        false,
    ));
    columns.push(Arc::new(map));
    fields.push(Field::new(CORRECT, DataType::Boolean, false));
    columns.push(Arc::new(BooleanArray::from(correct)));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The model table's one row: what the model is (label, features and their encoding, classes,
/// settings, accuracy, the run that trained it) and the artifact itself ([`Classifier::to_bytes`]).
pub fn model_row(
    run: &TrainingRun,
    spec: &ClassifierSpec,
    model: &Classifier,
    accuracy: f64,
    artifact: &[u8],
) -> Result<RecordBatch> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let schema = Schema::new(vec![
        text("run_id"),
        text("step"),
        Field::new("trained_at", ts, false),
        text("input_table"),
        Field::new("input_version", DataType::Int64, false),
        text("label"),
        string_list_field("features"),
        string_list_field("classes"),
        text("encoding"),
        text("params"),
        Field::new("accuracy", DataType::Float64, false),
        text("artifact_format"),
        Field::new("artifact", DataType::Binary, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        one_string(&run.run_id),
        one_string(&run.step.to_string()),
        Arc::new(
            TimestampMicrosecondArray::from(vec![run.trained_at.timestamp_micros()])
                .with_timezone("UTC"),
        ),
        one_string(&run.input.to_string()),
        Arc::new(Int64Array::from(vec![run.input_version as i64])),
        one_string(&spec.label),
        string_list(&spec.features)?,
        string_list(&model.classes)?,
        one_string(&serde_json::to_string(&model.encoder)?),
        one_string(&serde_json::to_string(spec)?),
        Arc::new(Float64Array::from(vec![accuracy])),
        one_string(ARTIFACT_FORMAT),
        Arc::new(BinaryArray::from(vec![artifact])),
    ];
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

fn one_string(value: &str) -> ArrayRef {
    Arc::new(StringArray::from(vec![value]))
}

fn string_list_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("element", DataType::Utf8, false))),
        false,
    )
}

/// A one-row list<string> column.
pub fn string_list(values: &[String]) -> Result<ArrayRef> {
    Ok(Arc::new(ListArray::try_new(
        Arc::new(Field::new("element", DataType::Utf8, false)),
        OffsetBuffer::from_lengths([values.len()]),
        Arc::new(StringArray::from(values.to_vec())),
        None,
    )?))
}
