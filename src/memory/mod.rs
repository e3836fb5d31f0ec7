//! How much memory DataFusion may use, and where it spills beyond that.
//!
//! - [`MemoryLimitSetting`] is `run.memory_limit_mb` as written: a number of MiB, `0` for no
//!   limit, or `"auto"` (the default). [`MemoryLimit::resolve`] turns it into bytes and remembers
//!   where the figure came from, for the line `strata run` prints first.
//! - `"auto"` is a quarter of the memory this process may use: the container's cgroup limit when
//!   there is one, else the machine's physical memory. A quarter because the pool bounds
//!   DataFusion's operators only; Delta writes, parsing and training live beside it.
//! - [`SpillArea`] is this process's directory under `run.spill_dir`. DataFusion creates its spill
//!   files there and deletes each one when its operator is done with it; the area goes when the
//!   process drops it, and an area whose process was killed is removed by the next process that
//!   opens the same spill directory (each area is held by a file lock while its process lives).
//! - [`exhausted`] recognises DataFusion's "Resources exhausted" in an error and names the
//!   operator that could not get memory.

mod pool;

use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
pub use pool::HeadroomPool;

/// The config key of the run's limit.
const RUN_KEY: &str = "run.memory_limit_mb";

/// Bytes in a MiB.
const MIB: u64 = 1 << 20;

/// The share of the process's memory `"auto"` gives DataFusion's pool.
const AUTO_DIVISOR: u64 = 4;

/// `"auto"` when the machine's memory cannot be read (an unusual platform).
const AUTO_FALLBACK_BYTES: u64 = 2 << 30;

/// Names of spill areas start with this, so the sweep never touches anything else in the directory.
const AREA_PREFIX: &str = "strata-";

/// `run.memory_limit_mb` as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryLimitSetting {
    /// A quarter of the memory the process may use.
    #[default]
    Auto,
    /// `0`: no limit (DataFusion never spills).
    Unbounded,
    /// This many MiB.
    MiB(u64),
}

impl MemoryLimitSetting {
    /// Reads the config value: a non-negative integer of MiB, or the string `"auto"`.
    pub fn from_toml(value: &toml::Value) -> std::result::Result<Self, String> {
        let mib = match value {
            toml::Value::String(word) if word == "auto" => return Ok(MemoryLimitSetting::Auto),
            toml::Value::Integer(mib) => u64::try_from(*mib).ok(),
            // From the environment (STRATA_RUN__MEMORY_LIMIT_MB=512) a number arrives as text.
            toml::Value::String(text) => text.parse::<u64>().ok(),
            _ => None,
        };
        match mib {
            Some(0) => Ok(MemoryLimitSetting::Unbounded),
            Some(mib) => Ok(MemoryLimitSetting::MiB(mib)),
            None => Err(format!(
                "must be a number of MiB, 0 for no limit, or \"auto\"; got {value}"
            )),
        }
    }
}

/// Where a resolved limit came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitOrigin {
    /// Set to a number (or 0) under this config key.
    Configured { key: &'static str },
    /// `"auto"`: a share of `total` bytes, the cgroup's limit or physical memory.
    Machine { total: u64, cgroup: bool },
}

/// The memory DataFusion's pool may hold, resolved from the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLimit {
    /// `None`: no limit.
    pub bytes: Option<usize>,
    pub origin: LimitOrigin,
}

impl MemoryLimit {
    /// Resolves the setting; `"auto"` reads the process's memory (cgroup limit or physical).
    pub fn resolve(setting: MemoryLimitSetting) -> MemoryLimit {
        match setting {
            MemoryLimitSetting::Unbounded => MemoryLimit {
                bytes: None,
                origin: LimitOrigin::Configured { key: RUN_KEY },
            },
            MemoryLimitSetting::MiB(mib) => MemoryLimit::configured(RUN_KEY, mib),
            MemoryLimitSetting::Auto => {
                let (total, cgroup) = available_memory();
                MemoryLimit {
                    bytes: Some((total / AUTO_DIVISOR).max(64 * MIB) as usize),
                    origin: LimitOrigin::Machine { total, cgroup },
                }
            }
        }
    }

