//! A real S3-compatible server (moto) for running the same tests on an `s3://` lake.
//!
//! `.ci/run` starts `moto_server` on loopback and exports `S3_TEST_ENDPOINT`. Without it,
//! the first S3 test starts `moto_server` itself when it can find one (`S3_TEST_MOTO_SERVER`,
//! the venv `.ci/run` installs, or `PATH`); it lives as long as the test binary. With neither, S3
//! tests are skipped with a message, except under `CI=true`, where that is a failure.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Keys every S3 test lake uses; moto accepts any.
pub const ACCESS_KEY: &str = "strata-test";
pub const SECRET_KEY: &str = "strata-test-secret";
pub const REGION: &str = "us-east-1";

/// Where a test project's lake lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Local,
    /// A fresh bucket on the test server.
    S3 {
        endpoint: String,
        bucket: String,
    },
}

impl Backend {
    /// A fresh bucket on the test S3 server, or `None` (test skipped) when there is no server
    /// outside CI.
    pub fn s3() -> Option<Backend> {
        let endpoint = server_endpoint()?;
        let bucket = format!("strata-test-{}", uuid::Uuid::new_v4().simple());
        create_bucket(&endpoint, &bucket);
        Some(Backend::S3 { endpoint, bucket })
    }

    /// The `[lake]` section of a test project's config (relative to `config/`).
    pub fn lake_section(&self) -> String {
        match self {
            Backend::Local => "[lake]\nroot = \"../lake\"\n".to_string(),
            Backend::S3 { endpoint, bucket } => format!(
                "[lake]\nroot = \"s3://{bucket}/lake\"\n[lake.storage_options]\n{}",
                storage_options(endpoint)
            ),
        }
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// `lake.storage_options` lines pointing at `endpoint` with the test keys.
pub fn storage_options(endpoint: &str) -> String {
    format!(
        "aws_endpoint = \"{endpoint}\"\naws_allow_http = \"true\"\naws_region = \"{REGION}\"\n\
         aws_access_key_id = \"{ACCESS_KEY}\"\naws_secret_access_key = \"{SECRET_KEY}\"\n"
    )
}

/// Test functions taking a [`Backend`], run once per backend as `<name>::local` and `<name>::s3`.
/// `on_every_lake!(async: f, g)` does the same for async functions, on a multi-threaded runtime
/// (the server and time travel need one).
#[macro_export]
macro_rules! on_every_lake {
    (async: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                fn block_on(test: impl std::future::Future<Output = ()>) {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(test);
                }

                #[test]
                fn local() {
                    block_on(super::$name($crate::support::s3::Backend::Local));
                }

                #[test]
                fn s3() {
                    if let Some(backend) = $crate::support::s3::Backend::s3() {
                        block_on(super::$name(backend));
                    }
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn local() {
                    super::$name($crate::support::s3::Backend::Local);
                }

                #[test]
                fn s3() {
                    if let Some(backend) = $crate::support::s3::Backend::s3() {
                        super::$name(backend);
                    }
                }
            }
        )*
    };
}

struct Server {
    endpoint: String,
    /// The watchdog shell of a server this binary started: it stops moto when its stdin (held
    /// here until the process exits) closes.
    _watchdog: Option<Mutex<Child>>,
}

fn server_endpoint() -> Option<String> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    let server = SERVER.get_or_init(|| match std::env::var("S3_TEST_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(Server {
            endpoint,
            _watchdog: None,
        }),
        _ => start_moto(),
    });
    match server {
        Some(server) => Some(server.endpoint.clone()),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but no S3 test server: set S3_TEST_ENDPOINT or install moto[server]")
        }
        None => {
            eprintln!("skipping an S3 test: no S3 server (run .ci/run, or set S3_TEST_ENDPOINT)");
            None
        }
    }
}

fn moto_binary() -> Option<String> {
    if let Ok(path) = std::env::var("S3_TEST_MOTO_SERVER") {
        return Some(path);
    }
    let venv = std::env::var("HOME")
        .map(|home| format!("{home}/.cache/strata-s3-venv/bin/moto_server"))
        .ok()
        .filter(|path| std::path::Path::new(path).exists());
    venv.or_else(|| {
        Command::new("moto_server")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
            .map(|_| "moto_server".to_string())
    })
}

fn start_moto() -> Option<Server> {
    start_moto_with(&[])
}

fn start_moto_with(env: &[(&str, &str)]) -> Option<Server> {
    let binary = moto_binary()?;
    let port = free_port();
    // moto runs in the background of a shell that waits on its stdin; when this test binary
    // exits, the pipe closes and the shell stops moto, so no server outlives the tests.
    let script = format!(
        "\"$0\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill $pid"
    );
    let child = Command::new("sh")
        .args(["-c", &script, &binary])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http(&endpoint, "GET", "/", b"").is_some() {
            return Some(Server {
                endpoint,
                _watchdog: Some(Mutex::new(child)),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// moto creates buckets from an unsigned `PUT /bucket`.
pub fn create_bucket(endpoint: &str, bucket: &str) {
    let status = http(endpoint, "PUT", &format!("/{bucket}"), b"");
    assert_eq!(status, Some(200), "creating bucket {bucket} on {endpoint}");
}

/// A signed client for one test bucket (moto refuses some unsigned object writes).
fn bucket_store(endpoint: &str, bucket: &str) -> impl object_store::ObjectStore {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region(REGION)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .build()
        .unwrap()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Writes an object.
pub fn put_object(endpoint: &str, bucket: &str, key: &str, body: &[u8]) {
    use object_store::ObjectStoreExt as _;
    let store = bucket_store(endpoint, bucket);
    let path = object_store::path::Path::from(key);
    block_on(store.put(&path, body.to_vec().into()))
        .unwrap_or_else(|e| panic!("writing s3://{bucket}/{key}: {e}"));
}

/// Whether an object exists.
pub fn object_exists(endpoint: &str, bucket: &str, key: &str) -> bool {
    use object_store::ObjectStoreExt as _;
    let store = bucket_store(endpoint, bucket);
    let path = object_store::path::Path::from(key);
    match block_on(store.head(&path)) {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => panic!("checking s3://{bucket}/{key}: {e}"),
    }
}

/// A minimal HTTP/1.1 request; the status code, or `None` when the server does not answer.
fn http(endpoint: &str, method: &str, path: &str, body: &[u8]) -> Option<u16> {
    let host = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .ok()?;
    stream.write_all(body).ok()?;
    let mut response = Vec::new();
    // HEAD answers carry a Content-Length but no body: stop at the end of the head.
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
        if method == "HEAD" && response.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// A second moto that checks credentials (`INITIAL_NO_AUTH_ACTION_COUNT=0`): any key it was
/// not given is refused, as a real server refuses wrong credentials. `None` when moto cannot be
/// started here.
pub fn authenticating_server() -> Option<String> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| start_moto_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]))
        .as_ref()
        .map(|s| s.endpoint.clone())
}

/// A proxy in front of `upstream` that drops `If-None-Match` from every request: an object
/// store that ignores conditional writes, as some S3-compatible servers do. Returns its endpoint.
pub fn ignoring_conditional_writes(upstream: &str) -> String {
    let proxy = super::s3_proxy::S3Proxy::start(upstream, 0);
    proxy.set(super::s3_proxy::Faults {
        ignore_conditional_writes: true,
        ..Default::default()
    });
    proxy.endpoint().to_string()
}
