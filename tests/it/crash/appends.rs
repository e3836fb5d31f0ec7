//! `strata serve` killed at random moments while it appends rows with `run=downstream` (the
//! append, then a run of every step downstream of the table) and answers reads. The append is one
//! Delta commit, so after the kill the row is in bronze once or not at all (once whenever the
//! append was answered); the next plain `strata run` then leaves exactly what a run that was never
//! killed leaves over that bronze, the killed run is `failed`, and the lock is gone. On a local
//! and an S3 lake.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{fresh, lock_left, seed_and_points};
use crate::support::lake_state::lake_state;
use crate::support::project::Project;
use crate::support::s3::Backend;
use crate::support::seeded::Seeded;
use crate::support::serve::{ServeProcess, finished_run};

/// The appended row: a user no dataset has, so it is easy to count.
fn row() -> Value {
    json!([{"user_id": 9999, "movie_id": 1, "rating": 5, "timestamp": 978_300_999}])
}

fn appended(project: &Project) -> i64 {
    project.count("SELECT count(*) AS n FROM bronze.ratings WHERE user_id = 9999")
}

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_strata"))
}

/// Posts the append; its answer, or `None` when the server died first.
async fn append(base: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .post(format!(
            "{base}/v1/tables/bronze.ratings/rows?run=downstream"
        ))
        .json(&row())
        .send()
        .await
        .ok()?;
    assert_eq!(response.status(), 200, "the append was refused");
    response.json().await.ok()
}

/// Readers hammering the server until `stop`: table pages and recommendations. Returns how many
/// answers they got.
fn read_load(base: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let answered = AtomicU64::new(0);
        let client = reqwest::Client::new();
        let paths = [
            "/v1/tables/gold.movie_stats?limit=5",
            "/v1/users/1/recommendations",
        ];
        while !stop.load(Ordering::Relaxed) {
            for path in paths {
                if client.get(format!("{base}{path}")).send().await.is_ok() {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        answered.into_inner()
    })
}

crate::on_every_lake!(async: serve_killed_during_an_append_with_a_downstream_run_recovers);

async fn serve_killed_during_an_append_with_a_downstream_run_recovers(backend: Backend) {
    let (seed, points) = seed_and_points();

    // References: the lake after a plain run, and after the append and its downstream run.
    let without = Project::movielens_on(fresh(&backend));
    without.ok(&["run"]);
    let expected_without = lake_state(&without);
    let with = Project::movielens_on(fresh(&backend));
    with.ok(&["run"]);
    let serve = ServeProcess::start(binary(), &with, &[]);
    let start = Instant::now();
    let answer = append(&serve.base).await.expect("the reference append");
    let append_window = start.elapsed();
    let run_id = answer["run_id"].as_str().unwrap();
    let client = reqwest::Client::new();
    let run = finished_run(&client, &serve.base, run_id, Duration::from_millis(20)).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let window = start.elapsed();
    serve.stop();
    let expected_with = lake_state(&with);

    let mut rng = Seeded(seed);
    let (mut landed, mut interrupted) = ([0; 2], 0);
    for point in 0..points {
        let project = Project::movielens_on(fresh(&backend));
        project.ok(&["run"]);
        let serve = ServeProcess::start(binary(), &project, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let readers = read_load(serve.base.clone(), Arc::clone(&stop));
        // Half the points inside the append itself (until its answer), half across its run.
        let span = if rng.next().is_multiple_of(2) {
            append_window
        } else {
            window
        };
        let permille = rng.next() % 1100;
        let delay = span * permille as u32 / 1000;
        let at = format!("seed {seed}, point {point}: serve killed {delay:?} after the append");
        let base = serve.base.clone();
        let request = tokio::spawn(async move { append(&base).await });
        tokio::time::sleep(delay).await;
        serve.stop(); // SIGKILL
        stop.store(true, Ordering::Relaxed);
        let answered = request.await.unwrap().is_some();
        readers.await.unwrap();

        let out = project.strata(&["run"]);
        assert!(
            out.status.success(),
            "{at}: the next run failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = appended(&project);
        assert!(rows <= 1, "{at}: the row was appended {rows} times");
        if answered {
            assert_eq!(
                rows, 1,
                "{at}: the append was answered, but the row is gone"
            );
        }
        landed[rows as usize] += 1;
        let expected = if rows == 1 {
            &expected_with
        } else {
            &expected_without
        };
        assert!(
            lake_state(&project) == *expected,
            "{at}: tables differ from a clean run's"
        );
        let runs: Vec<Value> =
            serde_json::from_str(&project.ok(&["runs", "--format", "json"])).unwrap();
        assert_eq!(runs[0]["status"], "succeeded", "{at}: {runs:?}");
        assert!(
            runs.iter().all(|r| r["status"] != "running"),
            "{at}: a run left running: {runs:?}"
        );
        // On S3 the check is a blocking object-store call of its own.
        let locked = tokio::task::block_in_place(|| lock_left(&project));
        assert!(!locked, "{at}: the lock was left");
        interrupted += usize::from(runs.iter().any(|r| r["status"] == "failed"));
    }
    eprintln!(
        "append kill points: {} before the row landed, {} after; {interrupted} interrupted the \
         downstream run",
        landed[0], landed[1]
    );
}
