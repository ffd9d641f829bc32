//! The low-level OCI runtime: an OCI bundle (rootfs + config.json) in, a process in its own
//! namespaces, cgroup and root filesystem out — what runc does. See `runtime/ARCHITECTURE.md`
//! for the process tree (caller → shim → container init) and the pipes between them.
//!
//! The library is the API ([`Runtime`]); [`cli`] is a thin runc-compatible front end.

mod bundle;
pub mod busybox;
pub mod channel;
pub mod cli;
pub(crate) mod container_cgroup;
mod create;
mod exec;
pub mod init;
mod lifecycle;
pub mod namespaces;
pub mod state;

use std::path::{Path, PathBuf};

pub use bundle::Bundle;
pub use create::CreateOptions;
pub use exec::ExecOptions;
pub use nix::sys::signal::Signal;
/// The runtime-spec types, for callers that build or adjust a config.json.
pub use oci_spec::runtime as spec;
pub use state::{ContainerState, ExitRecord, Status};

/// Where a runtime keeps its containers' state, and how it starts shims.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// State root: one directory per container (`<root>/<id>`).
    pub root: PathBuf,
    /// The binary re-executed as the shim (`<shim_binary> shim ...`): the minik8s binary.
    pub shim_binary: PathBuf,
    /// Parent cgroup for containers without `linux.cgroupsPath`.
    pub cgroup_parent: String,
    /// cgroup filesystem root; `None` detects the machine's (`/sys/fs/cgroup`).
    pub cgroup_root: Option<PathBuf>,
    /// How `create` starts the shim.
    pub shim_launch: ShimLaunch,
}

/// How the shim process is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShimLaunch {
    /// posix_spawn of `<shim_binary> shim ...`: safe from any caller, including a
    /// multi-threaded server (the CRI runtime).
    Exec,
    /// fork(2) of the caller, which then runs the shim code without an exec: saves one exec per
    /// container, but only for single-threaded callers (the `minik8s oci` CLI), since a forked
    /// child of a multi-threaded process may inherit locks held by other threads.
    Fork,
}

/// The shim-only binary (`runtime/src/bin/minik8s-shim.rs`), preferred when installed beside
/// `minik8s`.
pub const SHIM_BINARY: &str = "minik8s-shim";

/// The default state root, like runc's `/run/runc`.
pub const DEFAULT_ROOT: &str = "/run/minik8s/oci";
/// The default parent cgroup (DESIGN.md §6).
pub const DEFAULT_CGROUP_PARENT: &str = "minik8s";

impl Runtime {
    /// A runtime whose shim is [`SHIM_BINARY`] next to this executable when it is there (a
    /// small binary: less to map and relocate per container), else this very executable (the
    /// `minik8s` binary has the same shim as a hidden subcommand).
    pub fn new(root: impl Into<PathBuf>) -> Result<Runtime, OciError> {
        let exe = std::env::current_exe().map_err(|source| OciError::Io {
            what: "/proc/self/exe".into(),
            source,
        })?;
        // Not older than this executable: a stale shim from an earlier build would speak an
        // older protocol (both come from one `cargo build` of the workspace).
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let shim_binary = exe
            .parent()
            .map(|dir| dir.join(SHIM_BINARY))
            .filter(|p| p.is_file() && modified(p) >= modified(&exe))
            .unwrap_or(exe);
        Ok(Runtime {
            root: root.into(),
            shim_binary,
            cgroup_parent: DEFAULT_CGROUP_PARENT.to_string(),
            cgroup_root: None,
            shim_launch: ShimLaunch::Exec,
        })
    }

    /// Use `binary` as the shim (tests in other packages pass `CARGO_BIN_EXE_minik8s`).
    pub fn with_shim_binary(mut self, binary: impl Into<PathBuf>) -> Runtime {
        self.shim_binary = binary.into();
        self
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
}

/// Errors of the runtime's operations. Messages are lowercase and name the container, the
/// path or the syscall that failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("invalid container id {0:?}: use letters, digits, '_', '-' and '.'")]
    InvalidId(String),
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {id:?} is {status}: {what}")]
    WrongStatus {
        id: String,
        status: Status,
        what: &'static str,
    },
    #[error("{0}")]
    Bundle(#[from] bundle::BundleError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{syscall}: {source}")]
    Sys {
        syscall: String,
        #[source]
        source: nix::Error,
    },
    #[error("invalid state file {path}: {source}")]
    StateFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("start shim {binary}: {source}")]
    SpawnShim {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("shim exited without reporting for container {0:?}")]
    ShimVanished(String),
    /// The container's init or the shim reported a failure (already a full message).
    #[error("{0}")]
    Container(String),
    #[error("cgroup: {0}")]
    Cgroup(String),
    #[error("container {0:?} exited without an exit status (its shim died)")]
    NoExitStatus(String),
    #[error("{0} is not supported")]
    Unsupported(String),
}

impl OciError {
    pub(crate) fn io(what: impl std::fmt::Display, source: std::io::Error) -> OciError {
        OciError::Io {
            what: what.to_string(),
            source,
        }
    }

    pub(crate) fn sys(syscall: impl std::fmt::Display, source: nix::Error) -> OciError {
        OciError::Sys {
            syscall: syscall.to_string(),
            source,
        }
    }
}

/// Container ids become directory and cgroup names: keep them to a safe alphabet (runc's rule).
pub(crate) fn validate_id(id: &str) -> Result<(), OciError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(OciError::InvalidId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("abc-1_2.3").is_ok());
        for bad in ["", "..", "a/b", "a b", "x\n"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
