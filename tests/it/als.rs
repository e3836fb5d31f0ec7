//! The ALS step through the real binary: the gold tables it publishes, the run it logs to
//! `system.model_runs`, reruns, and failures that leave the previous model live.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::Value;
use strata::catalog::{Lake, TableName};
use strata::pipeline::commit::{self, CommitMeta, WriteMode};

use crate::support::project::Project;

const GOLD: [&str; 5] = [
    "gold.user_recommendations",
    "gold.similar_items",
    "gold.user_factors",
    "gold.item_factors",
    "gold.item_popularity",
];

/// The `[sample]` keys of the small generated MovieLens-shaped sample these tests use.
const SAMPLE: &str = "users = 150\nitems = 200\nratings = 6000\nseed = 7";

/// A project with the repository's steps on the small generated sample.
fn generated_project() -> Project {
    Project::generated(
        SAMPLE,
        "[steps.\"gold.recommendations\"]\nk = 5\nsimilar_k = 3\nthreads = 2\n",
    )
}

#[test]
fn als_step_publishes_every_gold_table_and_logs_the_run() {
    let project = generated_project();
    let out = project.ok(&["run"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("gold.recommendations "))
        .unwrap_or_else(|| panic!("no ALS step line in:\n{out}"));
    assert!(
        line.contains("committed") && line.contains("NDCG@10"),
        "{line}"
    );

    let versions = project.versions();
    for table in GOLD {
        assert!(versions[table].1 > 0, "{table} is empty: {versions:?}");
    }

    // Top-k per user: at most k, ranks 1..n without gaps, no item the user rated, no duplicate.
    let per_user = project.query(
        "SELECT user_id, count(*) AS n, max(rank) AS max_rank, count(DISTINCT item_id) AS items \
         FROM gold.user_recommendations GROUP BY user_id",
    );
    assert!(!per_user.is_empty());
    for row in &per_user {
        let n = row["n"].as_i64().unwrap();
        assert!(n <= 5, "{row}");
        assert_eq!(row["max_rank"].as_i64().unwrap(), n, "{row}");
        assert_eq!(row["items"].as_i64().unwrap(), n, "{row}");
    }
    let seen = project.count(
        "SELECT count(*) FROM gold.user_recommendations r JOIN silver.als_input a \
         ON r.user_id = a.user_id AND r.item_id = a.item_id",
    );
    assert_eq!(seen, 0, "recommendations must exclude rated items");
    let unsorted = project.count(
        "SELECT count(*) FROM gold.user_recommendations a JOIN gold.user_recommendations b \
         ON a.user_id = b.user_id AND a.rank < b.rank AND a.score < b.score",
    );
    assert_eq!(unsorted, 0, "a better rank must never have a lower score");

    let self_similar =
        project.count("SELECT count(*) FROM gold.similar_items WHERE item_id = similar_item_id");
    assert_eq!(self_similar, 0);
    let bad_vectors = project.count(
        "SELECT count(*) FROM gold.item_factors WHERE array_length(factors) <> 64 \
         OR array_length(factors) IS NULL",
    );
    assert_eq!(bad_vectors, 0, "item vectors have `factors` floats");
    let users = project.count("SELECT count(DISTINCT user_id) FROM silver.als_input");
    assert_eq!(
        project.count("SELECT count(*) FROM gold.user_factors"),
        users
    );
    let items = project.count("SELECT count(DISTINCT item_id) FROM silver.als_input");
    assert_eq!(
        project.count("SELECT count(*) FROM gold.item_popularity"),
        items
    );
    let popularity = project.query(
        "SELECT p.interactions, (SELECT count(*) FROM silver.als_input a \
         WHERE a.item_id = p.item_id) AS actual FROM gold.item_popularity p WHERE rank = 1",
    );
    assert_eq!(popularity[0]["interactions"], popularity[0]["actual"]);

    // One model run, naming the input version it trained on and the versions it published.
    let runs = project.query("SELECT * FROM system.model_runs");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["input_table"], "silver.als_input");
    assert_eq!(
        run["input_version"].as_u64().unwrap(),
        versions["silver.als_input"].0
    );
    for table in GOLD {
        let column = format!("{}_version", table.trim_start_matches("gold."));
        assert_eq!(
            run[&column].as_u64().unwrap(),
            versions[table].0,
            "{column}"
        );
    }
    assert_eq!(run["input_rows"].as_i64().unwrap(), 6000);
    assert_eq!(run["iterations"].as_i64().unwrap(), 10);
    assert_eq!(run["loss_history"].as_array().unwrap().len(), 10);
    assert_eq!(run["eval_method"], "holdout 0.2 seed 42");
    let (train, test) = (
        run["train_rows"].as_i64().unwrap(),
        run["test_rows"].as_i64().unwrap(),
    );
    assert_eq!(train + test, 6000);
    assert!(
        (900..1500).contains(&test),
        "about 20% held out, got {test}"
    );
    for metric in ["precision_at_10", "ndcg_at_10", "popular_ndcg_at_10"] {
        let value = run[metric].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&value), "{metric} = {value}");
    }
    // Fewer users than `eval.max_users`: every one is evaluated; the NDCG's 95% half-width is
    // stated beside it.
    assert_eq!(run["eval_users"], run["eval_users_total"]);
    let ci = run["ndcg_at_10_ci95"].as_f64().unwrap();
    assert!(ci > 0.0 && ci < 0.5, "ndcg_at_10_ci95 = {ci}");
    let params: Value = serde_json::from_str(run["params"].as_str().unwrap()).unwrap();
    assert_eq!(params["factors"], 64);

    // Same input, same settings: nothing retrained.
    let out = project.ok(&["run"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("gold.recommendations ") && l.contains("unchanged")),
        "{out}"
    );
    assert_eq!(
        project.query("SELECT run_id FROM system.model_runs").len(),
        1
    );
}

