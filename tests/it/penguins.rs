//! The penguins example (`examples/penguins/`) end to end: the real binary ingests the shipped CSV,
//! cleans it and trains the species classifier; a server bound to 127.0.0.1:0 lists the model and
//! predicts through a real socket, and switches model versions after a retrain.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::TestServer;
use crate::support::project::{copy_dir, repo_dir, strata_command};

/// Test accuracy of the example's model is at least this (the issue's target). Measured once at
/// 0.972 (70 of 72 held-out penguins, seed 42) and 0.958-0.972 over forest seeds 1-5 on the same
/// split (BENCHMARKS.md).
const ACCURACY_BOUND: f64 = 0.95;

pub(crate) struct Example {
    pub(crate) dir: tempfile::TempDir,
}

impl Example {
    pub(crate) fn new() -> Example {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo_dir().join("examples/penguins"), dir.path());
        Example { dir }
    }

    pub(crate) fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("strata.toml")
    }

    fn strata(&self, args: &[&str]) -> std::process::Output {
        strata_command(self.dir.path())
            .arg("--config")
            .arg("strata.toml")
            .args(args)
            .output()
            .unwrap()
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.strata(args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "strata {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn query(&self, sql: &str) -> Vec<Value> {
        let out = self.ok(&["query", sql, "--format", "json"]);
        serde_json::from_str(&out).unwrap()
    }

    pub(crate) fn append_config(&self, text: &str) {
        let mut config = std::fs::read_to_string(self.config()).unwrap();
        config.push_str(text);
        std::fs::write(self.config(), config).unwrap();
    }
}

fn line<'a>(out: &'a str, table: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{table} ")))
        .unwrap_or_else(|| panic!("no line for {table} in:\n{out}"))
}

/// A Gentoo, a Chinstrap and an Adelie from the CSV (rows 153, 277 and 1).
fn three_penguins() -> Value {
    json!([
        {"bill_length_mm": 46.1, "bill_depth_mm": 13.2, "flipper_length_mm": 211,
         "body_mass_g": 4500, "island": "Biscoe", "sex": "female"},
        {"bill_length_mm": 46.5, "bill_depth_mm": 17.9, "flipper_length_mm": 192,
         "body_mass_g": 3500, "island": "Dream", "sex": "female"},
        {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181,
         "body_mass_g": 3750, "island": "Torgersen", "sex": "male"},
    ])
}

