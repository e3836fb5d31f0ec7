//! The OWASP API Security Top 10 checks that need a running server (RELIABILITY.md has the whole
//! review): security headers, connection caps, object-level authorization through path tricks,
//! and secrets kept out of logs and error bodies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;

use crate::api::{SECRET, TestServer, auth_on, built_project, claims, signed, token};
use crate::support::serve::ServeProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    let server = TestServer::start(&project, "").await;
    let page = server.get("/ui/runs").await.text().await.unwrap();
    let at = page.find("/ui/assets/style.").expect("a stylesheet link");
    let stylesheet = &page[at..at + page[at..].find('"').unwrap()];
    for path in [
        "/health",
        "/v1/tables",
        "/v1/tables/nope.nope",
        "/no/such/route",
        "/ui/runs",
        "/ui/tables/silver.ratings",
        stylesheet,
    ] {
        let response = server.get(path).await;
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
        let policy = header("content-security-policy");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        if path.starts_with("/ui/") {
            assert!(policy.contains("style-src 'self'"), "{path}: {policy}");
            assert!(
                !policy.contains("script-src"),
                "no script on the dashboard: {policy}"
            );
            let caching = header("cache-control");
            if path.starts_with("/ui/assets/") {
                assert!(
                    caching.contains("immutable"),
                    "the stylesheet keeps its caching"
                );
            } else {
                assert!(
                    caching == "no-store" || caching.starts_with("private, "),
                    "{path}: {caching}"
                );
            }
        } else {
            assert_eq!(
                policy, "default-src 'none'; frame-ancestors 'none'",
                "{path}"
            );
        }
    }
}

/// Connects without sending anything: an idle connection holding its slot.
fn idle_connection(server: &TestServer) -> TcpStream {
    let address = server.url("").trim_start_matches("http://").to_string();
    TcpStream::connect(address).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_connection_cap_gets_429_until_a_connection_closes() {
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    let server = TestServer::start(&project, "max_connections_per_client = 3").await;
    let mut held: Vec<TcpStream> = (0..3).map(|_| idle_connection(&server)).collect();
    let mut refused = idle_connection(&server);
    refused
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    refused.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.contains("\"code\":\"too_many_connections\""),
        "{answer}"
    );

    held.pop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = server.get("/health").await;
    assert_eq!(response.status(), StatusCode::OK, "a slot came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_max_connections_new_clients_wait_to_be_accepted_instead_of_failing() {
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    let server = TestServer::start(&project, "max_connections = 2").await;
    let mut held: Vec<TcpStream> = (0..2).map(|_| idle_connection(&server)).collect();
    let request = server.client.get(server.url("/health")).send();
    let waiting = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "answered although every slot was taken"
    );
    held.pop();
    let response = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("accepted once a connection closed")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_cannot_reach_admin_routes_through_encodings_or_case() {
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    let server = TestServer::start(&project, &auth_on()).await;
    let reader = signed("reader", 600);
    let admin = signed("admin", 600);
    let rows = "[{\"user_id\": 1, \"movie_id\": 1, \"rating\": 1, \"timestamp\": 1}]";
    let attempts = [
        "/v1/admin/refresh",
        "/v1/ADMIN/refresh",
        "/V1/admin/refresh",
        "/v1/admin%2Frefresh",
        "/v1/%61dmin/refresh",
        "//v1/admin/refresh",
        "/v1/./admin/refresh",
        "/v1/tables/../admin/refresh",
        "/ui/../v1/admin/refresh",
        "/ui/%2e%2e/v1/admin/refresh",
        "/v1/runs",
        "/v1/runs/",
        "/v1/RUNS",
        "/v1/tables/bronze.ratings/rows",
        "/v1/tables/bronze.ratings/ROWS",
        "/v1/tables/bronze.ratings/rows/",
        "/v1/tables/bronze.ratings%2Frows",
        "/v1/tables/bronze%2Eratings/rows",
        "/v1/tables/BRONZE.RATINGS/rows",
        "/v1/tables/bronze.ratings/rows%00",
        "/ui/runs",
    ];
    for path in attempts {
        let status = raw_post(&server, path, &reader, rows);
        assert!(
            !(200..300).contains(&status) && status < 500,
            "reader POST {path}: {status}"
        );
    }
    // The same requests an admin makes do reach the routes (the check above can fail).
    for path in ["/v1/admin/refresh", "/v1/tables/bronze.ratings/rows"] {
        let status = raw_post(&server, path, &admin, rows);
        assert!((200..300).contains(&status), "admin POST {path}: {status}");
    }
}

/// Sends `POST path` byte for byte as given (an HTTP client would normalise `.` and `..`) and
/// returns the status code.
fn raw_post(server: &TestServer, path: &str, token: &str, body: &str) -> u16 {
    let mut stream = idle_connection(server);
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("POST {path}: no status line in {answer:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_tokens_never_reach_the_log_or_error_bodies() {
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    let mut config = std::fs::read_to_string(project.path("config/strata.toml")).unwrap();
    config.push_str(&format!("\n[serve.auth]\nhs256_secret = \"{SECRET}\"\n"));
    project.write("config/strata.toml", &config);
    let serve = ServeProcess::start(
        Path::new(env!("CARGO_BIN_EXE_strata")),
        &project,
        &[("RUST_LOG", "debug")],
    );
    let wrong_key = jsonwebtoken::EncodingKey::from_secret(b"not-the-secret-but-32-bytes-long!!");
    let tokens = [
        signed("reader", 600),
        token(
            claims("admin", 600),
            &wrong_key,
            jsonwebtoken::Algorithm::HS256,
        ),
        signed("admin", -600),
        signed("nobody", 600),
    ];
    let client = reqwest::Client::new();
    let mut bodies = String::new();
    for t in &tokens {
        for path in ["/v1/tables", "/v1/admin/refresh", "/v1/tables/nope.nope"] {
            let response = client
                .post(format!("{}{path}", serve.base))
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            bodies.push_str(&response.text().await.unwrap());
        }
    }
    let log = serve.stop().join("\n");
    assert!(log.contains("DEBUG"), "the log was at debug level: {log}");
    for text in [&log, &bodies] {
        assert!(!text.contains(SECRET), "the secret leaked");
        for t in &tokens {
            let signature = t.rsplit('.').next().unwrap();
            assert!(!text.contains(signature), "a token leaked");
        }
    }

    // A secret too short to use is refused without being repeated.
    let short = "short-secret-value";
    let config = config.replace(SECRET, short);
    project.write("config/strata.toml", &config);
    let out = project.strata(&["serve", "--bind", "127.0.0.1:0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("serve.auth.hs256_secret"), "{stderr}");
    assert!(!stderr.contains(short), "{stderr}");
}
