//! Flags of `minik8s proxy` and the resolved configuration.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{dns, Error};

/// `minik8s proxy` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Kubeconfig of the API server.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Name of this node; the nftables table is `ip minik8s-<node>` (default: the hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// The pod network: ClusterIP traffic from outside it and pod traffic leaving it are
    /// masqueraded. Empty to masquerade only NodePort and hairpin traffic.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// The cluster DNS Service IP that pods' resolv.conf names; its port 53 is redirected to
    /// the local DNS listener.
    #[arg(long, default_value = "10.96.0.10")]
    pub cluster_dns: Ipv4Addr,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Where the cluster DNS listens (UDP and TCP).
    #[arg(long, default_value = "0.0.0.0:10053")]
    pub dns_bind: SocketAddr,
    /// The node's network namespace (e.g. /run/netns/node1) when it is not the proxy's own:
    /// rules are written and DNS listens there.
    #[arg(long)]
    pub netns: Option<PathBuf>,
    /// Do not serve cluster DNS (and do not redirect the cluster DNS IP).
    #[arg(long)]
    pub disable_dns: bool,
    /// An upstream resolver (IP or IP:PORT) for names outside the cluster domain; repeat for
    /// more. Default: the nameservers of --resolv-conf.
    #[arg(long = "dns-upstream", value_name = "IP[:PORT]")]
    pub dns_upstreams: Vec<String>,
    /// The resolv.conf whose nameservers are the upstreams when no --dns-upstream is given;
    /// "" forwards nothing (names outside the cluster domain are refused).
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: String,
}

/// The proxy's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub kubeconfig: PathBuf,
    /// The nftables table (family `ip`) the proxy owns.
    pub table: String,
    pub cluster_cidr: Option<String>,
    pub cluster_dns: Ipv4Addr,
    pub cluster_domain: String,
    /// The node's network namespace, when not the proxy's own.
    pub netns: Option<PathBuf>,
    /// `None`: no DNS server.
    pub dns_bind: Option<SocketAddr>,
    /// Where names outside the cluster domain are forwarded; none: they are refused.
    pub dns_upstreams: Vec<SocketAddr>,
    /// How long to wait after a change for more changes before writing rules, so a burst of
    /// EndpointSlice updates (a rollout) costs one transaction, while one change still lands
    /// well within a second.
    pub debounce: Duration,
    /// Period of a re-render even without a change notification (level-triggered safety net).
    pub resync: Duration,
}

impl TryFrom<Args> for Config {
    type Error = Error;
    fn try_from(a: Args) -> Result<Config, Error> {
        let node = a.node_name.unwrap_or_else(hostname).to_lowercase();
        let mut c = Config::new(a.kubeconfig, &node);
        c.cluster_cidr = match a.cluster_cidr.as_str() {
            "" => None,
            cidr => Some(parse_cidr(cidr)?),
        };
        c.cluster_dns = a.cluster_dns;
        c.cluster_domain = a.cluster_domain;
        c.dns_bind = (!a.disable_dns).then_some(a.dns_bind);
        c.netns = a.netns;
        let listed = upstreams(&a.dns_upstreams, Path::new(&a.resolv_conf))?;
        c.dns_upstreams = without_self(listed, c.cluster_dns, c.dns_bind);
        Ok(c)
    }
}

/// The flags' upstreams, else the resolv.conf's nameservers (none when it is unreadable: the
/// cluster's own names still resolve).
fn upstreams(flags: &[String], resolv_conf: &Path) -> Result<Vec<SocketAddr>, Error> {
    if !flags.is_empty() {
        return flags
            .iter()
            .map(|s| dns::forward::parse_upstream(s).map_err(Error::DnsUpstream))
            .collect();
    }
    if resolv_conf.as_os_str().is_empty() {
        return Ok(Vec::new());
    }
    match std::fs::read_to_string(resolv_conf) {
        Ok(text) => Ok(dns::forward::nameservers(&text)),
        Err(e) => {
            tracing::warn!(path = %resolv_conf.display(), error = %e,
                "no DNS upstreams: names outside the cluster domain will be refused");
            Ok(Vec::new())
        }
    }
}

