//! Pod sandboxes: RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus and
//! ListPodSandbox.

use std::collections::HashMap;

use k8s_cri::v1 as cri;
use serde_json::{json, Value};

use super::store::{self, SandboxRecord};
use super::{new_id, now_ns, Cri, CriError};
use crate::sandbox::{self, Dns};

impl Cri {
    pub fn run_pod_sandbox(&self, req: cri::RunPodSandboxRequest) -> Result<String, CriError> {
        let config = req
            .config
            .ok_or_else(|| CriError::InvalidArgument("RunPodSandbox without a config".into()))?;
        let meta = config.metadata.clone().unwrap_or_default();
        if meta.name.is_empty() {
            return Err(CriError::InvalidArgument(
                "sandbox metadata.name is empty".into(),
            ));
        }
        let id = new_id();
        let dir = self.sandbox_dir(&id);
        std::fs::create_dir_all(&dir).map_err(|source| CriError::Io {
            what: "create",
            path: dir.clone(),
            source,
        })?;
        // The kubelet leaves the hostname empty only for host-network pods; default to the pod
        // name as Kubernetes does.
        let hostname = if config.hostname.is_empty() {
            meta.name.clone()
        } else {
            config.hostname.clone()
        };
        let owner = if meta.uid.is_empty() { &id } else { &meta.uid };
        let mut record = SandboxRecord {
            id: id.clone(),
            runtime_handler: req.runtime_handler,
            created_at: now_ns(),
            ready: true,
            network: None,
            cgroup: format!(
                "{}/pod{}",
                self.args.cgroup_parent.trim_matches('/'),
                owner.replace('-', "_")
            ),
            config,
        };
        match self.setup_sandbox(&mut record, &hostname) {
            Ok(()) => {}
            Err(e) => {
                let _ = self.teardown_sandbox(&record);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        }
        self.sandboxes.lock().unwrap().insert(id.clone(), record);
        Ok(id)
    }

    fn setup_sandbox(&self, record: &mut SandboxRecord, hostname: &str) -> Result<(), CriError> {
        let dir = self.sandbox_dir(&record.id);
        let dns = record.config.dns_config.as_ref().map(|d| Dns {
            servers: d.servers.clone(),
            searches: d.searches.clone(),
            options: d.options.clone(),
        });
        sandbox::write_files(&dir, hostname, dns.as_ref())?;
        sandbox::create_shm(&dir)?;
        sandbox::create_namespaces(&dir.join("ns"), hostname)?;
        let netns = sandbox::namespace_path(&dir.join("ns"), "net");
        let attachment =
            self.cni
                .current()?
                .add(&record.id, &netns, &port_mappings(&record.config))?;
        if let Some(ip) = &attachment.ip {
            sandbox::add_host_entry(&dir, ip, hostname)?;
        }
        record.network = Some(attachment);
        store::save(&dir, store::SANDBOX_FILE, record)
    }

    /// CNI DEL and namespace release; every step is attempted, the first error is returned.
    fn teardown_sandbox(&self, record: &SandboxRecord) -> Result<(), CriError> {
        let ns_dir = self.sandbox_dir(&record.id).join("ns");
        let mut result = Ok(());
        if let Some(attachment) = &record.network {
            let netns = sandbox::namespace_path(&ns_dir, "net");
            // As containerd: DEL goes through the current network config.
            let del = self.cni.current().and_then(|cni| {
                cni.del(
                    &record.id,
                    &netns,
                    attachment,
                    &port_mappings(&record.config),
                )
            });
            if let Err(e) = del {
                result = Err(e.into());
            }
        }
        sandbox::remove_namespaces(&ns_dir);
        // containerd unmounts the pod's /dev/shm at StopPodSandbox too: its containers are gone.
        sandbox::remove_shm(&self.sandbox_dir(&record.id));
        result
    }

    pub(crate) fn sandbox(&self, id: &str) -> Result<SandboxRecord, CriError> {
        let sandboxes = self.sandboxes.lock().unwrap();
        if let Some(r) = sandboxes.get(id) {
            return Ok(r.clone());
        }
        // crictl and the kubelet may pass a unique prefix of the id.
        let mut found = sandboxes
            .values()
            .filter(|r| !id.is_empty() && r.id.starts_with(id));
        match (found.next(), found.next()) {
            (Some(r), None) => Ok(r.clone()),
            _ => Err(CriError::SandboxNotFound(id.into())),
        }
    }

    /// Stops every container of the pod and tears its network down; the sandbox stays listed
    /// as NOTREADY. Idempotent, as the CRI requires.
    pub fn stop_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        let mut record = self.sandbox(id)?;
        for c in self.containers_of(&record.id) {
            self.stop_container(&c, 0)?;
        }
        if record.ready || record.network.is_some() {
            let result = self.teardown_sandbox(&record);
            record.ready = false;
            record.network = None;
            store::save(&self.sandbox_dir(&record.id), store::SANDBOX_FILE, &record)?;
            self.sandboxes
                .lock()
                .unwrap()
                .insert(record.id.clone(), record);
            result?;
        }
        Ok(())
    }

