//! One run per lake at a time: `<lake>/_strata/run.lock`.
//!
//! The lock file is created atomically (`create_new`) and names its holder (process id, host,
//! run id, start time); it is removed when the run ends. A second `strata run` on the same lake
//! refuses with a message naming the holder. A lock whose process no longer exists on this host
//! (killed with `kill -9`, crashed) is stale: the next run removes it, says so, and goes on.
//!
//! Limits: staleness is checked through `/proc`, so only for holders on the same host; a lock left
//! by another machine must be removed by hand once that machine is known to be down.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::error::{Error, Result};

/// Held for the duration of a run; dropping it releases the lake.
#[derive(Debug)]
pub struct LakeLock {
    path: PathBuf,
}

/// Who holds a lock, as written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    pid: u32,
    host: String,
    run_id: String,
    started_at: String,
}

impl Holder {
    fn parse(text: &str) -> Option<Holder> {
        let mut fields = std::collections::HashMap::new();
        for line in text.lines() {
            if let Some((key, value)) = line.split_once('=') {
                fields.insert(key.trim(), value.trim().to_string());
            }
        }
        Some(Holder {
            pid: fields.get("pid")?.parse().ok()?,
            host: fields.get("host")?.clone(),
            run_id: fields.get("run_id").cloned().unwrap_or_default(),
            started_at: fields.get("started_at").cloned().unwrap_or_default(),
        })
    }

    fn render(&self) -> String {
        format!(
            "pid={}\nhost={}\nrun_id={}\nstarted_at={}\n",
            self.pid, self.host, self.run_id, self.started_at
        )
    }

    /// Whether the holder's process is certainly gone (same host, no such process).
    fn is_stale(&self) -> bool {
        self.host == hostname() && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

impl LakeLock {
    /// Takes the lake for `run_id`, recovering a stale lock; fails if another live run holds it.
    pub fn acquire(lake_root: &Path, run_id: &str) -> Result<LakeLock> {
        let dir = lake_root.join("_strata");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join("run.lock");
        let me = Holder {
            pid: std::process::id(),
            host: hostname(),
            run_id: run_id.to_string(),
            started_at: chrono::Utc::now().to_rfc3339(),
        };
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(me.render().as_bytes())
                        .map_err(|e| Error::io(&path, e))?;
                    return Ok(LakeLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match Holder::parse(&text) {
                        Some(holder) if holder.is_stale() => {
                            warn!(
                                pid = holder.pid,
                                run_id = %holder.run_id,
                                "removing a stale lake lock: its process is gone"
                            );
                            eprintln!(
                                "recovered a stale lock on {}: run {} (pid {}) ended without \
                                 releasing it",
                                lake_root.display(),
                                holder.run_id,
                                holder.pid
                            );
                            let _ = std::fs::remove_file(&path);
                        }
                        Some(holder) => {
                            return Err(Error::LakeBusy {
                                lock: path,
                                holder: format!(
                                    "run {} (pid {} on {}, started {})",
                                    holder.run_id, holder.pid, holder.host, holder.started_at
                                ),
                            });
                        }
                        // Being written right now, or damaged: treat as held.
                        None => {
                            return Err(Error::LakeBusy {
                                lock: path,
                                holder: "an unknown process (unreadable lock file)".into(),
                            });
                        }
                    }
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::LakeBusy {
            lock: path,
            holder: "another run that took it while a stale lock was being removed".into(),
        })
    }
}

impl Drop for LakeLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_refused_and_the_lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = LakeLock::acquire(dir.path(), "run-1").unwrap();
        let err = LakeLock::acquire(dir.path(), "run-2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("run-1") && err.contains("run.lock"), "{err}");
        drop(first);
        LakeLock::acquire(dir.path(), "run-3").unwrap();
    }

    #[test]
    fn a_lock_whose_process_is_gone_is_recovered() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("_strata")).unwrap();
        // Pids are below 2^22 on Linux: this one cannot exist.
        let dead = Holder {
            pid: 4_999_999,
            host: hostname(),
            run_id: "killed".into(),
            started_at: "2026-11-28T00:00:00Z".into(),
        };
        std::fs::write(dir.path().join("_strata/run.lock"), dead.render()).unwrap();
        LakeLock::acquire(dir.path(), "next").unwrap();

        let elsewhere = Holder {
            host: "another-host".into(),
            ..dead
        };
        std::fs::write(dir.path().join("_strata/run.lock"), elsewhere.render()).unwrap();
        assert!(LakeLock::acquire(dir.path(), "next").is_err());
    }
}
