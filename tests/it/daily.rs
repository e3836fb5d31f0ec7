//! Daily partitions and backfills, on the ad-tech example (`examples/adtech`): run variables,
//! `replace_where` steps, path templates, `strata backfill` and its resume, checked against an
//! independent computation of the top-20 lists from the generated files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::support::project::{Project, repo_dir};
use crate::support::s3::Backend;

const DAYS: [&str; 7] = [
    "2026-11-01",
    "2026-11-02",
    "2026-11-03",
    "2026-11-04",
    "2026-11-05",
    "2026-11-06",
    "2026-11-07",
];

/// A project with the ad-tech example's steps, named queries and sources, and 7 generated days
/// (more clicks than the committed fixture, so click-through rates differ).
pub fn adtech_project() -> Project {
    adtech_project_on(Backend::Local)
}

/// [`adtech_project`] with the lake on `backend` (the raw files stay local).
pub fn adtech_project_on(backend: Backend) -> Project {
    let project = Project::on(backend);
    let example = repo_dir().join("examples/adtech");
    let config = std::fs::read_to_string(example.join("strata.toml")).unwrap();
    let sources = &config[config.find("[sources.").unwrap()..];
    project.write(
        "config/strata.toml",
        &format!(
            "{}[sample]\ngenerate_if_empty = false\n{sources}",
            project.paths()
        ),
    );
    crate::support::project::copy_dir(&example.join("sql"), &project.path("sql"));
    project.ok(&[
        "sample",
        "--kind",
        "adtech",
        "--days",
        "7",
        "--impressions-per-day",
        "6000",
        "--ctr",
        "0.05",
        "--out",
        "raw",
    ]);
    project
}

/// Every row of `table`, as JSON, in one order whatever the files' order.
fn rows(project: &Project, table: &str) -> Vec<Value> {
    sorted(project.query(&format!("SELECT * FROM {table}")))
}

fn sorted(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(|row| row.to_string());
    rows
}

/// `strata backfill` over the week, two days at a time.
const WEEK_TWO_AT_A_TIME: [&str; 7] = [
    "backfill",
    "--from",
    DAYS[0],
    "--to",
    DAYS[6],
    "--concurrency",
    "2",
];

const GOLD: [&str; 3] = [
    "gold.top_ctr",
    "gold.top_product",
    "gold.recommendation_stats",
];

crate::on_every_lake!(
    a_backfill_equals_one_run_per_day_and_its_lists_match_an_independent_computation
);