async fn predict(server: &TestServer, path: &str, body: &Value) -> (StatusCode, Value) {
    let response = server
        .client
        .post(server.url(path))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[test]
fn the_classifier_learns_penguin_species_and_logs_its_run() {
    let example = Example::new();
    let out = example.ok(&["run"]);
    for table in [
        "bronze.penguins",
        "silver.penguins",
        "gold.species_by_island",
    ] {
        assert!(line(&out, table).contains("committed"), "{out}");
    }
    let step = line(&out, "gold.penguin_species");
    assert!(
        step.contains("committed") && step.contains("accuracy"),
        "{step}"
    );
    assert_eq!(
        example.query("SELECT count(*) AS n FROM bronze.penguins")[0]["n"],
        344
    );
    assert_eq!(
        example.query("SELECT count(*) AS n FROM silver.penguins")[0]["n"],
        342,
        "the two penguins without measurements are left out"
    );

    let runs = example.query(
        "SELECT kind, accuracy, train_rows, test_rows, classes, class_metrics, confusion_matrix, \
         input_table, input_version, model_version, predictions_version, label, features \
         FROM system.model_runs",
    );
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["kind"], "classifier");
    assert_eq!(run["input_table"], "silver.penguins");
    assert_eq!(run["label"], "species");
    assert_eq!(run["features"].as_array().unwrap().len(), 6);
    let accuracy = run["accuracy"].as_f64().unwrap();
    assert!(accuracy >= ACCURACY_BOUND, "accuracy {accuracy}");
    assert_eq!(
        run["train_rows"].as_i64().unwrap() + run["test_rows"].as_i64().unwrap(),
        342
    );
    let test_rows = run["test_rows"].as_i64().unwrap();
    assert!(
        (55..=82).contains(&test_rows),
        "about a fifth of 342 held out: {test_rows}"
    );
    assert_eq!(run["classes"], json!(["Adelie", "Chinstrap", "Gentoo"]));

    // The confusion matrix holds every test row; its diagonal is the accuracy.
    let matrix: Vec<Vec<i64>> = serde_json::from_value(run["confusion_matrix"].clone()).unwrap();
    let total: i64 = matrix.iter().flatten().sum();
    let diagonal: i64 = (0..3).map(|i| matrix[i][i]).sum();
    assert_eq!(total, test_rows);
    assert!((diagonal as f64 / total as f64 - accuracy).abs() < 1e-12);
    let metrics = run["class_metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 3);
    for (i, m) in metrics.iter().enumerate() {
        let support: i64 = matrix[i].iter().sum();
        assert_eq!(m["support"], support, "{m}");
        let recall = matrix[i][i] as f64 / support as f64;
        assert!(
            (m["recall"].as_f64().unwrap() - recall).abs() < 1e-12,
            "{m}"
        );
    }

    // The predictions are the held-out penguins, with the class, its probability and all of them.
    let predictions = example.query(
        "SELECT penguin_id, species, predicted, probability, correct, \
         probabilities['Adelie'] + probabilities['Chinstrap'] + probabilities['Gentoo'] AS total \
         FROM gold.penguin_species_predictions",
    );
    assert_eq!(predictions.len() as i64, test_rows);
    let correct = predictions.iter().filter(|p| p["correct"] == true).count();
    assert!((correct as f64 / test_rows as f64 - accuracy).abs() < 1e-12);
    for p in &predictions {
        assert!((p["total"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{p}");
        assert!(p["probability"].as_f64().unwrap() >= 1.0 / 3.0, "{p}");
        assert_eq!(p["correct"], p["species"] == p["predicted"], "{p}");
    }
    let joined = example.query(
        "SELECT count(*) AS n FROM gold.penguin_species_predictions p \
         JOIN silver.penguins s ON p.penguin_id = s.penguin_id",
    );
    assert_eq!(
        joined[0]["n"], test_rows,
        "predictions join back to the input by id"
    );

    // The model table holds one row per version: the artifact and what it is.
    let model = example.query(
        "SELECT artifact_format, length(encode(artifact, 'hex')) / 2 AS bytes, classes, accuracy \
         FROM gold.penguin_species_model",
    );
    assert_eq!(model.len(), 1);
    assert!(model[0]["bytes"].as_i64().unwrap() > 1000, "{model:?}");
    assert_eq!(model[0]["accuracy"], run["accuracy"]);

    // Nothing changed: nothing is trained or written.
    let out = example.ok(&["run"]);
    assert!(
        line(&out, "gold.penguin_species").contains("unchanged"),
        "{out}"
    );
    assert_eq!(
        example.query("SELECT count(*) AS n FROM system.model_runs")[0]["n"],
        1
    );
}

#[test]
fn a_penguin_the_model_cannot_read_fails_the_step_naming_it_and_writes_nothing() {
    let example = Example::new();
    example.ok(&["run"]);
    let versions = |example: &Example| {
        let tables: Value =
            serde_json::from_str(&example.ok(&["tables", "--format", "json"])).unwrap();
        let training = [
            "gold.penguin_species_model",
            "gold.penguin_species_predictions",
            "system.model_runs",
        ];
        tables
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| training.contains(&t["table"].as_str().unwrap()))
            .map(|t| (t["table"].clone(), t["version"].clone()))
            .collect::<Vec<_>>()
    };
    let before = versions(&example);

    // Silver now keeps the two penguins without measurements.
    let silver = example.dir.path().join("sql/silver/penguins.sql");
    let sql = std::fs::read_to_string(&silver).unwrap();
    let keep_all = sql[..sql.find("WHERE").unwrap()].replace(
        "-- strata: expect.not_null = [\"penguin_id\", \"species\", \"island\", \"bill_length_mm\", \"bill_depth_mm\", \"flipper_length_mm\", \"body_mass_g\", \"year\"]\n",
        "",
    );
    std::fs::write(&silver, keep_all).unwrap();
    let out = example.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gold.penguin_species")
            && stderr.contains("penguin_id = ")
            && stderr.contains("bill_length_mm: missing"),
        "{stderr}"
    );
    assert_eq!(versions(&example), before, "the previous model stays live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_lists_the_model_predicts_and_switches_versions_after_a_retrain() {
    let example = tokio::task::spawn_blocking(|| {
        let example = Example::new();
        example.ok(&["run"]);
        example
    })
    .await
    .unwrap();
    let server = TestServer::start_with(&example.config(), example.dir.path(), "").await;

    let (status, list) = server.get_json("/v1/models").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let models = list["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{list}");
    let model = &models[0];
    assert_eq!(model["name"], "penguin_species");
    assert_eq!(model["kind"], "classifier");
    assert_eq!(model["runs"], 1);
    assert!(model["latest_run"]["accuracy"].as_f64().unwrap() >= ACCURACY_BOUND);
    assert_eq!(model["latest_run"]["params"]["trees"], 100, "{model}");
    assert!(
        model["endpoints"]
            .as_array()
            .unwrap()
            .contains(&json!("POST /v1/models/penguin_species/predict"))
    );

    let (_, openapi) = server.get_json("/openapi.json").await;
    for path in [
        "/v1/models",
        "/v1/models/{name}",
        "/v1/models/{name}/predict",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} not documented");
    }

    let (status, detail) = server.get_json("/v1/models/penguin_species").await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let first_version = detail["model"]["version"].as_u64().unwrap();
    let island = detail["model"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "island")
        .unwrap()
        .clone();
    assert_eq!(
        island,
        json!({"name": "island", "type": "category", "categories": ["Biscoe", "Dream", "Torgersen"]})
    );

    // One record, and many in request order.
    let predict_path = "/v1/models/penguin_species/predict";
    let one = three_penguins()[0].clone();
    let (status, body) = predict(&server, predict_path, &one).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model_version"], first_version);
    assert_eq!(body["model"], "penguin_species");
    let prediction = &body["predictions"][0];
    assert_eq!(prediction["class"], "Gentoo");
    let sum: f64 = ["Adelie", "Chinstrap", "Gentoo"]
        .iter()
        .map(|c| prediction["probabilities"][c].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-9, "{prediction}");
    assert_eq!(
        prediction["probability"],
        prediction["probabilities"]["Gentoo"]
    );
    let (status, body) = predict(&server, predict_path, &three_penguins()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let classes: Vec<&str> = body["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["Gentoo", "Chinstrap", "Adelie"]);
    let wrapped = json!({"records": three_penguins()});
    assert_eq!(
        predict(&server, predict_path, &wrapped).await.1["predictions"],
        body["predictions"]
    );

    // A penguin of unknown sex is still a penguin: null is a category the model knows.
    let mut unsexed = one.clone();
    unsexed["sex"] = Value::Null;
    let (status, body) = predict(&server, predict_path, &unsexed).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Bad records: 422 naming the record and the field.
    let mut missing = three_penguins();
    missing[1]
        .as_object_mut()
        .unwrap()
        .remove("flipper_length_mm");
    let mut wrong_type = one.clone();
    wrong_type["body_mass_g"] = json!("heavy");
    let mut unknown = one.clone();
    unknown["island"] = json!("Atlantis");
    for (record, needle) in [
        (missing, "records[1].flipper_length_mm: missing field"),
        (wrong_type, "body_mass_g: \"heavy\" is not a number"),
        (
            unknown,
            "island: unknown category \"Atlantis\" (known: Biscoe, Dream, Torgersen)",
        ),
    ] {
        let (status, body) = predict(&server, predict_path, &record).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "invalid_record");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    }
    let (status, body) = predict(&server, "/v1/models/nope/predict", &one).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found");

    // Retrain with other settings: a new model version is served once the refresher sees it, and
    // the old one stays available by version.
    let example = tokio::task::spawn_blocking(move || {
        example.append_config("\n[steps.\"gold.penguin_species\"]\ntrees = 15\nseed = 7\n");
        let out = example.ok(&["run"]);
        assert!(
            line(&out, "gold.penguin_species").contains("committed"),
            "{out}"
        );
        example
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        let (status, body) = predict(&server, predict_path, &one).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["model_version"] != first_version {
            break body;
        }
        assert!(Instant::now() < deadline, "the new model was never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(second["model_version"], first_version + 1);
    // The run log is committed after the model: the refresher may have swapped the model in a
    // tick before the log's new version. Pick up everything the finished run wrote.
    let (status, _) = server.post_json("/v1/admin/refresh").await;
    assert_eq!(status, StatusCode::OK);
    let (_, detail) = server.get_json("/v1/models/penguin_species").await;
    assert_eq!(detail["runs"], 2);
    assert_eq!(detail["latest_run"]["params"]["trees"], 15);
    assert_eq!(detail["history"][0]["model_version"], first_version + 1);
    assert_eq!(detail["history"][1]["model_version"], first_version);
    assert_ne!(second["run_id"], detail["history"][1]["run_id"]);
    let (status, old) = predict(
        &server,
        &format!("{predict_path}?version={first_version}"),
        &one,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{old}");
    assert_eq!(old["model_version"], first_version);
    assert_eq!(old["run_id"], detail["history"][1]["run_id"]);
    drop(example);
}

/// ALS and classifier steps log to the same `system.model_runs`: a classifier row joining a
/// table of ALS rows adds its columns (the ALS rows read NULL there, and the other way round), and
/// both models are listed by the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn als_and_classifier_runs_share_system_model_runs() {
    let project = tokio::task::spawn_blocking(|| {
        let project = crate::support::project::Project::generated(
            "users = 150\nitems = 200\nratings = 6000\nseed = 7",
            "[steps.\"gold.recommendations\"]\nk = 5\nsimilar_k = 3\nthreads = 2\n",
        );
        project.ok(&["run"]);
        project.add_user_gender_classifier(10);
        project.ok(&["run"]);
        project
    })
    .await
    .unwrap();
    let runs = project.query(
        "SELECT step, kind, factors, accuracy, test_rows, model_version \
         FROM system.model_runs ORDER BY trained_at",
    );
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(
        (&runs[0]["step"], &runs[0]["kind"]),
        (&json!("gold.recommendations"), &json!("als"))
    );
    assert!(runs[0]["factors"].is_i64() && runs[0]["accuracy"].is_null());
    assert_eq!(
        (&runs[1]["step"], &runs[1]["kind"]),
        (&json!("gold.user_gender"), &json!("classifier"))
    );
    assert!(runs[1]["factors"].is_null() && runs[1]["accuracy"].is_f64());
    let test_rows = runs[1]["test_rows"].as_i64().unwrap();
    assert!(
        (18..=42).contains(&test_rows),
        "about a fifth of 150 users: {test_rows}"
    );

    let server = TestServer::start(&project, "").await;
    let (status, list) = server.get_json("/v1/models").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let kinds: Vec<(&str, &str)> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("recommendations", "als"), ("user_gender", "classifier")]
    );
    let (status, body) = predict(
        &server,
        "/v1/models/user_gender/predict",
        &json!({"age": 25, "occupation": 4}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["classes"], json!(["F", "M"]));
}

/// Replaces the example's `system.model_runs` with a table of these columns (all NOT NULL), as
/// another (older or broken) writer would have left it.
fn write_model_runs(example: &Example, columns: Vec<(&str, arrow::array::ArrayRef)>) {
    use std::sync::Arc;

    use arrow::array::RecordBatch;
    use arrow::datatypes::{Field, Schema};
    use strata::catalog::{Lake, TableName};
    use strata::pipeline::commit::{self, CommitMeta, WriteMode};

    let lake_dir = example.dir.path().join("lake");
    let _ = std::fs::remove_dir_all(lake_dir.join("system/model_runs"));
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), false))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let lake = Lake::try_new(&lake_dir).unwrap();
        let table: TableName = "system.model_runs".parse().unwrap();
        let mode = WriteMode::Append {
            partition_by: Vec::new(),
        };
        commit::commit(
            &lake,
            &table,
            schema,
            vec![batch],
            mode,
            &CommitMeta::default(),
        )
        .await
        .unwrap();
    });
}

