//! `strata run` end to end through the real binary: idempotence, failures that leave every version
//! unchanged, rejects, cycles, time travel, restore.

use crate::support::project::{Project, latin1};
use crate::support::s3::Backend;

// The core promises hold on both lakes: local disk and S3 (a real server, see `s3.rs`).
crate::on_every_lake!(
    run_builds_every_layer_and_a_rerun_changes_nothing,
    broken_sql_fails_the_step_and_leaves_every_version_unchanged,
    time_travel_functions_and_restore_return_old_rows,
);

fn run_builds_every_layer_and_a_rerun_changes_nothing(backend: Backend) {
    let project = Project::movielens_on(backend);
    let out = project.ok(&["run"]);
    for table in [
        "bronze.ratings",
        "silver.ratings",
        "silver.movies",
        "silver.movie_ratings",
        "gold.movie_stats",
        "gold.genre_popularity",
        "gold.top_movies",
        "silver.als_input",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{table} ")))
            .unwrap_or_else(|| panic!("no line for {table} in:\n{out}"));
        assert!(line.contains("committed") && line.contains(" ms"), "{line}");
    }
    let first = project.versions();
    assert_eq!(first["bronze.ratings"], (0, 20));
    assert_eq!(first["silver.ratings"].1, 20);
    assert_eq!(first["gold.movie_stats"].1, 4, "movie 5 has no ratings");

    let out = project.ok(&["run"]);
    assert!(
        out.lines().all(|l| l.contains("unchanged")),
        "a rerun on unchanged input must write nothing:\n{out}"
    );
    let second = project.versions();
    for (table, (version, rows)) in &first {
        if table == "system.runs" || table == "system.step_runs" {
            continue;
        }
        assert_eq!(second[table], (*version, *rows), "{table} changed on rerun");
    }
}

#[test]
fn latin1_titles_are_decoded_and_years_split() {
    let project = Project::movielens();
    project.ok(&["run", "--select", "bronze.movies", "silver.movies"]);
    let rows = project.query("SELECT title, year, genres FROM silver.movies WHERE movie_id = 3");
    assert_eq!(rows[0]["title"], "Café au lait (Métisse)");
    assert_eq!(rows[0]["year"], 1993);
    assert_eq!(rows[0]["genres"], serde_json::json!(["Comedy"]));
}

#[test]
fn a_pair_rated_again_keeps_only_its_latest_rating() {
    let project = Project::movielens();
    let mut ratings = crate::support::project::RATINGS.to_string();
    ratings.push_str("1::1::2::978400000\n"); // later than the 5 it replaces
    ratings.push_str("1::2::5::978000000\n"); // earlier than the 3 already there: ignored
    ratings.push_str("2::1::9::978900000\n"); // the latest is out of range: the pair goes
    ratings.push_str("3::1::1::\n"); // no timestamp counts as the latest (ORDER BY ... NULLS LAST)
    project.write_raw("ratings.dat", ratings.as_bytes());
    project.ok(&["run"]);
    let rows = project.query(
        "SELECT user_id, movie_id, rating, rated_at = to_timestamp_seconds(978400000) AS latest \
         FROM silver.ratings WHERE user_id IN (1, 2, 3) AND movie_id IN (1, 2) \
         ORDER BY user_id, movie_id",
    );
    let got: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_i64().unwrap();
            (field("user_id"), field("movie_id"), field("rating"))
        })
        .collect();
    assert_eq!(got, [(1, 1, 2), (1, 2, 3), (2, 2, 2), (3, 1, 1), (3, 2, 5)]);
    assert_eq!(
        rows[0]["latest"], true,
        "rated_at is the latest rating's time"
    );
    // The 20 pairs of the set, less the one whose latest rating is out of range.
    assert_eq!(project.count("SELECT count(*) FROM silver.ratings"), 19);
}

