//! What only an object-store lake has: clear errors for the usual misconfigurations, the
//! conditional-write check, the leased run lock, and raw sources on S3. The shared pipeline, time
//! travel and API tests run on S3 too (`on_every_lake!` in `pipeline.rs` and `api.rs`).

use crate::support::project::{MOVIES, Project, RATINGS, USERS, latin1};
use crate::support::s3::{self, Backend};

/// The single `error: ...` line of a failed command (logs are off by default).
fn error_line(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line in:\n{stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "expected nothing but the error line:\n{stderr}"
    );
    errors[0].to_string()
}

/// A project whose lake is `root` on `endpoint`, with extra storage options lines.
fn project_at(endpoint: &str, root: &str, extra_options: &str) -> Project {
    let project = Project::movielens();
    project.write(
        "config/strata.toml",
        &format!(
            "[lake]\nroot = \"{root}\"\n[lake.storage_options]\n{}{extra_options}\
             [ingest]\nraw_dir = \"../raw\"\n[sql]\ndir = \"../sql\"\n\
             [sample]\ngenerate_if_empty = false\n",
            s3::storage_options(endpoint)
        ),
    );
    project
}

/// A fresh bucket: the backend for a project, and its endpoint and name for direct object access.
fn s3_bucket() -> Option<(Backend, String, String)> {
    let backend = Backend::s3()?;
    match &backend {
        Backend::S3 { endpoint, bucket } => {
            let (endpoint, bucket) = (endpoint.clone(), bucket.clone());
            Some((backend, endpoint, bucket))
        }
        Backend::Local => unreachable!("Backend::s3 gives an S3 backend"),
    }
}

fn s3_endpoint() -> Option<(String, String)> {
    s3_bucket().map(|(_, endpoint, bucket)| (endpoint, bucket))
}

#[test]
fn a_missing_bucket_is_one_line_naming_the_url() {
    let Some((endpoint, _)) = s3_endpoint() else {
        return;
    };
    let project = project_at(&endpoint, "s3://no-such-bucket-for-strata/lake", "");
    let out = project.strata(&["tables"]);
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&out);
    assert!(
        line.contains("s3://no-such-bucket-for-strata/lake/")
            && line.contains("does not exist")
            && line.contains(&endpoint),
        "{line}"
    );
}

#[test]
fn an_unreachable_endpoint_is_one_line_naming_what_to_check() {
    // A port nobody listens on.
    let port = s3::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let project = project_at(&endpoint, "s3://bucket/lake", "");
    let started = std::time::Instant::now();
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&out);
    assert!(
        line.contains("s3://bucket/lake/")
            && line.contains("cannot reach")
            && line.contains("AWS_ENDPOINT_URL"),
        "{line}"
    );
    // Not object_store's default three minutes of retries.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn wrong_credentials_are_one_line_naming_the_keys_to_check() {
    let Some(endpoint) = s3::authenticating_server() else {
        // moto cannot be started here (an external endpoint only): nothing checks keys.
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true needs moto_server for the credentials test"
        );
        return;
    };
    let project = project_at(&endpoint, "s3://any-bucket/lake", "");
    let out = project.strata(&["history", "silver.ratings"]);
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&out);
    assert!(
        line.contains("s3://any-bucket/lake/")
            && line.contains("access denied")
            && line.contains("AWS_ACCESS_KEY_ID"),
        "{line}"
    );
}

#[test]
fn a_store_without_conditional_writes_is_refused_unless_opted_in() {
    let Some((endpoint, bucket)) = s3_endpoint() else {
        return;
    };
    let root = format!("s3://{bucket}/lake");

    // Disabled in the configuration: commits could not work at all.
    let project = project_at(&endpoint, &root, "aws_conditional_put = \"disabled\"\n");
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&out);
    assert!(
        line.contains("conditional writes are disabled") && line.contains("aws_conditional_put"),
        "{line}"
    );

    // A server that ignores them: two writers could overwrite each other's commits.
    let unsafe_endpoint = s3::ignoring_conditional_writes(&endpoint);
    let project = project_at(&unsafe_endpoint, &root, "");
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&out);
    assert!(
        line.contains("ignores conditional writes")
            && line.contains("lake.allow_unsafe_concurrent_writes"),
        "{line}"
    );
    assert!(
        !s3::object_exists(
            &endpoint,
            &bucket,
            "lake/bronze/ratings/_delta_log/00000000000000000000.json"
        ),
        "nothing may be written before the check"
    );

    // The user opts in: one writer, their promise.
    let text = std::fs::read_to_string(project.path("config/strata.toml")).unwrap();
    project.write(
        "config/strata.toml",
        &text.replace(
            "[lake]\n",
            "[lake]\nallow_unsafe_concurrent_writes = true\n",
        ),
    );
    project.ok(&["run", "--select", "bronze.ratings"]);
    assert_eq!(project.versions()["bronze.ratings"], (0, 20));
}

