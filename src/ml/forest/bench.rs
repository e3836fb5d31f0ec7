//! `strata bench predict`: how long one prediction takes in-process, the way the API makes it
//! (a JSON record -> feature values -> encoding -> every tree's vote), without the socket.

use std::hint::black_box;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};

use super::Classifier;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Micros {
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PredictReport {
    pub trees: u16,
    /// Distinct input records cycled through.
    pub records: usize,
    /// Single-record predictions timed one by one.
    pub iterations: usize,
    pub single_record_us: Micros,
    /// Mean per record when the records are predicted back to back (a batch request).
    pub batch_per_record_us: f64,
    pub predictions_per_second: f64,
}

/// Times `iterations` single-record predictions over `records` (cycled), then the whole set back
/// to back. Fails on the first record the model cannot read, naming it.
pub fn run(
    model: &Classifier,
    records: &[Map<String, Value>],
    iterations: usize,
) -> Result<PredictReport, String> {
    if records.is_empty() {
        return Err("no records to predict".into());
    }
    let predict = |record: &Map<String, Value>| -> Result<(), String> {
        let values = model
            .encoder
            .values_from_json(record)
            .map_err(|e| e.to_string())?;
        black_box(model.predict(&values).map_err(|e| e.to_string())?);
        Ok(())
    };
    // Warm-up, and every record is checked once.
    for (i, record) in records.iter().enumerate() {
        predict(record).map_err(|e| format!("record {i}: {e}"))?;
    }
    let mut timings: Vec<f64> = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let record = &records[i % records.len()];
        let started = Instant::now();
        predict(record)?;
        timings.push(started.elapsed().as_secs_f64() * 1e6);
    }
    timings.sort_by(f64::total_cmp);
    let at = |q: f64| timings[((timings.len() - 1) as f64 * q).round() as usize];

    let started = Instant::now();
    let mut predicted = 0usize;
    while predicted < iterations.max(records.len()) {
        for record in records {
            predict(record)?;
        }
        predicted += records.len();
    }
    let batch_per_record_us = started.elapsed().as_secs_f64() * 1e6 / predicted as f64;
    Ok(PredictReport {
        trees: model.params.trees,
        records: records.len(),
        iterations,
        single_record_us: Micros {
            median: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
        },
        batch_per_record_us,
        predictions_per_second: 1e6 / batch_per_record_us,
    })
}
