//! Runs inside a memory limit: spilling keeps results identical, work that cannot fit fails with one
//! clear line and commits nothing, and no spill file outlives the process.

use crate::support::project::Project;

/// The repository's SQL steps on a sample whose dedup aggregate (`silver.ratings`, one group per
/// rating) and expectations cannot fit in a few MiB. ALS is left out: its memory is not
/// DataFusion's.
fn sql_project(ratings: u64, run: &str) -> Project {
    let sample = format!("users = 2000\nitems = 1000\nratings = {ratings}\nseed = 11");
    let project = Project::generated(&sample, run);
    std::fs::remove_file(project.path("sql/gold/recommendations.als.toml")).unwrap();
    project
}

fn run_section(memory_limit_mb: u64) -> String {
    format!("[run]\nmemory_limit_mb = {memory_limit_mb}\nspill_dir = \"../spill\"\n")
}

/// Spill areas left in the project's spill directory.
fn spill_leftovers(project: &Project) -> Vec<String> {
    match std::fs::read_dir(project.path("spill")) {
        Err(_) => Vec::new(),
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
    }
}

/// The stdout line of `table` in a `strata run` report.
fn step_line<'a>(stdout: &'a str, table: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{table} ")))
        .unwrap_or_else(|| panic!("no line for {table} in:\n{stdout}"))
}

