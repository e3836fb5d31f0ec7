//! `strata serve` through a real socket under fuzzed requests: table page parameters, generated and
//! mutated SQL, row-append and predict bodies, and bearer tokens.
//!
//! What every target asserts: no 5xx and no dropped connection, only 2xx or 4xx; a 4xx carries the
//! JSON error body (`{"error": {"code", "message"}}`); a rejected write leaves the table where it
//! was; the SQL endpoint never writes anything, anywhere, and answers within its timeout.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{corpus, fuzz, mutated};
use crate::api::{SECRET, TestServer, built_project, claims, token};
use crate::penguins::Example;

/// A multi-threaded runtime for one target: the server runs on it, the test blocks on requests.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A response reduced to what the properties look at.
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<Answer, TestCaseError> {
    let response = request
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer (connection dropped?): {e}")))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response
        .bytes()
        .await
        .map_err(|e| TestCaseError::fail(format!("body cut off: {e}")))?
        .to_vec();
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

/// How many answers of each status a target got: shows what the inputs exercised.
#[derive(Default)]
struct Statuses(std::sync::Mutex<BTreeMap<u16, u64>>);

impl Statuses {
    fn record(&self, answer: &Answer) {
        *self
            .0
            .lock()
            .unwrap()
            .entry(answer.status.as_u16())
            .or_insert(0) += 1;
    }

    fn print(&self, target: &str) {
        eprintln!("fuzz {target}: statuses {:?}", self.0.lock().unwrap());
    }
}

/// The property every request shares: 2xx, or 4xx with the JSON error body; never 5xx.
fn no_server_error(what: &str, answer: &Answer) -> Result<(), TestCaseError> {
    prop_assert!(
        !answer.status.is_server_error(),
        "{what}: {} {}",
        answer.status,
        answer.text()
    );
    if answer.status.is_client_error() {
        let body = answer.json();
        prop_assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{what}: {} without the JSON error body: {}",
            answer.status,
            answer.text()
        );
    } else {
        prop_assert!(
            answer.status.is_success() || answer.status == StatusCode::NOT_MODIFIED,
            "{what}: {}",
            answer.status
        );
    }
    Ok(())
}

/// Every file under `dir` with its length: a write anywhere changes it.
fn files(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                let path = entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .display()
                    .to_string();
                out.insert(path, meta.len());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Table page parameters
// ---------------------------------------------------------------------------------------------

const COLUMNS: &[&str] = &[
    "user_id",
    "movie_id",
    "rating",
    "timestamp",
    "title",
    "genres",
    "_source_file",
    "nope",
    "USER_ID",
    "",
    " ",
    "user_id,",
    ",",
    "\"rating\"",
    "rating;drop",
];

/// Odd values for any parameter: bounds, encodings, separators, unicode.
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "3",
    "18446744073709551616",
    "99999999999999999999",
    "1e3",
    "NaN",
    "",
    " ",
    "%",
    "%25",
    "%00",
    "a|b|c",
    "1|2|",
    "|",
    "Comedy",
    "Caf\u{e9}",
    "\u{1F600}",
    "'",
    "\"",
    "' OR 1=1 --",
    "2000-01-01T00:00:00Z",
    "2000-13-40T99:99:99Z",
    "9999-12-31T23:59:59Z",
    "..",
    "../../etc/passwd",
    "%2F",
    "true",
    "null",
];

const OPS: &[&str] = &[
    "eq", "ne", "lt", "le", "gt", "ge", "like", "in", "contains", "is_null", "not_null", "EQ",
    "between", "",
];

const TABLES: &[&str] = &[
    "silver.ratings",
    "gold.movie_stats",
    "bronze.ratings",
    "bronze.ratings__rejects",
    "system.runs",
    "SILVER.RATINGS",
    "silver%2Eratings",
    "silver.ratings%00",
    "silver..ratings",
    "nope.nope",
    "%2e%2e%2fconfig",
    "..%2F..%2Fetc%2Fpasswd",
    "silver.ratings%2F_delta_log",
    "silver",
];

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(options)
}