fn a_backfill_equals_one_run_per_day_and_its_lists_match_an_independent_computation(
    backend: Backend,
) {
    let backfilled = adtech_project_on(backend.clone());
    let out = backfilled.ok(&WEEK_TWO_AT_A_TIME);
    assert!(out.contains("0 done already, 7 to run"), "{out}");
    assert_eq!(out.matches("succeeded").count(), 7, "{out}");

    let day_by_day = adtech_project_on(match backend {
        Backend::Local => Backend::Local,
        Backend::S3 { .. } => Backend::s3().expect("the S3 server answered a moment ago"),
    });
    for day in DAYS {
        day_by_day.ok(&["run", "--var", &format!("ds={day}")]);
    }
    for table in GOLD
        .iter()
        .chain(&["silver.ads_views", "silver.product_views"])
    {
        assert_eq!(
            rows(&backfilled, table),
            rows(&day_by_day, table),
            "{table}: a backfill at concurrency 2 equals seven single-day runs"
        );
    }

    let expected = Expected::compute(&backfilled.path("raw"));
    let top_ctr = backfilled.query(
        "SELECT CAST(date AS VARCHAR) AS date, advertiser_id, rank, product_id, impressions, \
         clicks, ctr FROM gold.top_ctr ORDER BY date, advertiser_id, rank",
    );
    let got = ctr_rows(&top_ctr);
    assert_eq!(got, expected.top_ctr, "gold.top_ctr against plain Rust");
    for row in &top_ctr {
        let ctr = row["clicks"].as_f64().unwrap() / row["impressions"].as_f64().unwrap();
        assert_eq!(row["ctr"].as_f64().unwrap(), ctr);
    }
    assert!(
        top_ctr.iter().any(|r| r["clicks"].as_i64().unwrap() > 1),
        "the data exercises the ranking, not only ties"
    );
    let top_product: Vec<(String, String, i64, String, i64)> = backfilled
        .query(
            "SELECT CAST(date AS VARCHAR) AS date, advertiser_id, rank, product_id, views \
             FROM gold.top_product ORDER BY date, advertiser_id, rank",
        )
        .iter()
        .map(|r| {
            (
                r["date"].as_str().unwrap().to_string(),
                r["advertiser_id"].as_str().unwrap().to_string(),
                r["rank"].as_i64().unwrap(),
                r["product_id"].as_str().unwrap().to_string(),
                r["views"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        top_product, expected.top_product,
        "gold.top_product against plain Rust"
    );

    // Every day's run is recorded with its variables.
    let runs = backfilled.query(
        "SELECT variables FROM system.runs WHERE trigger = 'backfill' AND status = 'succeeded' \
         ORDER BY variables",
    );
    let recorded: Vec<&str> = runs
        .iter()
        .map(|r| r["variables"].as_str().unwrap())
        .collect();
    let wanted: Vec<String> = DAYS.iter().map(|d| format!("{{\"ds\":\"{d}\"}}")).collect();
    assert_eq!(recorded, wanted);

    // A second backfill over done days writes nothing.
    let before = backfilled.versions();
    let out = backfilled.ok(&["backfill", "--from", DAYS[0], "--to", DAYS[6]]);
    assert!(out.contains("7 done already, 0 to run"), "{out}");
    let after = backfilled.versions();
    for (table, version) in &before {
        if !table.starts_with("system.") {
            assert_eq!(after.get(table), Some(version), "{table} was written again");
        }
    }
}

#[test]
fn rerunning_a_day_replaces_that_day_and_leaves_every_other_partition_untouched() {
    let project = adtech_project();
    project.ok(&["backfill", "--from", DAYS[0], "--to", DAYS[6]]);
    let others_before = files_outside(&project, "gold/top_ctr", "date=2026-11-03/");
    let rows_before = rows(&project, "gold.top_ctr");
    let version_before = project.versions()["gold.top_ctr"].0;

    // The day's file changes (its first half of interactions only), and the day runs again.
    let file = project.path("raw/ads_views/2026-11-03.csv");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&file, lines[..lines.len() / 2].join("\n") + "\n").unwrap();
    project.ok(&["run", "--var", "ds=2026-11-03"]);

    let version_after = project.versions()["gold.top_ctr"].0;
    assert_eq!(version_after, version_before + 1, "one new version");
    let log = project.path(&format!(
        "lake/gold/top_ctr/_delta_log/{version_after:020}.json"
    ));
    for action in std::fs::read_to_string(log).unwrap().lines() {
        let action: Value = serde_json::from_str(action).unwrap();
        for kind in ["add", "remove"] {
            if let Some(path) = action[kind]["path"].as_str() {
                assert!(path.starts_with("date=2026-11-03/"), "{kind} {path}");
            }
        }
    }
    assert_eq!(
        files_outside(&project, "gold/top_ctr", "date=2026-11-03/"),
        others_before,
        "the other days' files are the same files"
    );
    let after = rows(&project, "gold.top_ctr");
    let day = |rows: &[Value], same: bool| -> Vec<Value> {
        rows.iter()
            .filter(|r| (r["date"] == "2026-11-03") == same)
            .cloned()
            .collect()
    };
    assert_eq!(
        day(&after, false),
        day(&rows_before, false),
        "other days unchanged"
    );
    assert_ne!(
        day(&after, true),
        day(&rows_before, true),
        "the day was recomputed"
    );
    let expected = Expected::compute(&project.path("raw"));
    let recomputed = ctr_rows(&day(&after, true));
    let mut wanted: Vec<_> = expected
        .top_ctr
        .into_iter()
        .filter(|r| r.0 == "2026-11-03")
        .collect();
    wanted.sort();
    let mut recomputed = recomputed;
    recomputed.sort();
    assert_eq!(recomputed, wanted);
    // Bronze replaced that file's rows only.
    let per_file = project
        .query("SELECT _source_file, count(*) AS n FROM bronze.ads_views GROUP BY 1 ORDER BY 1");
    assert_eq!(per_file.len(), 7);
    assert_eq!(
        per_file[2]["n"].as_i64().unwrap() as usize,
        lines.len() / 2 - 1,
        "{per_file:?}"
    );
}

#[test]
fn a_failed_day_stops_the_backfill_and_resume_runs_only_the_days_not_done() {
    let project = adtech_project();
    let file = project.path("raw/ads_views/2026-11-05.csv");
    let good = std::fs::read_to_string(&file).unwrap();
    // A type the silver step does not accept: its expectation fails on that day only.
    std::fs::write(&file, good.replace(",impression,", ",view,")).unwrap();
    let out = project.strata(&["backfill", "--from", DAYS[0], "--to", DAYS[6]]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("2026-11-05  failed"), "{stdout}");
    assert!(
        !stdout.contains("2026-11-06"),
        "no day after a failed one starts: {stdout}"
    );
    assert!(stderr.contains("strata backfill --resume"), "{stderr}");
    let days =
        project.query("SELECT DISTINCT CAST(date AS VARCHAR) AS d FROM gold.top_ctr ORDER BY 1");
    assert_eq!(days.len(), 4, "{days:?}");

    std::fs::write(&file, good).unwrap();
    let out = project.ok(&["backfill", "--resume", "last"]);
    assert!(out.contains("4 done already, 3 to run"), "{out}");
    for day in ["2026-11-05", "2026-11-06", "2026-11-07"] {
        assert!(out.contains(&format!("{day}  succeeded")), "{out}");
    }
    let clean = adtech_project();
    clean.ok(&["backfill", "--from", DAYS[0], "--to", DAYS[6]]);
    for table in GOLD {
        assert_eq!(rows(&project, table), rows(&clean, table), "{table}");
    }
    let backfills = project.query("SELECT status, days, days_done FROM system.backfills");
    assert_eq!(
        backfills.len(),
        1,
        "a resume continues the same backfill: {backfills:?}"
    );
    assert_eq!(backfills[0]["status"], "succeeded");
    assert_eq!(backfills[0]["days_done"], 7);
}

/// Killed at random moments of a backfill running two days at a time (a seeded fraction of a
/// clean backfill's duration), `--resume last` (or, when the kill came before the backfill was
/// recorded, the backfill again) leaves the lake of a clean backfill: bronze, silver and gold.
/// CI runs a few moments; `STRATA_CRASH_POINTS=N` runs more, `STRATA_CRASH_SEED=S` replays them.
#[test]
fn backfills_killed_at_random_moments_resume_to_the_lake_of_a_clean_one() {
    let (seed, points) = crate::crash::seed_and_points();
    let mut moments = crate::support::seeded::Seeded(seed);
    let backfill = WEEK_TWO_AT_A_TIME;
    let clean = adtech_project();
    let started = std::time::Instant::now();
    clean.ok(&backfill);
    let clean_duration = started.elapsed();
    let tables: Vec<String> = GOLD
        .iter()
        .chain(&["silver.ads_views", "silver.product_views"])
        .map(|t| format!("SELECT * FROM {t}"))
        .chain(
            ["bronze.ads_views", "bronze.product_views"]
                .map(|t| format!("SELECT * EXCLUDE (_ingested_at) FROM {t}")),
        )
        .collect();
    let clean_rows: Vec<Vec<Value>> = tables.iter().map(|sql| sorted(clean.query(sql))).collect();
    let (mut interrupted, mut landed_after) = (0, 0);
    for point in 0..points {
        let fraction = (moments.next() % 1000) as f64 / 1000.0;
        let at = clean_duration.mul_f64(fraction);
        let project = adtech_project();
        let mut child = project.command(&backfill).spawn().unwrap();
        std::thread::sleep(at);
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap();
        child.wait().unwrap();
        let out = project.strata(&["backfill", "--resume", "last"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("no backfill recorded yet") {
            project.ok(&backfill);
        } else {
            assert!(
                out.status.success(),
                "point {point} at {fraction}: {stderr}"
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        if finished || stdout.contains(" 0 to run") {
            landed_after += 1;
        } else {
            interrupted += 1;
        }
        for (sql, want) in tables.iter().zip(&clean_rows) {
            assert_eq!(
                &sorted(project.query(sql)),
                want,
                "point {point} (seed {seed}, at {fraction} of a clean backfill): {sql}"
            );
        }
        let statuses = project.query("SELECT status FROM system.backfills ORDER BY started_at");
        assert_eq!(
            statuses.last().unwrap()["status"],
            "succeeded",
            "point {point}"
        );
    }
    eprintln!(
        "{points} kill points: {interrupted} interrupted the backfill, {landed_after} came after it"
    );
}

#[test]
fn run_variables_are_checked_named_in_errors_and_bound_as_data() {
    let project = adtech_project();
    let out = project.strata(&["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("source ads_views reads the run variable ds")
            && stderr.contains("sql/silver/ads_views.sql reads the run variable ds")
            && stderr.contains("--var"),
        "{stderr}"
    );
    for bad in ["ds=2026-11-31", "ds=yesterday", "ds"] {
        let out = project.strata(&["run", "--var", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--var")
                || String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"),
            "{bad}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = project.strata(&["run", "--var", "ds=2026-11-09"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("raw/ads_views/2026-11-09.csv does not exist"),
        "{stderr}"
    );
    // A resumed run keeps the variables of the run it resumes.
    let out = project.strata(&["run", "--resume", "last"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("raw/ads_views/2026-11-09.csv does not exist"),
        "{stderr}"
    );

    // The graph says which steps read which variables; a variable nobody reads is a warning.
    let dag = project.ok(&["dag"]);
    assert!(
        dag.contains("source ads_views with $ds")
            && dag.contains("reads bronze.ads_views, silver.active_advertisers with $ds"),
        "{dag}"
    );
    let out = project.strata(&[
        "run",
        "--select",
        "silver.active_advertisers",
        "--var",
        "dss=2026-11-01",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no selected step reads these run variables") && stderr.contains("dss"),
        "{stderr}"
    );

    // A text variable is a value, whatever it holds.
    project.write(
        "sql/gold/echo.sql",
        "SELECT $note AS note, $ds AS day, count(*) AS n FROM silver.active_advertisers",
    );
    project.ok(&[
        "run",
        "--var",
        "ds=2026-11-01",
        "--var",
        "note=x' OR '1'='1'; DROP TABLE gold.top_ctr; --",
    ]);
    let echo = project.query("SELECT note, CAST(day AS VARCHAR) AS day FROM gold.echo");
    assert_eq!(
        echo[0]["note"],
        "x' OR '1'='1'; DROP TABLE gold.top_ctr; --"
    );
    assert_eq!(echo[0]["day"], "2026-11-01");
    assert!(project.versions().contains_key("gold.top_ctr"));
}

#[tokio::test(flavor = "multi_thread")]
async fn named_queries_check_their_parameters_bind_them_and_move_with_a_new_day() {
    use crate::api::TestServer;
    use reqwest::StatusCode;

    let project = adtech_project();
    project.ok(&["backfill", "--from", DAYS[0], "--to", DAYS[6]]);
    project.write(
        "sql/api/top.sql",
        "-- The first n products of a day's TopCTR list.\n\
         -- strata: params.n = { type = \"int\", default = 3 }\n\
         -- strata: params.day = \"date\"\n\
         SELECT advertiser_id, rank, product_id FROM gold.top_ctr \
         WHERE date = $day AND rank <= $n ORDER BY advertiser_id, rank",
    );
    let advertiser = project.query("SELECT min(advertiser_id) AS a FROM silver.active_advertisers")
        [0]["a"]
        .as_str()
        .unwrap()
        .to_string();
    let server = TestServer::start(&project, "").await;

    let path = format!("/v1/q/recommendations?advertiser={advertiser}&model=top_ctr");
    let (status, body) = server.get_json(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = project.query(&format!(
        "SELECT rank, product_id FROM gold.top_ctr WHERE advertiser_id = '{advertiser}' \
         AND date = DATE '2026-11-07' ORDER BY rank"
    ));
    let got: Vec<(i64, String)> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["date"], "2026-11-07", "the latest day");
            (
                r["rank"].as_i64().unwrap(),
                r["product_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(i64, String)> = expected
        .iter()
        .map(|r| {
            (
                r["rank"].as_i64().unwrap(),
                r["product_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        body["versions"]["gold.top_ctr"],
        project.versions()["gold.top_ctr"].0
    );
    // The same query at the path it declares, as the original service answered it.
    let (status, at_path) = server
        .get_json(&format!("/v1/recommendations/{advertiser}/top_ctr"))
        .await;
    assert_eq!(status, StatusCode::OK, "{at_path}");
    assert_eq!(at_path["rows"], body["rows"]);
    let (status, refused) = server
        .get_json(&format!("/v1/recommendations/{advertiser}/als"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["code"], "bad_param");

    // Cached and ETagged under the versions it read.
    let response = server.get(&path).await;
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let again = server
        .client
        .get(server.url(&path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    for (query, code, names) in [
        (
            "/v1/q/recommendations?model=top_ctr",
            "missing_param",
            "advertiser",
        ),
        (
            "/v1/q/recommendations?advertiser=a&model=als",
            "bad_param",
            "top_product",
        ),
        (
            "/v1/q/recommendations?advertiser=a&model=top_ctr&k=3",
            "unknown_param",
            "\"k\"",
        ),
        ("/v1/q/top?day=2026-11-02&n=three", "bad_param", "integer"),
        ("/v1/q/top?day=11/02/2026", "bad_param", "YYYY-MM-DD"),
    ] {
        let (status, body) = server.get_json(query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{query}: {message}");
    }
    let (status, body) = server.get_json("/v1/q/top?day=2026-11-02").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["rank"].as_i64().unwrap() <= 3)
    );
    assert_eq!(body["params"]["n"], "3", "the default");
    let (status, body) = server.get_json("/v1/q/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("history, recommendations, stats, top")
    );

    // Injection attempts stay data.
    for attempt in ["x' OR '1'='1", "x'; DROP TABLE gold.top_ctr; --", "$model"] {
        let url = reqwest::Url::parse_with_params(
            &server.url("/v1/q/history"),
            &[("advertiser", attempt)],
        )
        .unwrap();
        let response = server.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{attempt}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["rows"], serde_json::json!([]), "{attempt}");
        assert_eq!(body["params"]["advertiser"], attempt);
    }
    assert!(project.versions().contains_key("gold.top_ctr"));

    // Listed in the OpenAPI document with their parameters.
    let (_, openapi) = server.get_json("/openapi.json").await;
    let parameters = &openapi["paths"]["/v1/q/recommendations"]["get"]["parameters"];
    let names: Vec<&str> = parameters
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["advertiser", "model"]);
    assert_eq!(
        parameters[1]["schema"]["enum"],
        serde_json::json!(["top_ctr", "top_product"])
    );
    let at_path =
        &openapi["paths"]["/v1/recommendations/{advertiser}/{model}"]["get"]["parameters"];
    assert_eq!(at_path[0]["in"], "path");
    assert_eq!(at_path[1]["in"], "path");
    let top = &openapi["paths"]["/v1/q/top"]["get"]["parameters"];
    assert_eq!(top[0]["schema"]["format"], "date");
    assert_eq!(top[1]["required"], false);

    // A new day lands: a new version, a new ETag, the new latest day.
    project.ok(&[
        "sample",
        "--kind",
        "adtech",
        "--days",
        "8",
        "--impressions-per-day",
        "6000",
        "--ctr",
        "0.05",
        "--out",
        "raw",
    ]);
    // The day runs from the dashboard's form, with its variable.
    let started = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(server.url("/ui/runs"))
        .header("origin", server.url(""))
        .form(&[("variables", "ds=2026-11-08")])
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let run_id = started.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/ui/runs/")
        .to_string();
    let run = server.wait_for_run_as(&run_id, "").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["variables"], r#"{"ds":"2026-11-08"}"#, "{run}");
    let page = server
        .get(&format!("/ui/runs/{run_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("ds=2026-11-08"),
        "the run page shows its variables"
    );
    let (status, _) = server.post_json("/v1/admin/refresh").await;
    assert_eq!(status, StatusCode::OK);
    let response = server
        .client
        .get(server.url(&path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the old ETag no longer matches"
    );
    assert_ne!(response.headers()["etag"].to_str().unwrap(), etag);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["rows"][0]["date"], "2026-11-08");
    let (_, history) = server
        .get_json(&format!("/v1/q/history?advertiser={advertiser}"))
        .await;
    let days: BTreeSet<&str> = history["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["date"].as_str().unwrap())
        .collect();
    assert_eq!(days.len(), 7, "the last 7 days: {days:?}");
    assert!(days.contains("2026-11-08") && !days.contains("2026-11-01"));
    let (_, stats) = server.get_json("/v1/q/stats").await;
    assert_eq!(stats["rows"][0]["date"], "2026-11-08");
    assert_eq!(stats["rows"].as_array().unwrap().len(), 7);
}

/// `gold.top_ctr` rows as (date, advertiser, rank, product, impressions, clicks).
fn ctr_rows(rows: &[Value]) -> Vec<(String, String, i64, String, i64, i64)> {
    rows.iter()
        .map(|r| {
            (
                r["date"].as_str().unwrap().to_string(),
                r["advertiser_id"].as_str().unwrap().to_string(),
                r["rank"].as_i64().unwrap(),
                r["product_id"].as_str().unwrap().to_string(),
                r["impressions"].as_i64().unwrap(),
                r["clicks"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The files of a Delta table's current version outside `partition` (replaying its log).
fn files_outside(project: &Project, table: &str, partition: &str) -> BTreeSet<String> {
    let log = project.path(&format!("lake/{table}/_delta_log"));
    let mut commits: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    commits.sort();
    let mut files = BTreeSet::new();
    for commit in commits {
        for line in std::fs::read_to_string(commit).unwrap().lines() {
            let action: Value = serde_json::from_str(line).unwrap();
            if let Some(path) = action["add"]["path"].as_str() {
                files.insert(path.to_string());
            }
            if let Some(path) = action["remove"]["path"].as_str() {
                files.remove(path);
            }
        }
    }
    files.retain(|f| !f.starts_with(partition));
    files
}

/// The top-20 lists computed from the raw files in plain Rust.
struct Expected {
    /// (date, advertiser, rank, product, impressions, clicks), ordered.
    top_ctr: Vec<(String, String, i64, String, i64, i64)>,
    /// (date, advertiser, rank, product, views), ordered.
    top_product: Vec<(String, String, i64, String, i64)>,
}

impl Expected {
    fn compute(raw: &Path) -> Expected {
        let active: BTreeSet<String> = std::fs::read_to_string(raw.join("advertiser_ids.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect();
        let mut top_ctr = Vec::new();
        let mut top_product = Vec::new();
        for day in DAYS {
            // advertiser -> product -> (impressions, clicks)
            let mut ads: BTreeMap<String, BTreeMap<String, (i64, i64)>> = BTreeMap::new();
            let text = std::fs::read_to_string(raw.join(format!("ads_views/{day}.csv"))).unwrap();
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split(',').collect();
                if !active.contains(f[0]) || f[3] != day {
                    continue;
                }
                let counts = ads
                    .entry(f[0].to_string())
                    .or_default()
                    .entry(f[1].to_string())
                    .or_default();
                match f[2] {
                    "impression" => counts.0 += 1,
                    "click" => counts.1 += 1,
                    other => panic!("{other}"),
                }
            }
            for (advertiser, products) in ads {
                let mut ranked: Vec<(String, i64, i64)> = products
                    .into_iter()
                    .filter(|(_, (i, _))| *i > 0)
                    .map(|(p, (i, c))| (p, i, c))
                    .collect();
                ranked.sort_by(|a, b| {
                    let (ra, rb) = (a.2 as f64 / a.1 as f64, b.2 as f64 / b.1 as f64);
                    rb.partial_cmp(&ra).unwrap().then_with(|| a.0.cmp(&b.0))
                });
                for (rank, (product, impressions, clicks)) in
                    ranked.into_iter().take(20).enumerate()
                {
                    top_ctr.push((
                        day.to_string(),
                        advertiser.clone(),
                        rank as i64 + 1,
                        product,
                        impressions,
                        clicks,
                    ));
                }
            }
            let mut views: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
            let text =
                std::fs::read_to_string(raw.join(format!("product_views/{day}.csv"))).unwrap();
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split(',').collect();
                if active.contains(f[0]) && f[2] == day {
                    *views
                        .entry(f[0].to_string())
                        .or_default()
                        .entry(f[1].to_string())
                        .or_default() += 1;
                }
            }
            for (advertiser, products) in views {
                let mut ranked: Vec<(String, i64)> = products.into_iter().collect();
                ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                for (rank, (product, n)) in ranked.into_iter().take(20).enumerate() {
                    top_product.push((
                        day.to_string(),
                        advertiser.clone(),
                        rank as i64 + 1,
                        product,
                        n,
                    ));
                }
            }
        }
        Expected {
            top_ctr,
            top_product,
        }
    }
}