#[test]
fn a_run_under_a_small_memory_limit_spills_and_commits_what_an_unlimited_run_does() {
    let sample = "users = 2000\nitems = 1000\nratings = 300000\nseed = 11";
    let project = sql_project(300_000, &run_section(0));
    let unlimited = project.ok(&["run"]);
    assert!(!unlimited.contains("spilled"), "{unlimited}");
    let before = project.versions();

    project.write_generated_config(sample, &run_section(24));
    let out = project.strata(&["run", "--full-refresh"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("memory limit 24.0 MiB (run.memory_limit_mb = 24)"),
        "the run says its limit first: {stderr}"
    );
    assert!(
        step_line(&stdout, "silver.ratings").contains("spilled"),
        "the dedup aggregate had to spill:\n{stdout}"
    );
    assert!(
        spill_leftovers(&project).is_empty(),
        "{:?}",
        spill_leftovers(&project)
    );

    // Compare each SQL table with its unlimited version, both ways, without a limit.
    project.write_generated_config(sample, &run_section(0));
    let after = project.versions();
    let mut compared = 0;
    for (table, (version, rows)) in &after {
        if !(table.starts_with("silver.") || table.starts_with("gold.")) {
            continue;
        }
        let (old_version, old_rows) = before[table];
        assert_eq!(*version, old_version + 1, "{table} was rebuilt");
        assert_eq!(*rows, old_rows, "{table}");
        let old = format!("table_version('{table}', {old_version})");
        let differing = project.count(&format!(
            "SELECT count(*) AS n FROM ((SELECT * FROM {table} EXCEPT ALL SELECT * FROM {old}) \
             UNION ALL (SELECT * FROM {old} EXCEPT ALL SELECT * FROM {table}))"
        ));
        assert_eq!(differing, 0, "{table} differs from its unlimited run");
        compared += 1;
    }
    assert!(
        compared >= 8,
        "every silver and gold table compared: {after:?}"
    );
}

#[test]
fn a_step_that_cannot_fit_even_spilling_fails_in_one_line_and_commits_nothing() {
    let project = sql_project(50_000, &run_section(0));
    // A hash join builds its whole input in memory, and cannot spill it.
    let join = "SELECT a.user_id, a.movie_id, a.rating, b.rated_at\n\
                FROM silver.ratings a\n\
                JOIN silver.ratings b ON a.user_id = b.user_id AND a.movie_id = b.movie_id\n";
    project.write("sql/gold/self_join.sql", join);
    project.ok(&["run"]);
    let before = project.versions();

    let sample = "users = 2000\nitems = 1000\nratings = 50000\nseed = 11";
    project.write_generated_config(sample, &run_section(1));
    project.write(
        "sql/gold/self_join.sql",
        &format!("{join}WHERE a.rating > 0\n"),
    );
    let out = project.strata(&["run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.contains("step gold.self_join ran out of memory"))
        .unwrap_or_else(|| panic!("no memory error line:\n{stderr}"));
    for part in [
        "HashJoinInput",
        "within the memory limit 1.0 MiB (run.memory_limit_mb = 1), even spilling to disk",
        "raise run.memory_limit_mb; the step committed nothing",
    ] {
        assert!(error.contains(part), "{part:?} missing from: {error}");
    }
    project.write_generated_config(sample, &run_section(0));
    let lake_tables = |versions: std::collections::BTreeMap<String, (u64, u64)>| {
        versions
            .into_iter()
            .filter(|(table, _)| !table.starts_with("system."))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        lake_tables(project.versions()),
        lake_tables(before),
        "every table at its previous version"
    );
    assert!(
        spill_leftovers(&project).is_empty(),
        "{:?}",
        spill_leftovers(&project)
    );
}

/// An events CSV of `rows` data lines, every `bad_every`-th of them broken. Returns the file and
/// the physical line numbers of the broken lines (the header is line 1).
fn events_csv(rows: u64, bad_every: u64) -> (Vec<u8>, Vec<u64>) {
    use std::io::Write as _;
    let mut file = b"user_id,item_id,rating,ts\n".to_vec();
    let mut bad = Vec::new();
    for i in 0..rows {
        if i % bad_every == bad_every - 1 {
            writeln!(file, "{i},not a number,5,{i}").unwrap();
            bad.push(i + 2);
        } else {
            let rating = (i % 10) as f64 / 2.0;
            writeln!(
                file,
                "{},{},{rating:.1},{}",
                i % 100_000,
                i % 7919,
                978_300_760 + i
            )
            .unwrap();
        }
    }
    (file, bad)
}

/// The `peak memory` line `strata run` ends with, in MiB.
fn peak_mib(stderr: &str) -> f64 {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak memory "))
        .unwrap_or_else(|| panic!("no peak memory line:\n{stderr}"));
    let (number, unit) = line.split_once(' ').unwrap();
    let number: f64 = number.parse().unwrap();
    match unit {
        "MiB" => number,
        "GiB" => number * 1024.0,
        other => panic!("unit {other} in {line}"),
    }
}

#[test]
fn ingest_of_a_file_larger_than_the_limit_streams_and_keeps_reject_accounting_exact() {
    let project = Project::new();
    project.write(
        "config/strata.toml",
        &format!(
            "{}[sample]\ngenerate_if_empty = false\n{}\
             [sources.events]\nformat = \"csv\"\npath = \"events.csv\"\n\
             columns = \"user_id bigint, item_id bigint, rating double, ts bigint\"\n",
            project.paths(),
            run_section(16)
        ),
    );
    let ingest = |rows: u64| {
        let (file, bad) = events_csv(rows, 997);
        project.write_raw("events.csv", &file);
        let out = project.strata(&["run"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        (file.len() as f64 / (1 << 20) as f64, bad, peak_mib(&stderr))
    };

    let (_, _, small_peak) = ingest(200_000);
    // The changed file replaces the small one's rows: about 70 MiB, over four times the limit.
    let rows = 3_000_000;
    let (big_mib, bad, big_peak) = ingest(rows);
    assert!(big_mib > 4.0 * 16.0, "the file is {big_mib:.1} MiB");

    let good = rows - bad.len() as u64;
    assert_eq!(
        project.count("SELECT count(*) AS n FROM bronze.events"),
        good as i64
    );
    let rejects = project.query(
        "SELECT count(*) AS n, min(line) AS first, max(line) AS last, sum(line) AS total \
         FROM bronze.events__rejects",
    );
    let expected_sum: u64 = bad.iter().sum();
    assert_eq!(rejects[0]["n"], bad.len() as u64, "{rejects:?}");
    assert_eq!(rejects[0]["first"], bad[0], "{rejects:?}");
    assert_eq!(rejects[0]["last"], *bad.last().unwrap(), "{rejects:?}");
    assert_eq!(rejects[0]["total"], expected_sum, "{rejects:?}");
    let log = project.query(
        "SELECT rows, rejected FROM system.ingested_files ORDER BY ingested_at DESC LIMIT 1",
    );
    assert_eq!(log[0]["rows"], good, "{log:?}");
    assert_eq!(log[0]["rejected"], bad.len() as u64, "{log:?}");

    // Parsed whole, 25 times more rows would add several times the file to the peak; streamed,
    // the peak barely moves.
    assert!(
        big_peak < small_peak + big_mib / 2.0,
        "peak {big_peak:.1} MiB for a {big_mib:.1} MiB file, {small_peak:.1} MiB for a small one"
    );
}

#[test]
fn an_als_step_whose_model_cannot_fit_the_limit_fails_in_one_line_and_publishes_nothing() {
    // The ratings as read, their matrix and the factors come to about 1.5 MiB.
    let sample = "users = 600\nitems = 400\nratings = 50000\nseed = 5";
    let project = Project::generated(sample, &run_section(0));
    project.ok(&["run"]);
    let before = project.versions();

    // Enough for the SQL steps' few thousand rows, not for the ratings matrix and the factors.
    project.write_generated_config(sample, &run_section(1));
    let out = project.strata(&["run", "--full-refresh", "--select", "gold.recommendations"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.contains("step gold.recommendations ran out of memory"))
        .unwrap_or_else(|| panic!("no memory error line:\n{stderr}"));
    for part in [
        "ALS training (held in memory, cannot spill) could not get",
        "within the memory limit 1.0 MiB (run.memory_limit_mb = 1); raise run.memory_limit_mb; \
         the step committed nothing",
    ] {
        assert!(error.contains(part), "{part:?} missing from: {error}");
    }

    project.write_generated_config(sample, &run_section(0));
    let published = |versions: std::collections::BTreeMap<String, (u64, u64)>| {
        versions
            .into_iter()
            .filter(|(table, _)| {
                [
                    "gold.user_recommendations",
                    "gold.similar_items",
                    "gold.user_factors",
                    "gold.item_factors",
                    "gold.item_popularity",
                    "system.model_runs",
                ]
                .contains(&table.as_str())
            })
            .collect::<Vec<_>>()
    };
    let after = published(project.versions());
    assert_eq!(after.len(), 6, "the ALS step's tables: {after:?}");
    assert_eq!(after, published(before), "no ALS table moved");
}
