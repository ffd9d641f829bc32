//! The Node object: registration, status (capacity, conditions, node info) and the Lease.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::cri::Cri;
use crate::{Config, Error};

/// Registers and keeps the Node and its Lease current.
pub struct NodeAgent {
    client: kube::Client,
    config: Config,
    runtime_version: String,
}

impl NodeAgent {
    pub fn new(client: kube::Client, config: Config, runtime_version: String) -> NodeAgent {
        NodeAgent {
            client,
            config,
            runtime_version,
        }
    }

    /// Creates the Node (or adopts an existing one) and writes its first status.
    pub async fn register(&self) -> Result<(), Error> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let name = &self.config.node_name;
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels(name)},
        }))
        .expect("node literal");
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => tracing::info!(node = %name, "node registered"),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Already registered (a restart): keep its spec, refresh the labels.
                let patch = json!({"metadata": {"labels": labels(name)}});
                nodes
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| Error::api(format!("label node {name}"), e))?;
            }
            Err(e) => return Err(Error::api(format!("create node {name}"), e)),
        }
        self.update_status(true).await
    }

    /// Writes the status (capacity, addresses, node info, conditions) through nodes/status.
    pub async fn update_status(&self, runtime_ok: bool) -> Result<(), Error> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let status = node_status(&self.config, &self.runtime_version, runtime_ok);
        let patch = json!({ "status": status });
        nodes
            .patch_status(
                &self.config.node_name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| Error::api(format!("update node {} status", self.config.node_name), e))?;
        Ok(())
    }

    /// Renews the Lease every lease-duration/4 and the status every status-update period.
    pub async fn run(self, mut cri: Cri, shutdown: CancellationToken) {
        let mut lease_tick = tokio::time::interval(self.config.lease_duration / 4);
        let mut status_tick = tokio::time::interval(self.config.status_update);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = lease_tick.tick() => {
                    if let Err(e) = self.renew_lease().await {
                        tracing::warn!(error = %e, "renew node lease");
                    }
                }
                _ = status_tick.tick() => {
                    let ok = cri.version().await.is_ok();
                    if let Err(e) = self.update_status(ok).await {
                        tracing::warn!(error = %e, "update node status");
                    }
                }
            }
        }
    }

    async fn renew_lease(&self) -> Result<(), Error> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let name = &self.config.node_name;
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let secs = self.config.lease_duration.as_secs() as i32;
        match leases.get_opt(name).await {
            Ok(Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                spec.renew_time = Some(serde_json::from_value(json!(now)).expect("microtime"));
                spec.lease_duration_seconds = Some(secs);
                spec.holder_identity = Some(name.clone());
                leases
                    .replace(name, &PostParams::default(), &lease)
                    .await
                    .map_err(|e| Error::api(format!("renew lease {name}"), e))?;
            }
            Ok(None) => {
                let lease: Lease = serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "kube-node-lease",
                        "ownerReferences": []},
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": secs,
                        "renewTime": now},
                }))
                .expect("lease literal");
                leases
                    .create(&PostParams::default(), &lease)
                    .await
                    .map_err(|e| Error::api(format!("create lease {name}"), e))?;
            }
            Err(e) => return Err(Error::api(format!("get lease {name}"), e)),
        }
        Ok(())
    }
}

fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/hostname".into(), name.into()),
        ("kubernetes.io/os".into(), "linux".into()),
        ("kubernetes.io/arch".into(), go_arch().into()),
        ("beta.kubernetes.io/os".into(), "linux".into()),
        ("beta.kubernetes.io/arch".into(), go_arch().into()),
    ])
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The Node status: what the kubelet's setters fill in.
fn node_status(config: &Config, runtime_version: &str, runtime_ok: bool) -> Value {
    let cpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem = meminfo("MemTotal:").unwrap_or(0);
    let mem_avail = meminfo("MemAvailable:").unwrap_or(u64::MAX);
    let (disk_total, disk_free) = statvfs(&config.root_dir).unwrap_or((0, u64::MAX));
    let capacity = json!({
        "cpu": cpu.to_string(),
        "memory": format!("{}Ki", mem / 1024),
        "pods": "110",
        "ephemeral-storage": format!("{}Ki", disk_total / 1024),
    });
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Eviction thresholds as the kubelet's hard defaults: memory.available<100Mi,
    // nodefs.available<10%.
    let mem_pressure = mem_avail < 100 << 20;
    let disk_pressure = disk_total > 0 && disk_free < disk_total / 10;
    let cond = |t: &str, status: bool, reason: &str, msg: &str| {
        json!({"type": t, "status": if status {"True"} else {"False"}, "reason": reason,
            "message": msg, "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "capacity": capacity,
        "allocatable": capacity,
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip.to_string()},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.port}},
        "nodeInfo": {
            "machineID": read_trim("/etc/machine-id"),
            "systemUUID": read_trim("/sys/class/dmi/id/product_uuid"),
            "bootID": read_trim("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": read_trim("/proc/sys/kernel/osrelease"),
            "osImage": os_image(),
            "containerRuntimeVersion": runtime_version,
            "kubeletVersion": format!("v1.32.0-minik8s-{}", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": go_arch(),
        },
        "conditions": [
            cond("MemoryPressure", mem_pressure,
                if mem_pressure {"KubeletHasInsufficientMemory"} else {"KubeletHasSufficientMemory"},
                "memory available"),
            cond("DiskPressure", disk_pressure,
                if disk_pressure {"KubeletHasDiskPressure"} else {"KubeletHasNoDiskPressure"},
                "disk available"),
            cond("PIDPressure", false, "KubeletHasSufficientPID", "pids available"),
            cond("Ready", runtime_ok,
                if runtime_ok {"KubeletReady"} else {"KubeletNotReady"},
                if runtime_ok {"nodelet is posting ready status"} else {"container runtime is down"}),
        ],
    })
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn statvfs(path: &std::path::Path) -> Option<(u64, u64)> {
    let _ = std::fs::create_dir_all(path);
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and s a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let f = s.f_frsize;
    Some((s.f_blocks * f, s.f_bavail * f))
}

fn os_image() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// The hostname, lower-cased as node names must be.
pub fn hostname() -> String {
    read_trim("/proc/sys/kernel/hostname").to_lowercase()
}

/// How long the nodelet waits for the API before retrying a failed call.
pub const RETRY: Duration = Duration::from_secs(1);
