//! One run per lake at a time: `<lake>/_strata/run.lock`.
//!
//! The lock is created atomically and names its holder (process id, host, run id, start time); it
//! is removed when the run ends. A second `strata run` on the same lake refuses with a message
//! naming the holder.
//!
//! - **Local lake**: a file created with `create_new`. A lock whose process no longer exists on this
//!   host (killed with `kill -9`, crashed) is stale: the next run removes it, says so, and goes on.
//!   Staleness is checked through `/proc`, so a lock left by another machine must be removed by hand.
//! - **Object storage**: an object written with `If-None-Match: *` (the conditional write Delta
//!   commits rely on too). Processes on other machines cannot be checked, so the lock carries a
//!   lease that the holder renews every [`LEASE_RENEWAL`]; a lock whose lease has run out, or whose
//!   process is gone on this host, is taken over with `If-Match` on the stale object's ETag, so two
//!   runs recovering the same stale lock cannot both win.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use tokio::task::JoinHandle;
use tracing::{error, warn};

use crate::catalog::Lake;
use crate::error::{Error, Result};
use crate::storage::RemoteLake;

/// How long a lock on object storage stays valid without renewal.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often the holder renews its lease: several renewals fit in one lease, so one slow request
/// does not lose the lock.
pub const LEASE_RENEWAL: Duration = Duration::from_secs(15);

const LOCK_PATH: &str = "_strata/run.lock";

/// Held for the duration of a run; dropping it releases the lake.
#[derive(Debug)]
pub struct LakeLock {
    held: Held,
}

#[derive(Debug)]
enum Held {
    Local { path: PathBuf },
    Remote(RemoteHold),
}

#[derive(Debug)]
struct RemoteHold {
    store: Arc<dyn ObjectStore>,
    renewer: JoinHandle<()>,
    released: bool,
}

/// Who holds a lock, as written in the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    pid: u32,
    host: String,
    run_id: String,
    started_at: String,
    /// Object-storage locks only: when the lock is stale unless renewed.
    lease_until: Option<DateTime<Utc>>,
}

impl Holder {
    fn me(run_id: &str, lease_until: Option<DateTime<Utc>>) -> Holder {
        Holder {
            pid: std::process::id(),
            host: hostname(),
            run_id: run_id.to_string(),
            started_at: Utc::now().to_rfc3339(),
            lease_until,
        }
    }

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
            lease_until: fields
                .get("lease_until")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
        })
    }

    fn render(&self) -> String {
        let mut text = format!(
            "pid={}\nhost={}\nrun_id={}\nstarted_at={}\n",
            self.pid, self.host, self.run_id, self.started_at
        );
        if let Some(until) = self.lease_until {
            text.push_str(&format!("lease_until={}\n", until.to_rfc3339()));
        }
        text
    }

    fn describe(&self) -> String {
        format!(
            "run {} (pid {} on {}, started {})",
            self.run_id, self.pid, self.host, self.started_at
        )
    }

    /// Whether the holder's process is certainly gone (same host, no such process).
    fn process_is_gone(&self) -> bool {
        self.host == hostname() && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// Whether the holder certainly no longer runs: its process is gone, or its lease ran out.
    fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.process_is_gone() || self.lease_until.is_some_and(|until| until < now)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn lease_until() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(LEASE).expect("the lease fits in chrono")
}

impl LakeLock {
    /// Takes the lake for `run_id`, recovering a stale lock; fails if another live run holds it.
    pub async fn acquire(lake: &Lake, run_id: &str) -> Result<LakeLock> {
        match (lake.remote(), lake.local_root()) {
            (Some(remote), _) => acquire_remote(remote, run_id).await,
            (None, Some(root)) => acquire_local(root, run_id),
            (None, None) => unreachable!("a lake is local or remote"),
        }
    }

    /// Releases the lake now. Dropping the lock also releases it, but on object storage only
    /// this waits for the lock object to be deleted.
    pub async fn release(mut self) {
        if let Held::Remote(hold) = &mut self.held {
            hold.renewer.abort();
            hold.released = true;
            if let Err(e) = hold.store.delete(&ObjectPath::from(LOCK_PATH)).await {
                warn!(error = %e, "could not delete the lake lock; its lease will run out");
            }
        }
    }
}

