//! host-gw routing: a route `<podCIDR> via <InternalIP>` to every other node's pods (what
//! flannel's host-gw backend does), so pod IPs are reachable across nodes without
//! encapsulation. Nodes must share an L2 segment, as they do here (one bridge joins the node
//! namespaces).
//!
//! Routes are tagged with their own routing protocol number ([`PROTO`]) so the nodelet can list
//! exactly the routes it owns: each reconcile lists them, deletes those of vanished or changed
//! nodes and `ip route replace`s the wanted ones — level-triggered, and right after a restart
//! too. Routes change only when nodes come and go, so exec'ing iproute2 costs nothing that
//! matters and saves a netlink stack in the binary (iproute2 is installed wherever CNI is).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;

use k8s_openapi::api::core::v1::Node;

/// The `proto` of our routes (rt_protos leaves 77 unassigned).
pub const PROTO: &str = "77";

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("running ip {args}: {source}")]
    Spawn {
        args: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ip {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
}

/// Destination CIDR → gateway.
pub type RouteTable = BTreeMap<String, Ipv4Addr>;

/// The routes wanted: every node but `own` with a podCIDR and an IPv4 InternalIP.
pub fn desired<'a>(nodes: impl IntoIterator<Item = &'a Node>, own: &str) -> RouteTable {
    nodes
        .into_iter()
        .filter(|n| n.metadata.name.as_deref() != Some(own))
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter_map(|n| {
            let cidr = n.spec.as_ref()?.pod_cidr.clone()?;
            let ip = n
                .status
                .as_ref()?
                .addresses
                .iter()
                .flatten()
                .filter(|a| a.type_ == "InternalIP")
                .find_map(|a| a.address.parse::<Ipv4Addr>().ok())?;
            Some((cidr, ip))
        })
        .collect()
}

/// Runs `ip` (inside the named network namespace when given: `ip -n <ns>`).
#[derive(Debug, Clone, Default)]
pub struct Ip {
    pub netns: Option<String>,
}

impl Ip {
    fn run(&self, args: &[&str]) -> Result<String, RouteError> {
        let mut cmd = Command::new("ip");
        if let Some(ns) = &self.netns {
            cmd.args(["-n", ns]);
        }
        let shown = args.join(" ");
        let out = cmd
            .args(args)
            .output()
            .map_err(|source| RouteError::Spawn {
                args: shown.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(RouteError::Failed {
                args: shown,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Our routes as they are in the kernel.
    pub fn current(&self) -> Result<RouteTable, RouteError> {
        let out = self.run(&["-4", "route", "show", "proto", PROTO])?;
        Ok(parse_routes(&out))
    }

    /// Makes the kernel's routes of ours equal `want`; returns how many commands it ran.
    pub fn reconcile(&self, want: &RouteTable) -> Result<usize, RouteError> {
        let have = self.current()?;
        let mut changes = 0;
        for (cidr, _) in have.iter().filter(|(c, gw)| want.get(*c) != Some(gw)) {
            if !want.contains_key(cidr) {
                self.run(&["route", "del", cidr, "proto", PROTO])?;
                changes += 1;
            }
        }
        for (cidr, gw) in want.iter().filter(|(c, gw)| have.get(*c) != Some(gw)) {
            let gw = gw.to_string();
            self.run(&["route", "replace", cidr, "via", &gw, "proto", PROTO])?;
            changes += 1;
        }
        Ok(changes)
    }
}

/// Parses `ip -4 route show` lines: `10.244.2.0/24 via 172.31.0.2 dev eth0 proto 77`.
pub fn parse_routes(out: &str) -> RouteTable {
    out.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let dst = words.next()?;
            let mut rest = words.skip_while(|w| *w != "via");
            rest.next()?;
            let gw = rest.next()?.parse().ok()?;
            Some((dst.to_string(), gw))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: Option<&str>, ip: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "Hostname", "address": name},
                                     {"type": "InternalIP", "address": ip}]}
        }))
        .unwrap()
    }

    #[test]
    fn routes_to_every_other_node_with_a_pod_cidr() {
        let nodes = [
            node("a", Some("10.244.1.0/24"), "172.31.0.1"),
            node("b", Some("10.244.2.0/24"), "172.31.0.2"),
            node("c", None, "172.31.0.3"),
        ];
        let want = desired(&nodes, "a");
        assert_eq!(want.len(), 1);
        assert_eq!(want["10.244.2.0/24"], Ipv4Addr::new(172, 31, 0, 2));
    }

    #[test]
    fn parses_ip_route_show() {
        let out = "10.244.2.0/24 via 172.31.0.2 dev eth0 proto 77 \n\
                   10.244.3.0/24 via 172.31.0.3 dev eth0 proto 77 onlink\n\
                   default dev eth0 proto 77 scope link\n";
        let routes = parse_routes(out);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes["10.244.3.0/24"], Ipv4Addr::new(172, 31, 0, 3));
    }
}