#[test]
fn bad_rows_go_to_rejects_with_line_and_reason() {
    let project = Project::movielens();
    project.write(
        "config/strata.toml",
        "[lake]\nroot = \"../lake\"\n[ingest]\nraw_dir = \"../raw\"\nmax_reject_fraction = 0.5\n\
         [sql]\ndir = \"../sql\"\n[sample]\ngenerate_if_empty = false\n",
    );
    let mut ratings = crate::support::project::RATINGS.to_string();
    ratings.push_str("6::1::5\n6::x::4::978300760\n\n6::2::4::978300760\n");
    let mut bytes = ratings.into_bytes();
    bytes.extend_from_slice(&latin1("6::3::é::978300760\n"));
    project.write_raw("ratings.dat", &bytes);
    let out = project.ok(&["run"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("bronze.ratings "))
        .unwrap();
    assert!(line.contains("4 rejected line(s)"), "{line}");

    let rejects = project
        .query("SELECT _source_file, line, raw, reason FROM bronze.ratings__rejects ORDER BY line");
    let lines: Vec<i64> = rejects
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [21, 22, 23, 25]);
    assert_eq!(rejects[0]["raw"], "6::1::5");
    assert_eq!(rejects[0]["_source_file"], "ratings.dat");
    assert!(
        rejects[0]["reason"].as_str().unwrap().contains("fields"),
        "{rejects:?}"
    );
    assert!(
        rejects[1]["reason"].as_str().unwrap().contains("movie_id"),
        "{rejects:?}"
    );
    assert_eq!(rejects[3]["raw"], "6::3::é::978300760");
    // The good rows are all there: 20 + the one good line.
    assert_eq!(
        project.count("SELECT count(*) AS n FROM bronze.ratings"),
        21
    );
}

#[test]
fn too_many_rejects_fail_the_ingest_and_commit_nothing() {
    let project = Project::movielens();
    project.ok(&["run"]);
    let before = project.versions();
    project.write_raw("ratings.dat", b"1::1::5::978300760\nbroken\nalso broken\n");
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_reject_fraction"), "{stderr}");
    assert!(stderr.contains("ratings.dat:2"), "{stderr}");
    let after = project.versions();
    for (table, state) in &before {
        if table != "system.runs" && table != "system.step_runs" {
            assert_eq!(
                &after[table], state,
                "{table} changed after a failed ingest"
            );
        }
    }
}

#[test]
fn a_changed_file_replaces_only_its_own_rows() {
    let project = Project::movielens();
    project.write(
        "config/strata.toml",
        "[lake]\nroot = \"../lake\"\n[ingest]\nraw_dir = \"../raw\"\n[sql]\ndir = \"../sql\"\n\
         [sample]\ngenerate_if_empty = false\n\
         [sources.events]\nformat = \"csv\"\npath = \"events\"\ncolumns = \"id bigint, kind string\"\n",
    );
    std::fs::remove_dir_all(project.path("sql")).unwrap();
    project.write_raw("events/a.csv", b"id,kind\n1,click\n2,view\n");
    project.write_raw("events/b.csv", b"id,kind\n3,click\n");
    project.ok(&["run"]);
    assert_eq!(project.count("SELECT count(*) AS n FROM bronze.events"), 3);

    project.write_raw("events/a.csv", b"id,kind\n1,click\n2,view\n4,buy\n");
    let out = project.ok(&["run"]);
    assert!(out.contains("1 file(s) ingested, 1 unchanged"), "{out}");
    let rows = project.query("SELECT id, _source_file FROM bronze.events ORDER BY id");
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    let log = project.query("SELECT path FROM system.ingested_files ORDER BY ingested_at, path");
    assert_eq!(log.len(), 3, "{log:?}");
}

fn broken_sql_fails_the_step_and_leaves_every_version_unchanged(backend: Backend) {
    let project = Project::movielens_on(backend);
    project.ok(&["run"]);
    let before = project.versions();
    // A real change upstream, so the steps would otherwise commit.
    let mut ratings = crate::support::project::RATINGS.to_string();
    ratings.push_str("6::5::4::978300760\n");
    project.write_raw("ratings.dat", ratings.as_bytes());
    project.write(
        "sql/gold/movie_stats.sql",
        "SELECT movie_id, count(ratng) AS n FROM silver.movie_ratings GROUP BY movie_id",
    );
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("movie_stats.sql"), "{stderr}");
    assert!(stderr.contains("ratng"), "{stderr}");
    let skipped = stdout
        .lines()
        .find(|l| l.starts_with("gold.top_movies "))
        .unwrap();
    assert!(skipped.contains("skipped"), "{stdout}");
    let after = project.versions();
    assert_eq!(after["gold.movie_stats"], before["gold.movie_stats"]);
    assert_eq!(after["gold.top_movies"], before["gold.top_movies"]);
    // Independent branches still ran.
    assert_eq!(after["silver.ratings"].0, before["silver.ratings"].0 + 1);
}

