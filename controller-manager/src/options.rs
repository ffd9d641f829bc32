//! Command-line flags of `minik8s controller-manager`, after kube-controller-manager's.

use std::path::PathBuf;
use std::time::Duration;

use minik8s_leader::{LeaderElectionArgs, LeaseConfig, LeaseFlagsError};

/// Controllers this binary knows, by kube-controller-manager's names.
pub const KNOWN_CONTROLLERS: &[&str] = &[
    "replicaset",
    "deployment",
    "garbagecollector",
    "nodelifecycle",
    "endpoint",
    "namespace",
];

/// The Lease the controller-manager contends for, unless `--leader-elect-resource-name`.
pub const LEASE_NAME: &str = "minik8s-controller-manager";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Path to a kubeconfig with the API server's address and credentials.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// `--leader-elect*`: run only while holding the Lease (by default
    /// kube-system/minik8s-controller-manager).
    #[command(flatten)]
    pub leader: LeaderElectionArgs,
    /// How long a node may go without renewing its Lease before it is marked unhealthy.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// CIDR range pod CIDRs are allocated from.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// Prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// Controllers to run: `*` for all, `name` to enable, `-name` to disable.
    #[arg(long, default_value = "*")]
    pub controllers: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("invalid duration {0:?} (expected e.g. 500ms, 4s, 1m30s)")]
    Duration(String),
    #[error("unknown controller {0:?} in --controllers (known: {known})", known = KNOWN_CONTROLLERS.join(","))]
    UnknownController(String),
    #[error(transparent)]
    Cidr(#[from] crate::node::ipam::IpamError),
    #[error(transparent)]
    Lease(#[from] LeaseFlagsError),
}

/// Parses a Go-style duration flag (`1m30s`, `500ms`, `2h`).
pub fn parse_duration(text: &str) -> Result<Duration, OptionsError> {
    minik8s_api::duration::parse_duration(text)
        .map_err(|_| OptionsError::Duration(text.to_string()))
}

/// Resolves a `--controllers` list the way kube-controller-manager does: a name is on if it
/// is listed, off if listed as `-name`, and otherwise on only when `*` is listed.
pub fn enabled_controllers(list: &str) -> Result<Vec<&'static str>, OptionsError> {
    let items: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for item in &items {
        let name = item.trim_start_matches('-');
        if name != "*" && !KNOWN_CONTROLLERS.contains(&name) {
            return Err(OptionsError::UnknownController(name.to_string()));
        }
    }
    let star = items.contains(&"*");
    Ok(KNOWN_CONTROLLERS
        .iter()
        .copied()
        .filter(|c| {
            if items.iter().any(|i| i.strip_prefix('-') == Some(c)) {
                false
            } else {
                star || items.contains(c)
            }
        })
        .collect())
}

/// The validated configuration `run` takes.
#[derive(Debug, Clone)]
pub struct Config {
    pub kubeconfig: PathBuf,
    pub leader: Option<LeaseConfig>,
    pub node_monitor_grace_period: Duration,
    /// Pod CIDR allocation from --cluster-cidr; None disables it.
    pub allocator: Option<crate::node::ipam::RangeAllocator>,
    pub controllers: Vec<&'static str>,
    /// Names this instance in the Lease and as the events' reporting instance.
    pub identity: String,
}

impl Config {
    /// A configuration running every controller without leader election.
    pub fn new(kubeconfig: PathBuf) -> Config {
        Config {
            kubeconfig,
            leader: None,
            node_monitor_grace_period: Duration::from_secs(40),
            allocator: crate::node::ipam::RangeAllocator::new("10.244.0.0/16", 24).ok(),
            controllers: KNOWN_CONTROLLERS.to_vec(),
            identity: minik8s_leader::identity(),
        }
    }
}

impl Args {
    pub fn into_config(self) -> Result<Config, OptionsError> {
        let mut config = Config::new(self.kubeconfig);
        config.leader = self.leader.lease_config(LEASE_NAME, &config.identity)?;
        config.node_monitor_grace_period = self.node_monitor_grace_period;
        config.allocator = Some(crate::node::ipam::RangeAllocator::new(
            &self.cluster_cidr,
            self.node_cidr_mask_size,
        )?);
        config.controllers = enabled_controllers(&self.controllers)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s| parse_duration(s).ok();
        assert_eq!(d("4s"), Some(Duration::from_secs(4)));
        assert_eq!(d("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(d("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(d("0"), Some(Duration::ZERO));
        assert!(d("4").is_none());
        assert!(d("s").is_none());
        assert!(d("1d").is_none());
        assert!(d("").is_none());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags() {
        use clap::Parser;
        let argv = [
            "controller-manager",
            "--kubeconfig",
            "/k",
            "--leader-elect",
            "--node-monitor-grace-period",
            "1m30s",
            "--cluster-cidr",
            "10.200.0.0/16",
            "--node-cidr-mask-size",
            "26",
            "--controllers",
            "*,-endpoint",
        ];
        let c = Cli::parse_from(argv)
            .args
            .into_config()
            .expect("valid flags");
        assert_eq!(c.node_monitor_grace_period, Duration::from_secs(90));
        let lease = c.leader.expect("leader election on");
        assert_eq!(
            (lease.namespace.as_str(), lease.name.as_str()),
            ("kube-system", "minik8s-controller-manager")
        );
        assert!(!c.controllers.contains(&"endpoint") && c.controllers.contains(&"deployment"));
        let bad = Cli::parse_from([
            "cm",
            "--kubeconfig",
            "/k",
            "--cluster-cidr",
            "10.0.0.0/24",
            "--node-cidr-mask-size",
            "16",
        ]);
        assert!(matches!(bad.args.into_config(), Err(OptionsError::Cidr(_))));
    }

    #[test]
    fn controller_lists() {
        assert_eq!(enabled_controllers("*").unwrap(), KNOWN_CONTROLLERS);
        assert_eq!(
            enabled_controllers("*,-deployment").unwrap(),
            vec![
                "replicaset",
                "garbagecollector",
                "nodelifecycle",
                "endpoint",
                "namespace"
            ]
        );
        assert_eq!(
            enabled_controllers("deployment").unwrap(),
            vec!["deployment"]
        );
        assert!(enabled_controllers("*,-bogus").is_err());
    }
}
