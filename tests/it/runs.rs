//! Run history and the lake lock through the real binary: `system.runs`, `system.step_runs`,
//! `strata runs`, refusing a second run, recovering from a killed one.

use std::sync::Arc;

use serde_json::Value;
use strata::catalog::Lake;
use strata::pipeline::run_log::{self, RunRecord};

use crate::support::project::Project;

fn json(text: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn every_run_and_step_is_recorded_and_listed() {
    let project = Project::movielens();
    project.ok(&["run"]);
    project.ok(&["run", "--select", "silver.movies", "--downstream"]);

    let runs = json(&project.ok(&["runs", "--format", "json"]));
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[0]["selection"], "silver.movies +downstream",
        "newest first"
    );
    assert_eq!(runs[1]["selection"], "all");
    for run in &runs {
        assert_eq!(run["status"], "succeeded");
        assert_eq!(run["trigger"], "cli");
        assert!(run["ended_at"].is_string());
    }

    let first = runs[1]["run_id"].as_str().unwrap();
    let steps = json(&project.ok(&["runs", "show", first, "--format", "json"]));
    let ratings = steps
        .iter()
        .find(|s| s["step"] == "silver.ratings")
        .expect("silver.ratings step recorded");
    assert_eq!(ratings["status"], "committed");
    assert_eq!(ratings["attempt"], 1);
    assert_eq!(ratings["version"], 0);
    assert_eq!(ratings["rows"], 20);
    let inputs: Value = serde_json::from_str(ratings["inputs"].as_str().unwrap()).unwrap();
    assert_eq!(inputs["bronze.ratings"], 0, "the input versions it read");

    let last = json(&project.ok(&["runs", "show", "last", "--format", "json"]));
    assert!(last.iter().all(|s| s["status"] == "unchanged"), "{last:?}");
    let text = project.ok(&["runs"]);
    assert!(text.contains("succeeded"), "{text}");
}

#[test]
fn a_failed_run_is_recorded_with_its_error() {
    let project = Project::movielens();
    project.write("sql/gold/broken.sql", "SELECT nope FROM silver.movies");
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let runs = json(&project.ok(&["runs", "--format", "json"]));
    assert_eq!(runs[0]["status"], "failed");
    assert!(
        runs[0]["error"]
            .as_str()
            .unwrap()
            .contains("1 step(s) failed")
    );
    let steps = json(&project.ok(&["runs", "show", "last", "--format", "json"]));
    let broken = steps.iter().find(|s| s["step"] == "gold.broken").unwrap();
    assert_eq!(broken["status"], "failed");
    assert!(
        broken["error"].as_str().unwrap().contains("nope"),
        "{broken}"
    );
}

#[test]
fn a_second_run_on_a_busy_lake_is_refused() {
    let project = Project::movielens();
    project.ok(&["run", "--select", "bronze.users"]);
    // This test process is alive on this host: its lock is not stale.
    project.write(
        "lake/_strata/run.lock",
        &format!(
            "pid={}\nhost={}\nrun_id=the-other-run\nstarted_at=now\n",
            std::process::id(),
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap()
                .trim()
        ),
    );
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lake is busy") && stderr.contains("the-other-run"),
        "{stderr}"
    );
    assert!(
        project.path("lake/_strata/run.lock").exists(),
        "a live lock is left alone"
    );
}

#[test]
fn a_killed_run_is_marked_failed_and_its_stale_lock_recovered() {
    let project = Project::movielens();
    project.ok(&["run", "--select", "bronze.users"]);
    // What `kill -9` in the middle of a run leaves: a run marked running and its lock file.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let lake = Arc::new(Lake::try_new(&project.path("lake")).unwrap());
        run_log::upsert_runs(
            &lake,
            &[RunRecord {
                run_id: "killed-run".into(),
                trigger: "cli".into(),
                selection: "all".into(),
                full_refresh: false,
                started_at: "2026-11-28T10:00:00+00:00".into(),
                ended_at: None,
                status: "running".into(),
                error: None,
                variables: "{}".into(),
            }],
        )
        .await
        .unwrap();
    });
    project.write(
        "lake/_strata/run.lock",
        &format!(
            "pid=4999999\nhost={}\nrun_id=killed-run\nstarted_at=2026-11-28T10:00:00Z\n",
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap()
                .trim()
        ),
    );
    let out = project.strata(&["run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("recovered a stale lock"),
        "the user is told"
    );
    let runs = json(&project.ok(&["runs", "--format", "json"]));
    let killed = runs.iter().find(|r| r["run_id"] == "killed-run").unwrap();
    assert_eq!(killed["status"], "failed");
    assert!(
        killed["error"]
            .as_str()
            .unwrap()
            .contains("killed or crashed")
    );
    assert!(
        !project.path("lake/_strata/run.lock").exists(),
        "released after the run"
    );
}