/// Lakes whose `system.model_runs` was written before classifiers shared it have NOT NULL ALS
/// columns; the first classifier run rewrites the table with every column nullable, keeping its
/// rows.
#[test]
fn a_run_log_written_before_classifiers_is_widened_keeping_its_rows() {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};

    let example = Example::new();
    write_model_runs(
        &example,
        vec![
            ("run_id", Arc::new(StringArray::from(vec!["old-run"]))),
            (
                "step",
                Arc::new(StringArray::from(vec!["gold.recommendations"])),
            ),
            ("factors", Arc::new(Int64Array::from(vec![10]))),
        ],
    );
    example.ok(&["run"]);
    let runs = example.query("SELECT run_id, step, kind, factors, accuracy FROM system.model_runs");
    assert_eq!(runs.len(), 2, "{runs:?}");
    let old = runs.iter().find(|r| r["run_id"] == "old-run").unwrap();
    assert_eq!(old["factors"], 10);
    assert!(old["kind"].is_null() && old["accuracy"].is_null());
    let new = runs.iter().find(|r| r["run_id"] != "old-run").unwrap();
    assert_eq!(new["kind"], "classifier");
    assert!(new["factors"].is_null() && new["accuracy"].is_f64());
}

/// The run log is the step's last write: when it cannot take the row, the predictions and the
/// model the step had committed are taken back (removed on a first run, restored on a retrain).
#[test]
fn a_run_log_that_refuses_the_row_takes_the_new_model_back() {
    use std::sync::Arc;

    use arrow::array::StringArray;

    let example = Example::new();
    let accuracy_as_text = || {
        vec![
            (
                "run_id",
                Arc::new(StringArray::from(vec!["r"])) as arrow::array::ArrayRef,
            ),
            ("accuracy", Arc::new(StringArray::from(vec!["high"]))),
        ]
    };
    let trained = |example: &Example| {
        let tables: Value =
            serde_json::from_str(&example.ok(&["tables", "--format", "json"])).unwrap();
        tables
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["table"].as_str())
            .filter(|t| t.starts_with("gold.penguin_species_"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };

    // First run: nothing to restore, so the new tables are removed.
    write_model_runs(&example, accuracy_as_text());
    let out = example.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("system.model_runs") && stderr.contains("accuracy"),
        "{stderr}"
    );
    assert!(trained(&example).is_empty(), "{:?}", trained(&example));

    // A retrain: the previous model and predictions stay live.
    std::fs::remove_dir_all(example.dir.path().join("lake/system/model_runs")).unwrap();
    example.ok(&["run"]);
    let model = "SELECT run_id FROM gold.penguin_species_model";
    let live = example.query(model);
    let predictions =
        "SELECT penguin_id, predicted FROM gold.penguin_species_predictions ORDER BY penguin_id";
    let live_predictions = example.query(predictions);
    write_model_runs(&example, accuracy_as_text());
    example.append_config("\n[steps.\"gold.penguin_species\"]\ntrees = 15\n");
    assert_eq!(example.strata(&["run"]).status.code(), Some(1));
    assert_eq!(example.query(model), live);
    assert_eq!(example.query(predictions), live_predictions);
}