#[test]
fn failed_expectation_names_step_and_rows_and_commits_nothing() {
    let project = Project::movielens();
    project.ok(&["run"]);
    let before = project.versions();
    project.write(
        "sql/gold/low_ratings.sql",
        "-- strata: expect.checks = [\"rating >= 2\"]\n\
         SELECT user_id, movie_id, rating FROM silver.ratings",
    );
    project.write(
        "sql/gold/low_ratings_report.sql",
        "SELECT count(*) AS n FROM gold.low_ratings",
    );
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("step gold.low_ratings"), "{stderr}");
    assert!(stderr.contains("check(rating >= 2)"), "{stderr}");
    assert!(stderr.contains("2 violation(s)"), "{stderr}");
    assert!(stderr.contains(r#""rating":1"#), "{stderr}");
    let after = project.versions();
    assert!(!after.contains_key("gold.low_ratings"));
    assert!(!after.contains_key("gold.low_ratings_report"));
    for (table, state) in &before {
        if table != "system.runs" && table != "system.step_runs" {
            assert_eq!(&after[table], state);
        }
    }
}

#[test]
fn cycles_and_unknown_tables_are_reported_with_file_names() {
    let project = Project::new();
    project.write("sql/silver/a.sql", "SELECT * FROM silver.b");
    project.write("sql/silver/b.sql", "SELECT * FROM silver.a");
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cycle"), "{stderr}");
    assert!(
        stderr.contains("a.sql") && stderr.contains("b.sql"),
        "{stderr}"
    );

    let project = Project::new();
    project.write("sql/gold/x.sql", "SELECT * FROM silver.nowhere");
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("x.sql") && stderr.contains("silver.nowhere"),
        "{stderr}"
    );
}

