//! The runtime's pod network config for this node: once the controller-manager has given the
//! Node a `spec.podCIDR`, the nodelet writes a CNI conf list into the runtime's conf dir (the
//! job containerd's CNI conf template does from the podCIDR the kubelet reports over CRI):
//!
//! - `bridge` with the gateway (`.1` of the podCIDR) on the bridge and `hairpinMode`, so a pod
//!   reaching itself through its Service gets its packets back;
//! - `host-local` IPAM over the podCIDR, so pod IPs are unique cluster-wide (one /24 per node);
//! - `portmap` for hostPorts.
//!
//! `ipMasq` stays off: the bridge plugin would masquerade everything leaving the node's /24,
//! pod-to-pod traffic to other nodes included, and Kubernetes' network model wants pods to see
//! each other's real IPs. Traffic leaving the cluster CIDR is masqueraded by the service
//! proxy's table instead (minik8s-proxy, `pod-egress`).
//!
//! The file is `00-minik8s.conflist`, first by name, so it wins over the runtime's default
//! `10-<network>.conflist` (libcni and our runtime take the first file). It is written to a
//! temp file and renamed, so a reader never sees half of it, and only when its content changes.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// The conf list's file name.
pub const FILE: &str = "00-minik8s.conflist";
/// The CNI network name (host-local keys its allocations by it).
pub const NETWORK: &str = "minik8s";

#[derive(Debug, thiserror::Error)]
pub enum CniConfError {
    #[error("invalid podCIDR {0:?}: expected an IPv4 a.b.c.d/n")]
    PodCidr(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where and how to write it.
#[derive(Debug, Clone)]
pub struct CniConf {
    pub conf_dir: PathBuf,
    pub bridge: String,
    /// host-local's allocation store (kept under the nodelet's root so nodes never share one).
    pub ipam_dir: PathBuf,
}

/// The gateway of a pod CIDR: its first host address.
pub fn gateway(pod_cidr: &str) -> Result<Ipv4Addr, CniConfError> {
    let bad = || CniConfError::PodCidr(pod_cidr.into());
    let (ip, len) = pod_cidr.split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let len: u32 = len.parse().map_err(|_| bad())?;
    if !(8..=30).contains(&len) {
        return Err(bad());
    }
    let mask = u32::MAX << (32 - len);
    Ok(Ipv4Addr::from((u32::from(ip) & mask) + 1))
}

impl CniConf {
    /// The conf list for `pod_cidr`.
    pub fn render(&self, pod_cidr: &str) -> Result<Value, CniConfError> {
        let gw = gateway(pod_cidr)?;
        Ok(json!({
            "cniVersion": "1.0.0",
            "name": NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{ "subnet": pod_cidr, "gateway": gw.to_string() }]],
                        "routes": [{ "dst": "0.0.0.0/0" }],
                        "dataDir": self.ipam_dir,
                    }
                },
                { "type": "portmap", "capabilities": { "portMappings": true } }
            ]
        }))
    }

    pub fn path(&self) -> PathBuf {
        self.conf_dir.join(FILE)
    }

    /// Writes the conf list for `pod_cidr` unless the file already holds it; returns whether it
    /// wrote.
    pub fn write(&self, pod_cidr: &str) -> Result<bool, CniConfError> {
        let text = serde_json::to_string_pretty(&self.render(pod_cidr)?).expect("json serializes");
        let path = self.path();
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            return Ok(false);
        }
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| CniConfError::Io { what, path, source }
        };
        std::fs::create_dir_all(&self.conf_dir).map_err(io("create", &self.conf_dir))?;
        let tmp = self.conf_dir.join(format!(".{FILE}.tmp"));
        std::fs::write(&tmp, &text).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("rename", &path))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_is_the_first_host_of_the_pod_cidr() {
        assert_eq!(
            gateway("10.244.3.0/24").unwrap(),
            Ipv4Addr::new(10, 244, 3, 1)
        );
        assert_eq!(
            gateway("10.244.3.77/24").unwrap(),
            Ipv4Addr::new(10, 244, 3, 1)
        );
        assert!(gateway("10.244.3.0").is_err());
        assert!(gateway("fd00::/64").is_err());
    }

    #[test]
    fn conf_list_uses_the_pod_cidr_and_is_rewritten_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let conf = CniConf {
            conf_dir: dir.path().join("net.d"),
            bridge: "mk8s0".into(),
            ipam_dir: dir.path().join("ipam"),
        };
        assert!(conf.write("10.244.3.0/24").unwrap());
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(conf.path()).unwrap()).unwrap();
        let bridge = &v["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["bridge"], "mk8s0");
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["hairpinMode"], true);
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.3.0/24");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["gateway"], "10.244.3.1");
        assert_eq!(v["plugins"][1]["type"], "portmap");
        assert!(
            !conf.write("10.244.3.0/24").unwrap(),
            "same content: no rewrite"
        );
        assert!(conf.write("10.244.4.0/24").unwrap());
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(conf.path()).unwrap()).unwrap();
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["gateway"],
            "10.244.4.1"
        );
    }
}
