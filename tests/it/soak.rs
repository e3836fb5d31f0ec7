//! The soak (issue 18): the real `strata serve` binary under mixed load (table pages, SQL,
//! recommendations, predictions, row appends) while a pipeline run starts every 30 s.
//!
//! Asserted: zero 5xx and no dropped connection; every run succeeds; nothing at ERROR level (and no
//! panic) in the server's log; open file descriptors and (in soaks of 5 minutes or more) resident
//! memory flat after warm-up: in the last quarter against the quarter after warm-up, the fewest
//! descriptors at most 8 more, the median memory at most 10% more (floors and medians, so that a
//! run's transient files and buffers do not count). Printed: p50/p99/max latency and count per route, memory and descriptors.
//!
//! ```sh
//! cargo test --test it soak -- --nocapture                          # CI: 60 s
//! bench/soak/run.sh                                                 # 10 minutes, release binary
//! ```
//! `STRATA_SOAK_SECONDS` sets the length, `STRATA_SOAK_BIN` the binary soaked (default: the one
//! this test binary was built with), `STRATA_SOAK_REPORT` a file for the figures as JSON.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::project::Project;
use crate::support::serve::{ServeProcess, finished_run};

/// Time between pipeline runs, as the issue asks.
const RUN_EVERY: Duration = Duration::from_secs(30);
/// Soaks at least this long assert that memory stays flat.
const MEMORY_CHECKED_FROM_SECONDS: u64 = 300;
/// Concurrent clients of the read routes.
const CLIENTS: usize = 6;

/// Resident memory (KiB) and open descriptors of a process, from /proc.
fn memory_and_descriptors(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}

