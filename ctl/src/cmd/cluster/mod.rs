//! `minictl cluster`: a local multi-node cluster on this one machine, like kind's but
//! without Docker. The control plane runs on the host, bound to a private bridge
//! (`mk8s-<name>-X`, 172.31.X.1/24); each node is a network namespace on that bridge running
//! one `minik8s agent` (CRI runtime, nodelet, proxy). Everything it makes is recorded under
//! /var/lib/minik8s/clusters/<name>/ so `down` removes every trace.

/// println! that ignores a closed stdout (`minictl cluster up | head -1`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod args;
pub mod cgroups;
pub mod control_plane;
pub mod launch;
pub mod netns;
pub mod node;
pub mod state;
mod teardown;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::Api;

use crate::cli::GlobalArgs;
use args::{ClusterCommand, UpArgs};
use state::ClusterState;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster {0:?} does not exist (minictl cluster list shows the clusters)")]
    NoSuchCluster(String),
    #[error("cluster {0:?} already exists (minictl cluster down --name {0} removes it)")]
    Exists(String),
    #[error("invalid cluster name {0:?}: use lowercase letters, digits and '-' (at most 40)")]
    BadName(String),
    #[error("cluster {cluster:?} has no node {node:?} (nodes: {known})")]
    NoSuchNode {
        cluster: String,
        node: String,
        known: String,
    },
    #[error("no free cluster subnet 172.31.X.0/24 left (X in 120-239)")]
    NoFreeSubnet,
    #[error("cannot find the minik8s binary next to {0} (build it, or set MINIK8S_BIN)")]
    NoBinary(PathBuf),
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid cluster state {path}: {source}")]
    StateFormat {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot start {component}: {source}")]
    Spawn {
        component: String,
        source: std::io::Error,
    },
    #[error("{command} failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{component} exited during start-up (see {log})", log = log.display())]
    Exited { component: String, log: PathBuf },
    #[error("timed out waiting for {what} (see {log})", log = log.display())]
    Timeout { what: String, log: PathBuf },
    #[error("talking to the cluster's API server: {0}")]
    Api(String),
}

impl ClusterError {
    pub fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        ClusterError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Runs one `minictl cluster …` command.
pub async fn run(cmd: &ClusterCommand) -> Result<(), ClusterError> {
    match cmd {
        ClusterCommand::Up(a) => up(a).await.map(|_| ()),
        ClusterCommand::Down(a) => down(&a.name),
        ClusterCommand::List => {
            list();
            Ok(())
        }
        ClusterCommand::KillNode(a) => with_state(&a.cluster.name, |s| node::kill(s, &a.node)),
        ClusterCommand::RestartNode(a) => {
            with_state(&a.cluster.name, |s| node::restart(s, &a.node))
        }
        ClusterCommand::PartitionNode(a) => {
            with_state(&a.cluster.name, |s| node::partition(s, &a.node, true))
        }
        ClusterCommand::HealNode(a) => {
            with_state(&a.cluster.name, |s| node::partition(s, &a.node, false))
        }
        ClusterCommand::RestartApiserver(a) => {
            with_state(&a.name, control_plane::restart_apiserver)
        }
    }
}

fn with_state(
    name: &str,
    f: impl FnOnce(&mut ClusterState) -> Result<(), ClusterError>,
) -> Result<(), ClusterError> {
    let mut state = ClusterState::load(name)?;
    f(&mut state)
}

/// Brings a cluster up and returns its state; on any failure removes what it made.
pub async fn up(a: &UpArgs) -> Result<ClusterState, ClusterError> {
    let name = &a.cluster.name;
    state::validate_name(name)?;
    let dir = ClusterState::dir_of(name);
    std::fs::create_dir_all(state::clusters_dir())
        .map_err(|source| ClusterError::io("create", &state::clusters_dir(), source))?;
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ClusterError::Exists(name.clone()))
        }
        Err(source) => return Err(ClusterError::io("create", &dir, source)),
    }
    let index = match state::reserve_index(name) {
        Ok(i) => i,
        Err(e) => {
            state::remove_dir(&dir);
            return Err(e);
        }
    };
    let mut state = ClusterState {
        name: name.clone(),
        index,
        bridge: state::bridge_name(name, index),
        node_monitor_grace_period: a.node_monitor_grace_period.clone(),
        default_toleration_seconds: a.default_toleration_seconds,
        resolv_conf: a.resolv_conf.clone(),
        control_plane: Vec::new(),
        nodes: Vec::new(),
    };
    match bring_up(&mut state, a.nodes).await {
        Ok(()) => Ok(state),
        Err(e) => {
            let kept = keep_logs(&state);
            eprintln!(
                "cluster {name}: {e}; removing what was made (logs kept in {})",
                kept.display()
            );
            teardown::down(&state);
            Err(e)
        }
    }
}

