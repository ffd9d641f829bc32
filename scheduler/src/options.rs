//! Command-line flags (kube-scheduler's names where it has them) and the validated config.

use std::path::PathBuf;

use minik8s_leader::{LeaderElectionArgs, LeaseConfig, LeaseFlagsError};

use crate::plugins::Strategy;

/// Bindings in flight at once by default. kube-scheduler binds each pod in its own
/// goroutine, bounded only by its client's QPS. With 64, the throughput bench's scheduling
/// loop spent most of its time waiting for a free binding slot.
pub const DEFAULT_PARALLEL_BINDINGS: usize = 128;

/// `minik8s scheduler` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Kubeconfig of the API server to schedule against.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: PathBuf,
    /// Pods whose spec.schedulerName is this (or `default-scheduler`) are ours.
    #[arg(long, default_value = "minik8s-scheduler")]
    pub scheduler_name: String,
    /// `--leader-elect*` (the Lease is named after the scheduler by default).
    #[command(flatten)]
    pub leader: LeaderElectionArgs,
    /// How the node-resources score ranks nodes.
    #[arg(long, value_enum, default_value_t)]
    pub scoring_strategy: Strategy,
    /// Percentage of nodes to find feasible before scoring; 0 = adaptive (50% of 100 nodes
    /// down to 5% of 5,000 and more, never fewer than 100 nodes).
    #[arg(long, default_value_t = 0)]
    pub percentage_of_nodes_to_score: u32,
    /// Bindings in flight at once.
    #[arg(long, default_value_t = DEFAULT_PARALLEL_BINDINGS)]
    pub parallel_bindings: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error(transparent)]
    Lease(#[from] LeaseFlagsError),
    #[error("--parallel-bindings must be at least 1")]
    ParallelBindings,
    #[error("--percentage-of-nodes-to-score must be 0..=100, not {0}")]
    Percentage(u32),
}

/// The validated configuration `run` takes.
#[derive(Debug, Clone)]
pub struct Config {
    pub kubeconfig: PathBuf,
    pub scheduler_name: String,
    /// Some when leader election is on.
    pub leader: Option<LeaseConfig>,
    pub strategy: Strategy,
    pub percentage_of_nodes_to_score: u32,
    pub parallel_bindings: usize,
    /// Names this candidate in the Lease and in Events.
    pub identity: String,
}

impl Args {
    pub fn into_config(self) -> Result<Config, OptionsError> {
        if self.parallel_bindings == 0 {
            return Err(OptionsError::ParallelBindings);
        }
        if self.percentage_of_nodes_to_score > 100 {
            return Err(OptionsError::Percentage(self.percentage_of_nodes_to_score));
        }
        let identity = minik8s_leader::identity();
        let leader: Option<LeaseConfig> =
            self.leader.lease_config(&self.scheduler_name, &identity)?;
        Ok(Config {
            kubeconfig: self.kubeconfig,
            scheduler_name: self.scheduler_name,
            leader,
            strategy: self.scoring_strategy,
            percentage_of_nodes_to_score: self.percentage_of_nodes_to_score,
            parallel_bindings: self.parallel_bindings,
            identity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(extra: &[&str]) -> Result<Config, OptionsError> {
        let mut argv = vec!["scheduler", "--kubeconfig", "/k"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).args.into_config()
    }

    #[test]
    fn defaults_and_validation() {
        let c = parse(&[]).expect("defaults are valid");
        assert_eq!(c.scheduler_name, "minik8s-scheduler");
        assert!(c.leader.is_none());
        assert_eq!(c.strategy, Strategy::LeastAllocated);
        let c = parse(&["--leader-elect", "--scoring-strategy", "most-allocated"]).expect("valid");
        let lease = c.leader.expect("leader election on");
        assert_eq!(
            (lease.namespace.as_str(), lease.name.as_str()),
            ("kube-system", "minik8s-scheduler")
        );
        assert_eq!(lease.lease_duration, std::time::Duration::from_secs(15));
        assert_eq!(c.strategy, Strategy::MostAllocated);
        assert!(matches!(
            parse(&["--leader-elect", "--leader-elect-renew-deadline", "20s"]),
            Err(OptionsError::Lease(LeaseFlagsError::RenewDeadline { .. }))
        ));
        assert!(matches!(
            parse(&["--parallel-bindings", "0"]),
            Err(OptionsError::ParallelBindings)
        ));
    }
}
