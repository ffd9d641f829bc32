//! The cluster's network: one host bridge with a private /24, and per node a network
//! namespace joined to it by a veth pair (`eth0` inside), like kind's nodes without Docker.
//! Everything is done with iproute2, as an administrator would by hand.

use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use super::ClusterError;

fn ip(args: &[&str]) -> Result<(), ClusterError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| ClusterError::Spawn {
            component: "ip".into(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ClusterError::Command {
            command: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The bridge with the control plane's address on it.
pub fn create_bridge(bridge: &str, addr: Ipv4Addr) -> Result<(), ClusterError> {
    ip(&["link", "add", bridge, "type", "bridge"])?;
    ip(&["addr", "add", &format!("{addr}/24"), "dev", bridge])?;
    ip(&["link", "set", bridge, "up"])
}

pub fn delete_bridge(bridge: &str) {
    let _ = ip(&["link", "del", bridge]);
}

/// `/run/netns/<name>`, the file `ip netns add` pins the namespace on.
pub fn path(netns: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(netns)
}

/// A node's namespace: `eth0` with `addr`/24 on the bridge, `lo` up, a default route via the
/// bridge address, and IPv4 forwarding on (the node routes for its pods, as a host does).
pub fn create_node(
    netns: &str,
    veth: &str,
    bridge: &str,
    addr: Ipv4Addr,
    gateway: Ipv4Addr,
) -> Result<(), ClusterError> {
    ip(&["netns", "add", netns])?;
    ip(&[
        "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns,
    ])?;
    ip(&["link", "set", veth, "master", bridge, "up"])?;
    ip(&[
        "-n",
        netns,
        "addr",
        "add",
        &format!("{addr}/24"),
        "dev",
        "eth0",
    ])?;
    ip(&["-n", netns, "link", "set", "lo", "up"])?;
    ip(&["-n", netns, "link", "set", "eth0", "up"])?;
    ip(&[
        "-n",
        netns,
        "route",
        "add",
        "default",
        "via",
        &gateway.to_string(),
    ])?;
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])
        .output();
    if !out.is_ok_and(|o| o.status.success()) {
        tracing::warn!(
            netns,
            "could not enable IPv4 forwarding in the node namespace"
        );
    }
    Ok(())
}

/// Deleting the namespace also deletes the veth pair and everything inside (pod veths, the
/// node's CNI bridge, its nftables/iptables rules) once no process holds it.
pub fn delete_node(netns: &str, veth: &str) {
    let _ = ip(&["link", "del", veth]);
    let _ = ip(&["netns", "del", netns]);
}

/// Partition (down) or heal (up) a node: its veth's host end leaves or rejoins the bridge's
/// forwarding, so the node keeps running but reaches nothing and nothing reaches it.
pub fn set_link(veth: &str, up: bool) -> Result<(), ClusterError> {
    ip(&["link", "set", veth, if up { "up" } else { "down" }])
}

/// The namespace's identity as /proc/PID/ns/net shows it (`net:[INODE]`).
pub fn inode(netns: &str) -> Option<u64> {
    std::fs::metadata(path(netns)).ok().map(|m| m.ino())
}

/// PIDs of every process in the namespace: the node's runtime, nodelet, shims and CNI
/// plugins — whatever the recorded PIDs miss (e.g. shims started by a killed runtime).
pub fn pids_in(netns: &str) -> Vec<i32> {
    let Some(ino) = inode(netns) else {
        return Vec::new();
    };
    let want = format!("net:[{ino}]");
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|l| l.to_string_lossy() == want)
        })
        .collect()
}