fn acquire_local(lake_root: &Path, run_id: &str) -> Result<LakeLock> {
    let dir = lake_root.join("_strata");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join("run.lock");
    let busy = |holder: String| Error::LakeBusy {
        lock: path.display().to_string(),
        holder,
    };
    let me = Holder::me(run_id, None);
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                file.write_all(me.render().as_bytes())
                    .map_err(|e| Error::io(&path, e))?;
                return Ok(LakeLock {
                    held: Held::Local { path },
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                match Holder::parse(&text) {
                    Some(holder) if holder.process_is_gone() => {
                        report_recovery(
                            &lake_root.display().to_string(),
                            &holder,
                            "its process is gone",
                        );
                        let _ = std::fs::remove_file(&path);
                    }
                    Some(holder) => return Err(busy(holder.describe())),
                    // Being written right now, or damaged: treat as held.
                    None => return Err(busy("an unknown process (unreadable lock file)".into())),
                }
            }
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Err(busy(
        "another run that took it while a stale lock was being removed".into(),
    ))
}

async fn acquire_remote(remote: &RemoteLake, run_id: &str) -> Result<LakeLock> {
    let path = ObjectPath::from(LOCK_PATH);
    let lock_url = format!("{}{LOCK_PATH}", remote.url);
    let busy = |holder: String| Error::LakeBusy {
        lock: lock_url.clone(),
        holder,
    };
    let me = Holder::me(run_id, Some(lease_until()));
    let create = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    let payload = || PutPayload::from(me.render().into_bytes());
    for _ in 0..2 {
        let taken = match remote
            .store
            .put_opts(&path, payload(), create.clone())
            .await
        {
            Ok(written) => written,
            Err(object_store::Error::AlreadyExists { .. }) => {
                let current = match remote.store.get(&path).await {
                    Ok(current) => current,
                    // Released between our write and our read: try again.
                    Err(object_store::Error::NotFound { .. }) => continue,
                    Err(e) => return Err(remote.explain(&e)),
                };
                let version = UpdateVersion {
                    e_tag: current.meta.e_tag.clone(),
                    version: current.meta.version.clone(),
                };
                let bytes = current.bytes().await.map_err(|e| remote.explain(&e))?;
                let holder = Holder::parse(&String::from_utf8_lossy(&bytes));
                let Some(holder) = holder else {
                    return Err(busy("an unknown process (unreadable lock object)".into()));
                };
                if !holder.is_stale(Utc::now()) {
                    return Err(busy(holder.describe()));
                }
                // Take over only the stale lock we read: if another run recovered it first, the
                // ETag no longer matches and this write fails.
                let take_over = PutOptions {
                    mode: PutMode::Update(version),
                    ..Default::default()
                };
                match remote.store.put_opts(&path, payload(), take_over).await {
                    Ok(written) => {
                        let reason = if holder.process_is_gone() {
                            "its process is gone"
                        } else {
                            "its lease ran out"
                        };
                        report_recovery(remote.url.as_str(), &holder, reason);
                        written
                    }
                    Err(object_store::Error::Precondition { .. }) => {
                        return Err(busy(
                            "another run that recovered the stale lock first".into(),
                        ));
                    }
                    Err(e) => return Err(remote.explain(&e)),
                }
            }
            Err(e) => return Err(remote.explain(&e)),
        };
        let renewer = tokio::spawn(renew(
            Arc::clone(&remote.store),
            me.clone(),
            UpdateVersion {
                e_tag: taken.e_tag,
                version: taken.version,
            },
        ));
        return Ok(LakeLock {
            held: Held::Remote(RemoteHold {
                store: Arc::clone(&remote.store),
                renewer,
                released: false,
            }),
        });
    }
    Err(busy(
        "another run that took it while it was being released".into(),
    ))
}

/// Renews the lease every [`LEASE_RENEWAL`] with `If-Match` on the last ETag written, so a lock
/// that was taken over (this process stalled past its lease) is never overwritten.
async fn renew(store: Arc<dyn ObjectStore>, mut holder: Holder, mut version: UpdateVersion) {
    let path = ObjectPath::from(LOCK_PATH);
    loop {
        tokio::time::sleep(LEASE_RENEWAL).await;
        holder.lease_until = Some(lease_until());
        let options = PutOptions {
            mode: PutMode::Update(version.clone()),
            ..Default::default()
        };
        match store
            .put_opts(
                &path,
                PutPayload::from(holder.render().into_bytes()),
                options,
            )
            .await
        {
            Ok(written) => {
                version = UpdateVersion {
                    e_tag: written.e_tag,
                    version: written.version,
                }
            }
            Err(object_store::Error::Precondition { .. }) => {
                error!(
                    run_id = %holder.run_id,
                    "the lake lock was taken over by another run after this run's lease ran out"
                );
                return;
            }
            // A transient failure: the lease still has time left; try again next round.
            Err(e) => warn!(error = %e, "could not renew the lake lock's lease"),
        }
    }
}

fn report_recovery(lake: &str, holder: &Holder, reason: &str) {
    warn!(pid = holder.pid, run_id = %holder.run_id, reason, "recovering a stale lake lock");
    eprintln!(
        "recovered a stale lock on {lake}: run {} (pid {}) ended without releasing it ({reason})",
        holder.run_id, holder.pid
    );
}

impl Drop for LakeLock {
    fn drop(&mut self) {
        match &mut self.held {
            Held::Local { path } => {
                let _ = std::fs::remove_file(path);
            }
            Held::Remote(hold) if !hold.released => {
                hold.renewer.abort();
                // Best effort without an await: if the runtime is gone, the lease runs out.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let store = Arc::clone(&hold.store);
                    runtime.spawn(async move {
                        let _ = store.delete(&ObjectPath::from(LOCK_PATH)).await;
                    });
                }
            }
            Held::Remote(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_refused_and_the_lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire_local(dir.path(), "run-1").unwrap();
        let err = acquire_local(dir.path(), "run-2").unwrap_err().to_string();
        assert!(err.contains("run-1") && err.contains("run.lock"), "{err}");
        drop(first);
        acquire_local(dir.path(), "run-3").unwrap();
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
            lease_until: None,
        };
        std::fs::write(dir.path().join("_strata/run.lock"), dead.render()).unwrap();
        acquire_local(dir.path(), "next").unwrap();

        let elsewhere = Holder {
            host: "another-host".into(),
            ..dead
        };
        std::fs::write(dir.path().join("_strata/run.lock"), elsewhere.render()).unwrap();
        assert!(acquire_local(dir.path(), "next").is_err());
    }

    #[test]
    fn a_remote_lock_is_stale_once_its_lease_ran_out() {
        let now = Utc::now();
        let live = Holder {
            host: "another-host".into(),
            lease_until: Some(now + chrono::Duration::seconds(30)),
            ..Holder::me("live", None)
        };
        assert!(!live.is_stale(now));
        let expired = Holder {
            lease_until: Some(now - chrono::Duration::seconds(1)),
            ..live.clone()
        };
        assert!(expired.is_stale(now));
        assert_eq!(Holder::parse(&expired.render()), Some(expired));
    }
}
