//! A fault-injecting proxy in front of the test S3 server: what a flaky network and a
//! misbehaving object store do to a lake, on demand and seeded.
//!
//! Every request goes through [`S3Proxy`]; each fault applies to a request with its own
//! probability ([`Faults`], changeable while the proxy runs), drawn from one seeded sequence:
//! - `server_error`: answered 500 or 503 without reaching the store;
//! - `slow`: held `slow_ms` before it is forwarded;
//! - `dropped_upload`: a write whose connection is cut halfway through its body;
//! - `lost_answer`: a write the store carried out whose success is replaced by a 503, so the
//!   client retries something that already happened (the ambiguous case of every remote commit);
//! - `refused_create`: a conditional create (`If-None-Match: *`) refused with S3's `409
//!   ConditionalRequestConflict` (another conditional write of the key in flight), nothing written;
//! - `stale_list`: a listing answered with the previous answer to the same listing;
//! - `down`: everything answered 503 (the store is unavailable), until it is switched off.
//!
//! `ignore_conditional_writes` strips `If-None-Match` instead: a store that does not support
//! conditional writes, as some S3-compatible servers do not.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::seeded::Seeded;

/// The probability (0.0 to 1.0) of each fault per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub server_error: f64,
    pub slow: f64,
    pub slow_ms: u64,
    pub dropped_upload: f64,
    pub lost_answer: f64,
    pub refused_create: f64,
    pub stale_list: f64,
    pub down: bool,
    pub ignore_conditional_writes: bool,
}

/// Which fault a request met, as counted by [`S3Proxy::injected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    ServerError,
    Slow,
    DroppedUpload,
    LostAnswer,
    RefusedCreate,
    StaleList,
    Down,
}

struct Shared {
    upstream: String,
    faults: Mutex<Faults>,
    rng: Mutex<Seeded>,
    injected: Mutex<BTreeMap<Fault, u64>>,
    /// The last answer the store gave to each listing, replayed by `stale_list`.
    listings: Mutex<HashMap<String, Vec<u8>>>,
}

impl Shared {
    /// Whether a fault of probability `p` strikes this time.
    fn strikes(&self, p: f64) -> bool {
        p > 0.0 && (self.rng.lock().unwrap().next() as f64 / u64::MAX as f64) < p
    }

    fn count(&self, fault: Fault) {
        *self.injected.lock().unwrap().entry(fault).or_default() += 1;
    }
}

/// The proxy; it serves until the test binary exits.
#[derive(Clone)]
pub struct S3Proxy {
    endpoint: String,
    shared: Arc<Shared>,
}

impl S3Proxy {
    /// A proxy in front of `upstream` (an `http://host:port` endpoint), faults off, drawing
    /// from `seed`.
    pub fn start(upstream: &str, seed: u64) -> S3Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            upstream: upstream.trim_start_matches("http://").to_string(),
            faults: Mutex::new(Faults::default()),
            rng: Mutex::new(Seeded(seed)),
            injected: Mutex::new(BTreeMap::new()),
            listings: Mutex::new(HashMap::new()),
        });
        let serving = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let shared = Arc::clone(&serving);
                std::thread::spawn(move || {
                    let _ = serve_client(client, &shared);
                });
            }
        });
        S3Proxy { endpoint, shared }
    }

    /// The endpoint clients use instead of the store's.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Replaces the faults applied from the next request on.
    pub fn set(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = faults;
    }

    /// How many requests met each fault so far.
    pub fn injected(&self) -> BTreeMap<Fault, u64> {
        self.shared.injected.lock().unwrap().clone()
    }
}