#[test]
fn same_seed_and_input_give_the_same_recommendations() {
    let project = generated_project();
    project.ok(&["run"]);
    let all = "SELECT user_id, rank, item_id, score FROM gold.user_recommendations \
               ORDER BY user_id, rank";
    let first = project.query(all);
    project.ok(&["run", "--select", "gold.recommendations", "--full-refresh"]);
    assert_eq!(project.query("SELECT * FROM system.model_runs").len(), 2);
    assert_eq!(project.query(all), first);
}

#[test]
fn explicit_als_reports_rmse_and_a_test_table_replaces_the_holdout() {
    let project = generated_project();
    // Test rows: every fifth rating, as its own table read by the step.
    project.write(
        "sql/silver/als_test.sql",
        "SELECT user_id, item_id, rating FROM silver.als_input WHERE (user_id + item_id) % 5 = 0",
    );
    project.write_generated_config(
        SAMPLE,
        "[steps.\"gold.recommendations\"]\nimplicit = false\nfactors = 8\nregularization = 0.1\n\
         biases = true\neval = { test_table = \"silver.als_test\" }\n",
    );
    let dag = project.ok(&["dag"]);
    let line = dag
        .lines()
        .find(|l| l.starts_with("gold.recommendations "))
        .unwrap();
    assert!(
        line.contains("[als]") && line.contains("silver.als_test"),
        "{line}"
    );
    project.ok(&["run"]);
    let run = &project.query("SELECT * FROM system.model_runs")[0];
    assert_eq!(run["eval_method"], "table silver.als_test");
    let rmse = run["rmse"].as_f64().unwrap();
    assert!(rmse > 0.0 && rmse < 2.0, "rmse {rmse}");
    assert!(run["train_rmse"].as_f64().unwrap() < rmse + 0.5);
    assert_eq!(
        run["test_rows"].as_i64().unwrap(),
        project.count("SELECT count(*) FROM silver.als_test")
    );
    assert_eq!(run["biases"], true);
}

#[test]
fn a_failing_als_step_leaves_the_previous_model_live() {
    let project = generated_project();
    project.ok(&["run"]);
    let before = project.versions();
    let recs = "SELECT * FROM gold.user_recommendations ORDER BY user_id, rank";
    let live = project.query(recs);

    // A failure before anything is written: the input lacks the configured column.
    let config = std::fs::read_to_string(project.path("config/strata.toml")).unwrap();
    project.write(
        "config/strata.toml",
        &format!("{config}rating_column = \"stars\"\n"),
    );
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stars") && stderr.contains("silver.als_input"),
        "{stderr}"
    );
    let after = project.versions();
    for table in GOLD {
        assert_eq!(after[table], before[table], "{table} moved");
    }

    // A failure after the gold tables were committed: the run log cannot take the row (its
    // schema was replaced by an incompatible one). Every gold table goes back to the old model.
    project.write("config/strata.toml", &format!("{config}factors = 4\n"));
    let lake_dir = project.path("lake");
    std::fs::remove_dir_all(lake_dir.join("system/model_runs")).unwrap();
    write_incompatible_model_runs(&lake_dir);
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("model_runs"), "{stderr}");
    assert_eq!(
        project.query(recs),
        live,
        "the previous recommendations stay live"
    );
    let dim = project.count("SELECT max(array_length(factors)) FROM gold.user_factors");
    assert_eq!(dim, 64, "the previous factors stay live");
}

fn write_incompatible_model_runs(lake_dir: &std::path::Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let lake = Lake::try_new(lake_dir).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "run_id",
            DataType::Int64,
            false,
        )]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        let table: TableName = "system.model_runs".parse().unwrap();
        commit::commit(
            &lake,
            &table,
            schema,
            vec![batch],
            WriteMode::Overwrite {
                partition_by: Vec::new(),
            },
            &CommitMeta::default(),
        )
        .await
        .unwrap();
    });
}