fn time_travel_functions_and_restore_return_old_rows(backend: Backend) {
    let project = Project::movielens_on(backend);
    project.ok(&["run"]);
    let history: serde_json::Value =
        serde_json::from_str(&project.ok(&["history", "silver.ratings", "--format", "json"]))
            .unwrap();
    let v0_time = history[0]["timestamp"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));

    let mut ratings = crate::support::project::RATINGS.to_string();
    ratings.push_str("6::5::4::978300760\n6::1::3::978300760\n");
    project.write_raw("ratings.dat", ratings.as_bytes());
    project.ok(&["run"]);
    assert_eq!(
        project.count("SELECT count(*) AS n FROM silver.ratings"),
        22
    );
    assert_eq!(
        project.count("SELECT count(*) AS n FROM table_version('silver.ratings', 0)"),
        20
    );
    assert_eq!(
        project.count(&format!(
            "SELECT count(*) AS n FROM table_as_of('silver.ratings', '{v0_time}')"
        )),
        20
    );
    let added = project.query(
        "SELECT user_id, movie_id FROM silver.ratings \
         EXCEPT SELECT user_id, movie_id FROM table_version('silver.ratings', 0) ORDER BY movie_id",
    );
    assert_eq!(
        added,
        serde_json::json!([{"user_id": 6, "movie_id": 1}, {"user_id": 6, "movie_id": 5}])
            .as_array()
            .unwrap()
            .clone()
    );

    let history: serde_json::Value =
        serde_json::from_str(&project.ok(&["history", "silver.ratings", "--format", "json"]))
            .unwrap();
    assert_eq!(history[0]["version"], 1);
    assert_eq!(history[0]["operation"], "WRITE");
    assert_eq!(history[0]["rows_written"], 22);
    assert!(
        history[0]["run_id"].as_str().is_some_and(|r| r.len() == 36),
        "{history}"
    );

    let out = project.ok(&["restore", "silver.ratings", "--version", "0"]);
    assert!(out.contains("as version 2"), "{out}");
    assert_eq!(
        project.count("SELECT count(*) AS n FROM silver.ratings"),
        20
    );
    let out = project.strata(&["restore", "silver.ratings", "--version", "9"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn append_and_merge_materializations_and_partitions() {
    let project = Project::new();
    project.write(
        "config/strata.toml",
        "[lake]\nroot = \"../lake\"\n[ingest]\nraw_dir = \"../raw\"\n[sql]\ndir = \"../sql\"\n\
         [sample]\ngenerate_if_empty = false\n\
         [sources.events]\nformat = \"csv\"\npath = \"events.csv\"\ncolumns = \"id bigint, kind string\"\n\
         [steps.\"silver.events_by_kind\"]\npartition_by = [\"kind\"]\n",
    );
    project.write_raw("events.csv", b"id,kind\n1,click\n2,view\n");
    project.write(
        "sql/silver/events_log.sql",
        "-- strata: materialization = \"append\"\nSELECT id, kind FROM bronze.events",
    );
    project.write(
        "sql/silver/events_latest.sql",
        "-- strata: materialization = \"merge\"\n-- strata: unique_key = [\"id\"]\n\
         SELECT id, kind FROM bronze.events",
    );
    project.write(
        "sql/silver/events_by_kind.sql",
        "SELECT id, kind FROM bronze.events",
    );
    project.ok(&["run"]);
    project.ok(&["run"]);
    assert_eq!(
        project.count("SELECT count(*) AS n FROM silver.events_log"),
        2,
        "an unchanged rerun must not append again"
    );
    assert!(
        project
            .path("lake/silver/events_by_kind/kind=click")
            .is_dir()
    );

    project.write_raw("events.csv", b"id,kind\n2,buy\n3,view\n");
    project.ok(&["run"]);
    assert_eq!(
        project.count("SELECT count(*) AS n FROM silver.events_log"),
        4
    );
    let latest = project.query("SELECT id, kind FROM silver.events_latest ORDER BY id");
    assert_eq!(
        latest,
        serde_json::json!([
            {"id": 1, "kind": "click"},
            {"id": 2, "kind": "buy"},
            {"id": 3, "kind": "view"}
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let history: serde_json::Value =
        serde_json::from_str(&project.ok(&["history", "silver.events_latest", "--format", "json"]))
            .unwrap();
    assert_eq!(history[0]["operation"], "MERGE");

    // --full-refresh rebuilds append tables from scratch.
    project.ok(&["run", "--full-refresh"]);
    assert_eq!(
        project.count("SELECT count(*) AS n FROM silver.events_log"),
        2
    );
}

#[test]
fn ndjson_json_and_parquet_sources_land_in_bronze() {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    let project = Project::new();
    project.write(
        "config/strata.toml",
        "[lake]\nroot = \"../lake\"\n[ingest]\nraw_dir = \"../raw\"\nmax_reject_fraction = 0.5\n\
         [sql]\ndir = \"../sql\"\n[sample]\ngenerate_if_empty = false\n\
         [sources.clicks]\nformat = \"ndjson\"\npath = \"clicks.ndjson\"\n\
         [sources.pages]\nformat = \"json\"\npath = \"pages.json\"\n\
         [sources.visits]\nformat = \"parquet\"\npath = \"visits.parquet\"\ncolumns = \"id bigint, page string\"\n",
    );
    project.write_raw(
        "clicks.ndjson",
        b"{\"id\": 1, \"page\": \"home\", \"ms\": 1.5}\nnot json\n{\"id\": 2, \"page\": \"cart\", \"ms\": 3}\n",
    );
    project.write_raw(
        "pages.json",
        br#"[{"page": "home", "title": "Home"}, {"page": "cart", "title": "Cart"}]"#,
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("page", DataType::Utf8, false),
        Field::new("extra", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![7, 8, 9])),
            Arc::new(StringArray::from(vec!["home", "cart", "home"])),
            Arc::new(StringArray::from(vec!["x", "y", "z"])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(project.path("raw/visits.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    project.ok(&["run"]);
    let clicks = project.query("SELECT id, page, ms FROM bronze.clicks ORDER BY id");
    assert_eq!(clicks.len(), 2);
    assert_eq!(clicks[1]["ms"], 3.0);
    let rejects = project.query("SELECT line, raw FROM bronze.clicks__rejects");
    assert_eq!(
        rejects,
        serde_json::json!([{"line": 2, "raw": "not json"}])
            .as_array()
            .unwrap()
            .clone()
    );
    assert_eq!(project.count("SELECT count(*) AS n FROM bronze.pages"), 2);
    let visits = project.query("SELECT * FROM bronze.visits ORDER BY id LIMIT 1");
    let columns: Vec<&String> = visits[0].as_object().unwrap().keys().collect();
    assert!(
        !columns.iter().any(|c| c.as_str() == "extra"),
        "{columns:?}"
    );
    assert_eq!(project.count("SELECT count(*) AS n FROM bronze.visits"), 3);
}