    /// `mib` MiB set by the config key `key`.
    pub fn configured(key: &'static str, mib: u64) -> MemoryLimit {
        MemoryLimit {
            bytes: Some((mib * MIB) as usize),
            origin: LimitOrigin::Configured { key },
        }
    }

    /// What to tell a user whose work ran out of this limit.
    pub fn remedy(&self) -> String {
        match self.origin {
            LimitOrigin::Configured { key } => format!("raise {key}"),
            LimitOrigin::Machine { .. } => {
                format!("set {RUN_KEY} above the automatic limit (or 0 for none)")
            }
        }
    }
}

impl fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.bytes, &self.origin) {
            (None, LimitOrigin::Configured { key }) => write!(f, "no memory limit ({key} = 0)"),
            (None, LimitOrigin::Machine { .. }) => write!(f, "no memory limit"),
            (Some(bytes), LimitOrigin::Configured { key }) => write!(
                f,
                "memory limit {} ({key} = {})",
                human_bytes(bytes as u64),
                bytes as u64 / MIB
            ),
            (Some(bytes), LimitOrigin::Machine { total, cgroup }) => write!(
                f,
                "memory limit {} (a quarter of the {} {}; set run.memory_limit_mb to change it)",
                human_bytes(bytes as u64),
                human_bytes(*total),
                if *cgroup {
                    "this container may use"
                } else {
                    "this machine has"
                }
            ),
        }
    }
}

/// The memory this process may use and whether a cgroup (container) limit set it.
fn available_memory() -> (u64, bool) {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    let physical = system.total_memory();
    match system.cgroup_limits() {
        Some(limits) if limits.total_memory > 0 && limits.total_memory < physical => {
            (limits.total_memory, true)
        }
        _ if physical > 0 => (physical, false),
        _ => (AUTO_FALLBACK_BYTES * AUTO_DIVISOR, false),
    }
}

/// `1.5 GiB`, `640.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

/// What the pool calls memory Strata holds itself, such as a model in training: `ALS training
/// (held in memory, cannot spill)`. [`over_limit`] does not say spilling was tried for it.
pub fn held_in_memory(what: &str) -> String {
    format!("{what}{HELD_IN_MEMORY}")
}

const HELD_IN_MEMORY: &str = " (held in memory, cannot spill)";

/// The process's peak resident memory so far (Linux `VmHWM`): what the operating system charged
/// for the whole run, DataFusion's pool, Strata's own structures and the allocator's slack included.
/// `None` where the kernel does not report it.
pub fn peak_resident() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_peak_resident(&status)
}

