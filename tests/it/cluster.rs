//! SQL steps on a real Ballista cluster: `strata cluster scheduler` and two `strata cluster
//! executor` processes on loopback (real gRPC and Arrow Flight between them), against the same
//! pipeline run locally.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::project::{Project, strata_command};
use crate::support::s3::{Backend, free_port};

crate::on_every_lake!(
    the_pipeline_on_a_cluster_equals_the_local_run,
    a_step_failing_on_the_cluster_commits_nothing_and_time_travel_works_there,
);

/// Small enough for two cores; large enough that every step has rows in every partition.
const SAMPLE: &str = "users = 80\nitems = 120\nratings = 4000\nseed = 11";

/// The SQL tables the repository's pipeline builds (ingest and ALS steps run locally anyway).
const SQL_TABLES: [&str; 7] = [
    "silver.ratings",
    "silver.movies",
    "silver.users",
    "silver.movie_ratings",
    "silver.als_input",
    "gold.movie_stats",
    "gold.genre_popularity",
];

/// A scheduler and two executors, started in the project's directory (so they read its lake
/// with its storage settings) and killed when dropped.
struct Cluster {
    url: String,
    processes: Vec<Child>,
    /// Each executor's work directory (shuffle files, one directory per job).
    work_dirs: Vec<PathBuf>,
}