#[test]
fn the_run_lock_on_s3_refuses_a_live_holder_and_takes_over_an_expired_lease() {
    let Some((backend, endpoint, bucket)) = s3_bucket() else {
        return;
    };
    let project = Project::movielens_on(backend);
    let lock = |lease_until: chrono::DateTime<chrono::Utc>| {
        format!(
            "pid=1\nhost=another-machine\nrun_id=the-other-run\nstarted_at=2026-11-28T00:00:00Z\n\
             lease_until={}\n",
            lease_until.to_rfc3339()
        )
    };

    let live = chrono::Utc::now() + chrono::Duration::minutes(5);
    s3::put_object(
        &endpoint,
        &bucket,
        "lake/_strata/run.lock",
        lock(live).as_bytes(),
    );
    let out = project.strata(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&out);
    assert!(
        line.contains("lake is busy")
            && line.contains("the-other-run")
            && line.contains(&format!("s3://{bucket}/lake/_strata/run.lock")),
        "{line}"
    );

    let expired = chrono::Utc::now() - chrono::Duration::seconds(1);
    s3::put_object(
        &endpoint,
        &bucket,
        "lake/_strata/run.lock",
        lock(expired).as_bytes(),
    );
    let out = project.strata(&["run", "--select", "bronze.users"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("recovered a stale lock") && stderr.contains("lease ran out"),
        "{stderr}"
    );
    assert!(
        !s3::object_exists(&endpoint, &bucket, "lake/_strata/run.lock"),
        "the lock is released when the run ends"
    );
}

#[test]
fn raw_sources_may_live_on_s3_and_keep_their_url_as_lineage() {
    let Some((backend, endpoint, bucket)) = s3_bucket() else {
        return;
    };
    s3::put_object(
        &endpoint,
        &bucket,
        "landing/ratings.dat",
        RATINGS.as_bytes(),
    );
    s3::put_object(&endpoint, &bucket, "landing/movies.dat", &latin1(MOVIES));
    s3::put_object(&endpoint, &bucket, "landing/users.dat", USERS.as_bytes());
    let project = Project::movielens_on(backend);
    let text = std::fs::read_to_string(project.path("config/strata.toml")).unwrap();
    project.write(
        "config/strata.toml",
        &text.replace(
            "raw_dir = \"../raw\"",
            &format!("raw_dir = \"s3://{bucket}/landing\""),
        ),
    );
    project.ok(&["run"]);
    assert_eq!(project.versions()["bronze.ratings"], (0, 20));
    let lineage = project.query("SELECT DISTINCT _source_file FROM bronze.movies");
    assert_eq!(
        lineage[0]["_source_file"],
        format!("s3://{bucket}/landing/movies.dat")
    );
    assert_eq!(
        project.count("SELECT count(*) AS n FROM silver.movies WHERE title LIKE 'Café%'"),
        1,
        "latin-1 decoding works on downloaded objects too"
    );

    // Unchanged objects are recognised on the next run.
    let out = project.ok(&["run", "--select", "bronze.ratings"]);
    assert!(out.contains("unchanged"), "{out}");
}

#[test]
fn serve_reads_from_a_store_without_conditional_writes_but_refuses_to_write_to_it() {
    let Some((backend, endpoint, bucket)) = s3_bucket() else {
        return;
    };
    // Build the lake through the real server first, then serve it through the unsafe proxy.
    let project = Project::movielens_on(backend);
    project.ok(&["run", "--select", "bronze.users"]);
    let unsafe_endpoint = s3::ignoring_conditional_writes(&endpoint);
    let project = project_at(&unsafe_endpoint, &format!("s3://{bucket}/lake"), "");
    let port = s3::free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(project.root())
        .args(["serve", "--bind", &bind])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://{bind}");
    let outcome = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let users = loop {
            if let Ok(response) = client
                .get(format!("{base}/v1/tables/bronze.users"))
                .send()
                .await
            {
                break response;
            }
            assert!(std::time::Instant::now() < deadline, "serve never answered");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        let run = client.post(format!("{base}/v1/runs")).send().await.unwrap();
        let status = run.status();
        let body: serde_json::Value = run.json().await.unwrap();
        (users.status(), status, body)
    });
    server.kill().unwrap();
    server.wait().unwrap();
    let (users, run_status, body) = outcome;
    assert_eq!(
        users,
        reqwest::StatusCode::OK,
        "reads need no conditional writes"
    );
    assert_eq!(
        run_status,
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        "{body}"
    );
    assert_eq!(body["error"]["code"], "storage_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ignores conditional writes"),
        "{body}"
    );
}