    /// Removes the pod's containers, network, namespaces, cgroup and files. Removing an
    /// unknown sandbox succeeds (CRI: the call must be idempotent).
    pub fn remove_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        let record = match self.sandbox(id) {
            Ok(r) => r,
            Err(CriError::SandboxNotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        for c in self.containers_of(&record.id) {
            self.remove_container(&c)?;
        }
        self.teardown_sandbox(&record)?;
        if let Some(layout) = &self.cgroups {
            let cg = crate::cgroups::Cgroup::open(layout, &record.cgroup);
            if cg.exists() {
                cg.remove().map_err(|e| CriError::Cgroup {
                    path: record.cgroup.clone(),
                    message: e.to_string(),
                })?;
            }
        }
        let dir = self.sandbox_dir(&record.id);
        std::fs::remove_dir_all(&dir).map_err(|source| CriError::Io {
            what: "remove",
            path: dir,
            source,
        })?;
        self.sandboxes.lock().unwrap().remove(&record.id);
        Ok(())
    }

    pub fn pod_sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus, CriError> {
        let r = self.sandbox(id)?;
        let ns_dir = self.sandbox_dir(&r.id).join("ns");
        let network = r.network.as_ref().and_then(|a| a.ip.clone());
        Ok(cri::PodSandboxStatus {
            id: r.id.clone(),
            metadata: r.config.metadata.clone(),
            state: sandbox_state(&r) as i32,
            created_at: r.created_at,
            network: Some(cri::PodSandboxNetworkStatus {
                ip: network.unwrap_or_default(),
                additional_ips: Vec::new(),
            }),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace {
                    options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Pod as i32,
                        pid: cri::NamespaceMode::Container as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                }),
            }),
            labels: r.config.labels.clone(),
            annotations: r.config.annotations.clone(),
            runtime_handler: r.runtime_handler.clone(),
        })
        .map(|mut s| {
            if r.ready && !sandbox::namespaces_pinned(&ns_dir) {
                s.state = cri::PodSandboxState::SandboxNotready as i32;
            }
            s
        })
    }

    pub fn list_pod_sandbox(&self, filter: Option<cri::PodSandboxFilter>) -> Vec<cri::PodSandbox> {
        let filter = filter.unwrap_or_default();
        let sandboxes = self.sandboxes.lock().unwrap();
        let mut out: Vec<cri::PodSandbox> = sandboxes
            .values()
            .filter(|r| filter.id.is_empty() || r.id.starts_with(&filter.id))
            .filter(|r| {
                filter
                    .state
                    .as_ref()
                    .is_none_or(|s| s.state == sandbox_state(r) as i32)
            })
            .filter(|r| labels_match(&r.config.labels, &filter.label_selector))
            .map(|r| cri::PodSandbox {
                id: r.id.clone(),
                metadata: r.config.metadata.clone(),
                state: sandbox_state(r) as i32,
                created_at: r.created_at,
                labels: r.config.labels.clone(),
                annotations: r.config.annotations.clone(),
                runtime_handler: r.runtime_handler.clone(),
            })
            .collect();
        out.sort_by_key(|s| s.created_at);
        out
    }
}

fn sandbox_state(r: &SandboxRecord) -> cri::PodSandboxState {
    if r.ready {
        cri::PodSandboxState::SandboxReady
    } else {
        cri::PodSandboxState::SandboxNotready
    }
}

/// Every selector label present with the same value (CRI label_selector semantics).
pub(crate) fn labels_match(
    labels: &HashMap<String, String>,
    selector: &HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// CRI port mappings as the CNI `portMappings` runtime config.
fn port_mappings(config: &cri::PodSandboxConfig) -> Vec<Value> {
    config
        .port_mappings
        .iter()
        .filter(|p| p.host_port > 0)
        .map(|p| {
            let protocol = match cri::Protocol::try_from(p.protocol) {
                Ok(cri::Protocol::Udp) => "udp",
                Ok(cri::Protocol::Sctp) => "sctp",
                _ => "tcp",
            };
            json!({
                "hostPort": p.host_port,
                "containerPort": p.container_port,
                "protocol": protocol,
                "hostIP": p.host_ip,
            })
        })
        .collect()
}