/// What the descriptors of a process point at, counted by kind (`socket`, `pipe`, a file's
/// directory...): the detail for a failed descriptor check.
fn descriptor_kinds(pid: u32) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        let target = target.display().to_string();
        let kind = match target.split_once(':') {
            Some((kind, _)) if !target.starts_with('/') => kind.to_string(),
            _ => Path::new(&target)
                .parent()
                .map_or(target.clone(), |p| p.display().to_string()),
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

/// One request of the mix; the route label groups latencies.
fn request(
    client: &reqwest::Client,
    base: &str,
    i: u64,
) -> (&'static str, reqwest::RequestBuilder) {
    let user = 1 + i * 7919 % 600;
    match i % 10 {
        0..=2 => (
            "GET /v1/tables/{t}",
            client.get(format!(
                "{base}/v1/tables/gold.movie_stats?order_by=-avg_rating&limit=20&offset={}",
                i % 50
            )),
        ),
        3 => (
            "GET /v1/tables/{t} csv",
            client.get(format!(
                "{base}/v1/tables/silver.ratings?filter=user_id:eq:{user}&format=csv"
            )),
        ),
        4 | 5 => (
            "GET /v1/users/{u}/recommendations",
            client.get(format!("{base}/v1/users/{user}/recommendations?k=10")),
        ),
        6 => (
            "POST /v1/query",
            client.post(format!("{base}/v1/query")).json(&json!({
                "sql": format!("SELECT movie_id, count(*) AS n, avg(rating) AS r FROM silver.ratings \
                                WHERE user_id <= {user} GROUP BY movie_id ORDER BY n DESC LIMIT 5")
            })),
        ),
        7 | 8 => (
            "POST /v1/models/{m}/predict",
            client
                .post(format!("{base}/v1/models/user_gender/predict"))
                .json(&json!([{"age": 25, "occupation": i % 21}, {"age": 56, "occupation": 7}])),
        ),
        _ => (
            "GET /v1/runs",
            client.get(format!("{base}/v1/runs?limit=5")),
        ),
    }
}

#[derive(Default)]
struct Figures {
    latencies: BTreeMap<&'static str, Vec<f64>>,
    server_errors: Vec<String>,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_soaks_under_mixed_load_with_a_run_every_30_seconds() {
    let seconds: u64 = std::env::var("STRATA_SOAK_SECONDS")
        .map(|s| s.parse().expect("STRATA_SOAK_SECONDS: whole seconds"))
        .unwrap_or(60);
    let length = Duration::from_secs(seconds);
    let project = tokio::task::spawn_blocking(|| {
        let project = Project::generated(
            "users = 600\nitems = 400\nratings = 60000\nseed = 11",
            "[steps.\"gold.recommendations\"]\nthreads = 2\nfactors = 8\n",
        );
        project.add_user_gender_classifier(20);
        // A small response cache fills during warm-up, so a flat memory after it means something
        // (entries of every new version are what a bounded cache holds, up to its bound).
        let config = project.path("config/strata.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str("\n[serve]\ncache_max_mb = 2\n");
        std::fs::write(&config, text).unwrap();
        project.ok(&["run"]);
        project
    })
    .await
    .unwrap();
    let binary = std::env::var("STRATA_SOAK_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_strata").to_string());
    let serve = ServeProcess::start(Path::new(&binary), &project, &[]);
    let pid = serve.pid();
    let base = serve.base.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let figures = Arc::new(Mutex::new(Figures::default()));
    let started = Instant::now();
    let deadline = started + length;

    let mut clients = Vec::new();
    for c in 0..CLIENTS as u64 {
        let (client, base, figures) = (client.clone(), base.clone(), Arc::clone(&figures));
        clients.push(tokio::spawn(async move {
            let mut i = c;
            while Instant::now() < deadline {
                let (route, request) = request(&client, &base, i);
                i += CLIENTS as u64;
                let sent = Instant::now();
                let outcome = match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        let body = response.bytes().await;
                        match body {
                            Ok(_) if !status.is_server_error() => Ok(()),
                            Ok(body) => Err(format!(
                                "{route}: {status} {}",
                                String::from_utf8_lossy(&body)
                            )),
                            Err(e) => Err(format!("{route}: body cut off: {e}")),
                        }
                    }
                    Err(e) => Err(format!("{route}: {e}")),
                };
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                let mut figures = figures.lock().unwrap();
                figures.latencies.entry(route).or_default().push(ms);
                if let Err(e) = outcome {
                    figures.server_errors.push(e);
                }
            }
        }));
    }

    // Row appends: one new rating a second, as an application would post them.
    let appender = {
        let (client, base, figures) = (client.clone(), base.clone(), Arc::clone(&figures));
        tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let rating = json!([{"user_id": 1 + n % 600, "movie_id": 1 + n % 400,
                                     "rating": 1 + n % 5, "timestamp": 1_700_000_000 + n}]);
                let sent = Instant::now();
                let response = client
                    .post(format!("{base}/v1/tables/bronze.ratings/rows"))
                    .json(&rating)
                    .send()
                    .await;
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                let outcome = match response {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!(
                        "POST /v1/tables/{{t}}/rows: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => Err(format!("POST /v1/tables/{{t}}/rows: {e}")),
                };
                {
                    let mut figures = figures.lock().unwrap();
                    figures
                        .latencies
                        .entry("POST /v1/tables/{t}/rows")
                        .or_default()
                        .push(ms);
                    if let Err(e) = outcome {
                        figures.server_errors.push(e);
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // Pipeline runs, every 30 s from the start.
    let runner = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let mut runs: Vec<Value> = Vec::new();
            let mut next = Instant::now();
            while next < deadline {
                tokio::time::sleep_until(next.into()).await;
                next += RUN_EVERY;
                let response = client.post(format!("{base}/v1/runs")).send().await.unwrap();
                let status = response.status();
                let started: Value = response.json().await.unwrap_or(Value::Null);
                assert!(status.is_success(), "POST /v1/runs: {status} {started}");
                let id = started["run_id"].as_str().expect("a run id").to_string();
                runs.push(finished_run(&client, &base, &id, Duration::from_millis(250)).await);
            }
            runs
        })
    };

    // Memory and descriptors, once a second.
    let mut samples: Vec<(f64, u64, usize)> = Vec::new();
    while Instant::now() < deadline {
        let (rss, fds) = memory_and_descriptors(pid);
        samples.push((started.elapsed().as_secs_f64(), rss, fds));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for c in clients {
        c.await.unwrap();
    }
    appender.await.unwrap();
    let runs = runner.await.unwrap();

    let figures = figures.lock().unwrap();
    let mut report = serde_json::Map::new();
    eprintln!("soak: {seconds} s, {} runs", runs.len());
    for (route, latencies) in &figures.latencies {
        let mut sorted = latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let (p50, p99, max) = (
            quantile(&sorted, 0.5),
            quantile(&sorted, 0.99),
            sorted[sorted.len() - 1],
        );
        eprintln!(
            "  {route:<36} {:>7} requests  p50 {p50:>7.1} ms  p99 {p99:>7.1} ms  max {max:>7.1} ms",
            sorted.len()
        );
        report.insert(
            route.to_string(),
            json!({"requests": sorted.len(), "p50_ms": p50, "p99_ms": p99, "max_ms": max}),
        );
    }
    // Two windows compared: memory by its median (a run's buffers pass, a leak stays), descriptors
    // by their floor (a run holds many files while it runs, which the median still sees when runs
    // take half the window; a leaked descriptor raises the floor between runs).
    let window_median = |from: f64, to: f64| {
        let in_window = |t: f64| t >= from * seconds as f64 && t <= to * seconds as f64;
        let mut rss: Vec<u64> = samples
            .iter()
            .filter(|s| in_window(s.0))
            .map(|s| s.1)
            .collect();
        let fds = samples.iter().filter(|s| in_window(s.0)).map(|s| s.2).min();
        rss.sort_unstable();
        (rss[rss.len() / 2], fds.unwrap_or(0))
    };
    let (rss_warm, fds_warm) = window_median(0.25, 0.5);
    let (rss_end, fds_end) = window_median(0.75, 1.0);
    eprintln!(
        "  memory (median) after warm-up {} MiB, at the end {} MiB; descriptors (fewest) {fds_warm} -> {fds_end}",
        rss_warm / 1024,
        rss_end / 1024
    );
    report.insert(
        "process".into(),
        json!({"rss_kib_after_warmup": rss_warm, "rss_kib_end": rss_end,
               "fds_after_warmup": fds_warm, "fds_end": fds_end, "samples": samples}),
    );
    report.insert("runs".into(), json!(runs));
    if let Ok(path) = std::env::var("STRATA_SOAK_REPORT") {
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    }

    assert!(
        figures.server_errors.is_empty(),
        "{} failed requests, first: {:?}",
        figures.server_errors.len(),
        &figures.server_errors[..figures.server_errors.len().min(5)]
    );
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    let descriptors = descriptor_kinds(pid);
    let log = serve.stop();
    let errors: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("ERROR") || l.contains("panicked"))
        .collect();
    assert!(errors.is_empty(), "errors in the server's log: {errors:?}");
    // A minute is too short to tell growth from warm-up: the CI variant prints memory, the long
    // soak holds it to the bound (and fails today: RELIABILITY.md, "Soak").
    if seconds >= MEMORY_CHECKED_FROM_SECONDS {
        assert!(
            rss_end as f64 <= rss_warm as f64 * 1.10,
            "memory grew: {rss_warm} KiB after warm-up, {rss_end} KiB at the end"
        );
    }
    assert!(
        fds_end <= fds_warm + 8,
        "descriptors grew: {fds_warm} after warm-up, {fds_end} at the end; now {descriptors:?}"
    );
}