async fn bring_up(state: &mut ClusterState, nodes: u8) -> Result<(), ClusterError> {
    for dir in [state.logs_dir(), state.images_dir(), state.apiserver_dir()] {
        std::fs::create_dir_all(&dir).map_err(|source| ClusterError::io("create", &dir, source))?;
    }
    state.save()?;
    build_image(state)?;
    netns::create_bridge(&state.bridge, state.api_ip())?;
    control_plane::start(state)?;
    for i in 1..=nodes {
        node::create(state, i)?;
    }
    let names: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    wait_ready(state, &names, Duration::from_secs(90)).await?;
    let kc = state.kubeconfig();
    say!(
        "cluster {} is up: {} node(s), API server {}",
        state.name,
        nodes,
        state.server_url()
    );
    say!("kubeconfig: {}", kc.display());
    say!("  export KUBECONFIG={}", kc.display());
    say!(
        "  minictl get nodes -o wide      # or: minictl --kubeconfig {} get nodes",
        kc.display()
    );
    say!("  minictl cluster down --name {}", state.name);
    Ok(())
}

/// The busybox image the demo and tests run, built from busybox-static and imported by every
/// node's runtime at start (`--images-dir`), as scripts/demo.sh does.
fn build_image(state: &ClusterState) -> Result<(), ClusterError> {
    let tar = state.images_dir().join("busybox.tar");
    let out = std::process::Command::new(launch::minik8s_bin()?)
        .args(["images", "build-busybox"])
        .arg(&tar)
        .output()
        .map_err(|source| ClusterError::Spawn {
            component: "minik8s images build-busybox".into(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ClusterError::Command {
            command: format!("minik8s images build-busybox {}", tar.display()),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Waits until every named node reports Ready=True and has lost the node controller's
/// not-ready/unreachable taints, so the scheduler will place pods on it: a node that is
/// Ready but still tainted would see a Deployment applied right after `up` spread over the
/// other nodes only.
pub async fn wait_ready(
    state: &ClusterState,
    names: &[String],
    limit: Duration,
) -> Result<(), ClusterError> {
    let global = GlobalArgs {
        kubeconfig: Some(state.kubeconfig()),
        ..Default::default()
    };
    let (client, _, _) = crate::kubeconfig::client(&global)
        .await
        .map_err(|e| ClusterError::Api(e.to_string()))?;
    let nodes: Api<Node> = Api::all(client);
    let deadline = Instant::now() + limit;
    loop {
        let listed = nodes.list(&ListParams::default()).await;
        let ready: Vec<String> = listed
            .map(|l| {
                l.items
                    .iter()
                    .filter(|n| is_ready(n) && !lifecycle_tainted(n))
                    .filter_map(|n| n.metadata.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        if names.iter().all(|n| ready.contains(n)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ClusterError::Timeout {
                what: format!(
                    "nodes {} to be Ready and untainted (so far: {})",
                    names.join(","),
                    ready.join(",")
                ),
                log: state.logs_dir(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The taints the node lifecycle controller keeps on a node until it is seen Ready.
fn lifecycle_tainted(node: &Node) -> bool {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref());
    taints.unwrap_or_default().iter().any(|t| {
        t.key == "node.kubernetes.io/not-ready" || t.key == "node.kubernetes.io/unreachable"
    })
}

pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Copies the cluster's logs to /tmp/minik8s-cluster-<name>-logs (replacing an older copy)
/// so a failed `up` or test can be diagnosed after everything else is removed.
pub fn keep_logs(state: &ClusterState) -> PathBuf {
    let dest = std::env::temp_dir().join(format!("minik8s-cluster-{}-logs", state.name));
    let _ = std::fs::remove_dir_all(&dest);
    let _ = std::fs::create_dir_all(&dest);
    for entry in std::fs::read_dir(state.logs_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::copy(entry.path(), dest.join(entry.file_name()));
    }
    dest
}

/// `down`: removes the cluster, also one whose `up` or processes died half-way.
pub fn down(name: &str) -> Result<(), ClusterError> {
    let state = ClusterState::load(name)?;
    teardown::down(&state);
    say!("cluster {name} removed");
    Ok(())
}

fn list() {
    let names = state::list();
    if names.is_empty() {
        say!("No local clusters.");
        return;
    }
    say!("{:<20} {:<18} {:<24} NODES", "NAME", "BRIDGE", "API SERVER");
    for name in names {
        let Ok(s) = ClusterState::load(&name) else {
            say!("{name:<20} (unreadable state)");
            continue;
        };
        let nodes: Vec<String> = s
            .nodes
            .iter()
            .map(|n| {
                let mark = match (n.killed, n.partitioned) {
                    (true, _) => " (killed)",
                    (_, true) => " (partitioned)",
                    _ => "",
                };
                format!("{}={}{mark}", n.name, n.ip)
            })
            .collect();
        say!(
            "{:<20} {:<18} {:<24} {}",
            s.name,
            s.bridge,
            s.server_url(),
            nodes.join(" ")
        );
    }
}