/// Serves the requests of one client connection, one at a time, each over a fresh upstream
/// connection.
fn serve_client(mut client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut pending = Vec::new();
    loop {
        let Some(head) = read_head(&mut client, &mut pending)? else {
            return Ok(());
        };
        let faults = *shared.faults.lock().unwrap();
        let request = Request::parse(&head);
        if faults.down {
            shared.count(Fault::Down);
            if read_body(&mut client, &mut pending, request.length)?.is_none() {
                return Ok(());
            }
            answer(&mut client, 503, "SlowDown")?;
            continue;
        }
        if request.is_write() && shared.strikes(faults.dropped_upload) {
            shared.count(Fault::DroppedUpload);
            read_body(&mut client, &mut pending, request.length / 2)?;
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        let Some(body) = read_body(&mut client, &mut pending, request.length)? else {
            return Ok(());
        };
        if shared.strikes(faults.server_error) {
            shared.count(Fault::ServerError);
            let status = if shared.strikes(0.5) { 500 } else { 503 };
            answer(&mut client, status, "InternalError")?;
            continue;
        }
        if request.conditional_create && shared.strikes(faults.refused_create) {
            shared.count(Fault::RefusedCreate);
            answer(&mut client, 409, "ConditionalRequestConflict")?;
            continue;
        }
        if request.is_listing() && shared.strikes(faults.stale_list) {
            let stale = shared
                .listings
                .lock()
                .unwrap()
                .get(&request.target)
                .cloned();
            if let Some(stale) = stale {
                shared.count(Fault::StaleList);
                client.write_all(&stale)?;
                continue;
            }
        }
        if shared.strikes(faults.slow) {
            shared.count(Fault::Slow);
            std::thread::sleep(Duration::from_millis(faults.slow_ms));
        }
        let response = forward(&shared.upstream, &head, &body, faults)?;
        if request.is_listing() {
            shared
                .listings
                .lock()
                .unwrap()
                .insert(request.target.clone(), response.clone());
        }
        let succeeded = response.starts_with(b"HTTP/1.1 2");
        if request.is_write() && succeeded && shared.strikes(faults.lost_answer) {
            shared.count(Fault::LostAnswer);
            answer(&mut client, 503, "SlowDown")?;
            continue;
        }
        client.write_all(&response)?;
    }
}

/// What the proxy needs to know of a request.
struct Request {
    method: String,
    target: String,
    length: usize,
    conditional_create: bool,
}

impl Request {
    fn parse(head: &str) -> Request {
        let mut first = head.lines().next().unwrap_or_default().split_whitespace();
        let method = first.next().unwrap_or_default().to_string();
        let target = first.next().unwrap_or_default().to_string();
        let header = |name: &str| {
            head.lines().skip(1).find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_string())
            })
        };
        Request {
            method,
            target,
            length: header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            conditional_create: header("if-none-match").is_some(),
        }
    }

    fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "PUT" | "POST" | "DELETE")
    }

    fn is_listing(&self) -> bool {
        self.method == "GET" && self.target.contains("list-type=2")
    }
}

/// A bodiless S3-style error answer.
fn answer(client: &mut TcpStream, status: u16, code: &str) -> std::io::Result<()> {
    let body =
        format!("<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>");
    write!(
        client,
        "HTTP/1.1 {status} {code}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Sends one request to the store over a fresh connection and returns its whole answer.
fn forward(upstream: &str, head: &str, body: &[u8], faults: Faults) -> std::io::Result<Vec<u8>> {
    let head: String = head
        .split("\r\n")
        .filter(|line| {
            let line = line.to_ascii_lowercase();
            let stripped = line.starts_with("connection:")
                || (faults.ignore_conditional_writes && line.starts_with("if-none-match:"));
            !stripped
        })
        .map(|line| format!("{line}\r\n"))
        .collect();
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(head.trim_end().as_bytes())?;
    server.write_all(b"\r\nConnection: close\r\n\r\n")?;
    server.write_all(body)?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    Ok(response)
}

/// The head of the next request (without the blank line), or `None` at EOF.
fn read_head(stream: &mut TcpStream, pending: &mut Vec<u8>) -> std::io::Result<Option<String>> {
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        pending.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).to_string();
    pending.drain(..head_end + 4);
    Ok(Some(head))
}

/// The next `length` bytes of the stream, or `None` at EOF.
fn read_body(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    length: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = [0u8; 8192];
    while pending.len() < length {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        pending.extend_from_slice(&buf[..n]);
    }
    Ok(Some(pending.drain(..length).collect()))
}
