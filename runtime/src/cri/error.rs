//! The CRI server's errors, and their one mapping to gRPC statuses.

use std::path::PathBuf;

use crate::cni::CniError;
use crate::oci::OciError;
use crate::sandbox::SandboxError;
use crate::snapshot::SnapshotError;

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("pod sandbox {0:?} not found")]
    SandboxNotFound(String),
    #[error("container {0:?} not found")]
    ContainerNotFound(String),
    #[error("image {0:?} not found")]
    ImageNotFound(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{0}")]
    WrongState(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("network: {0}")]
    Cni(#[from] CniError),
    #[error("rootfs: {0}")]
    Snapshot(#[from] SnapshotError),
    #[error("oci runtime: {0}")]
    Oci(#[from] OciError),
    #[error("external oci runtime {binary} {command} {id}: {message}")]
    External {
        binary: String,
        command: &'static str,
        id: String,
        message: String,
    },
    #[error("image: {0}")]
    Image(String),
    #[error("cgroup {path}: {message}")]
    Cgroup { path: String, message: String },
    #[error("exec in container {id}: {message}")]
    Exec { id: String, message: String },
    #[error("exec in container {id}: timed out after {seconds}s")]
    ExecTimeout { id: String, seconds: i64 },
    #[error("serve cri on {path}: {message}")]
    Serve { path: PathBuf, message: String },
    #[error("blocking task failed: {0}")]
    Task(String),
}

impl From<CriError> for tonic::Status {
    fn from(e: CriError) -> tonic::Status {
        use tonic::Code;
        let code = match &e {
            CriError::SandboxNotFound(_)
            | CriError::ContainerNotFound(_)
            | CriError::ImageNotFound(_) => Code::NotFound,
            CriError::InvalidArgument(_) => Code::InvalidArgument,
            CriError::ExecTimeout { .. } => Code::DeadlineExceeded,
            CriError::WrongState(_) => Code::FailedPrecondition,
            CriError::Oci(OciError::NotFound(_)) => Code::NotFound,
            CriError::Oci(OciError::WrongStatus { .. }) => Code::FailedPrecondition,
            CriError::Oci(OciError::InvalidId(_)) => Code::InvalidArgument,
            _ => Code::Internal,
        };
        tonic::Status::new(code, e.to_string())
    }
}
