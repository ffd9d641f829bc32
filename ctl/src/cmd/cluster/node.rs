//! A node: a network namespace running `minik8s runtime` (its own socket, state root, cgroup
//! parent and CNI bridge, all inside the namespace) and `minik8s nodelet` (its own root dir,
//! `--node-ip` = the namespace's address).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::launch::{self, Launch};
use super::state::{ClusterState, NodeState, Proc};
use super::{cgroups, netns, ClusterError};

/// Node `i` (1-based) of the cluster: names and addresses, nothing created yet.
pub fn plan(state: &ClusterState, i: u8) -> NodeState {
    let name = format!("node{i}");
    NodeState {
        netns: format!("mk8s-{}-{name}", state.name),
        veth: format!("mk8s{}n{i}", state.index),
        cgroup_parent: format!("minik8s-{}-{name}", state.name),
        ip: Ipv4Addr::new(172, 31, state.index, 10 + i),
        // Only used until the nodelet writes the network for the Node's podCIDR (allocated by
        // the controller-manager from 10.X.0.0/17), so kept outside that range.
        pod_cidr: format!("10.{}.{}.0/24", state.index, 128 + u16::from(i)),
        name,
        procs: Vec::new(),
        killed: false,
        partitioned: false,
    }
}

/// Creates the node's namespace and starts its processes.
pub fn create(state: &mut ClusterState, i: u8) -> Result<(), ClusterError> {
    let node = plan(state, i);
    state.nodes.push(node.clone());
    state.save()?;
    netns::create_node(
        &node.netns,
        &node.veth,
        &state.bridge,
        node.ip,
        state.api_ip(),
    )?;
    let procs = start(state, &node)?;
    state.node_mut(&node.name)?.procs = procs;
    state.save()
}

/// The nodelet's CNI conf list for the Node's podCIDR (nodelet::network::cni_conf::FILE).
const POD_NETWORK_FILE: &str = "00-minik8s.conflist";

fn socket(state: &ClusterState, node: &NodeState) -> PathBuf {
    state.node_dir(&node.name).join("runtime.sock")
}

