//! `strata serve` through a real socket: the server is bound to 127.0.0.1:0 in-process and called
//! with a real HTTP client, over a lake the real `strata` binary built.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use strata::api::Server;
use strata::config::{Config, Overrides};
use tokio::sync::oneshot;

use crate::support::project::Project;
use crate::support::s3::Backend;

// Serving works the same from both lakes: local disk and S3 (a real server, see `s3.rs`).
crate::on_every_lake!(async:
    every_read_endpoint_answers_over_a_real_socket,
    new_versions_are_served_with_new_etags_and_old_ones_by_time_travel,
    runs_are_started_followed_and_one_at_a_time,
    appended_rows_flow_downstream_into_new_versions,
);

pub(crate) const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";

/// A running server; stops (gracefully) when dropped.
pub struct TestServer {
    base: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    /// Serves the project's lake with `[serve]` settings appended to its config file.
    pub async fn start(project: &Project, serve_settings: &str) -> TestServer {
        let config = project.path("config/strata.toml");
        TestServer::start_with(&config, project.root(), serve_settings).await
    }

    /// Serves with the config file `config_path` plus `[serve]` settings, written beside it as
    /// `serve.toml` (so its relative paths mean the same), as if started in `cwd`.
    pub async fn start_with(config_path: &Path, cwd: &Path, serve_settings: &str) -> TestServer {
        let mut text = std::fs::read_to_string(config_path).unwrap();
        text.push_str(&format!(
            "\n[serve]\nrefresh_interval_ms = 100\n{serve_settings}\n"
        ));
        let dir = config_path.parent().unwrap();
        let file = dir.join("serve.toml");
        std::fs::write(&file, text).unwrap();
        let config = Config::load(Some(&file), &[], &Overrides::default(), cwd).unwrap();
        let server = Server::bind(Arc::new(config), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        TestServer {
            base,
            client: reqwest::Client::new(),
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.get(path).await;
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.client.post(self.url(path)).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls `GET /v1/runs/{id}` until the run is no longer running (at most a minute).
    async fn wait_for_run(&self, run_id: &str) -> Value {
        self.wait_for_run_with(run_id, None).await
    }

    /// [`Self::wait_for_run`] on a server with auth on.
    pub(crate) async fn wait_for_run_as(&self, run_id: &str, token: &str) -> Value {
        self.wait_for_run_with(run_id, Some(token)).await
    }

    async fn wait_for_run_with(&self, run_id: &str, token: Option<&str>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut request = self.client.get(self.url(&format!("/v1/runs/{run_id}")));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let run: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(status, StatusCode::OK, "{run}");
            if run["status"] != "running" {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} never finished: {run}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn query(&self, sql: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url("/v1/query"))
            .json(&json!({ "sql": sql }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The MovieLens fixture plus two ratings of user 6 (everybody else rated all four rated movies,
/// so only user 6 has anything left to recommend), run once through the whole pipeline.
pub(crate) fn built_project() -> Project {
    built_project_on(Backend::Local)
}

/// [`built_project`] run again after user 6 re-rated movie 2 (4 -> 1): every table downstream of
/// the ratings has a second version to compare with the first.
pub(crate) fn rerated_project() -> Project {
    let project = built_project();
    let mut ratings = crate::support::project::RATINGS.to_string();
    ratings.push_str("6::1::5::978300760\n6::2::1::978300999\n");
    project.write_raw("ratings.dat", ratings.as_bytes());
    project.ok(&["run"]);
    project
}

/// [`built_project`] with the lake on `backend`.
fn built_project_on(backend: Backend) -> Project {
    let project = Project::movielens_on(backend);
    let mut ratings = crate::support::project::RATINGS.to_string();
    ratings.push_str("6::1::5::978300760\n6::2::4::978300761\n");
    project.write_raw("ratings.dat", ratings.as_bytes());
    project.ok(&["run"]);
    project
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

async fn every_read_endpoint_answers_over_a_real_socket(backend: Backend) {
    let project = tokio::task::spawn_blocking(|| built_project_on(backend))
        .await
        .unwrap();
    let server = TestServer::start(&project, "").await;

    assert_eq!(server.get_json("/health").await.1["status"], "ok");
    let (status, ready) = server.get_json("/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ready["tables"].as_u64().unwrap() > 5);

    let (_, tables) = server.get_json("/v1/tables").await;
    let stats = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "gold.movie_stats")
        .expect("gold.movie_stats listed");
    assert_eq!(stats["layer"], "gold");
    assert_eq!(stats["rows"], 4);

    // A page with projection, filter and order.
    let (status, page) = server
        .get_json("/v1/tables/silver.ratings?columns=user_id,movie_id,rating&filter=rating:ge:4&order_by=-rating,user_id&limit=3")
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["table"], "silver.ratings");
    assert_eq!(page["version"], 0);
    let rows = page["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], json!({"user_id": 1, "movie_id": 1, "rating": 5}));
    assert!(rows.iter().all(|r| r.as_object().unwrap().len() == 3));
    let (_, genre) = server
        .get_json("/v1/tables/silver.movies?filter=genres:contains:Comedy&columns=movie_id&order_by=movie_id")
        .await;
    assert_eq!(genre["rows"], json!([{"movie_id": 1}, {"movie_id": 3}]));

    // The same page in every encoding.
    let csv = server
        .get("/v1/tables/gold.movie_stats?format=csv&columns=movie_id&order_by=movie_id")
        .await;
    assert_eq!(csv.headers()["x-strata-version"], "0");
    assert_eq!(csv.text().await.unwrap(), "movie_id\n1\n2\n3\n4\n");
    let ndjson = server
        .client
        .get(server.url("/v1/tables/gold.movie_stats?columns=movie_id&order_by=movie_id"))
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(ndjson.lines().count(), 4);
    let arrow = server
        .client
        .get(server.url("/v1/tables/gold.movie_stats"))
        .header("accept", "application/vnd.apache.arrow.stream")
        .send()
        .await
        .unwrap();
    assert_eq!(
        arrow.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = arrow.bytes().await.unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 4);

    let (_, schema) = server.get_json("/v1/tables/silver.movies/schema").await;
    let genres = schema["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "genres")
        .unwrap();
    assert_eq!(genres["type"], "List(Utf8)");
    let (_, history) = server.get_json("/v1/tables/gold.movie_stats/history").await;
    assert_eq!(history[0]["version"], 0);
    assert!(history[0]["run_id"].is_string());

    // Recommendations with item details; an unknown user gets the popular items.
    let (status, recs) = server.get_json("/v1/users/6/recommendations?k=5").await;
    assert_eq!(status, StatusCode::OK, "{recs}");
    assert_eq!(recs["fallback"], false);
    let items: Vec<&Value> = recs["items"].as_array().unwrap().iter().collect();
    let ids: Vec<i64> = items
        .iter()
        .map(|i| i["item_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "movies 3 and 4: the two user 6 has not rated");
    assert!(ids.contains(&3) && ids.contains(&4), "{ids:?}");
    for item in items {
        assert!(item["title"].is_string(), "{item}");
        assert!(item["score"].is_number());
    }
    let (status, unknown) = server
        .get_json("/v1/users/999999/recommendations?k=3")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(unknown["fallback"], true);
    assert_eq!(
        unknown["items"][0]["item_id"], 1,
        "movie 1 has the most ratings"
    );
    assert_eq!(unknown["items"].as_array().unwrap().len(), 3);
    let (status, similar) = server.get_json("/v1/items/1/similar?k=2").await;
    assert_eq!(status, StatusCode::OK, "{similar}");
    assert_eq!(similar["item"]["title"], "Toy Story");
    assert_eq!(similar["items"].as_array().unwrap().len(), 2);
    assert!(
        similar["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["item_id"] != 1)
    );

    // Errors: stable codes, JSON bodies.
    for (path, status, code) in [
        ("/v1/tables/gold.nope", 404, "table_not_found"),
        ("/v1/tables/..%2F..%2Fetc", 404, "table_not_found"),
        (
            "/v1/tables/gold.movie_stats%2F..%2F..",
            404,
            "table_not_found",
        ),
        (
            "/v1/tables/gold.movie_stats?filter=nope:eq:1",
            400,
            "unknown_column",
        ),
        (
            "/v1/tables/gold.movie_stats?filter=movie_id:eq:abc",
            400,
            "bad_filter",
        ),
        (
            "/v1/tables/gold.movie_stats?filter=movie_id:approx:1",
            400,
            "bad_filter",
        ),
        (
            "/v1/tables/gold.movie_stats?version=99",
            404,
            "version_not_found",
        ),
        ("/v1/users/abc/recommendations", 400, "bad_id"),
        ("/v1/users/1/recommendations?k=abc", 400, "bad_request"),
        ("/v1/users/1/recommendations?k=0", 400, "bad_k"),
        ("/v1/items/424242/similar", 404, "item_not_found"),
        ("/v1/nothing", 404, "not_found"),
    ] {
        let (got, body) = server.get_json(path).await;
        assert_eq!(got.as_u16(), status, "{path}: {body}");
        assert_eq!(error_code(&body), code, "{path}: {body}");
    }

    // The OpenAPI document is generated from the handlers.
    let (_, openapi) = server.get_json("/openapi.json").await;
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/tables/{table}",
        "/v1/query",
        "/v1/users/{user_id}/recommendations",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} missing");
    }

    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            "strata_http_requests_total{method=\"GET\",route=\"/v1/tables/{table}\",status=\"200\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("strata_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("strata_cache_misses_total{cache=\"table_page\"}"));
}

async fn new_versions_are_served_with_new_etags_and_old_ones_by_time_travel(backend: Backend) {
    let project = tokio::task::spawn_blocking(|| built_project_on(backend))
        .await
        .unwrap();
    let server = TestServer::start(&project, "").await;
    let page = "/v1/tables/silver.ratings?limit=1000";

    let first = server.get(page).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["rows"].as_array().unwrap().len(), 22);
    let not_modified = server
        .client
        .get(server.url(page))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    let recs_etag = server.get("/v1/users/6/recommendations").await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();

    // New ratings land while the server is up: a pipeline run in another process.
    let mut ratings = crate::support::project::RATINGS.to_string();
    ratings.push_str("6::1::5::978300760\n6::2::4::978300761\n6::3::3::978300762\n");
    project.write_raw("ratings.dat", ratings.as_bytes());
    let runner = tokio::task::spawn_blocking(move || {
        project.ok(&["run"]);
        project
    });
    // Keeps the lake alive until the end of the test.
    let _project = runner.await.unwrap();

    // The refresher (every 100 ms) picks the new version up; no manual invalidation.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (new_etag, body) = loop {
        let response = server
            .client
            .get(server.url(page))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            let tag = response.headers()["etag"].to_str().unwrap().to_string();
            break (tag, response.json::<Value>().await.unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "the new version was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(new_etag, etag);
    assert_eq!(body["version"], 1);
    assert_eq!(body["rows"].as_array().unwrap().len(), 23);
    // The refresher swaps tables one by one; an explicit refresh makes sure all have moved.
    let (status, _) = server.post_json("/v1/admin/refresh").await;
    assert_eq!(status, StatusCode::OK);
    let recs = server.get("/v1/users/6/recommendations").await;
    assert_ne!(
        recs.headers()["etag"].to_str().unwrap(),
        recs_etag,
        "retrained recommendations get a new etag"
    );
    let (_, user6) = server.get_json("/v1/users/6/recommendations").await;
    let ids: Vec<&Value> = user6["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["item_id"])
        .collect();
    assert_eq!(
        ids,
        [&json!(4)],
        "movie 3 is rated now: only movie 4 is left"
    );

    // The old rows are still there by version and by time.
    let (_, old) = server
        .get_json("/v1/tables/silver.ratings?version=0&limit=1000")
        .await;
    assert_eq!(old["version"], 0);
    assert_eq!(old["rows"].as_array().unwrap().len(), 22);
    let (_, versions) = server.get_json("/v1/tables/silver.ratings/history").await;
    let v0_time = versions.as_array().unwrap().last().unwrap()["timestamp"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, as_of) = server
        .get_json(&format!(
            "/v1/tables/silver.ratings?as_of={v0_time}&limit=1000"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{as_of}");
    assert_eq!(as_of["version"], 0);
    assert_eq!(as_of["rows"].as_array().unwrap().len(), 22);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_is_read_only_bounded_and_survives_a_query_over_its_memory() {
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    let server = TestServer::start(
        &project,
        "query_max_rows = 5\nquery_timeout_ms = 300\nquery_memory_limit_mb = 1\nmax_body_bytes = 1024",
    )
    .await;

    let (status, ok) = server
        .query("SELECT movie_id, title FROM silver.movies ORDER BY movie_id")
        .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(ok["rows"].as_array().unwrap().len(), 5);
    assert_eq!(ok["truncated"], false);
    assert_eq!(ok["columns"][1]["name"], "title");
    assert_eq!(ok["columns"][1]["type"], "Utf8");
    let (_, cut) = server.query("SELECT * FROM silver.ratings").await;
    assert_eq!(cut["rows"].as_array().unwrap().len(), 5);
    assert_eq!(cut["truncated"], true);
    let (status, travel) = server
        .query("SELECT count(*) AS n FROM table_version('silver.ratings', 0)")
        .await;
    assert_eq!(status, StatusCode::OK, "{travel}");
    assert_eq!(travel["rows"][0]["n"], 22);

    for sql in [
        "INSERT INTO silver.ratings SELECT * FROM silver.ratings",
        "DELETE FROM gold.movie_stats",
        "CREATE TABLE gold.x AS SELECT 1",
        "DROP TABLE gold.movie_stats",
        "COPY (SELECT 1) TO '/tmp/strata-x.csv'",
        "SET datafusion.execution.batch_size = 1",
        "SELECT 1; DROP TABLE gold.movie_stats",
        "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
    ] {
        let (status, body) = server.query(sql).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sql}: {body}");
        assert_eq!(error_code(&body), "read_only", "{sql}: {body}");
    }
    assert_eq!(
        project.versions()["silver.ratings"].0,
        0,
        "nothing was written"
    );

    let (status, body) = server.query("SELEC 1").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "bad_sql")
    );
    let (status, body) = server
        .query("SELECT sum(value) FROM range(100000000000)")
        .await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    assert_eq!(error_code(&body), "timeout");
    // A hash join's build side cannot spill: over the pool, the query fails and the server lives.
    let (status, body) = server
        .query("SELECT count(*) FROM range(3000000) a JOIN range(3000000) b ON a.value = b.value")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "memory_limit");
    assert_eq!(server.get_json("/health").await.0, StatusCode::OK);

    let big = "x".repeat(4096);
    let response = server
        .client
        .post(server.url("/v1/query"))
        .body(format!("{{\"sql\": \"SELECT '{big}'\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "body_too_large", "{body}");
}

pub(crate) fn token(
    claims: Value,
    key: &jsonwebtoken::EncodingKey,
    alg: jsonwebtoken::Algorithm,
) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, key).unwrap()
}

/// A token for `role` signed with [`SECRET`] (HS256), valid for `expires_in` seconds.
pub(crate) fn signed(role: &str, expires_in: i64) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    token(
        claims(role, expires_in),
        &key,
        jsonwebtoken::Algorithm::HS256,
    )
}

/// The `[serve]` line that turns auth on with [`SECRET`].
pub(crate) fn auth_on() -> String {
    format!("auth.hs256_secret = \"{SECRET}\"")
}

pub(crate) fn claims(role: &str, expires_in: i64) -> Value {
    json!({"sub": "test", "role": role, "exp": chrono::Utc::now().timestamp() + expires_in})
}

pub(crate) async fn status_with(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> u16 {
    let request = match method {
        "POST" => server.client.post(server.url(path)),
        _ => server.client.get(server.url(path)),
    };
    let request = match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    };
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_tokens_and_roles_gate_every_endpoint() {
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    let server = TestServer::start(&project, &auth_on()).await;
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let hs = jsonwebtoken::Algorithm::HS256;
    let reader = signed("reader", 600);
    let admin = signed("admin", 600);
    let expired = signed("admin", -600);
    let wrong_key = token(
        claims("admin", 600),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-that-is-32-bytes-long!!"),
        hs,
    );
    let no_role = token(
        json!({"sub": "x", "exp": chrono::Utc::now().timestamp() + 600}),
        &key,
        hs,
    );
    let alg_none = unsigned_token(&claims("admin", 600));

    let table = "/v1/tables/gold.movie_stats";
    for (method, path, token, expected) in [
        ("GET", "/health", None, 200),
        ("GET", "/metrics", None, 200),
        ("GET", table, None, 401),
        ("GET", table, Some(wrong_key.as_str()), 401),
        ("GET", table, Some(expired.as_str()), 401),
        ("GET", table, Some(alg_none.as_str()), 401),
        ("GET", table, Some("not-a-jwt"), 401),
        ("GET", table, Some(no_role.as_str()), 403),
        ("GET", table, Some(reader.as_str()), 200),
        (
            "GET",
            "/v1/users/1/recommendations",
            Some(reader.as_str()),
            200,
        ),
        ("POST", "/v1/admin/refresh", Some(reader.as_str()), 403),
        ("POST", "/v1/runs", Some(reader.as_str()), 403),
        ("GET", "/v1/runs", Some(reader.as_str()), 200),
        ("POST", "/v1/admin/refresh", Some(admin.as_str()), 200),
        ("GET", table, Some(admin.as_str()), 200),
    ] {
        let got = status_with(&server, method, path, token).await;
        assert_eq!(got, expected, "{method} {path} with {token:?}");
    }
    let response = server.get(table).await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_tokens_are_checked_with_the_public_key() {
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt");
    let public = fixtures.join("rs256-public.pem");
    let server = TestServer::start(
        &project,
        &format!("auth.rs256_public_key_file = \"{}\"", public.display()),
    )
    .await;
    let private = std::fs::read(fixtures.join("rs256-private.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&private).unwrap();
    let reader = token(claims("reader", 600), &key, jsonwebtoken::Algorithm::RS256);
    let table = "/v1/tables/gold.movie_stats";
    assert_eq!(status_with(&server, "GET", table, Some(&reader)).await, 200);
    // An HS256 token "signed" with the public key (the classic algorithm-confusion attack).
    let confused = token(
        claims("admin", 600),
        &jsonwebtoken::EncodingKey::from_secret(&std::fs::read(&public).unwrap()),
        jsonwebtoken::Algorithm::HS256,
    );
    assert_eq!(
        status_with(&server, "GET", table, Some(&confused)).await,
        401
    );
}

/// A token with `"alg": "none"` and no signature.
fn unsigned_token(claims: &Value) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = engine.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = engine.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{payload}.")
}

async fn runs_are_started_followed_and_one_at_a_time(backend: Backend) {
    let project = tokio::task::spawn_blocking(|| built_project_on(backend))
        .await
        .unwrap();
    let server = TestServer::start(&project, "").await;
    let start = |body: Value| {
        server
            .client
            .post(server.url("/v1/runs"))
            .json(&body)
            .send()
    };

    let first = start(json!({"select": ["gold.movie_stats"], "full_refresh": true}))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let run_id = first.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = start(json!({})).await.unwrap();
    assert_eq!(second.status(), StatusCode::CONFLICT);
    let body: Value = second.json().await.unwrap();
    assert_eq!(error_code(&body), "run_in_progress");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&run_id),
        "{body}"
    );

    let run = server.wait_for_run(&run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"], "api");
    assert_eq!(run["selection"], "gold.movie_stats");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["status"], "committed");
    assert_eq!(steps[0]["version"], 1);

    let (_, runs) = server.get_json("/v1/runs?limit=1").await;
    assert_eq!(runs[0]["run_id"], run_id.as_str());
    let bad = start(json!({"select": ["not a table"]})).await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let (status, body) = server.get_json("/v1/runs/nope").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "run_not_found")
    );
}

async fn appended_rows_flow_downstream_into_new_versions(backend: Backend) {
    let project = tokio::task::spawn_blocking(|| built_project_on(backend))
        .await
        .unwrap();
    let server = TestServer::start(&project, "").await;
    let append = |path: &str, body: Value| server.client.post(server.url(path)).json(&body).send();

    // Bad records: each named, nothing written.
    let bad = append(
        "/v1/tables/bronze.ratings/rows",
        json!([
            {"user_id": 6, "movie_id": 3, "rating": 4, "timestamp": 978300762},
            {"user_id": 6, "movie_id": "three", "rating": 4, "timestamp": 978300762},
            {"user_id": 6, "movie_id": 4, "rating": 4, "timestamp": 978300762, "mood": "happy"}
        ]),
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = bad.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("record 1") && message.contains("record 2"),
        "{message}"
    );
    assert!(!message.contains("record 0"), "{message}");
    let (_, page) = server
        .get_json("/v1/tables/bronze.ratings?limit=1000")
        .await;
    assert_eq!(
        page["rows"].as_array().unwrap().len(),
        22,
        "nothing written"
    );

    let (status, body) = {
        let response = append("/v1/tables/silver.ratings/rows", json!([{"user_id": 1}]))
            .await
            .unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    };
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "not_bronze")
    );

    // Good records: one new bronze version, then the downstream run rebuilds silver and gold.
    let before = server.get("/v1/users/6/recommendations").await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let response = append(
        "/v1/tables/bronze.ratings/rows?run=downstream",
        json!([{"user_id": 6, "movie_id": 3, "rating": 4, "timestamp": 978300762}]),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let appended: Value = response.json().await.unwrap();
    assert_eq!(appended["version"], 1);
    assert_eq!(appended["rows"], 1);
    let run_id = appended["run_id"].as_str().unwrap().to_string();
    let run = server.wait_for_run(&run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    server.post_json("/v1/admin/refresh").await;
    let (_, silver) = server
        .get_json("/v1/tables/silver.ratings?filter=user_id:eq:6&order_by=movie_id")
        .await;
    assert_eq!(silver["rows"].as_array().unwrap().len(), 3, "{silver}");
    let after = server.get("/v1/users/6/recommendations").await;
    assert_ne!(after.headers()["etag"].to_str().unwrap(), before);
    let recs: Value = after.json().await.unwrap();
    let ids: Vec<&Value> = recs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["item_id"])
        .collect();
    assert_eq!(ids, [&json!(4)], "movie 3 is rated now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_starts_runs_by_itself() {
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    // Every second (croner's optional seconds field), only one step.
    let server = TestServer::start(
        &project,
        "[schedule]\ncron = \"* * * * * *\"\nselect = [\"gold.movie_stats\"]",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let scheduled = loop {
        let (_, runs) = server.get_json("/v1/runs").await;
        let found = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["trigger"] == "schedule" && r["status"] == "succeeded")
            .cloned();
        if let Some(run) = found {
            break run;
        }
        assert!(Instant::now() < deadline, "no scheduled run: {runs}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(scheduled["selection"], "gold.movie_stats");
}

#[test]
fn the_binary_serves_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let project = built_project();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(project.root())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("strata serve listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let health: Value = runtime.block_on(async {
        reqwest::get(format!("{base}/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(health["status"], "ok");

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_of_two_versions_counts_and_shows_the_changed_cells() {
    let project = rerated_project();
    let server = TestServer::start(&project, "").await;

    let (status, diff) = server
        .get_json("/v1/tables/silver.ratings/diff?from=0")
        .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    // The same two versions again: cached, and a client holding it gets 304.
    let first = server.get("/v1/tables/silver.ratings/diff?from=0").await;
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let again = reqwest::Client::new()
        .get(server.url("/v1/tables/silver.ratings/diff?from=0&to=1"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(diff["to_version"], 1);
    assert_eq!(diff["key"], serde_json::json!(["user_id", "movie_id"]));
    assert_eq!(
        diff["counts"],
        serde_json::json!({"rows_from": 22, "rows_to": 22, "added": 0, "removed": 0, "changed": 1})
    );
    assert_eq!(diff["changed"][0]["key"]["user_id"], 6);
    assert_eq!(diff["changed"][0]["cells"][0]["column"], "rating");
    assert_eq!(diff["changed"][0]["cells"][0]["from"], 4);
    assert_eq!(diff["changed"][0]["cells"][0]["to"], 1);

    let (_, same) = server
        .get_json("/v1/tables/silver.ratings/diff?from=1&to=1&key=movie_id,user_id")
        .await;
    assert_eq!(same["counts"]["changed"], 0);
    assert_eq!(same["key"], serde_json::json!(["movie_id", "user_id"]));

    // A key that does not identify a row would pair rows that have nothing to do with each other.
    let (got, body) = server
        .get_json("/v1/tables/silver.ratings/diff?from=0&key=user_id")
        .await;
    assert_eq!(got.as_u16(), 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not unique in version 0"),
        "{body}"
    );

    for (path, status) in [
        ("/v1/tables/silver.ratings/diff?from=0&key=nope", 400),
        ("/v1/tables/silver.ratings/diff?from=9", 404),
        ("/v1/tables/silver.ratings/diff", 400),
    ] {
        let (got, body) = server.get_json(path).await;
        assert_eq!(got.as_u16(), status, "{path}: {body}");
    }
    let (_, openapi) = server.get_json("/openapi.json").await;
    assert!(openapi["paths"]["/v1/tables/{table}/diff"].is_object());
}

/// A query whose operators make rows much faster than they read them (a cross join feeding a
/// sort) is stopped at `serve.query_timeout_ms`, and the server goes on answering: found by the
/// fuzzed SQL endpoint, where it held a worker for 282 s past a 2 s timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_query_is_cancelled_at_its_timeout() {
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    let server = TestServer::start(&project, "query_timeout_ms = 1000").await;
    let started = Instant::now();
    let (status, body) = server
        .query(
            "SELECT a.value * b.value FROM range(1, 100000) a \
             CROSS JOIN range(1, 100000) b ORDER BY 1 DESC",
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    assert_eq!(error_code(&body), "timeout");
    // Cancelled at the timeout, not when the sort would have finished (minutes).
    assert!(took < Duration::from_secs(20), "answered after {took:?}");
    let (status, _) = server.get_json("/health").await;
    assert_eq!(status, StatusCode::OK);
}

/// A function refusing its argument is the query's fault (400), not the server's (500): found by
/// the fuzzed SQL endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_pattern_in_a_query_is_a_bad_request() {
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    let server = TestServer::start(&project, "").await;
    let (status, body) = server
        .query("SELECT regexp_replace(title, '(', 'x') FROM silver.movies")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "query_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("regex parse error")
    );
}
