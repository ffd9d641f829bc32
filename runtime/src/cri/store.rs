//! What the runtime remembers about sandboxes and containers, persisted as one JSON file each
//! under the root (`sandboxes/<id>/sandbox.json`, `containers/<id>/container.json`) so that a
//! restarted runtime lists the same objects. Writes are atomic (temporary file + rename) but not
//! fsync'd: after a machine crash the containers are gone too, and the kubelet recreates them.

use std::path::{Path, PathBuf};

use k8s_cri::v1::{ContainerConfig, PodSandboxConfig};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::CriError;
use crate::cni::Attachment;

/// A pod sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub config: PodSandboxConfig,
    pub runtime_handler: String,
    /// Unix nanoseconds.
    pub created_at: i64,
    /// false once stopped (CRI SANDBOX_NOTREADY).
    pub ready: bool,
    /// The CNI ADD result; `None` once the network was torn down.
    pub network: Option<Attachment>,
    /// The pod's cgroup, parent of its containers' (`<parent>/pod<uid>`).
    pub cgroup: String,
}

/// A container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    pub config: ContainerConfig,
    /// The image as the client named it, and the store's image id it resolved to.
    pub image: String,
    pub image_id: String,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    /// Set once the container's exit was observed (then the record is final).
    pub exit: Option<ExitInfo>,
    pub log_path: Option<PathBuf>,
    pub cgroup: String,
}

/// How a container ended, in CRI terms.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExitInfo {
    pub exit_code: i32,
    /// Completed, Error, OOMKilled or ContainerCannotRun (the kubelet's reasons).
    pub reason: String,
    pub message: String,
}

pub const SANDBOX_FILE: &str = "sandbox.json";
pub const CONTAINER_FILE: &str = "container.json";

/// Writes `value` as JSON to `dir/name` via a temporary file and rename.
pub fn save<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), CriError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let bytes = serde_json::to_vec(value).expect("records serialize");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| CriError::Io {
            what: "write",
            path,
            source,
        })
}

/// Every `<dir>/*/<name>` that parses; unreadable ones are logged and skipped so that one bad
/// file does not hide the rest.
pub fn load_all<T: DeserializeOwned>(dir: &Path, name: &str) -> Vec<T> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path().join(name);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(v) => out.push(v),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "skipping bad record"),
            },
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping unreadable record")
            }
        }
    }
    out
}