/// Starts the runtime and waits for its socket.
fn start_runtime(state: &ClusterState, node: &NodeState) -> Result<Proc, ClusterError> {
    let dir = state.node_dir(&node.name);
    let sock = socket(state, node);
    let _ = std::fs::remove_file(&sock);
    let log = state.logs_dir().join(format!("{}-runtime.log", node.name));
    let runtime = launch::spawn(Launch {
        component: "runtime",
        args: vec![
            "runtime".into(),
            "--socket".into(),
            sock.clone().into(),
            "--root".into(),
            dir.join("runtime").into(),
            "--cni-conf-dir".into(),
            dir.join("cni").into(),
            "--images-dir".into(),
            state.images_dir().into(),
            "--cni-network".into(),
            format!("mk8s-{}", node.name).into(),
            "--cni-bridge".into(),
            "mk8s0".into(),
            "--pod-cidr".into(),
            node.pod_cidr.clone().into(),
            "--cgroup-parent".into(),
            node.cgroup_parent.clone().into(),
        ],
        netns: Some(netns::path(&node.netns)),
        log: log.clone(),
    })?;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Connectable, not merely present: the file exists a moment before the runtime listens.
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        if !launch::alive(&runtime) {
            return Err(ClusterError::Exited {
                component: format!("{} runtime", node.name),
                log,
            });
        }
        if Instant::now() > deadline {
            launch::kill(&runtime);
            return Err(ClusterError::Timeout {
                what: format!("the runtime socket {}", sock.display()),
                log,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(runtime)
}

/// Starts the runtime, then the nodelet and the proxy. The nodelet's lease lasts the
/// node-monitor grace period and is renewed every quarter of it, so a short grace period
/// (tests) still sees four renewals per period.
///
/// On a node's first start the nodelet writes the CNI network for the Node's podCIDR only
/// once the controller-manager has allocated it, after the runtime loaded its conf dir; the
/// runtime reads that dir at start only, so it is restarted once the file is there (as
/// containerd is told to reload after a CNI config is installed). Until then no pod can be
/// bound here: the node is not Ready yet.
pub fn start(state: &ClusterState, node: &NodeState) -> Result<Vec<Proc>, ClusterError> {
    let dir = state.node_dir(&node.name);
    std::fs::create_dir_all(&dir).map_err(|source| ClusterError::io("create", &dir, source))?;
    let sock = socket(state, node);
    let pod_network = dir.join("cni").join(POD_NETWORK_FILE);
    let had_pod_network = pod_network.exists();
    let mut runtime = start_runtime(state, node)?;
    let ns = Some(netns::path(&node.netns));
    let nodelet = launch::spawn(Launch {
        component: "nodelet",
        args: vec![
            "nodelet".into(),
            "--kubeconfig".into(),
            state.kubeconfig().into(),
            "--node-name".into(),
            node.name.clone().into(),
            "--runtime-endpoint".into(),
            format!("unix://{}", sock.display()).into(),
            "--node-ip".into(),
            node.ip.to_string().into(),
            "--root-dir".into(),
            dir.join("nodelet").into(),
            "--lease-duration".into(),
            state.node_monitor_grace_period.clone().into(),
            // The nodelet writes the CNI network for the Node's podCIDR into the runtime's
            // conf dir and keeps host-gw routes to the other nodes' podCIDRs.
            "--cni-conf-dir".into(),
            dir.join("cni").into(),
            "--cni-bridge".into(),
            "mk8s0".into(),
        ],
        netns: ns.clone(),
        log: state.logs_dir().join(format!("{}-nodelet.log", node.name)),
    })?;
    // The service proxy: its nftables table and cluster DNS live in the node's namespace,
    // so they go with it.
    let proxy = launch::spawn(Launch {
        component: "proxy",
        args: vec![
            "proxy".into(),
            "--kubeconfig".into(),
            state.kubeconfig().into(),
            "--node-name".into(),
            node.name.clone().into(),
            "--cluster-cidr".into(),
            state.cluster_cidr().into(),
            "--resolv-conf".into(),
            state.resolv_conf.clone().into(),
        ],
        netns: ns,
        log: state.logs_dir().join(format!("{}-proxy.log", node.name)),
    })?;
    if !had_pod_network {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !pod_network.exists() {
            if Instant::now() > deadline {
                return Err(ClusterError::Timeout {
                    what: format!(
                        "{} to write its pod network {}",
                        node.name,
                        pod_network.display()
                    ),
                    log: state.logs_dir().join(format!("{}-nodelet.log", node.name)),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        launch::stop(&runtime, Duration::from_secs(5));
        runtime = start_runtime(state, node)?;
    }
    Ok(vec![runtime, nodelet, proxy])
}

/// kill-node: the node's agent dies (SIGKILL runtime and nodelet) and its containers stop
/// dead without exiting (frozen), as when a machine hangs.
pub fn kill(state: &mut ClusterState, name: &str) -> Result<(), ClusterError> {
    let node = state.node_mut(name)?;
    for proc in node.procs.iter().rev() {
        launch::kill(proc);
    }
    if !cgroups::set_frozen(&node.cgroup_parent, true) {
        tracing::warn!(node = name, "no cgroup freezer: containers keep running");
    }
    node.killed = true;
    state.save()
}

/// restart-node: thaw the containers and start runtime and nodelet again; the nodelet adopts
/// the running containers and removes those of pods deleted meanwhile.
pub fn restart(state: &mut ClusterState, name: &str) -> Result<(), ClusterError> {
    let node = state.node(name)?.clone();
    for proc in &node.procs {
        launch::kill(proc);
    }
    cgroups::set_frozen(&node.cgroup_parent, false);
    let procs = start(state, &node)?;
    let node = state.node_mut(name)?;
    node.procs = procs;
    node.killed = false;
    state.save()
}

pub fn partition(state: &mut ClusterState, name: &str, cut: bool) -> Result<(), ClusterError> {
    let node = state.node_mut(name)?;
    netns::set_link(&node.veth, !cut)?;
    node.partitioned = cut;
    state.save()
}

/// Removes the node: nodelet, containers, runtime, stragglers in its namespace, then the
/// namespace itself.
pub fn destroy(node: &NodeState) {
    let stop = Duration::from_secs(5);
    if let Some(nodelet) = node.procs.iter().find(|p| p.component == "nodelet") {
        launch::stop(nodelet, stop);
    }
    cgroups::kill_and_remove(&node.cgroup_parent);
    if let Some(runtime) = node.procs.iter().find(|p| p.component == "runtime") {
        launch::stop(runtime, stop);
    }
    for pid in netns::pids_in(&node.netns) {
        // SAFETY: kill(2) on a process inside this cluster's own node namespace.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !netns::pids_in(&node.netns).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Containers killed above may have been reparented; their cgroups go now.
    cgroups::kill_and_remove(&node.cgroup_parent);
    netns::delete_node(&node.netns, &node.veth);
}
