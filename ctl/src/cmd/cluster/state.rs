//! What a local cluster is made of, recorded in `/var/lib/minik8s/clusters/<name>/state.json`
//! so every later `minictl cluster …` (and `down` after a crash) finds its processes, network
//! namespaces, bridge and addresses again.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ClusterError;

/// Where clusters keep their state (one directory per cluster name).
pub const CLUSTERS_DIR: &str = "/var/lib/minik8s/clusters";
/// The port the API server listens on, on the cluster bridge's address.
pub const API_PORT: u16 = 6443;
/// Third octets of the cluster subnets 172.31.X.0/24; X also names the cluster's pod range
/// 10.X.0.0/16 (nodes' podCIDRs from 10.X.0.0/17, runtimes' fallback ranges above it), so the range avoids 10.88/16 (the runtime's default), 10.96/12 (Services)
/// and 10.244/16 (the controller-manager's default).
pub const SUBNET_INDEXES: std::ops::RangeInclusive<u8> = 120..=239;

/// The clusters' root, `$MINIK8S_CLUSTERS_DIR` if set (tests may use a private one).
pub fn clusters_dir() -> PathBuf {
    std::env::var_os("MINIK8S_CLUSTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CLUSTERS_DIR))
}

/// One process the cluster started. The start time (field 22 of /proc/PID/stat) tells a
/// recorded PID from a later process that reused it, so we never signal a stranger.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Proc {
    pub component: String,
    pub pid: i32,
    pub start_time: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub ip: Ipv4Addr,
    /// Network namespace name (`ip netns` shows it).
    pub netns: String,
    /// Host end of the node's veth, a port of the cluster bridge.
    pub veth: String,
    pub cgroup_parent: String,
    pub pod_cidr: String,
    pub procs: Vec<Proc>,
    /// Set by kill-node (containers frozen), cleared by restart-node.
    #[serde(default)]
    pub killed: bool,
    /// Set by partition-node, cleared by heal-node.
    #[serde(default)]
    pub partitioned: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterState {
    pub name: String,
    /// X of 172.31.X.0/24 and 10.X.0.0/16.
    pub index: u8,
    pub bridge: String,
    pub node_monitor_grace_period: String,
    pub default_toleration_seconds: i64,
    /// What the nodes' cluster DNS forwards to (`cluster up --resolv-conf`).
    #[serde(default = "default_resolv_conf")]
    pub resolv_conf: String,
    pub control_plane: Vec<Proc>,
    pub nodes: Vec<NodeState>,
}

fn default_resolv_conf() -> String {
    "/etc/resolv.conf".into()
}

impl ClusterState {
    pub fn dir_of(name: &str) -> PathBuf {
        clusters_dir().join(name)
    }
    pub fn dir(&self) -> PathBuf {
        Self::dir_of(&self.name)
    }
    /// The bridge's address: where the control plane listens.
    pub fn api_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(172, 31, self.index, 1)
    }
    /// Pod CIDRs of the nodes are allocated from here by the controller-manager.
    pub fn cluster_cidr(&self) -> String {
        format!("10.{}.0.0/17", self.index)
    }
    pub fn server_url(&self) -> String {
        format!("https://{}:{API_PORT}", self.api_ip())
    }
    /// The API server's data dir; it writes `admin.kubeconfig` there.
    pub fn apiserver_dir(&self) -> PathBuf {
        self.dir().join("apiserver")
    }
    pub fn kubeconfig(&self) -> PathBuf {
        self.apiserver_dir().join("admin.kubeconfig")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.dir().join("logs")
    }
    pub fn images_dir(&self) -> PathBuf {
        self.dir().join("images")
    }
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir().join("nodes").join(node)
    }
    pub fn node(&self, name: &str) -> Result<&NodeState, ClusterError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| self.no_such_node(name))
    }
    pub fn node_mut(&mut self, name: &str) -> Result<&mut NodeState, ClusterError> {
        let err = self.no_such_node(name);
        self.nodes.iter_mut().find(|n| n.name == name).ok_or(err)
    }
    fn no_such_node(&self, name: &str) -> ClusterError {
        ClusterError::NoSuchNode {
            cluster: self.name.clone(),
            node: name.to_string(),
            known: self
                .nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    pub fn load(name: &str) -> Result<ClusterState, ClusterError> {
        let path = Self::dir_of(name).join("state.json");
        let text = std::fs::read_to_string(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ClusterError::NoSuchCluster(name.to_string()),
            _ => ClusterError::Io {
                what: "read",
                path: path.clone(),
                source,
            },
        })?;
        serde_json::from_str(&text).map_err(|source| ClusterError::StateFormat { path, source })
    }

    /// Writes state.json atomically (temp file + rename), so a crash never leaves half a file.
    pub fn save(&self) -> Result<(), ClusterError> {
        let path = self.dir().join("state.json");
        let tmp = self.dir().join("state.json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("state serialises");
        std::fs::write(&tmp, text).map_err(|source| ClusterError::io("write", &tmp, source))?;
        std::fs::rename(&tmp, &path).map_err(|source| ClusterError::io("rename", &path, source))
    }
}

/// Names of the clusters with a state directory.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(clusters_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("state.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Reserves a free subnet index: a marker file created exclusively under `.subnets/`, so
/// clusters brought up concurrently never pick the same one; an index whose 172.31.X.0/24 is
/// already on some host interface is skipped.
pub fn reserve_index(cluster: &str) -> Result<u8, ClusterError> {
    let dir = clusters_dir().join(".subnets");
    std::fs::create_dir_all(&dir).map_err(|source| ClusterError::io("create", &dir, source))?;
    let in_use = host_subnets();
    for index in SUBNET_INDEXES {
        if in_use.contains(&index) {
            continue;
        }
        let marker = dir.join(index.to_string());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
        {
            Ok(_) => {
                std::fs::write(&marker, cluster)
                    .map_err(|source| ClusterError::io("write", &marker, source))?;
                return Ok(index);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(ClusterError::io("create", &marker, source)),
        }
    }
    Err(ClusterError::NoFreeSubnet)
}

pub fn release_index(index: u8) {
    let _ = std::fs::remove_file(clusters_dir().join(".subnets").join(index.to_string()));
}

/// X of every 172.31.X.* address already configured on the host.
fn host_subnets() -> Vec<u8> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.split_whitespace()
        .filter_map(|w| w.strip_prefix("172.31."))
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect()
}

/// The bridge name: at most 15 characters (IFNAMSIZ - 1), `mk8s-` + up to 6 characters of
/// the cluster name + `-X`, unique on the host because X is.
pub fn bridge_name(cluster: &str, index: u8) -> String {
    let short: String = cluster
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(6)
        .collect();
    format!("mk8s-{short}-{index}")
}

/// Checks a cluster name: it becomes a directory, part of netns and cgroup names.
pub fn validate_name(name: &str) -> Result<(), ClusterError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ClusterError::BadName(name.to_string()))
    }
}

pub fn remove_dir(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_ifnamsiz() {
        assert_eq!(bridge_name("minik8s", 120), "mk8s-minik8-120");
        assert!(bridge_name("a-very-long-cluster-name", 239).len() <= 15);
        assert_eq!(bridge_name("e2e", 7), "mk8s-e2e-7");
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("e2e-fail-1").is_ok());
        assert!(validate_name("Bad/Name").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("-x").is_err());
    }
}
