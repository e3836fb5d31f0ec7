//! Where SQL steps run: in the Strata process, or on an Apache DataFusion Ballista cluster.
//!
//! `[engine] kind = "local"` (the default) plans and runs every query in this process.
//! `kind = "ballista"` with `url = "df://host:port"` sends each SQL step's query to a Ballista
//! scheduler: Strata plans it over plain Parquet scans of the exact table versions the step read
//! ([`crate::catalog::file_scan`]), the executors run it, and the rows stream back here, where
//! Strata still stages them, checks the expectations and commits to Delta: commits, the run log
//! and the lake lock never leave the Strata process. Ingest, ALS and classifier steps, expectations
//! and `strata query` always run locally.
//!
//! [`cluster`] starts the scheduler and executors themselves (`strata cluster scheduler` /
//! `strata cluster executor`): Ballista's own, with the lake's object store registered from the
//! same storage settings as Strata, so executors read an S3 lake without credentials travelling
//! in query plans.
//!
//! Invariant: a lake on local disk runs on a cluster only when the user said every node sees it
//! at the same path (`engine.lake_path_shared`); otherwise the configuration is refused.

use std::fmt;
use std::time::Duration;

pub mod cluster;

use crate::error::{Error, Result};

/// Where a run's SQL steps execute.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Engine {
    /// In this process (DataFusion).
    #[default]
    Local,
    /// On a Ballista cluster.
    Ballista(ClusterUrl),
}

impl Engine {
    /// What `strata run`, `strata dag` and `system.step_runs` show: `local` or
    /// `ballista df://host:port`.
    pub fn describe(&self) -> String {
        match self {
            Engine::Local => "local".into(),
            Engine::Ballista(url) => format!("ballista {url}"),
        }
    }
}

/// A Ballista scheduler's address, written `df://host:port` as Ballista's own clients do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    pub host: String,
    pub port: u16,
}

/// Ballista's default scheduler port.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// How long reaching the scheduler may take before a step says it is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl ClusterUrl {
    /// Parses `df://host:port` (the port defaults to 50050).
    pub fn parse(text: &str) -> std::result::Result<ClusterUrl, String> {
        let rest = text.strip_prefix("df://").ok_or_else(|| {
            format!("{text:?} is not a Ballista scheduler URL: write df://host:port")
        })?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => {
                let port = port.parse::<u16>().map_err(|_| {
                    format!("{text:?}: the port must be a number, e.g. df://{host}:50050")
                })?;
                (host, port)
            }
            None => (rest, DEFAULT_SCHEDULER_PORT),
        };
        if host.is_empty() || host.contains('/') {
            return Err(format!(
                "{text:?} is not a Ballista scheduler URL: write df://host:port"
            ));
        }
        Ok(ClusterUrl {
            host: host.to_string(),
            port,
        })
    }

    /// The scheduler's gRPC endpoint, as Ballista's client connects to it.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// Fails with one line when nothing listens at the scheduler's address, so a step does not
    /// meet a stack of gRPC transport errors instead.
    pub async fn check_reachable(&self) -> Result<()> {
        let address = format!("{}:{}", self.host, self.port);
        let connect = tokio::net::TcpStream::connect(&address);
        let why = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        };
        Err(Error::Cluster(format!(
            "cannot reach the Ballista scheduler at {self}: {why}; start it with `strata cluster \
             scheduler`, or fix [engine] url (or set [engine] kind = \"local\")"
        )))
    }
}

/// A failure on the cluster as one line. Ballista passes a gRPC status on as its debug text
/// (`Status { code: FailedPrecondition, message: "...", metadata: MetadataMap { ... } ... }`), which
/// buries the scheduler's own words (a version mismatch, a lost job) among response headers: the
/// status's code and message are kept and the rest dropped.
pub fn failure_line(error: &str) -> String {
    let line = match grpc_status(error) {
        Some((before, code, message)) => format!("{before}{code}: {message}"),
        None => error.to_string(),
    };
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text before a status's debug text, its code and its message (unescaped).
fn grpc_status(error: &str) -> Option<(&str, &str, String)> {
    let start = error.find("Status { code: ")?;
    let rest = &error[start + "Status { code: ".len()..];
    let (code, rest) = rest.split_once(", message: \"")?;
    let mut message = String::new();
    let mut chars = rest.chars();
    loop {
        match chars.next()? {
            '"' => break,
            '\\' => match chars.next()? {
                'n' | 't' => message.push(' '),
                escaped => message.push(escaped),
            },
            c => message.push(c),
        }
    }
    Some((&error[..start], code, message))
}

impl fmt::Display for ClusterUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "df://{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_urls_parse_like_ballistas_own() {
        let url = ClusterUrl::parse("df://scheduler:50050").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("scheduler", 50050));
        assert_eq!(url.grpc_endpoint(), "http://scheduler:50050");
        assert_eq!(url.to_string(), "df://scheduler:50050");
        assert_eq!(ClusterUrl::parse("df://10.0.0.5").unwrap().port, 50050);
        for bad in [
            "http://scheduler:50050",
            "df://",
            "df://host:port",
            "scheduler:50050",
        ] {
            let err = ClusterUrl::parse(bad).unwrap_err();
            assert!(err.contains("df://"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_version_mismatch_is_the_schedulers_one_line() {
        // What a Ballista 55 client reports when a scheduler of another major version refuses the
        // job: the scheduler's words inside the debug text of the gRPC status, headers and all.
        let refusal = ballista_core::version::check_compatibility(Some("55.0.0"), Some("56.1.0"))
            .unwrap_err();
        let status = format!(
            "Status {{ code: FailedPrecondition, message: {refusal:?}, metadata: MetadataMap {{ \
             headers: {{\"content-type\": \"application/grpc\", \"server\": \"ballista/56.1.0\", \
             \"ballista-version\": \"56.1.0\"}} }}, source: None }}"
        );
        let error = datafusion::error::DataFusionError::Execution(status).to_string();
        assert_eq!(
            failure_line(&error),
            "Execution error: FailedPrecondition: Ballista client 55.0.0 cannot be used with \
             scheduler 56.1.0. The client and the scheduler must have the same major version."
        );
        // Anything else passes through, on one line.
        assert_eq!(
            failure_line("Arrow error: Divide by zero\n  at stage 2"),
            "Arrow error: Divide by zero at stage 2"
        );
    }

    #[tokio::test]
    async fn an_unreachable_scheduler_is_one_line_naming_it() {
        // A port nothing listens on: bind one, then free it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = ClusterUrl {
            host: "127.0.0.1".into(),
            port,
        };
        let err = url.check_reachable().await.unwrap_err().to_string();
        assert!(err.contains(&format!("df://127.0.0.1:{port}")), "{err}");
        assert!(err.contains("strata cluster scheduler"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
