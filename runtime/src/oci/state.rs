//! What a container's state directory `<root>/<id>/` holds, and how its status is derived.
//!
//! - `state.json`: written once by `create` ([`StateFile`]).
//! - `exec.fifo`: exists from create until start (runc's exec fifo; see `lifecycle::start`).
//! - `exit.json`: written by the shim when the container's init exits ([`ExitRecord`]).
//! - the directory itself is `flock`ed exclusively by the shim for its whole life, so waiting for
//!   the container is a shared `flock` (see `lifecycle::wait`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::OciError;

pub const STATE_FILE: &str = "state.json";
pub const EXIT_FILE: &str = "exit.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// Exists while the container is paused (its cgroup frozen).
pub const PAUSED: &str = "paused";

/// The lifecycle states of the runtime spec (runtime.md#state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn can_start(self) -> bool {
        self == Status::Created
    }
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// runc's `state` output (runtime.md#state plus runc's rootfs, created and owner).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// `state.json`: the public state plus what the runtime needs to find the processes again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile {
    #[serde(flatten)]
    pub state: ContainerState,
    /// Start time (clock ticks since boot, /proc/<pid>/stat field 22) of the init, so a recycled
    /// pid is never mistaken for the container.
    pub init_start_time: u64,
    pub shim_pid: i32,
    /// cgroup path relative to each hierarchy's root.
    pub cgroup_path: String,
    #[serde(default)]
    pub cgroup_root: Option<PathBuf>,
    #[serde(default)]
    pub log_path: Option<PathBuf>,
}

/// How the container's init ended, written by the shim to `exit.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitRecord {
    /// The exit code, or 128 + signal number when killed by a signal.
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// The cgroup's OOM killer fired while the container ran.
    pub oom_killed: bool,
    /// RFC 3339 with nanoseconds, UTC.
    pub finished_at: String,
    /// Set when the process could not be started after `start` (exec failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ContainerState {
    /// Parses runc's (or crun's, or our) `state` output.
    pub fn from_json(bytes: &[u8]) -> Result<ContainerState, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

impl StateFile {
    pub fn read(dir: &Path, id: &str) -> Result<StateFile, OciError> {
        let path = dir.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OciError::NotFound(id.to_string()))
            }
            Err(e) => return Err(OciError::io(format!("read {}", path.display()), e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| OciError::StateFile { path, source })
    }

    pub fn write(&self, dir: &Path) -> Result<(), OciError> {
        write_atomic(
            &dir.join(STATE_FILE),
            &serde_json::to_vec(self).expect("state serializes"),
        )
    }

    /// The status now: stopped once the shim recorded an exit or the init is gone, created while
    /// the exec fifo still exists, running otherwise.
    pub fn status(&self, dir: &Path) -> Status {
        if dir.join(EXIT_FILE).exists() || !process_alive(self.state.pid, self.init_start_time) {
            return Status::Stopped;
        }
        if dir.join(EXEC_FIFO).exists() {
            Status::Created
        } else if dir.join(PAUSED).exists() {
            Status::Paused
        } else {
            Status::Running
        }
    }
}

impl ExitRecord {
    pub fn read(dir: &Path) -> Result<Option<ExitRecord>, OciError> {
        let path = dir.join(EXIT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| OciError::StateFile { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(OciError::io(format!("read {}", path.display()), e)),
        }
    }

    pub fn write(&self, dir: &Path) -> Result<(), OciError> {
        write_atomic(
            &dir.join(EXIT_FILE),
            &serde_json::to_vec(self).expect("exit serializes"),
        )
    }
}

/// Write-then-rename so readers never see half a file. No fsync: the state lives on tmpfs
/// (`/run`) and dies with the machine, like runc's.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| OciError::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| OciError::io(format!("rename {}", path.display()), e))
}

/// Field 22 (starttime) of /proc/<pid>/stat, and whether the process is a zombie.
pub fn process_start_time(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state == "Z" || state == "X"))
}

/// True when `pid` still runs and is the same process (same start time), not a zombie.
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    matches!(process_start_time(pid), Some((start, false)) if start == start_time)
}

/// Now, as RFC 3339 with nanoseconds (the format of runc's `created` and CRI logs).
pub fn now_rfc3339() -> String {
    crate::shim::record::rfc3339_nanos(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_recycled_pid_is_not() {
        let me = std::process::id() as i32;
        let (start, zombie) = process_start_time(me).unwrap();
        assert!(!zombie);
        assert!(process_alive(me, start));
        assert!(!process_alive(me, start + 1));
    }

    #[test]
    fn state_json_is_runc_shaped() {
        let state = ContainerState {
            oci_version: "1.0.2".into(),
            id: "c1".into(),
            pid: 42,
            status: Status::Created,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: now_rfc3339(),
            owner: String::new(),
            annotations: HashMap::new(),
        };
        let v = serde_json::to_value(&state).unwrap();
        for key in [
            "ociVersion",
            "id",
            "pid",
            "status",
            "bundle",
            "rootfs",
            "created",
            "owner",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["status"], "created");
    }
}