fn parse_peak_resident(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line["VmHWM:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// What DataFusion's "Resources exhausted" said: which operator wanted how much more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    /// DataFusion's name for the operator's reservation: `HashJoinInput[0]`,
    /// `ExternalSorterMerge[1]`, `GroupedHashAggregateStream[0] (count(1))`.
    pub operator: String,
    /// `12.0 MiB`, as DataFusion wrote it.
    pub wanted: String,
}

/// The operator that could not get memory, when `error`'s chain holds DataFusion's "Resources
/// exhausted" (it may be wrapped by deltalake or Strata errors).
pub fn exhausted(error: &dyn std::error::Error) -> Option<Exhausted> {
    let chain = crate::error::error_chain(error);
    let start = chain.find("Resources exhausted")?;
    let line = chain[start..].lines().next().unwrap_or_default();
    // "Failed to allocate additional 12.0 MiB for HashJoinInput[0] with 1.0 MiB already ..."
    let parsed = line
        .split_once("additional ")
        .and_then(|(_, rest)| rest.split_once(" for "))
        .and_then(|(wanted, rest)| Some((wanted, rest.split_once(" with ")?.0)));
    Some(match parsed {
        Some((wanted, operator)) => Exhausted {
            operator: operator.trim().to_string(),
            wanted: wanted.trim().to_string(),
        },
        None => Exhausted {
            operator: "an operator".to_string(),
            wanted: "more".to_string(),
        },
    })
}

/// `error` as [`Error::MemoryLimit`] naming `work` (`step silver.x`, `the query`) when DataFusion
/// ran out of `limit`; any other error unchanged. A step's message adds that it committed nothing.
pub fn over_limit(error: Error, work: &str, limit: &MemoryLimit, is_step: bool) -> Error {
    let Some(found) = exhausted(&error) else {
        return error;
    };
    let remedy = if is_step {
        format!("{}; the step committed nothing", limit.remedy())
    } else {
        limit.remedy()
    };
    let spill_note = if found.operator.ends_with(HELD_IN_MEMORY) {
        ""
    } else {
        ", even spilling to disk"
    };
    Error::MemoryLimit {
        work: work.to_string(),
        operator: found.operator,
        wanted: found.wanted,
        limit: format!("{limit}{spill_note}"),
        remedy,
    }
}

/// What a plan's operators spilled to disk while it ran, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spilled {
    /// How many times an operator spilled.
    pub spills: usize,
    pub bytes: usize,
}

impl Spilled {
    /// Sums the spill metrics of `plan` and every operator under it (after it ran).
    pub fn of(plan: &dyn datafusion::physical_plan::ExecutionPlan) -> Spilled {
        let own = plan
            .metrics()
            .map_or(Spilled::default(), |metrics| Spilled {
                spills: metrics.spill_count().unwrap_or(0),
                bytes: metrics.spilled_bytes().unwrap_or(0),
            });
        plan.children()
            .into_iter()
            .map(|child| Spilled::of(child.as_ref()))
            .fold(own, |sum, child| Spilled {
                spills: sum.spills + child.spills,
                bytes: sum.bytes + child.bytes,
            })
    }
}

impl fmt::Display for Spilled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spilled {} to disk in {} spill(s)",
            human_bytes(self.bytes as u64),
            self.spills
        )
    }
}

/// This process's spill directory under `run.spill_dir`, removed when dropped.
#[derive(Debug)]
pub struct SpillArea {
    dir: PathBuf,
    lock_path: PathBuf,
    /// Held locked while the process lives: the next process's sweep skips a locked area.
    _lock: File,
}

impl SpillArea {
    /// Creates a fresh area under `root` (created if missing), first removing areas there whose
    /// process is gone.
    pub fn open(root: &Path) -> Result<SpillArea> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        fs::create_dir_all(root).map_err(io(root))?;
        sweep(root);
        let name = format!("{AREA_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let lock_path = root.join(format!("{name}.lock"));
        let lock = File::create(&lock_path).map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        let dir = root.join(name);
        fs::create_dir(&dir).map_err(io(&dir))?;
        Ok(SpillArea {
            dir,
            lock_path,
            _lock: lock,
        })
    }

