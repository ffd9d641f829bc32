//! Pod spec → CRI configs: the sandbox (metadata, hostname, DNS, ports, log directory) and
//! each container (command, args, env, working dir, mounts, resources, log path).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use minik8s_api::quantity;

use crate::cri::{types as cri, LABEL_CONTAINER_NAME, LABEL_MANAGED, LABEL_POD_NAME};
use crate::cri::{LABEL_POD_NAMESPACE, LABEL_POD_UID};
use crate::Config;

/// The default cluster DNS Service IP (the nodelet's `--cluster-dns`).
pub const CLUSTER_DNS: &str = "10.96.0.10";
pub const CLUSTER_DOMAIN: &str = "cluster.local";

pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

pub fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

pub fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// `<root>/pods/<uid>`: the pod's volumes.
pub fn pod_dir(config: &Config, pod: &Pod) -> PathBuf {
    config.root_dir.join("pods").join(uid(pod))
}

/// `<root>/logs/<ns>_<name>_<uid>`, as /var/log/pods is laid out.
pub fn log_dir(config: &Config, pod: &Pod) -> PathBuf {
    config
        .root_dir
        .join("logs")
        .join(format!("{}_{}_{}", namespace(pod), name(pod), uid(pod)))
}

fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_MANAGED.into(), "true".into()),
        (LABEL_POD_UID.into(), uid(pod).into()),
        (LABEL_POD_NAME.into(), name(pod).into()),
        (LABEL_POD_NAMESPACE.into(), namespace(pod).into()),
    ])
}

pub fn sandbox_config(config: &Config, pod: &Pod, attempt: u32) -> cri::PodSandboxConfig {
    let spec = pod.spec.as_ref();
    let hostname = spec
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| name(pod).to_string());
    let dns_config =
        crate::network::dns::dns_config(config.cluster_dns, &config.cluster_domain, pod);
    let port_mappings = spec
        .map(|s| s.containers.iter())
        .into_iter()
        .flatten()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| cri::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => cri::Protocol::Udp as i32,
                Some("SCTP") => cri::Protocol::Sctp as i32,
                _ => cri::Protocol::Tcp as i32,
            },
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name(pod).into(),
            uid: uid(pod).into(),
            namespace: namespace(pod).into(),
            attempt,
        }),
        hostname,
        log_directory: log_dir(config, pod).display().to_string(),
        dns_config,
        port_mappings,
        labels: pod_labels(pod),
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

/// Everything resolved for one container start.
pub struct Resolved {
    pub env: Vec<(String, String)>,
    pub mounts: Vec<cri::Mount>,
}

pub fn container_config(
    pod: &Pod,
    c: &Container,
    attempt: u32,
    resolved: Resolved,
) -> cri::ContainerConfig {
    let mut labels = pod_labels(pod);
    labels.insert(LABEL_CONTAINER_NAME.into(), c.name.clone());
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: c.name.clone(),
            attempt,
        }),
        image: Some(crate::cri::image_spec(c.image.as_deref().unwrap_or(""))),
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: resolved
            .env
            .into_iter()
            .map(|(key, value)| cri::KeyValue { key, value })
            .collect(),
        mounts: resolved.mounts,
        log_path: format!("{}/{attempt}.log", c.name),
        stdin: c.stdin.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        labels,
        annotations: HashMap::from([(
            crate::cri::ANNOTATION_GRACE.to_string(),
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30)
                .to_string(),
        )]),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(resources(c)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// requests/limits → CRI resources as the kubelet maps them: cpu shares from the request
/// (1 CPU = 1024 shares, at least 2), CFS quota from the limit over a 100 ms period,
/// memory limit in bytes.
pub fn resources(c: &Container) -> cri::LinuxContainerResources {
    let r = c.resources.as_ref();
    let get = |m: Option<&std::collections::BTreeMap<String, _>>, k: &str| {
        m.and_then(|m| m.get(k)).cloned()
    };
    let req_cpu = get(r.and_then(|r| r.requests.as_ref()), "cpu");
    let lim_cpu = get(r.and_then(|r| r.limits.as_ref()), "cpu");
    let lim_mem = get(r.and_then(|r| r.limits.as_ref()), "memory");
    let milli = |q: &Option<_>| q.as_ref().and_then(|q| quantity::milli_value(q).ok());
    // A limit without a request defaults the request to the limit.
    let shares = milli(&req_cpu)
        .or(milli(&lim_cpu))
        .map_or(2, |m| (m * 1024 / 1000).max(2));
    let (quota, period) = match milli(&lim_cpu) {
        Some(m) => ((m * 100_000 / 1000).max(1000), 100_000),
        None => (0, 0),
    };
    cri::LinuxContainerResources {
        cpu_shares: shares,
        cpu_quota: quota,
        cpu_period: period,
        memory_limit_in_bytes: lim_mem
            .as_ref()
            .and_then(|q| quantity::value(q).ok())
            .unwrap_or(0),
        ..Default::default()
    }
}

pub fn bind(host: &Path, container: &str, readonly: bool) -> cri::Mount {
    cri::Mount {
        container_path: container.into(),
        host_path: host.display().to_string(),
        readonly,
        ..Default::default()
    }
}
