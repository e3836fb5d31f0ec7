//! The Dockerfile and docker-compose.yml, checked without a container engine: the files are
//! parsed and held to what the stack needs, and what the compose services run (the `strata`
//! binary with their environment and command) is run for real against the local S3 server.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml::Value;

use crate::support::project::{copy_dir, repo_dir};
use crate::support::s3::{self, Backend};

fn compose() -> Value {
    let text = std::fs::read_to_string(repo_dir().join("docker-compose.yml")).unwrap();
    let mut value: Value = serde_yaml::from_str(&text).expect("docker-compose.yml is YAML");
    // `<<: *anchor` merges, as docker compose applies them.
    value.apply_merge().unwrap();
    value
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("no service {name}"))
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .expect("environment is a mapping")
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                other => serde_yaml::to_string(other).unwrap().trim().to_string(),
            };
            (k.as_str().unwrap().to_string(), value)
        })
        .collect()
}

/// `.env.example` as the values compose would interpolate.
fn env_example() -> BTreeMap<String, String> {
    std::fs::read_to_string(repo_dir().join(".env.example"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Compose interpolation of `${NAME}`, `${NAME:-default}` and `${NAME:?message}`.
fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed ${") + start;
        let inner = &rest[start + 2..end];
        let (name, fallback) = match inner.find([':', '-', '?']) {
            Some(at) => (&inner[..at], inner[at..].trim_start_matches(':')),
            None => (inner, ""),
        };
        match vars.get(name).filter(|v| !v.is_empty()) {
            Some(value) => out.push_str(value),
            None if fallback.starts_with('?') => panic!("{name} is required: {fallback}"),
            None => out.push_str(fallback.trim_start_matches('-')),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_compose_file_wires_minio_init_pipeline_and_api_without_secrets() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    let in_profile = |svc: &Value, profile: &str| {
        svc["profiles"]
            .as_sequence()
            .is_some_and(|p| p.iter().any(|p| p == profile))
    };
    let default: Vec<&str> = services
        .iter()
        .filter(|(_, svc)| svc.get("profiles").is_none())
        .map(|(k, _)| k.as_str().unwrap())
        .collect();
    assert_eq!(default, ["minio", "minio-init", "pipeline", "api"]);
    let cluster: Vec<&str> = services
        .iter()
        .filter(|(_, svc)| in_profile(svc, "cluster"))
        .map(|(k, _)| k.as_str().unwrap())
        .collect();
    assert_eq!(
        cluster,
        ["scheduler", "executor-1", "executor-2", "pipeline-cluster"]
    );

    let condition = |from: &str, on: &str| {
        service(&compose, from)["depends_on"][on]["condition"]
            .as_str()
            .unwrap_or_else(|| panic!("{from} must depend on {on} with a condition"))
            .to_string()
    };
    assert_eq!(condition("minio-init", "minio"), "service_healthy");
    assert_eq!(
        condition("pipeline", "minio-init"),
        "service_completed_successfully"
    );
    assert_eq!(
        condition("api", "pipeline"),
        "service_completed_successfully"
    );
    assert!(service(&compose, "minio")["healthcheck"]["test"].is_sequence());

    // Named volumes only, each declared.
    let declared = compose["volumes"].as_mapping().unwrap();
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        for volume in svc["volumes"].as_sequence().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            assert!(
                declared.contains_key(source),
                "{name}: volume {source} must be a declared named volume"
            );
        }
    }

    // Secrets only from the environment (.env), each documented in .env.example.
    let example = env_example();
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        for (key, value) in environment(svc) {
            let secret = ["KEY", "SECRET", "PASSWORD"]
                .iter()
                .any(|word| key.contains(word))
                && !key.ends_with("_FILE");
            if secret {
                assert!(
                    value.is_empty() || value.starts_with("${"),
                    "{name}: {key} must come from .env, not be written in the file"
                );
            }
            let mut rest = value.as_str();
            while let Some(at) = rest.find("${") {
                let var: String = rest[at + 2..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    example.contains_key(&var),
                    "{name}: {var} is missing from .env.example"
                );
                rest = &rest[at + 2..];
            }
        }
    }

    // Both Strata services run the image against the lake on MinIO; the API schedules runs.
    for name in ["pipeline", "api"] {
        let svc = service(&compose, name);
        assert_eq!(svc["image"], "strata:latest");
        assert!(svc["build"].is_string(), "{name} builds the image");
        let env = environment(svc);
        assert_eq!(env["STRATA_LAKE__ROOT"], "s3://strata/lake");
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://minio:9000");
    }
    let api_env = environment(service(&compose, "api"));
    assert!(!api_env["STRATA_SCHEDULE__CRON"].is_empty());
    // The cluster profile: the same image in every role, every node on the same lake, the
    // pipeline's SQL steps sent to the scheduler the executors register with.
    let command = |name: &str| -> Vec<String> {
        service(&compose, name)["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(command("scheduler")[..2], ["cluster", "scheduler"]);
    for executor in ["executor-1", "executor-2"] {
        let args = command(executor);
        assert_eq!(args[..2], ["cluster", "executor"]);
        let at = args.iter().position(|a| a == "--scheduler").unwrap();
        assert_eq!(args[at + 1], "scheduler:50050");
        let at = args.iter().position(|a| a == "--external-host").unwrap();
        assert_eq!(
            args[at + 1],
            executor,
            "executors are reached by their service name"
        );
    }
    for name in ["scheduler", "executor-1", "executor-2", "pipeline-cluster"] {
        let svc = service(&compose, name);
        assert_eq!(svc["image"], "strata:latest");
        let env = environment(svc);
        assert_eq!(env["STRATA_LAKE__ROOT"], "s3://strata/lake", "{name}");
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://minio:9000", "{name}");
    }
    let pipeline_env = environment(service(&compose, "pipeline-cluster"));
    assert_eq!(pipeline_env["STRATA_ENGINE__KIND"], "ballista");
    assert_eq!(pipeline_env["STRATA_ENGINE__URL"], "df://scheduler:50050");
    assert_eq!(
        service(&compose, "pipeline-cluster")["depends_on"]["scheduler"]["condition"],
        "service_healthy"
    );
    let minio_init = serde_yaml::to_string(&service(&compose, "minio-init")["command"]).unwrap();
    assert!(minio_init.contains("mc mb --ignore-existing local/strata"));
}

#[test]
fn the_dockerfile_is_multi_stage_cached_non_root_and_health_checked() {
    let text = std::fs::read_to_string(repo_dir().join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let stages: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(stages.len() >= 3, "multi-stage: {stages:?}");
    assert!(stages.last().unwrap().contains("debian:bookworm-slim"));
    let cook = text.find("cargo chef cook").expect("dependency layer");
    let copy_src = text.rfind("COPY src ./src").unwrap();
    assert!(
        cook < copy_src,
        "dependencies are built before the sources are copied"
    );
    // build.rs carries the release link options (identical-code folding, packed relocations):
    // without it the image's binary is bigger than the one BENCHMARKS.md measures. askama.toml
    // says where the dashboard's templates are: without it the build fails.
    let copy_build_files = text.rfind("COPY Cargo.toml Cargo.lock build.rs askama.toml ./");
    assert!(
        copy_build_files.is_some_and(|at| cook < at && at < copy_src),
        "the build stage copies build.rs and askama.toml with the sources"
    );
    let ignored = std::fs::read_to_string(repo_dir().join(".dockerignore")).unwrap();
    assert!(
        !ignored
            .lines()
            .any(|l| l.trim() == "*.toml" || l.trim() == "askama.toml"),
        "askama.toml must reach the build context"
    );
    let runtime = &text[text.rfind("FROM ").unwrap()..];
    for expected in [
        "COPY config ./config",
        "COPY sql ./sql",
        "USER 10001:10001",
        "EXPOSE 8080",
        "HEALTHCHECK",
        "CMD [\"strata\", \"healthcheck\"]",
        "ENTRYPOINT [\"strata\"]",
    ] {
        assert!(runtime.contains(expected), "runtime stage lacks {expected}");
    }
    let ignore = std::fs::read_to_string(repo_dir().join(".dockerignore")).unwrap();
    for excluded in ["target/", "lake/", ".env"] {
        assert!(
            ignore.lines().any(|l| l == excluded),
            ".dockerignore: {excluded}"
        );
    }
}

/// The compose service's environment, interpolated from `.env.example`, pointed at the test S3
/// server and bucket, with raw files in `raw_dir` and a small sample so the test stays quick.
fn service_env(
    name: &str,
    endpoint: &str,
    bucket: &str,
    raw_dir: &Path,
) -> BTreeMap<String, String> {
    let compose = compose();
    let example = env_example();
    let mut env: BTreeMap<String, String> = environment(service(&compose, name))
        .into_iter()
        .map(|(k, v)| (k, interpolate(&v, &example)))
        .collect();
    env.insert("AWS_ENDPOINT_URL".into(), endpoint.into());
    let root = env["STRATA_LAKE__ROOT"].replace("s3://strata/", &format!("s3://{bucket}/"));
    env.insert("STRATA_LAKE__ROOT".into(), root);
    env.insert(
        "STRATA_INGEST__RAW_DIR".into(),
        raw_dir.display().to_string(),
    );
    for (key, value) in [
        ("STRATA_SAMPLE__USERS", "100"),
        ("STRATA_SAMPLE__ITEMS", "80"),
        ("STRATA_SAMPLE__RATINGS", "3000"),
    ] {
        env.insert(key.into(), value.into());
    }
    env
}

/// `strata ARGS` as a compose service runs it: the image's working directory (config/ and sql/
/// from the repository) and nothing but the service's environment.
fn strata_in_image(app_dir: &Path, env: &BTreeMap<String, String>, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command
        .current_dir(app_dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env);
    command
}

#[test]
fn the_compose_services_run_the_pipeline_and_serve_it_from_s3() {
    let Some(Backend::S3 { endpoint, bucket }) = Backend::s3() else {
        return;
    };
    let app = tempfile::tempdir().unwrap();
    copy_dir(&repo_dir().join("config"), &app.path().join("config"));
    copy_dir(&repo_dir().join("sql"), &app.path().join("sql"));
    let raw = app.path().join("raw");

    // `pipeline`: command ["run"].
    let env = service_env("pipeline", &endpoint, &bucket, &raw);
    let out = strata_in_image(app.path(), &env, &["run"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pipeline service failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s3::object_exists(
        &endpoint,
        &bucket,
        "lake/gold/user_recommendations/_delta_log/00000000000000000000.json"
    ));

    // `api`: command ["serve"], bound where the test can reach it.
    let mut env = service_env("api", &endpoint, &bucket, &raw);
    let port = s3::free_port();
    assert_eq!(env["STRATA_SERVE__BIND"], "0.0.0.0:8080");
    env.insert("STRATA_SERVE__BIND".into(), format!("127.0.0.1:{port}"));
    let mut server = strata_in_image(app.path(), &env, &["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The image's HEALTHCHECK, with the service's environment.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let check = strata_in_image(app.path(), &env, &["healthcheck"])
            .output()
            .unwrap();
        if check.status.success() {
            break;
        }
        if let Ok(Some(status)) = server.try_wait() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("api service exited with {status}:\n{stderr}");
        }
        assert!(Instant::now() < deadline, "api never became healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
    let url = format!("http://127.0.0.1:{port}/v1/tables/gold.user_recommendations?limit=1");
    let served = strata_in_image(app.path(), &env, &["healthcheck", "--url", &url])
        .output()
        .unwrap();
    assert!(
        served.status.success(),
        "gold table not served from S3: {}",
        String::from_utf8_lossy(&served.stderr)
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
