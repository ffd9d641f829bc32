//! Flags of `minictl cluster …`.

use clap::{Args, Subcommand};

/// The default cluster name.
pub const DEFAULT_NAME: &str = "minik8s";

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Start a local cluster: control plane on the host, each node a network namespace.
    Up(UpArgs),
    /// Remove the cluster and every trace of it (processes, containers, mounts, netns, bridge, state).
    Down(NameArgs),
    /// List the local clusters and their nodes.
    List,
    /// Kill a node's runtime, nodelet and proxy (SIGKILL) and freeze its containers.
    KillNode(NodeArgs),
    /// Thaw a killed node's containers and start its runtime, nodelet and proxy again.
    RestartNode(NodeArgs),
    /// Cut a node off the cluster network (its veth goes down); its processes keep running.
    PartitionNode(NodeArgs),
    /// Reconnect a partitioned node.
    HealNode(NodeArgs),
    /// Kill the API server (SIGKILL) and start it again on the same data dir.
    RestartApiserver(NameArgs),
}

#[derive(Args, Debug, Clone)]
pub struct NameArgs {
    /// The cluster's name.
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
}

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    #[command(flatten)]
    pub cluster: NameArgs,
    /// Number of nodes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub nodes: u8,
    /// How long a node may miss its Lease renewals before it is marked NotReady
    /// (kube-controller-manager's flag; also the nodelets' lease duration).
    #[arg(long, default_value = "40s", value_parser = parse_grace)]
    pub node_monitor_grace_period: String,
    /// tolerationSeconds of the not-ready/unreachable NoExecute tolerations added to every
    /// pod: how long pods stay on a failed node before eviction (Kubernetes: 300).
    #[arg(long, default_value_t = 300)]
    pub default_toleration_seconds: i64,
    /// The resolv.conf whose nameservers the nodes' cluster DNS forwards other names to;
    /// "" forwards nothing.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: String,
}

#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    #[command(flatten)]
    pub cluster: NameArgs,
    /// The node (node1, node2, …).
    pub node: String,
}

/// Checks a Go duration now, so `up` fails before it creates anything.
fn parse_grace(text: &str) -> Result<String, minik8s_api::duration::DurationError> {
    minik8s_api::duration::parse_duration(text).map(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<ClusterCommand, clap::Error> {
        let mut argv = vec!["minictl", "cluster"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Cluster(c) => Ok(c),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn up_takes_the_failover_timings() {
        let ClusterCommand::Up(up) = parse(&[
            "up",
            "--nodes",
            "3",
            "--name",
            "e2e",
            "--node-monitor-grace-period",
            "4s",
            "--default-toleration-seconds",
            "2",
        ])
        .unwrap() else {
            panic!("not up");
        };
        assert_eq!((up.nodes, up.cluster.name.as_str()), (3, "e2e"));
        assert_eq!(up.node_monitor_grace_period, "4s");
        assert_eq!(up.default_toleration_seconds, 2);

        let ClusterCommand::Up(defaults) = parse(&["up"]).unwrap() else {
            panic!("not up");
        };
        assert_eq!(defaults.nodes, 1);
        assert_eq!(defaults.cluster.name, DEFAULT_NAME);
        assert_eq!(defaults.node_monitor_grace_period, "40s");
        assert_eq!(defaults.default_toleration_seconds, 300);
        assert_eq!(defaults.resolv_conf, "/etc/resolv.conf");
        let ClusterCommand::Up(off) = parse(&["up", "--resolv-conf", ""]).unwrap() else {
            panic!("not up");
        };
        assert_eq!(off.resolv_conf, "", "an empty value turns forwarding off");

        assert!(parse(&["up", "--node-monitor-grace-period", "soon"]).is_err());
        assert!(parse(&["up", "--nodes", "0"]).is_err());
    }

    #[test]
    fn node_commands_name_the_node_and_cluster() {
        let ClusterCommand::KillNode(a) = parse(&["kill-node", "node2", "--name", "x"]).unwrap()
        else {
            panic!("not kill-node");
        };
        assert_eq!((a.node.as_str(), a.cluster.name.as_str()), ("node2", "x"));
        assert!(matches!(
            parse(&["heal-node", "node1"]),
            Ok(ClusterCommand::HealNode(_))
        ));
        assert!(parse(&["partition-node"]).is_err());
    }
}