impl Cluster {
    fn start(project: &Project) -> Cluster {
        let port = free_port();
        let scheduler = strata_command(project.root())
            .args([
                "cluster",
                "scheduler",
                "--bind",
                &format!("127.0.0.1:{port}"),
                // An executor that stops heartbeating is given up after 10 s, not Ballista's
                // default 180 s, so a lost executor's tasks move on within a test's patience.
                "--executor-timeout-s",
                "10",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the scheduler starts");
        let mut cluster = Cluster {
            url: format!("df://127.0.0.1:{port}"),
            processes: vec![scheduler],
            work_dirs: Vec::new(),
        };
        wait_for_port(port);
        for i in 0..2 {
            let (flight, grpc) = (free_port(), free_port());
            let work_dir = project.path(&format!("executor-{i}"));
            let executor = strata_command(project.root())
                .args(["cluster", "executor", "--scheduler"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["--bind-host", "127.0.0.1", "--external-host", "127.0.0.1"])
                .args(["--flight-port", &flight.to_string()])
                .args(["--grpc-port", &grpc.to_string()])
                .args(["--concurrent-tasks", "1", "--memory-limit-mb", "256"])
                .args(["--heartbeat-s", "1"])
                .arg("--work-dir")
                .arg(&work_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("an executor starts");
            cluster.processes.push(executor);
            cluster.work_dirs.push(work_dir);
        }
        // The scheduler's readiness probe counts registered executors.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = http_get(port, "/readyz");
            if ready.contains("ready: 2 executors registered") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "executors did not register: {ready}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// Kills executor `i` (SIGKILL): the scheduler learns of it when a task cannot be launched
    /// there, or from the missing heartbeats.
    fn kill_executor(&mut self, i: usize) {
        let executor = &mut self.processes[1 + i];
        executor.kill().unwrap();
        executor.wait().unwrap();
    }

    /// The jobs executor `i` has run or is running (Ballista keeps a directory per job).
    fn jobs_on(&self, i: usize) -> BTreeSet<String> {
        std::fs::read_dir(&self.work_dirs[i])
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| !name.starts_with("datafusion-"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The config lines that send SQL steps to this cluster.
    fn engine_section(&self) -> String {
        format!(
            "[engine]\nkind = \"ballista\"\nurl = \"{}\"\nlake_path_shared = true\n",
            self.url
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// The body of `GET path` on a loopback port ("" when nothing answers).
fn http_get(port: u16, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    if stream.write_all(request.as_bytes()).is_err() {
        return response;
    }
    let _ = stream.read_to_string(&mut response);
    response
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every row of `table`, each as its JSON text with floats rounded to 9 significant digits
/// (a distributed sum may add in another order), sorted.
fn rows(project: &Project, table: &str) -> Vec<String> {
    let mut rows: Vec<String> = project
        .query(&format!("SELECT * FROM {table}"))
        .iter()
        .map(|row| rounded(row).to_string())
        .collect();
    rows.sort();
    rows
}

fn rounded(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap();
            Value::String(format!("{x:.8e}"))
        }
        Value::Array(items) => Value::Array(items.iter().map(rounded).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), rounded(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn the_pipeline_on_a_cluster_equals_the_local_run(backend: Backend) {
    let local = Project::generated(SAMPLE, "");
    local.ok(&["run"]);

    let project = Project::generated_on(backend, SAMPLE, "");
    let cluster = Cluster::start(&project);
    project.write_generated_config(SAMPLE, &cluster.engine_section());
    let out = project.ok(&["run"]);
    for table in SQL_TABLES {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{table} ")))
            .unwrap_or_else(|| panic!("no line for {table} in:\n{out}"));
        assert!(line.contains("committed"), "{line}");
        assert!(
            line.contains(&format!("[on ballista {}]", cluster.url)),
            "{line}"
        );
    }
    let ingest = out
        .lines()
        .find(|l| l.starts_with("bronze.ratings "))
        .unwrap();
    assert!(
        !ingest.contains("[on ballista"),
        "ingest runs locally: {ingest}"
    );

    let mut compared = BTreeMap::new();
    for table in SQL_TABLES {
        let (here, there) = (rows(&local, table), rows(&project, table));
        assert!(!there.is_empty(), "{table} is empty");
        assert_eq!(
            here, there,
            "{table} differs between the local and the cluster run"
        );
        compared.insert(table, there.len());
    }

    // system.step_runs says where each step ran.
    let engines = project.query(
        "SELECT step, engine FROM system.step_runs WHERE step IN ('silver.ratings', 'bronze.ratings') \
         ORDER BY step",
    );
    assert_eq!(engines[0]["engine"], "local", "{engines:?}");
    assert_eq!(
        engines[1]["engine"],
        format!("ballista {}", cluster.url),
        "{engines:?}"
    );
    let dag = project.ok(&["dag"]);
    assert!(
        dag.lines().any(|l| l.starts_with("silver.ratings ")
            && l.ends_with(&format!("runs on ballista {}", cluster.url))),
        "{dag}"
    );
    assert!(
        dag.lines()
            .any(|l| l.starts_with("bronze.ratings ") && l.ends_with("runs on local")),
        "{dag}"
    );
}

fn a_step_failing_on_the_cluster_commits_nothing_and_time_travel_works_there(backend: Backend) {
    // The small hand-written MovieLens set, so a second version of silver.ratings differs.
    let project = Project::movielens_on(backend);
    let cluster = Cluster::start(&project);
    project.write(
        "config/strata.toml",
        &format!(
            "{}[sample]\ngenerate_if_empty = false\n{}",
            project.paths(),
            cluster.engine_section()
        ),
    );
    project.ok(&["run"]);
    let mut ratings = crate::support::project::RATINGS.to_string();
    ratings.push_str("6::5::4::978300760\n6::1::3::978300760\n");
    project.write_raw("ratings.dat", ratings.as_bytes());
    project.ok(&["run"]);
    assert_eq!(project.versions()["silver.ratings"], (1, 22));
    let before = project.versions();

    // Fails only while executing (a division by zero per group), i.e. on the executors.
    project.write(
        "sql/gold/broken.sql",
        "SELECT movie_id, 1 / (count(*) - count(*)) AS boom FROM silver.ratings GROUP BY movie_id\n",
    );
    // Reads an older version of silver.ratings inside the step, on the cluster.
    project.write(
        "sql/gold/first_ratings.sql",
        "SELECT count(*) AS n FROM table_version('silver.ratings', 0)\n",
    );
    let out = project.strata(&["run"]);
    assert!(!out.status.success(), "a failed step fails the run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("gold.broken "))
        .unwrap_or_else(|| panic!("no line for gold.broken in:\n{stdout}"));
    assert!(line.contains("failed"), "{line}");
    assert!(line.contains("sql/gold/broken.sql"), "{line}");
    assert!(
        line.contains(&format!("on ballista {}", cluster.url)),
        "{line}"
    );
    let after = project.versions();
    assert!(
        !after.contains_key("gold.broken"),
        "nothing committed: {after:?}"
    );
    for (table, version) in &before {
        if !table.starts_with("system.") {
            assert_eq!(&after[table], version, "{table} moved");
        }
    }
    // Version 0's 20 rows, not the current version's 22.
    assert_eq!(project.count("SELECT n FROM gold.first_ratings"), 20);

    // The cluster going away is one line naming it, and the step commits nothing.
    drop(cluster);
    project.write(
        "sql/gold/first_ratings.sql",
        "SELECT count(*) + 1 AS n FROM table_version('silver.ratings', 0)\n",
    );
    let out = project.strata(&["run", "--select", "gold.first_ratings"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cannot reach the Ballista scheduler at df://127.0.0.1:"),
        "{stdout}"
    );
    assert_eq!(project.versions()["gold.first_ratings"].0, 0);
}

#[test]
fn a_lost_executor_leaves_its_tasks_to_the_other() {
    let project = Project::generated(SAMPLE, "");
    let mut cluster = Cluster::start(&project);
    project.write_generated_config(SAMPLE, &cluster.engine_section());
    project.ok(&["run"]);
    let first = project.versions();

    // Every SQL step again, with one of the two executors gone without a word: the scheduler
    // finds out when it sends that executor a task, and runs the task on the other one.
    cluster.kill_executor(0);
    let out = project.ok(&["run", "--full-refresh"]);
    let second = project.versions();
    for table in SQL_TABLES {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{table} ")))
            .unwrap();
        assert!(line.contains("committed"), "{line}");
        assert_eq!(
            second[table].0,
            first[table].0 + 1,
            "{table}: one new version"
        );
        assert_eq!(second[table].1, first[table].1, "{table}: the same rows");
    }
}

/// A step long enough to be caught mid-flight: a three-way self-join of about 360 million rows,
/// aggregated per user, over several shuffle stages.
const PAIRS_SQL: &str = "SELECT a.user_id, count(*) AS pairs, sum(c.rating) AS total \
    FROM silver.ratings a \
    JOIN silver.ratings b ON a.rating = b.rating \
    JOIN silver.ratings c ON b.movie_id = c.movie_id \
    GROUP BY a.user_id";

#[test]
fn an_executor_killed_mid_step_leaves_the_step_complete_or_cleanly_failed() {
    let sample = "users = 120\nitems = 150\nratings = 6000\nseed = 11";
    let project = Project::generated(sample, "");
    let mut cluster = Cluster::start(&project);
    project.write_generated_config(sample, &cluster.engine_section());
    project.ok(&["run"]);
    project.write("sql/gold/pairs.sql", &format!("{PAIRS_SQL}\n"));
    let before = project.versions();

    let jobs_before = cluster.jobs_on(0);
    let mut run = strata_command(project.root())
        .args(["run", "--select", "gold.pairs"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill executor 0 (SIGKILL) as soon as it has started on the step's job.
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.jobs_on(0) == jobs_before {
        assert!(Instant::now() < deadline, "executor 0 never got the job");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        run.try_wait().unwrap().is_none(),
        "the step finished before the kill: make PAIRS_SQL heavier"
    );
    cluster.kill_executor(0);

    let out = wait_with_deadline(run, Duration::from_secs(240));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("gold.pairs "))
        .unwrap_or_else(|| panic!("no line for gold.pairs in:\n{stdout}"));
    let after = project.versions();
    if out.status.success() {
        // Ballista ran the lost executor's tasks on the other: the rows are the local answer.
        assert!(line.contains("committed"), "{line}");
        let expected: Vec<String> = {
            let mut rows: Vec<String> = project
                .query(PAIRS_SQL)
                .iter()
                .map(|row| rounded(row).to_string())
                .collect();
            rows.sort();
            rows
        };
        assert_eq!(rows(&project, "gold.pairs"), expected);
    } else {
        // Or the step failed: one line naming the cluster, and nothing committed.
        assert!(line.contains("failed"), "{line}");
        assert!(
            line.contains(&format!("on ballista {}", cluster.url)),
            "{line}"
        );
        assert!(!after.contains_key("gold.pairs"), "{after:?}");
    }
    for (table, version) in &before {
        if !table.starts_with("system.") {
            assert_eq!(&after[table], version, "{table} moved");
        }
    }
}

/// Waits for a child's exit and output, killing it and failing the test after `limit`.
fn wait_with_deadline(mut child: Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}
