//! The one error type of the cgroups module: every variant names the cgroup path or file involved.

use std::path::PathBuf;

/// What went wrong while managing a cgroup. Messages are lowercase and name the path.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup filesystem (v1 hierarchies or cgroup2) was found where we looked.
    #[error("no cgroup filesystem found at {path}")]
    NotMounted { path: PathBuf },

    /// The relative cgroup path given by the caller is unusable (absolute escape, `..`, empty).
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    /// Reading a control file (or mountinfo) failed.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The kernel refused a value written to a control file (e.g. EINVAL for a bad limit).
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },

    /// A control file's content was not what the kernel documents.
    #[error("parsing {path}: {reason}")]
    Parse { path: PathBuf, reason: String },

    /// mkdir of a cgroup directory failed.
    #[error("creating cgroup directory {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// rmdir of a cgroup directory failed (EBUSY after the grace period means it is not empty).
    #[error("removing cgroup directory {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A requested resource cannot be applied in this layout (e.g. swap without swap accounting).
    #[error("{what} is not supported for {path}: {reason}")]
    Unsupported {
        path: PathBuf,
        what: String,
        reason: String,
    },

    /// The requested resources are inconsistent (e.g. swap below the memory limit).
    #[error("invalid resources for {path}: {reason}")]
    InvalidResources { path: PathBuf, reason: String },

    /// kill(2) of a process in the cgroup failed with something other than ESRCH.
    #[error("sending signal {signal} to pid {pid} of {path}: {source}")]
    Signal {
        path: PathBuf,
        pid: i32,
        signal: i32,
        #[source]
        source: nix::Error,
    },

    /// A state change (freeze, thaw) did not complete in time.
    #[error("timed out waiting for {path} to become {state}")]
    Timeout { path: PathBuf, state: String },

    /// Loading or attaching the v2 eBPF device filter failed (the verifier's log is in source).
    #[error("{step} the device filter for {path}: {source}")]
    DeviceFilter {
        path: PathBuf,
        step: String,
        #[source]
        source: std::io::Error,
    },

    /// A mount (or symlink) building a container's /sys/fs/cgroup failed.
    #[error("mounting {what} at {path}: {source}")]
    Mount {
        path: PathBuf,
        what: String,
        #[source]
        source: std::io::Error,
    },
}
