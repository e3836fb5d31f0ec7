//! The command line through the real binary: config errors, output formats, read-only queries, the
//! DAG view and the sample generator.

use crate::support::project::Project;

#[test]
fn config_problems_are_all_reported_with_file_and_key_and_exit_2() {
    let project = Project::new();
    project.write(
        "config/strata.toml",
        "[lake]\nrooot = \"x\"\n[ingest]\nraw_dirr = \"y\"\n",
    );
    let out = project.strata(&["tables"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("strata.toml: lake.rooot: unknown key"),
        "{stderr}"
    );
    assert!(
        stderr.contains("strata.toml: ingest.raw_dirr: unknown key"),
        "{stderr}"
    );

    let out = project.strata(&["--config", "missing.toml", "tables"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_paths_are_relative_to_the_config_file_from_any_directory() {
    let project = Project::movielens();
    let elsewhere = tempfile::tempdir().unwrap();
    let config = project.path("config/strata.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(elsewhere.path())
        .args([
            "--config",
            config.to_str().unwrap(),
            "run",
            "--select",
            "bronze.users",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(project.path("lake/bronze/users/_delta_log").is_dir());
}

#[test]
fn query_prints_json_csv_and_table_and_refuses_writes() {
    let project = Project::movielens();
    project.ok(&["run", "--select", "bronze.users"]);
    let sql = "SELECT user_id, gender FROM bronze.users WHERE user_id <= 2 ORDER BY user_id";
    assert_eq!(
        project.ok(&["query", sql, "--format", "json"]).trim(),
        r#"[{"user_id":1,"gender":"F"},{"user_id":2,"gender":"M"}]"#
    );
    assert_eq!(
        project.ok(&["query", sql, "--format", "csv"]).trim(),
        "user_id,gender\n1,F\n2,M"
    );
    let table = project.ok(&["query", sql]);
    assert!(table.contains("| user_id | gender |"), "{table}");

    for write in [
        "INSERT INTO bronze.users VALUES (9, 'F', 1, 1, '1', 'x', now())",
        "DROP TABLE bronze.users",
        "CREATE TABLE t AS SELECT 1",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let out = project.strata(&["query", write]);
        assert_eq!(out.status.code(), Some(1), "{write} must be refused");
    }
    assert_eq!(project.versions()["bronze.users"].0, 0);
}

#[test]
fn tables_lists_every_table_with_version_and_rows() {
    let project = Project::movielens();
    project.ok(&["run"]);
    let versions = project.versions();
    for table in [
        "bronze.movies",
        "bronze.movies__rejects",
        "system.ingested_files",
        "system.runs",
        "gold.genre_popularity",
    ] {
        assert!(
            versions.contains_key(table),
            "{table} missing from {versions:?}"
        );
    }
    assert_eq!(versions["bronze.users"], (0, 6));
    let text = project.ok(&["tables"]);
    assert!(text.contains("silver.movie_ratings"), "{text}");
}

#[test]
fn dag_renders_text_dot_and_mermaid() {
    let project = Project::movielens();
    let text = project.ok(&["dag"]);
    let pos = |t: &str| {
        text.find(&format!("{t} ["))
            .unwrap_or_else(|| panic!("{t} not in {text}"))
    };
    assert!(pos("bronze.ratings") < pos("silver.ratings"));
    assert!(pos("silver.ratings") < pos("silver.movie_ratings"));
    assert!(pos("silver.movie_ratings") < pos("gold.movie_stats"));
    assert!(pos("gold.movie_stats") < pos("gold.top_movies"));
    let dot = project.ok(&["dag", "--format", "dot"]);
    assert!(
        dot.contains("\"gold.movie_stats\" -> \"gold.top_movies\";"),
        "{dot}"
    );
    let mermaid = project.ok(&["dag", "--format", "mermaid"]);
    assert!(mermaid.starts_with("flowchart LR"), "{mermaid}");
    assert!(
        mermaid.contains("silver_ratings --> silver_als_input"),
        "{mermaid}"
    );
}

#[test]
fn generated_sample_round_trips_through_ingest_with_zero_rejects() {
    let project = Project::new();
    project.copy_repo_sql();
    project.write(
        "config/strata.toml",
        "[lake]\nroot = \"../lake\"\n[ingest]\nraw_dir = \"../raw\"\n[sql]\ndir = \"../sql\"\n\
         [sample]\ngenerate_if_empty = true\nusers = 60\nitems = 200\nratings = 3000\nseed = 7\n",
    );
    let out = project.ok(&["run"]);
    assert!(out.contains("bronze.ratings"), "{out}");
    let versions = project.versions();
    assert_eq!(versions["bronze.ratings"].1, 3000);
    assert_eq!(versions["bronze.users"].1, 60);
    assert_eq!(versions["bronze.movies"].1, 200);
    for rejects in [
        "bronze.ratings__rejects",
        "bronze.movies__rejects",
        "bronze.users__rejects",
    ] {
        assert_eq!(versions[rejects].1, 0, "{rejects}");
    }
    assert_eq!(versions["silver.ratings"].1, 3000);

    // Same seed, same bytes.
    let again = Project::new();
    again.ok(&[
        "sample",
        "--users",
        "60",
        "--items",
        "200",
        "--ratings",
        "3000",
        "--seed",
        "7",
        "--out",
        "raw",
    ]);
    for file in ["ratings.dat", "movies.dat", "users.dat"] {
        assert_eq!(
            std::fs::read(project.path(&format!("raw/{file}"))).unwrap(),
            std::fs::read(again.path(&format!("raw/{file}"))).unwrap(),
            "{file} differs for the same seed"
        );
    }
}

#[test]
fn a_first_run_killed_while_writing_the_sample_recovers_on_the_next_run() {
    let project = Project::generated("users = 60\nitems = 200\nratings = 3000\nseed = 7", "");
    // What SIGKILL during the first run of an older version left in the raw directory.
    project.write_raw("movies.dat", b"1::partial");
    project.write_raw("users.dat", b"1::F");
    project.write_raw("ratings.dat.tmp", b"1::1::");
    let out = project.strata(&["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("incomplete sample"), "{stderr}");
    let versions = project.versions();
    assert_eq!(versions["bronze.ratings"].1, 3000);
    assert_eq!(versions["bronze.movies"].1, 200);
    assert!(!project.path("raw/ratings.dat.tmp").exists());

    // A raw file that goes missing later is named, with what to do.
    std::fs::remove_file(project.path("raw/ratings.dat")).unwrap();
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ratings.dat does not exist")
            && stdout.contains("[sources.ratings] path")
            && stdout.contains("empty"),
        "{stdout}"
    );
}

#[test]
fn bench_als_prints_one_json_object_with_the_peer_metrics() {
    let project = Project::new();
    // A small user x item matrix with structure: users like items of their own parity.
    let mut train = String::from("user_id\titem_id\trating\ttimestamp\n");
    let mut test = train.clone();
    for user in 1..=40 {
        for item in 1..=30 {
            let rating = if (user + item) % 2 == 0 { 5 } else { 1 };
            let line = format!("{user}\t{item}\t{rating}\t0\n");
            if (user * 7 + item) % 5 == 0 {
                test.push_str(&line);
            } else if (user + item) % 3 != 0 {
                train.push_str(&line);
            }
        }
    }
    project.write("train.tsv", &train);
    project.write("test.tsv", &test);
    let out = project.ok(&[
        "bench",
        "als",
        "--train",
        "train.tsv",
        "--test",
        "test.tsv",
        "--threads",
        "2",
    ]);
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for key in [
        "rmse",
        "precision_at_10",
        "recall_at_10",
        "ndcg_at_10",
        "map_at_10",
        "popular_precision_at_10",
        "popular_ndcg_at_10",
        "train_seconds",
        "recommend_seconds",
        "users",
        "items",
        "train_rows",
        "test_rows",
    ] {
        assert!(report.get(key).is_some(), "{key} missing from {report}");
    }
    assert_eq!(report["users"], 40);
    assert!(report["rmse"].as_f64().unwrap() < 1.0, "{report}");

    let out = project.strata(&["bench", "als", "--train", "nope.tsv", "--test", "test.tsv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.tsv"));
}

#[test]
fn diff_shows_rows_added_and_changed_between_versions_keyed_on_the_steps_unique_key() {
    let project = Project::movielens();
    project.ok(&["run"]);
    let mut ratings = crate::support::project::RATINGS.to_string();
    ratings.push_str("1::1::2::978400000\n"); // a re-rating: the pair changes
    ratings.push_str("5::5::4::978400000\n"); // a new pair (movie 5 exists, user 5 too)
    project.write_raw("ratings.dat", ratings.as_bytes());
    project.ok(&["run"]);

    // silver.ratings declares expect.unique = [["user_id", "movie_id"]]: that is the key.
    let text = project.ok(&["diff", "silver.ratings", "--from", "0"]);
    assert!(
        text.contains("version 0 -> 1, rows matched on user_id, movie_id"),
        "{text}"
    );
    assert!(
        text.contains("rows 20 -> 21: 1 added, 0 removed, 1 changed"),
        "{text}"
    );
    assert!(
        text.contains("user_id=1 movie_id=1  rating: 5 -> 2"),
        "{text}"
    );

    let json: serde_json::Value = serde_json::from_str(&project.ok(&[
        "diff",
        "silver.ratings",
        "--from",
        "0",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(json["added"][0]["user_id"], 5);
    assert_eq!(json["added"][0]["movie_id"], 5);
    let cells: Vec<&str> = json["changed"][0]["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["column"].as_str().unwrap())
        .collect();
    assert_eq!(cells, ["rating", "rated_at"]);

    // Keyed on every column, the re-rating is one row removed and one added.
    let json: serde_json::Value = serde_json::from_str(&project.ok(&[
        "diff",
        "silver.ratings",
        "--from",
        "0",
        "--to",
        "1",
        "--key",
        "user_id",
        "movie_id",
        "rating",
        "rated_at",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(json["counts"]["added"], 2);
    assert_eq!(json["counts"]["removed"], 1);
    assert_eq!(json["counts"]["changed"], 0);

    let out = project.strata(&["diff", "silver.ratings", "--from", "0", "--key", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("key column \"nope\""), "{stderr}");
    let out = project.strata(&["diff", "silver.ratings", "--from", "7"]);
    assert_ne!(out.status.code(), Some(0));
}