/// The upstreams minus this DNS server itself: the cluster DNS IP (which the proxy's rules
/// send back here) or the address it listens on. A host whose resolv.conf names the cluster
/// DNS (a node set up to use it) would otherwise have every outside name forwarded in a
/// circle until the timeouts, the loop CoreDNS' `loop` plugin is there to catch.
fn without_self(
    upstreams: Vec<SocketAddr>,
    cluster_dns: Ipv4Addr,
    bind: Option<SocketAddr>,
) -> Vec<SocketAddr> {
    let is_self = |u: &SocketAddr| {
        u.ip() == cluster_dns
            || bind.is_some_and(|b| {
                u.port() == b.port()
                    && (u.ip() == b.ip() || (b.ip().is_unspecified() && u.ip().is_loopback()))
            })
    };
    let (kept, looping): (Vec<_>, Vec<_>) = upstreams.into_iter().partition(|u| !is_self(u));
    for u in looping {
        tracing::warn!(upstream = %u,
            "skipping a DNS upstream that is this cluster DNS itself (a forwarding loop)");
    }
    kept
}

impl Config {
    /// The flags' defaults for node `node`.
    pub fn new(kubeconfig: PathBuf, node: &str) -> Config {
        Config {
            kubeconfig,
            table: table_name(node),
            cluster_cidr: Some("10.244.0.0/16".into()),
            cluster_dns: Ipv4Addr::new(10, 96, 0, 10),
            cluster_domain: "cluster.local".into(),
            netns: None,
            dns_bind: Some(SocketAddr::from(([0, 0, 0, 0], 10053))),
            // The binary's flags default to the host's resolv.conf; a library user opts in.
            dns_upstreams: Vec::new(),
            debounce: Duration::from_millis(50),
            resync: Duration::from_secs(60),
        }
    }
}

/// `minik8s-<node>`, with characters nft identifiers do not allow replaced by `_`.
pub fn table_name(node: &str) -> String {
    let node: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("minik8s-{node}")
}

/// Validates `a.b.c.d/n` (it is pasted into nft rules).
fn parse_cidr(s: &str) -> Result<String, Error> {
    let bad = || Error::Cidr(s.into());
    let (ip, len) = s.split_once('/').ok_or_else(bad)?;
    ip.parse::<Ipv4Addr>().map_err(|_| bad())?;
    match len.parse::<u8>() {
        Ok(n) if n <= 32 => Ok(s.into()),
        _ => Err(bad()),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_and_cidrs() {
        assert_eq!(table_name("node-1.example"), "minik8s-node-1.example");
        assert_eq!(table_name("a b"), "minik8s-a_b");
        assert_eq!(parse_cidr("10.244.0.0/16").unwrap(), "10.244.0.0/16");
        assert!(parse_cidr("10.244.0.0").is_err());
        assert!(parse_cidr("10.244.0.0/33").is_err());
        assert!(parse_cidr("x/8; flush ruleset").is_err());
    }

    #[test]
    fn upstreams_from_flags_else_the_resolv_conf() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("resolv.conf");
        std::fs::write(&conf, "search lan\nnameserver 192.0.2.53\n").unwrap();
        let flags = ["127.0.0.1:5353".to_string()];
        assert_eq!(
            upstreams(&flags, &conf).unwrap(),
            ["127.0.0.1:5353".parse().unwrap()]
        );
        assert_eq!(
            upstreams(&[], &conf).unwrap(),
            ["192.0.2.53:53".parse().unwrap()]
        );
        assert!(upstreams(&[], Path::new("")).unwrap().is_empty());
        assert!(upstreams(&[], &dir.path().join("missing"))
            .unwrap()
            .is_empty());
        let err = upstreams(&["dns.example".to_string()], &conf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid DNS upstream \"dns.example\": expected IP or IP:PORT"
        );
    }

    #[test]
    fn upstreams_that_are_the_cluster_dns_itself_are_dropped() {
        let bind = Some("0.0.0.0:10053".parse().unwrap());
        let dns = Ipv4Addr::new(10, 96, 0, 10);
        let listed: Vec<SocketAddr> = ["10.96.0.10:53", "127.0.0.1:10053", "192.0.2.53:53"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            without_self(listed, dns, bind),
            ["192.0.2.53:53".parse().unwrap()]
        );
        // A resolver on loopback at another port is not this server.
        let local = vec!["127.0.0.1:5353".parse().unwrap()];
        assert_eq!(without_self(local.clone(), dns, bind), local);
    }
}
