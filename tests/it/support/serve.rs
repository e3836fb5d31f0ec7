//! `strata serve` as a separate process (the real binary, a socket, a log), for tests that watch
//! the process itself: its memory, descriptors and log lines.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::project::{Project, binary_command};

/// A running `strata serve`; killed when dropped.
pub struct ServeProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Starts `binary` serving the project's lake on a free port, with `env` set, and waits until
    /// it listens.
    pub fn start(binary: &Path, project: &Project, env: &[(&str, &str)]) -> ServeProcess {
        let mut command = binary_command(binary, project.root());
        command
            .arg("--config")
            .arg("config/strata.toml")
            .args(["serve", "--bind", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.strip_prefix("strata serve listening on ") {
                    let _ = address_tx.send(address.to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let base = address_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("serve did not start: {:?}", log.lock().unwrap()));
        ServeProcess { child, base, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log lines written so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Stops the server (SIGKILL) and returns its whole log.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread ends at EOF; give it a moment to take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        self.log()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `GET /v1/runs/{run_id}` on the server at `base` every `poll` until the run is no longer
/// `running`; returns it.
pub async fn finished_run(
    client: &reqwest::Client,
    base: &str,
    run_id: &str,
    poll: Duration,
) -> serde_json::Value {
    loop {
        let run: serde_json::Value = client
            .get(format!("{base}/v1/runs/{run_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if run["status"] != "running" {
            return run;
        }
        tokio::time::sleep(poll).await;
    }
}
