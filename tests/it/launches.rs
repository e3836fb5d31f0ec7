//! The launches example (`examples/launches/`) end to end: the real binary fetches from a real
//! local HTTP server (`strata::fixtures`, the same one `strata fixtures serve` runs) that pages its
//! answers and fails the first requests with 429 and 500.

use std::path::Path;

use crate::support::project::{copy_dir, repo_dir, strata_command};

/// Serves `dir` on 127.0.0.1:0 from a background thread; returns the base URL. The server lives
/// as long as the test process.
fn fixture_server(dir: &Path, failures: Vec<u16>) -> String {
    let dir = dir.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let (addr, serving) =
                strata::fixtures::bind(&dir, "127.0.0.1:0".parse().unwrap(), failures)
                    .await
                    .unwrap();
            tx.send(addr).unwrap();
            serving.await;
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

struct Example {
    dir: tempfile::TempDir,
    api: String,
}

impl Example {
    fn strata(&self, args: &[&str]) -> std::process::Output {
        strata_command(self.dir.path())
            .arg("--config")
            .arg("strata.toml")
            .args(args)
            .env("SPACEX_API", &self.api)
            // Pages of 10 (28 launches: 3 pages) and quick retries, on top of the example's file.
            .env("STRATA_SOURCES__LAUNCHES__BODY__OPTIONS__LIMIT", "10")
            .env("STRATA_SOURCES__LAUNCHES__RETRY_BACKOFF", "20ms")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.strata(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        assert!(
            out.status.success(),
            "strata {args:?} failed:\n{stdout}\n{stderr}"
        );
        (stdout, stderr)
    }

    fn query(&self, sql: &str) -> serde_json::Value {
        let (out, _) = self.ok(&["query", sql, "--format", "json"]);
        serde_json::from_str(&out).unwrap()
    }

    fn line<'a>(&self, out: &'a str, table: &str) -> &'a str {
        out.lines()
            .find(|l| l.starts_with(&format!("{table} ")))
            .unwrap_or_else(|| panic!("no line for {table} in:\n{out}"))
    }

    fn fixture(&self) -> std::path::PathBuf {
        self.dir.path().join("fixtures/launches.json")
    }
}

fn example(failures: Vec<u16>) -> Example {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_dir().join("examples/launches"), dir.path());
    let api = fixture_server(&dir.path().join("fixtures"), failures);
    Example { dir, api }
}