/// `key=value` pairs of the table page grammar, mostly well-formed, some not.
fn page_parameter() -> impl Strategy<Value = String> {
    let column_list = prop::collection::vec(pick(COLUMNS), 1..4).prop_map(|c| c.join(","));
    let order = prop::collection::vec(
        (pick(COLUMNS), pick(&["", "-", ":desc", ":asc", ":up"])),
        1..3,
    )
    .prop_map(|c| {
        c.iter()
            .map(|(col, dir)| match *dir {
                "-" => format!("-{col}"),
                suffix => format!("{col}{suffix}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    });
    let filter = (pick(COLUMNS), pick(OPS), prop::option::of(pick(VALUES))).prop_map(
        |(column, op, value)| match value {
            Some(v) => format!("{column}:{op}:{v}"),
            None => format!("{column}:{op}"),
        },
    );
    prop_oneof![
        pick(VALUES).prop_map(|v| format!("limit={v}")),
        pick(VALUES).prop_map(|v| format!("offset={v}")),
        column_list.prop_map(|c| format!("columns={c}")),
        order.prop_map(|o| format!("order_by={o}")),
        filter.prop_map(|f| format!("filter={f}")),
        pick(VALUES).prop_map(|v| format!("version={v}")),
        pick(VALUES).prop_map(|v| format!("as_of={v}")),
        pick(&["json", "csv", "ndjson", "arrow", "parquet", "xml", ""])
            .prop_map(|f| format!("format={f}")),
        pick(VALUES).prop_map(|v| format!("unknown={v}")),
    ]
}

/// Percent-encodes what a URL cannot carry as is, keeping the grammar's own `%` sequences.
fn encode_query_value(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        match c {
            'A'..='Z'
            | 'a'..='z'
            | '0'..='9'
            | '-'
            | '_'
            | '.'
            | '~'
            | ':'
            | ','
            | '|'
            | '%'
            | '=' => out.push(c),
            _ => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

#[test]
fn fuzz_table_page_parameters() {
    let rt = runtime();
    let project = built_project();
    let server = rt.block_on(TestServer::start(
        &project,
        "default_page_rows = 20\nmax_page_rows = 50",
    ));
    let requests = (
        pick(TABLES),
        prop::collection::vec(page_parameter(), 0..6),
        any::<bool>(),
    );
    let statuses = Statuses::default();
    fuzz(
        "table_page",
        1,
        requests,
        |(table, parameters, dashboard)| {
            let query = parameters
                .iter()
                .map(|p| encode_query_value(p))
                .collect::<Vec<_>>()
                .join("&");
            // The dashboard's table page parses the same parameters into HTML.
            let path = if dashboard {
                format!("/ui/tables/{table}?{query}")
            } else {
                format!("/v1/tables/{table}?{query}")
            };
            let answer = rt.block_on(send(server.client.get(server.url(&path))))?;
            statuses.record(&answer);
            if dashboard {
                prop_assert!(
                    !answer.status.is_server_error(),
                    "{path}: {} {}",
                    answer.status,
                    answer.text()
                );
                return Ok(());
            }
            no_server_error(&path, &answer)?;
            if answer.status == StatusCode::OK
                && answer.content_type.starts_with("application/json")
            {
                let body = answer.json();
                let rows = body["rows"].as_array().map_or(0, Vec::len);
                prop_assert!(rows <= 50, "{path}: {rows} rows, more than max_page_rows");
            }
            Ok(())
        },
    );
    statuses.print("table_page");
}

// ---------------------------------------------------------------------------------------------
// The read-only SQL endpoint
// ---------------------------------------------------------------------------------------------

const SQL_TABLES: &[&str] = &[
    "silver.ratings",
    "silver.movies",
    "gold.movie_stats",
    "bronze.ratings",
    "bronze.ratings__rejects",
    "system.runs",
    "system.step_runs",
    "table_version('silver.ratings', 0)",
    "table_version('silver.ratings', 99)",
    "table_version('nope', -1)",
    "table_as_of('gold.movie_stats', '2000-01-01T00:00:00Z')",
    "table_as_of('gold.movie_stats', 'garbage')",
    "information_schema.tables",
    "(VALUES (1, 'a'), (NULL, 'b'))",
    "range(1, 4)",
    "generate_series(1, 3)",
    "nope.nope",
    "\"silver.ratings\"",
];

/// Tables with the ratings' columns, which [`SQL_EXPRESSIONS`] name.
const RATINGS_TABLES: &[&str] = &[
    "silver.ratings",
    "bronze.ratings",
    "table_version('silver.ratings', 0)",
    "table_as_of('silver.ratings', '2100-01-01T00:00:00Z')",
];

/// Expressions over the ratings' columns that plan.
const SQL_EXPRESSIONS: &[&str] = &[
    "*",
    "1",
    "user_id",
    "movie_id",
    "rating",
    "count(*)",
    "sum(rating)",
    "max(movie_id)",
    "avg(rating) OVER (PARTITION BY user_id ORDER BY movie_id)",
    "rank() OVER (ORDER BY rating DESC)",
    "rating / 0",
    "rating % 0",
    "CAST(rating AS DECIMAL(38, 37))",
    "CAST(movie_id AS VARCHAR)",
    "arrow_cast(rating, 'Utf8View')",
    "repeat('x', 1000)",
    "power(10, 400)",
    "ln(-1)",
    "sqrt(-1)",
    "uuid()",
    "NULL",
    "user_id * 9223372036854775807",
    "coalesce(rating, 0)",
    "CASE WHEN rating > 3 THEN 'good' END",
];

/// Expressions that fail to plan or to run, or that the parser must refuse.
const ODD_EXPRESSIONS: &[&str] = &[
    "title",
    "1/0",
    "9223372036854775807 + 1",
    "-(-9223372036854775808)",
    "CAST(rating AS INT) + 'x'",
    "CAST('x' AS DATE)",
    "substr('abc', -1, 9999999999)",
    "regexp_replace('a', '(', 'x')",
    "regexp_match('a', '[')",
    "to_timestamp('garbage')",
    "date_trunc('nonsense', now())",
    "'a' LIKE '%%%['",
    "unnest(make_array(1, 2, 3))",
    "arrow_cast(rating, 'NotAType')",
    "struct(1, 'a')",
    "named_struct('a', 1)['b']",
    "make_array(1, 2)[5]",
    "table_version",
    "nope(1)",
    "?",
    "$1",
    "version()",
];

const SQL_PREDICATES: &[&str] = &[
    "rating > 3",
    "user_id IN (1, 2, 3)",
    "title LIKE '%Toy%'",
    "rating IS NULL",
    "1 = 1",
    "rating = 'x'",
    "user_id IN (SELECT user_id FROM silver.ratings)",
    "EXISTS (SELECT 1 FROM system.runs)",
    "rating BETWEEN 5 AND 1",
    "NOT NOT NOT TRUE",
    "timestamp > now()",
];

const WRITES: &[&str] = &[
    "INSERT INTO silver.ratings VALUES (1, 1, 1, 1)",
    "CREATE TABLE t AS SELECT 1",
    "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
    "COPY (SELECT 1) TO 'out.csv'",
    "COPY silver.ratings TO '/tmp/strata-fuzz-copy.parquet'",
    "DROP TABLE silver.ratings",
    "DELETE FROM silver.ratings",
    "UPDATE silver.ratings SET rating = 0",
    "SET datafusion.execution.batch_size = 1",
    "EXPLAIN ANALYZE SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "SELECT 1; DROP TABLE silver.ratings",
    "TRUNCATE silver.ratings",
    "CREATE FUNCTION f() RETURNS INT RETURN 1",
    "PREPARE p AS SELECT 1",
    "SHOW ALL",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM 'lake/silver/ratings'",
    "SELECT * FROM read_parquet('lake/silver/ratings')",
];

/// A SELECT from the grammar: expressions, tables, joins, filters, grouping, ordering, limits.
fn select() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop_oneof![4 => pick(SQL_EXPRESSIONS), 1 => pick(ODD_EXPRESSIONS)],
            1..4,
        ),
        prop_oneof![3 => pick(RATINGS_TABLES), 1 => pick(SQL_TABLES)],
        prop::option::weighted(0.2, pick(SQL_TABLES)),
        prop::option::of(pick(SQL_PREDICATES)),
        prop::bool::weighted(0.2),
        prop::option::of(prop_oneof![
            4 => pick(&["1", "rating DESC", "user_id NULLS FIRST"]),
            1 => pick(&["nope", "99"]),
        ]),
        prop::option::of(prop_oneof![
            4 => pick(&["0", "10", "1000"]),
            1 => pick(&["-1", "99999999999999999999", "'x'"]),
        ]),
    )
        .prop_map(|(exprs, from, join, filter, grouped, order, limit)| {
            let mut sql = format!("SELECT {} FROM {from}", exprs.join(", "));
            if let Some(other) = join {
                sql.push_str(&format!(" AS a JOIN {other} AS b ON true"));
            }
            if let Some(p) = filter {
                sql.push_str(&format!(" WHERE {p}"));
            }
            if grouped {
                sql.push_str(" GROUP BY 1");
            }
            if let Some(o) = order {
                sql.push_str(&format!(" ORDER BY {o}"));
            }
            if let Some(l) = limit {
                sql.push_str(&format!(" LIMIT {l}"));
            }
            sql
        })
}

fn sql() -> impl Strategy<Value = String> {
    let seeds = corpus("sql");
    let mutated_seed = mutated(seeds, 4).prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    prop_oneof![
        4 => select(),
        1 => (select(), select()).prop_map(|(a, b)| format!("{a} UNION ALL {b}")),
        1 => select().prop_map(|s| format!("WITH q AS ({s}) SELECT * FROM q")),
        1 => pick(WRITES).prop_map(str::to_string),
        3 => mutated_seed,
    ]
}

#[test]
fn fuzz_sql_endpoint() {
    let rt = runtime();
    let project = built_project();
    let server = rt.block_on(TestServer::start(
        &project,
        "query_timeout_ms = 2000\nquery_memory_limit_mb = 64",
    ));
    let lake_before = files(&project.path("lake"));
    let project_before = std::fs::read_dir(project.root()).unwrap().count();
    let versions_before = project.versions();
    let statuses = Statuses::default();
    fuzz("sql", 1, sql(), |sql| {
        let request = server
            .client
            .post(server.url("/v1/query"))
            .json(&json!({ "sql": sql }));
        let sent = std::time::Instant::now();
        let answer = rt.block_on(send(request))?;
        statuses.record(&answer);
        // At most the wait for a slot and the run, each bounded by the 2 s timeout, plus slack.
        let took = sent.elapsed();
        prop_assert!(
            took < std::time::Duration::from_secs(15),
            "{sql}: answered after {took:?}, past serve.query_timeout_ms"
        );
        no_server_error(&sql, &answer)
    });
    statuses.print("sql");
    assert_eq!(
        files(&project.path("lake")),
        lake_before,
        "the SQL endpoint wrote to the lake"
    );
    assert_eq!(
        std::fs::read_dir(project.root()).unwrap().count(),
        project_before,
        "the SQL endpoint wrote beside the lake"
    );
    assert!(!Path::new("/tmp/strata-fuzz-copy.parquet").exists());
    assert_eq!(project.versions(), versions_before);
}

// ---------------------------------------------------------------------------------------------
// JSON bodies
// ---------------------------------------------------------------------------------------------

/// Posts `body` as JSON to `path`, records the answer's status and checks it is no server error;
/// returns the body as text (for messages) and the answer.
fn post_json_body(
    rt: &tokio::runtime::Runtime,
    server: &TestServer,
    path: &str,
    body: &[u8],
    statuses: &Statuses,
) -> Result<(String, Answer), TestCaseError> {
    let request = server
        .client
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body.to_vec());
    let answer = rt.block_on(send(request))?;
    statuses.record(&answer);
    let what = String::from_utf8_lossy(body).into_owned();
    no_server_error(&what, &answer)?;
    Ok((what, answer))
}

#[test]
fn fuzz_row_append_bodies() {
    let rt = runtime();
    let project = built_project();
    let server = rt.block_on(TestServer::start(&project, ""));
    let version = |server: &TestServer| -> u64 {
        let (_, table) = rt.block_on(server.get_json("/v1/tables/bronze.ratings/history"));
        table[0]["version"].as_u64().expect("a history")
    };
    let statuses = Statuses::default();
    fuzz("rows", 1, mutated(corpus("rows"), 6), |body| {
        let before = version(&server);
        let (what, answer) = post_json_body(
            &rt,
            &server,
            "/v1/tables/bronze.ratings/rows",
            &body,
            &statuses,
        )?;
        let after = version(&server);
        if answer.status.is_success() {
            let appended = answer.json();
            prop_assert_eq!(appended["version"].as_u64(), Some(after), "{}", appended);
            prop_assert!(after > before);
        } else {
            prop_assert_eq!(before, after, "a rejected append moved the table: {}", what);
        }
        Ok(())
    });
    statuses.print("rows");
}

#[test]
fn fuzz_predict_bodies() {
    let rt = runtime();
    let example = Example::new();
    example.ok(&["run"]);
    let server = rt.block_on(TestServer::start_with(
        &example.config(),
        example.dir.path(),
        "",
    ));
    let statuses = Statuses::default();
    fuzz("predict", 1, mutated(corpus("predict"), 6), |body| {
        let path = "/v1/models/penguin_species/predict";
        let (what, answer) = post_json_body(&rt, &server, path, &body, &statuses)?;
        if answer.status.is_success() {
            let sent: Value = serde_json::from_slice(&body).expect("accepted JSON");
            let records = match &sent {
                Value::Array(records) => records.len(),
                Value::Object(o) if o.contains_key("records") => {
                    o["records"].as_array().map_or(0, Vec::len)
                }
                _ => 1,
            };
            let predictions = answer.json()["predictions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            prop_assert_eq!(predictions.len(), records, "{}", what);
            for p in &predictions {
                let probabilities = p["probabilities"].as_object().expect("probabilities");
                let sum: f64 = probabilities.values().filter_map(Value::as_f64).sum();
                prop_assert!((sum - 1.0).abs() < 1e-9, "{p}");
            }
        }
        Ok(())
    });
    statuses.print("predict");
}

// ---------------------------------------------------------------------------------------------
// Bearer tokens
// ---------------------------------------------------------------------------------------------

/// Tokens: valid ones, mutated ones, unsigned ones and ones with odd claims.
fn bearer() -> impl Strategy<Value = String> {
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let other_key =
        jsonwebtoken::EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!");
    let hs = jsonwebtoken::Algorithm::HS256;
    let reader = token(claims("reader", 600), &key, hs);
    let admin = token(claims("admin", 600), &key, hs);
    let odd_claims = vec![
        claims("ADMIN", 600),
        claims("admin ", 600),
        claims("root", 600),
        claims("admin", -600),
        json!({"sub": "x", "role": 1, "exp": 4_000_000_000u64}),
        json!({"sub": "x", "role": ["admin"], "exp": 4_000_000_000u64}),
        json!({"sub": "x", "role": "admin", "exp": "never"}),
        json!({"sub": "x", "role": "admin"}),
        json!({"sub": "x", "role": "admin", "exp": 4_000_000_000u64, "nbf": 4_000_000_000u64}),
        json!({}),
        json!({"sub": "x", "roles": ["reader", "admin"], "exp": 4_000_000_000u64}),
        json!({"sub": "x", "roles": "admin", "exp": 4_000_000_000u64}),
    ];
    let signed_odd: Vec<String> = odd_claims
        .iter()
        .map(|c| token(c.clone(), &key, hs))
        .collect();
    let other = token(claims("admin", 600), &other_key, hs);
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("admin", 600))
    );
    let mut seeds: Vec<Vec<u8>> = vec![reader.clone().into(), admin.clone().into()];
    seeds.extend(signed_odd.into_iter().map(String::into_bytes));
    seeds.push(other.into());
    seeds.push(unsigned.into());
    seeds.push(b"".to_vec());
    seeds.push(b"a.b.c".to_vec());
    mutated(seeds, 4).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// What the gate should make of `token`, worked out independently of it: `None` if the token is
/// not valid (401), else the roles it names (none known: 403).
fn verdict(token: &str) -> Option<Vec<String>> {
    let key = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.leeway = 5;
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).ok()?;
    let claims = data.claims;
    // The server reads `role` as a string and `roles` as a list of strings; other types are a
    // malformed token.
    let role = match &claims["role"] {
        Value::Null => None,
        Value::String(r) => Some(r.clone()),
        _ => return None,
    };
    let roles = match &claims["roles"] {
        Value::Null => Vec::new(),
        Value::Array(list) => {
            let names: Option<Vec<String>> = list
                .iter()
                .map(|r| r.as_str().map(str::to_string))
                .collect();
            names?
        }
        _ => return None,
    };
    Some(role.into_iter().chain(roles).collect())
}

#[test]
fn fuzz_bearer_tokens() {
    let rt = runtime();
    let project = built_project();
    let server = rt.block_on(TestServer::start(
        &project,
        &format!("auth.hs256_secret = \"{SECRET}\""),
    ));
    let statuses = Statuses::default();
    fuzz("jwt", 1, bearer(), |token| {
        // A header value cannot hold control characters; the client refuses those before sending.
        if reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
            return Ok(());
        }
        let read = rt.block_on(send(
            server
                .client
                .get(server.url("/v1/tables"))
                .bearer_auth(&token),
        ))?;
        statuses.record(&read);
        no_server_error(&token, &read)?;
        let verdict = verdict(&token);
        let named = |role: &str| {
            verdict
                .as_ref()
                .is_some_and(|r| r.iter().any(|n| n == role))
        };
        let admin = named("admin");
        let expected = match &verdict {
            None => StatusCode::UNAUTHORIZED,
            Some(_) if admin || named("reader") => StatusCode::OK,
            Some(_) => StatusCode::FORBIDDEN,
        };
        prop_assert_eq!(
            read.status,
            expected,
            "token {:?} ({:?}): {}",
            token,
            verdict,
            read.text()
        );
        prop_assert!(
            token.len() < 8 || !read.text().contains(&token),
            "the error body echoes the token"
        );
        let refresh = rt.block_on(send(
            server
                .client
                .post(server.url("/v1/admin/refresh"))
                .bearer_auth(&token),
        ))?;
        no_server_error(&token, &refresh)?;
        prop_assert_eq!(
            refresh.status.is_success(),
            admin,
            "admin route with {:?}: {}",
            verdict,
            refresh.status
        );
        Ok(())
    });
    statuses.print("jwt");
}
