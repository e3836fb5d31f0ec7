//! Storage faults on an S3 lake: the test S3 server behind a proxy that fails, slows, cuts,
//! refuses and replays requests (`support::s3_proxy`). A run through a misbehaving store either
//! succeeds through retries or fails with one clear line; either way every table opens, holds
//! nothing partial, and the next run on a healthy store leaves exactly what a run that never
//! met a fault leaves.

use crate::support::lake_state::{LakeState, lake_state};
use crate::support::project::Project;
use crate::support::s3::Backend;
use crate::support::s3_proxy::{Fault, Faults, S3Proxy};

/// The state a run that met no fault leaves (on a local lake: the contents do not depend on
/// where the lake is).
fn clean_state() -> LakeState {
    let project = Project::movielens();
    project.ok(&["run"]);
    lake_state(&project)
}

/// A MovieLens project whose lake is a fresh bucket reached through a new proxy.
fn project_behind_proxy(seed: u64) -> Option<(Project, S3Proxy)> {
    let Backend::S3 { endpoint, bucket } = Backend::s3()? else {
        unreachable!("Backend::s3 gives an S3 backend")
    };
    let proxy = S3Proxy::start(&endpoint, seed);
    let backend = Backend::S3 {
        endpoint: proxy.endpoint().to_string(),
        bucket,
    };
    Some((Project::movielens_on(backend), proxy))
}

#[test]
fn a_commit_whose_answer_was_lost_is_applied_once() {
    let Some((project, proxy)) = project_behind_proxy(7) else {
        return;
    };
    proxy.set(Faults {
        lost_answer: 0.5,
        ..Faults::default()
    });
    let out = project.strata(&["run"]);
    proxy.set(Faults::default());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lost = proxy
        .injected()
        .get(&Fault::LostAnswer)
        .copied()
        .unwrap_or(0);
    assert!(lost > 10, "only {lost} answers were lost");
    assert_eq!(lake_state(&project), clean_state());
}

/// Rounds a plain `cargo test` tries; `STRATA_FAULT_ROUNDS=N` runs more, `STRATA_FAULT_SEED=S`
/// replays one (the seed is printed first).
const CI_ROUNDS: u64 = 2;

/// Every kind of fault at once, at rates that a retrying client mostly rides out.
fn flaky() -> Faults {
    Faults {
        server_error: 0.05,
        slow: 0.05,
        slow_ms: 300,
        dropped_upload: 0.03,
        lost_answer: 0.1,
        refused_create: 0.05,
        stale_list: 0.1,
        ..Faults::default()
    }
}