#[test]
fn a_lake_with_the_old_per_step_run_table_keeps_it_and_runs_on() {
    let project = Project::movielens();
    project.ok(&["run", "--select", "bronze.users"]);
    std::fs::remove_dir_all(project.path("lake/system/runs")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use arrow::array::{RecordBatch, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        use strata::pipeline::commit::{self, CommitMeta, WriteMode};
        let lake = Lake::try_new(&project.path("lake")).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("run_id", DataType::Utf8, false),
            Field::new("step", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(vec!["old-run"])),
                Arc::new(StringArray::from(vec!["bronze.users"])),
            ],
        )
        .unwrap();
        commit::commit(
            &lake,
            &run_log::runs_table(),
            schema,
            vec![batch],
            WriteMode::Append {
                partition_by: Vec::new(),
            },
            &CommitMeta::default(),
        )
        .await
        .unwrap();
    });
    project.ok(&["run", "--select", "bronze.users"]);
    assert_eq!(
        project.count("SELECT count(*) FROM system.runs_per_step WHERE run_id = 'old-run'"),
        1
    );
    assert_eq!(json(&project.ok(&["runs", "--format", "json"])).len(), 1);
}

#[test]
fn a_flaky_source_is_retried_until_its_file_appears() {
    use std::io::{BufRead, BufReader};
    let project = Project::movielens();
    std::fs::remove_file(project.path("raw/ratings.dat")).unwrap();
    let config = std::fs::read_to_string(project.path("config/strata.toml")).unwrap();
    project.write(
        "config/strata.toml",
        &format!("{config}[steps.\"bronze.ratings\"]\nretries = 2\nretry_delay = \"1s\"\n"),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(project.root())
        .arg("run")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // The first attempt failed and a retry is scheduled: the file lands now.
        if line.starts_with("bronze.ratings ") && line.contains("failed") {
            project.write_raw("ratings.dat", crate::support::project::RATINGS.as_bytes());
        }
        lines.push(line);
    }
    assert!(child.wait().unwrap().success(), "{lines:#?}");
    let ratings: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("bronze.ratings "))
        .collect();
    assert_eq!(ratings.len(), 2, "{lines:#?}");
    assert!(ratings[0].contains("retrying in 1s"), "{}", ratings[0]);
    assert!(
        ratings[1].contains("committed") && ratings[1].contains("[attempt 2]"),
        "{}",
        ratings[1]
    );
    let steps = json(&project.ok(&["runs", "show", "last", "--format", "json"]));
    let attempts: Vec<(i64, &str)> = steps
        .iter()
        .filter(|s| s["step"] == "bronze.ratings")
        .map(|s| {
            (
                s["attempt"].as_i64().unwrap(),
                s["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(attempts, [(1, "failed"), (2, "committed")]);
    assert_eq!(project.versions()["silver.ratings"].1, 20);
}

#[test]
fn resume_runs_only_what_the_failed_run_left_undone() {
    let project = Project::movielens();
    project.write(
        "sql/gold/broken.sql",
        "SELECT movie_id, nope FROM silver.movies",
    );
    project.write(
        "sql/gold/after_broken.sql",
        "SELECT count(*) AS n FROM gold.broken",
    );
    assert_eq!(project.strata(&["run"]).status.code(), Some(1));
    let failed_run = json(&project.ok(&["runs", "--format", "json"]))[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = project.versions();

    project.write(
        "sql/gold/broken.sql",
        "SELECT movie_id, title FROM silver.movies",
    );
    let out = project.ok(&["run", "--resume", "last"]);
    let ran: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ran, ["gold.broken", "gold.after_broken"], "{out}");
    let after = project.versions();
    assert_eq!(
        after["silver.ratings"], before["silver.ratings"],
        "committed outputs reused"
    );
    assert_eq!(project.count("SELECT n FROM gold.after_broken"), 5);
    let runs = json(&project.ok(&["runs", "--format", "json"]));
    assert_eq!(
        runs[0]["selection"],
        format!("resume {failed_run}: gold.after_broken,gold.broken")
    );
    let again = project.strata(&["run", "--resume", "last"]);
    assert_eq!(again.status.code(), Some(2), "nothing left to resume");
}

#[test]
fn a_step_over_its_timeout_fails_without_committing() {
    let project = Project::movielens();
    project.ok(&["run"]);
    let before = project.versions();
    let config = std::fs::read_to_string(project.path("config/strata.toml")).unwrap();
    project.write(
        "config/strata.toml",
        &format!("{config}[steps.\"gold.movie_stats\"]\ntimeout = \"1ms\"\n"),
    );
    let out = project.strata(&["run", "--select", "gold.movie_stats", "--full-refresh"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timed out after 1ms"), "{stderr}");
    assert_eq!(
        project.versions()["gold.movie_stats"],
        before["gold.movie_stats"]
    );

    project.write("config/strata.toml", &config);
    let rerun = project.ok(&["run"]);
    assert!(
        rerun
            .lines()
            .all(|l| l.contains("up_to_date") || !l.starts_with("silver.")),
        "{rerun}"
    );
}

/// A generated-sample project (big enough that a run takes a while), deterministic ALS.
fn sample_project() -> Project {
    Project::generated(
        "users = 600\nitems = 400\nratings = 60000\nseed = 3",
        "[steps.\"gold.recommendations\"]\nthreads = 2\nfactors = 8\n",
    )
}

#[test]
fn kill_9_mid_run_then_resume_gives_the_tables_of_a_clean_run() {
    use std::io::{BufRead, BufReader};
    let clean = sample_project();
    clean.ok(&["run"]);

    let crashed = sample_project();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(crashed.root())
        .arg("run")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the first silver step is done: bronze committed, the rest not yet.
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if line.unwrap().starts_with("silver.") {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    child.wait().unwrap();
    assert!(
        crashed.path("lake/_strata/run.lock").exists(),
        "a killed run leaves its lock"
    );

    let out = crashed.strata(&["run", "--resume", "last"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = json(&crashed.ok(&["runs", "--format", "json"]));
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[1]["status"], "failed",
        "the killed run is marked failed"
    );
    assert_eq!(runs[0]["status"], "succeeded");

    // Same tables, same rows: nothing duplicated, nothing missing.
    let tables = |p: &Project| -> Vec<(String, u64)> {
        p.versions()
            .into_iter()
            .filter(|(t, _)| !t.starts_with("system."))
            .map(|(t, (_, rows))| (t, rows))
            .collect()
    };
    assert_eq!(tables(&crashed), tables(&clean));
    for sql in [
        "SELECT * FROM gold.movie_stats ORDER BY movie_id",
        "SELECT * FROM gold.genre_popularity ORDER BY genre",
        "SELECT user_id, rank, item_id FROM gold.user_recommendations ORDER BY user_id, rank",
        "SELECT count(*) AS n, count(DISTINCT _source_file) AS files FROM bronze.ratings",
    ] {
        assert_eq!(crashed.query(sql), clean.query(sql), "{sql}");
    }
}

#[test]
fn a_bad_schedule_is_a_config_error_naming_the_key() {
    let project = Project::movielens();
    let config = std::fs::read_to_string(project.path("config/strata.toml")).unwrap();
    project.write(
        "config/strata.toml",
        &format!("{config}[schedule]\ncron = \"61 * * * *\"\n"),
    );
    let out = project.strata(&["tables"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("schedule.cron"), "{stderr}");
}
