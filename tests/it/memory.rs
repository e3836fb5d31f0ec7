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