#[test]
fn runs_through_a_flaky_store_succeed_or_fail_cleanly_and_the_next_run_repairs() {
    let seed = std::env::var("STRATA_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64);
    let rounds = std::env::var("STRATA_FAULT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_ROUNDS);
    eprintln!("storage faults: seed {seed}, {rounds} rounds (STRATA_FAULT_SEED replays)");
    let clean = clean_state();
    let (mut succeeded, mut failed) = (0, 0);
    for round in 0..rounds {
        let Some((project, proxy)) = project_behind_proxy(seed.wrapping_add(round)) else {
            return;
        };
        let at = format!("seed {seed}, round {round}");
        proxy.set(flaky());
        let out = project.strata(&["run"]);
        proxy.set(Faults::default());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{at}: a panic:\n{stderr}");
        if out.status.success() {
            succeeded += 1;
            assert_eq!(
                lake_state(&project),
                clean,
                "{at}: a successful run through faults"
            );
        } else {
            failed += 1;
            eprintln!("{at}: the faulty run failed (allowed):\n{stderr}");
            // In words a user can act on, not the Delta internals a stale listing trips.
            for line in stderr.lines().filter(|l| l.starts_with("error:")) {
                let internal = line.contains("Invalid table version")
                    || (line.contains("Kernel error") && !line.contains("stale listing"));
                assert!(!internal, "{at}: an unclear error: {line}");
            }
            // Whatever committed opens (versions() opens every table); the rest is repaired below.
            project.versions();
        }
        eprintln!("{at}: faults injected {:?}", proxy.injected());
        let repair = project.strata(&["run"]);
        assert!(
            repair.status.success(),
            "{at}: the run after the faults stopped failed:\n{}",
            String::from_utf8_lossy(&repair.stderr)
        );
        assert_eq!(lake_state(&project), clean, "{at}: after the repairing run");
    }
    eprintln!("storage faults: {succeeded} faulty runs succeeded, {failed} failed cleanly");
}

/// GET `path` on a running server: status, body and how long it took.
async fn get(base: &str, path: &str) -> (u16, String, std::time::Duration) {
    let start = std::time::Instant::now();
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap(), start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_from_its_snapshots_while_the_store_is_down_and_recovers() {
    let Some((project, proxy)) = project_behind_proxy(11) else {
        return;
    };
    project.ok(&["run"]);
    let serve = crate::support::serve::ServeProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_strata")),
        &project,
        &[],
    );
    let warmed = [
        "/v1/tables/gold.movie_stats?limit=5",
        "/v1/users/1/recommendations",
        "/v1/items/1/similar",
    ];
    let mut before = Vec::new();
    for path in warmed {
        let (status, body, _) = get(&serve.base, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        before.push(body);
    }
    proxy.set(Faults {
        down: true,
        ..Faults::default()
    });
    for (path, body) in warmed.iter().zip(&before) {
        let (status, during, _) = get(&serve.base, path).await;
        assert_eq!(
            (status, &during),
            (200, body),
            "{path} while the store is down"
        );
    }
    // A refresh while the store is down fails, and the snapshots it could not replace stay.
    let refresh = reqwest::Client::new()
        .post(format!("{}/v1/admin/refresh", serve.base))
        .send()
        .await
        .unwrap();
    let refreshed: serde_json::Value = refresh.json().await.unwrap();
    assert_eq!(refreshed["moved"], serde_json::json!([]), "{refreshed}");
    let failed: Vec<&str> = refreshed["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["table"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"gold.movie_stats"), "{refreshed}");
    for (path, body) in warmed.iter().zip(&before) {
        let (status, during, _) = get(&serve.base, path).await;
        assert_eq!(
            (status, &during),
            (200, body),
            "{path} after a failed refresh"
        );
    }
    assert_eq!(get(&serve.base, "/health").await.0, 200);
    // What needs the store answers 503 naming the store, in bounded time: never 500, never a hang.
    let unavailable = [
        "/ready",
        "/v1/tables/gold.movie_stats?limit=7",
        "/v1/tables/silver.ratings?limit=3",
    ];
    for path in unavailable {
        let (status, body, took) = get(&serve.base, path).await;
        assert_eq!(
            status,
            503,
            "{path} while the store is down: {body}\n{:#?}",
            serve.log()
        );
        assert!(
            body.contains("object store") || body.contains("cannot be read"),
            "{path}: {body}"
        );
        assert!(
            took < std::time::Duration::from_secs(60),
            "{path} took {took:?}"
        );
    }
    // The store comes back: everything answers, and a new version is picked up.
    proxy.set(Faults::default());
    for path in unavailable {
        let (status, body, _) = get(&serve.base, path).await;
        assert_eq!(status, 200, "{path} after the store came back: {body}");
    }
    let mut ratings = std::fs::read_to_string(project.path("raw/ratings.dat")).unwrap();
    ratings.push_str("1::3::4::978300800\n");
    project.write("raw/ratings.dat", &ratings);
    project.ok(&["run"]);
    let refresh = reqwest::Client::new()
        .post(format!("{}/v1/admin/refresh", serve.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), 200);
    let (_, page, _) = get(&serve.base, "/v1/tables/silver.ratings?limit=1").await;
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["version"], 1, "{page}");
    let log = serve.stop();
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
}
