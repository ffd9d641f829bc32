//! A node: a network namespace running `minik8s agent` (CRI runtime, nodelet and service
//! proxy in one process, as on a joined machine) with its own data dir, runtime socket,
//! cgroup parent and CNI bridge, `--node-ip` = the namespace's address.

use std::net::Ipv4Addr;
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

/// Starts the node's agent: CRI runtime, nodelet and service proxy in one `minik8s agent`
/// process, as on a machine joined with a token (k3s' agent), here given the cluster's
/// kubeconfig instead of joining. Everything lives in the node's namespace: runtime socket,
/// state, CNI bridge, nftables table and cluster DNS. The nodelet's lease lasts the
/// node-monitor grace period and is renewed every quarter of it, so a short grace period
/// (tests) still sees four renewals per period.
///
/// On a node's first start this waits until the nodelet has written the CNI network for the
/// Node's podCIDR (the controller-manager allocates it once the Node registers; the runtime
/// re-reads its conf dir for the next sandbox): until then no pod can run here.
pub fn start(state: &ClusterState, node: &NodeState) -> Result<Vec<Proc>, ClusterError> {
    let dir = state.node_dir(&node.name);
    std::fs::create_dir_all(&dir).map_err(|source| ClusterError::io("create", &dir, source))?;
    let pod_network = dir.join("cni").join(POD_NETWORK_FILE);
    let had_pod_network = pod_network.exists();
    let sock = dir.join("runtime.sock");
    let _ = std::fs::remove_file(&sock);
    let log = state.logs_dir().join(format!("{}-agent.log", node.name));
    let agent = launch::spawn(Launch {
        component: "agent",
        args: vec![
            "agent".into(),
            "--kubeconfig".into(),
            state.kubeconfig().into(),
            "--node-name".into(),
            node.name.clone().into(),
            "--data-dir".into(),
            dir.clone().into(),
            "--node-ip".into(),
            node.ip.to_string().into(),
            "--lease-duration".into(),
            state.node_monitor_grace_period.clone().into(),
            "--cgroup-parent".into(),
            node.cgroup_parent.clone().into(),
            "--images-dir".into(),
            state.images_dir().into(),
            "--cni-conf-dir".into(),
            dir.join("cni").into(),
            "--cni-network".into(),
            format!("mk8s-{}", node.name).into(),
            "--cni-bridge".into(),
            "mk8s0".into(),
            "--pod-cidr".into(),
            node.pod_cidr.clone().into(),
            "--cluster-cidr".into(),
            state.cluster_cidr().into(),
            "--resolv-conf".into(),
            state.resolv_conf.clone().into(),
        ],
        netns: Some(netns::path(&node.netns)),
        log: log.clone(),
    })?;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Connectable, not merely present: the socket file exists a moment before the runtime
    // listens.
    let ready = || match had_pod_network {
        true => std::os::unix::net::UnixStream::connect(&sock).is_ok(),
        false => pod_network.exists(),
    };
    while !ready() {
        if !launch::alive(&agent) {
            return Err(ClusterError::Exited {
                component: format!("{} agent", node.name),
                log,
            });
        }
        if Instant::now() > deadline {
            launch::kill(&agent);
            let what = match had_pod_network {
                true => format!("the runtime socket {}", sock.display()),
                false => format!("{} to write its pod network", node.name),
            };
            return Err(ClusterError::Timeout { what, log });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(vec![agent])
}

/// kill-node: the node's agent dies (SIGKILL) and its containers stop
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

/// restart-node: thaw the containers and start the agent again; its nodelet adopts
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

/// Removes the node: agent (its containers keep running on a stop, as k3s'), containers,
/// stragglers in its namespace, then the namespace itself.
pub fn destroy(node: &NodeState) {
    for proc in &node.procs {
        launch::stop(proc, Duration::from_secs(5));
    }
    cgroups::kill_and_remove(&node.cgroup_parent);
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
