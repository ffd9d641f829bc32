//! The leader-election flags, with kube-scheduler's and kube-controller-manager's names and
//! defaults (`--leader-elect-lease-duration 15s`, `--leader-elect-renew-deadline 10s`,
//! `--leader-elect-retry-period 2s`), and their validation.

use std::time::Duration;

use crate::LeaseConfig;

#[derive(Debug, thiserror::Error)]
pub enum LeaseFlagsError {
    #[error("--leader-elect-renew-deadline ({renew:?}) must be shorter than --leader-elect-lease-duration ({lease:?})")]
    RenewDeadline { renew: Duration, lease: Duration },
    #[error("--leader-elect-retry-period ({retry:?}) must be shorter than --leader-elect-renew-deadline ({renew:?})")]
    RetryPeriod { retry: Duration, renew: Duration },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    minik8s_api::duration::parse_duration(text)
        .map_err(|_| format!("invalid duration {text:?} (expected e.g. 500ms, 4s, 1m30s)"))
}

/// `--leader-elect` and its tuning flags; flatten into a component's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LeaderElectionArgs {
    /// Run only while holding the leader Lease, so that several replicas can run.
    #[arg(long)]
    pub leader_elect: bool,
    /// How long a standby waits after the leader's last renewal before taking over.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader retries renewing before it stops acting.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// Wait between acquisition attempts and renewals.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// Namespace of the leader Lease.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
    /// Name of the leader Lease (default: the component's).
    #[arg(long)]
    pub leader_elect_resource_name: Option<String>,
}

impl LeaderElectionArgs {
    /// The Lease to contend for (None without `--leader-elect`), named `default_name`
    /// unless `--leader-elect-resource-name` says otherwise. As client-go requires, the
    /// renew deadline must be shorter than the lease and the retry period than the deadline.
    pub fn lease_config(
        &self,
        default_name: &str,
        identity: &str,
    ) -> Result<Option<LeaseConfig>, LeaseFlagsError> {
        if !self.leader_elect {
            return Ok(None);
        }
        let (lease, renew, retry) = (
            self.leader_elect_lease_duration,
            self.leader_elect_renew_deadline,
            self.leader_elect_retry_period,
        );
        if renew >= lease {
            return Err(LeaseFlagsError::RenewDeadline { renew, lease });
        }
        if retry >= renew {
            return Err(LeaseFlagsError::RetryPeriod { retry, renew });
        }
        Ok(Some(LeaseConfig {
            namespace: self.leader_elect_resource_namespace.clone(),
            name: self
                .leader_elect_resource_name
                .clone()
                .unwrap_or_else(|| default_name.to_string()),
            identity: identity.to_string(),
            lease_duration: lease,
            renew_deadline: renew,
            retry_period: retry,
        }))
    }
}

/// A candidate's identity, as client-go builds it: the hostname plus a random suffix, so
/// two replicas on one host differ.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "minik8s".into());
    format!("{host}_{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        lease: LeaderElectionArgs,
    }

    #[test]
    fn defaults_names_and_validation() {
        let off = Cli::parse_from(["x"]).lease;
        assert!(off.lease_config("sched", "me").unwrap().is_none());
        let on = Cli::parse_from(["x", "--leader-elect", "--leader-elect-lease-duration", "1m"]);
        let lease = on.lease.lease_config("sched", "me").unwrap().unwrap();
        assert_eq!(
            (lease.namespace.as_str(), lease.name.as_str()),
            ("kube-system", "sched")
        );
        assert_eq!(lease.lease_duration, Duration::from_secs(60));
        assert_eq!(lease.renew_deadline, Duration::from_secs(10));
        let named = Cli::parse_from(["x", "--leader-elect", "--leader-elect-resource-name", "l"]);
        let lease = named.lease.lease_config("sched", "me").unwrap().unwrap();
        assert_eq!(lease.name, "l");
        let bad = Cli::parse_from([
            "x",
            "--leader-elect",
            "--leader-elect-renew-deadline",
            "20s",
        ]);
        assert!(matches!(
            bad.lease.lease_config("s", "me"),
            Err(LeaseFlagsError::RenewDeadline { .. })
        ));
        let bad = Cli::parse_from(["x", "--leader-elect", "--leader-elect-retry-period", "10s"]);
        assert!(matches!(
            bad.lease.lease_config("s", "me"),
            Err(LeaseFlagsError::RetryPeriod { .. })
        ));
        assert!(Cli::try_parse_from(["x", "--leader-elect-retry-period", "2"]).is_err());
    }
}