    /// Where DataFusion writes this process's spill files.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SpillArea {
    fn drop(&mut self) {
        // The directory first: a lock file without its directory is swept as stale, a directory
        // without its lock file would never be.
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// Removes the areas under `root` whose lock no process holds (their process was killed).
fn sweep(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(area) = name
            .strip_suffix(".lock")
            .filter(|n| n.starts_with(AREA_PREFIX))
        else {
            continue;
        };
        let Ok(lock) = File::options().write(true).open(entry.path()) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            let _ = fs::remove_dir_all(root.join(area));
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_resident_memory_is_read_from_the_kernels_status_lines() {
        let status = "Name:\tstrata\nVmPeak:\t 2000000 kB\nVmHWM:\t  409600 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_peak_resident(status), Some(400 << 20));
        assert_eq!(parse_peak_resident("Name:\tstrata\n"), None);
        assert!(peak_resident().is_some_and(|bytes| bytes > 0));
    }

    #[test]
    fn the_setting_reads_mib_zero_and_auto_and_refuses_anything_else() {
        let read = |text: &str| {
            let table: toml::Table = toml::from_str(&format!("v = {text}")).unwrap();
            MemoryLimitSetting::from_toml(&table["v"])
        };
        assert_eq!(read("512"), Ok(MemoryLimitSetting::MiB(512)));
        assert_eq!(read("0"), Ok(MemoryLimitSetting::Unbounded));
        assert_eq!(read("\"auto\""), Ok(MemoryLimitSetting::Auto));
        assert_eq!(read("\"256\""), Ok(MemoryLimitSetting::MiB(256)));
        for bad in ["-1", "\"lots\"", "1.5", "true"] {
            let message = read(bad).unwrap_err();
            assert!(message.contains("\"auto\""), "{bad}: {message}");
        }
    }

    #[test]
    fn auto_is_a_quarter_of_the_memory_and_says_so() {
        let limit = MemoryLimit::resolve(MemoryLimitSetting::Auto);
        let LimitOrigin::Machine { total, .. } = limit.origin else {
            panic!("auto must come from the machine: {limit:?}");
        };
        assert_eq!(limit.bytes, Some((total / 4).max(64 * MIB) as usize));
        let line = limit.to_string();
        assert!(line.contains("a quarter of the") && line.contains("run.memory_limit_mb"));

        let configured = MemoryLimit::resolve(MemoryLimitSetting::MiB(1024));
        assert_eq!(configured.bytes, Some(1 << 30));
        assert_eq!(
            configured.to_string(),
            "memory limit 1.0 GiB (run.memory_limit_mb = 1024)"
        );
        assert_eq!(
            MemoryLimit::resolve(MemoryLimitSetting::Unbounded).bytes,
            None
        );
    }

    #[test]
    fn an_area_goes_when_dropped_and_a_dead_process_area_is_swept() {
        let root = tempfile::tempdir().unwrap();
        let area = SpillArea::open(root.path()).unwrap();
        fs::write(area.path().join("spill-1"), b"x").unwrap();
        let live = SpillArea::open(root.path()).unwrap();
        // Opening a second area must not sweep a live one.
        assert!(area.path().join("spill-1").exists());

        // A killed process leaves its area and an unlocked lock file behind.
        let dead = root.path().join("strata-dead");
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join("spill-2"), b"x").unwrap();
        fs::write(root.path().join("strata-dead.lock"), b"").unwrap();
        // Anything else in the directory is not ours.
        fs::write(root.path().join("unrelated.lock"), b"").unwrap();

        let third = SpillArea::open(root.path()).unwrap();
        assert!(!dead.exists(), "the dead process's area is swept");
        assert!(!root.path().join("strata-dead.lock").exists());
        assert!(root.path().join("unrelated.lock").exists());
        assert!(area.path().exists() && live.path().exists());

        let (first, second) = (area.path().to_path_buf(), live.path().to_path_buf());
        drop(area);
        drop(live);
        drop(third);
        assert!(!first.exists() && !second.exists());
        let left: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("unrelated.lock")]);
    }

    #[test]
    fn resources_exhausted_names_the_operator() {
        let error = datafusion::error::DataFusionError::ResourcesExhausted(
            "Failed to allocate additional 12.0 MiB for HashJoinInput[0] with 1.0 MiB already \
             allocated for this reservation - 3.0 MiB remain available for the total memory \
             pool: FairSpillPool(pool_size: 64.0 MiB)"
                .into(),
        );
        let wrapped = crate::error::Error::Internal(format!("writing: {error}"));
        let found = exhausted(&wrapped).unwrap();
        assert_eq!(found.operator, "HashJoinInput[0]");
        assert_eq!(found.wanted, "12.0 MiB");
        let other = datafusion::error::DataFusionError::Plan("no such table".into());
        assert!(exhausted(&other).is_none());
    }
}