#[test]
fn launches_are_paged_retried_kept_nested_and_merged_on_id() {
    // The first request answers 429, the second 500: the launches source retries through both.
    let example = example(vec![429, 500]);
    let (out, stderr) = example.ok(&["run"]);
    let bronze = example.line(&out, "bronze.launches");
    assert!(
        bronze.contains("committed") && bronze.contains("28 record(s) from 3 page(s)"),
        "{bronze}"
    );
    assert!(
        stderr.contains("429") && stderr.contains("500") && stderr.contains("retry 2 of 4"),
        "{stderr}"
    );
    // On a pipe there are no live progress lines, only the step lines.
    assert!(!stderr.contains("steps done"), "{stderr}");
    for table in [
        "silver.launches",
        "gold.launch_success_by_rocket",
        "gold.launch_success_by_year",
        "gold.launches_by_launchpad",
        "gold.time_between_launches",
    ] {
        assert!(example.line(&out, table).contains("committed"), "{out}");
    }

    // Nested fields stay nested in bronze: lists of structs, structs of structs.
    let types = example.query(
        "SELECT arrow_typeof(cores) AS cores, arrow_typeof(links) AS links, \
         cores[1]['core'] AS first_core, _request_url FROM bronze.launches WHERE flight_number = 1",
    );
    assert!(
        types[0]["cores"]
            .as_str()
            .unwrap()
            .starts_with("List(Struct"),
        "{types}"
    );
    assert!(
        types[0]["links"].as_str().unwrap().starts_with("Struct"),
        "{types}"
    );
    assert!(types[0]["first_core"].is_string(), "{types}");
    assert!(
        types[0]["_request_url"]
            .as_str()
            .unwrap()
            .ends_with("/v4/launches/query"),
        "{types}"
    );

    let falcon1 = example.query(
        "SELECT launches, successes FROM gold.launch_success_by_rocket WHERE rocket = 'Falcon 1'",
    );
    assert_eq!(
        falcon1,
        serde_json::json!([{"launches": 5, "successes": 2}])
    );
    let first = example.query(
        "SELECT failure_reason, rocket, launchpad FROM silver.launches WHERE flight_number = 1",
    );
    assert_eq!(
        first,
        serde_json::json!([{"failure_reason": "merlin engine failure", "rocket": "Falcon 1",
            "launchpad": "Kwajalein Atoll"}])
    );

    // A refetch of unchanged data commits nothing.
    let (out, _) = example.ok(&["run"]);
    assert!(
        example
            .line(&out, "bronze.launches")
            .contains("none new or changed"),
        "{out}"
    );

    // One launch flew, one is new: only those two are merged; nothing is duplicated.
    let mut launches: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(example.fixture()).unwrap()).unwrap();
    let flown = launches
        .iter_mut()
        .find(|l| l["name"] == "Upcoming Mission A")
        .unwrap();
    flown["upcoming"] = false.into();
    flown["success"] = true.into();
    let mut new = launches.last().unwrap().clone();
    new["id"] = "ffffffffffffffffffffffff".into();
    new["name"] = "Brand New Mission".into();
    new["flight_number"] = 29.into();
    launches.push(new);
    std::fs::write(example.fixture(), serde_json::to_string(&launches).unwrap()).unwrap();

    let (out, _) = example.ok(&["run"]);
    let bronze = example.line(&out, "bronze.launches");
    assert!(
        bronze.contains("29 record(s) from 3 page(s), 2 new or changed") && bronze.contains("v1"),
        "{bronze}"
    );
    let counts = example.query(
        "SELECT count(*) AS n, count(DISTINCT id) AS ids, \
         count(*) FILTER (WHERE name = 'Upcoming Mission A' AND success) AS flown \
         FROM bronze.launches",
    );
    assert_eq!(
        counts,
        serde_json::json!([{"n": 29, "ids": 29, "flown": 1}])
    );
    let (history, _) = example.ok(&["history", "bronze.launches", "--format", "json"]);
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    assert_eq!(history[0]["operation"], "MERGE", "{history}");
}

#[test]
fn on_a_terminal_a_run_shows_which_step_of_how_many_and_a_live_line_for_a_long_step() {
    // Two failed requests and slow retries keep bronze.launches running for seconds.
    let example = example(vec![429, 500]);
    let command = format!(
        "{} --config strata.toml run --select bronze.launches",
        env!("CARGO_BIN_EXE_strata")
    );
    // `script` runs the command on a pseudo-terminal and copies what it drew to stdout.
    let mut script = std::process::Command::new("script");
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("STRATA_")) {
        script.env_remove(key);
    }
    let out = script
        .current_dir(example.dir.path())
        .env("SPACEX_API", &example.api)
        .env("STRATA_SOURCES__LAUNCHES__RETRY_BACKOFF", "700ms")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .output();
    let out = out.unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("of 1 steps done"), "{screen}");
    assert!(
        screen.contains("step 1 of 1 bronze.launches  fetching"),
        "{screen}"
    );
    assert!(screen.contains("committed"), "{screen}");
}

#[test]
fn a_failing_api_fails_the_step_naming_the_url_and_commits_nothing() {
    // More failures than retries.
    let example = example(vec![503; 6]);
    let out = example.strata(&["run", "--select", "bronze.launches"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/v4/launches/query")
            && stderr.contains("503")
            && stderr.contains("after 5 attempt(s)"),
        "{stderr}"
    );
    let (tables, _) = example.ok(&["tables", "--format", "json"]);
    assert!(!tables.contains("bronze.launches\""), "{tables}");
}
