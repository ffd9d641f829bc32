//! Flags of `minik8s nodelet` and the resolved configuration.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::Error;

/// See [`Config::volume_resync`].
const VOLUME_RESYNC: Duration = Duration::from_secs(10);

/// `minik8s nodelet` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Kubeconfig of the API server.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Name of this node (default: the hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// CRI runtime endpoint.
    #[arg(long, default_value = "unix:///run/minik8s/runtime.sock")]
    pub runtime_endpoint: String,
    /// InternalIP of the node (default: the first non-loopback IPv4 address).
    #[arg(long)]
    pub node_ip: Option<Ipv4Addr>,
    /// Directory for pod volumes and logs.
    #[arg(long, default_value = "/var/lib/minik8s/nodelet")]
    pub root_dir: PathBuf,
    /// Lease duration; the lease is renewed every quarter of it.
    #[arg(long, default_value = "40s")]
    pub lease_duration: String,
    /// Period of Node status updates.
    #[arg(long, default_value = "10s")]
    pub status_update: String,
    /// Port of the HTTPS server (logs, healthz) on the node IP; 0 picks a free one. The bound
    /// port is reported in Node status as the kubelet endpoint.
    #[arg(long, default_value_t = 10250)]
    pub port: u16,
    /// The runtime's CNI conf dir: when set, the nodelet writes the pod network for the Node's
    /// spec.podCIDR there and keeps host-gw routes to other nodes' podCIDRs.
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
    /// Bridge of the pod network written into --cni-conf-dir.
    #[arg(long, default_value = "mk8s0")]
    pub cni_bridge: String,
    /// Cluster DNS Service IP for ClusterFirst pods' resolv.conf (kubeadm's kube-dns IP).
    #[arg(long, default_value = "10.96.0.10")]
    pub cluster_dns: Ipv4Addr,
    /// The cluster domain in pods' DNS search path.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
}

/// The nodelet's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub kubeconfig: PathBuf,
    pub node_name: String,
    pub runtime_endpoint: PathBuf,
    pub node_ip: Ipv4Addr,
    pub root_dir: PathBuf,
    pub lease_duration: Duration,
    pub status_update: Duration,
    pub port: u16,
    /// Relist period of the CRI state (the PLEG period).
    pub relist: Duration,
    /// How often running pods' configMap and secret volumes are re-projected. The kubelet
    /// does it on its pod sync (every minute, from a watch-fed cache); we read the objects
    /// from the API server, one GET per volume per period, and see updates sooner.
    pub volume_resync: Duration,
    /// See [`Args::cni_conf_dir`]; `None`: the pod network is the runtime's business.
    pub cni_conf_dir: Option<PathBuf>,
    pub cni_bridge: String,
    pub cluster_dns: Ipv4Addr,
    pub cluster_domain: String,
}

impl TryFrom<Args> for Config {
    type Error = Error;
    fn try_from(a: Args) -> Result<Config, Error> {
        let node_name = match a.node_name {
            Some(n) => n,
            None => crate::node::hostname(),
        };
        Ok(Config {
            kubeconfig: a.kubeconfig,
            node_name: node_name.to_lowercase(),
            runtime_endpoint: endpoint_path(&a.runtime_endpoint)?,
            node_ip: a.node_ip.unwrap_or_else(minik8s_api::host::first_ipv4),
            root_dir: a.root_dir,
            lease_duration: parse_duration(&a.lease_duration)?,
            status_update: parse_duration(&a.status_update)?,
            port: a.port,
            relist: Duration::from_secs(1),
            volume_resync: VOLUME_RESYNC,
            cni_conf_dir: a.cni_conf_dir,
            cni_bridge: a.cni_bridge,
            cluster_dns: a.cluster_dns,
            cluster_domain: a.cluster_domain,
        })
    }
}

impl Config {
    /// A config for tests and embedding with the defaults of the flags.
    pub fn new(kubeconfig: PathBuf, node_name: &str, socket: PathBuf, root_dir: PathBuf) -> Config {
        Config {
            kubeconfig,
            node_name: node_name.into(),
            runtime_endpoint: socket,
            node_ip: minik8s_api::host::first_ipv4(),
            root_dir,
            lease_duration: Duration::from_secs(40),
            status_update: Duration::from_secs(10),
            port: 10250,
            relist: Duration::from_secs(1),
            volume_resync: VOLUME_RESYNC,
            cni_conf_dir: None,
            cni_bridge: "mk8s0".into(),
            cluster_dns: Ipv4Addr::new(10, 96, 0, 10),
            cluster_domain: "cluster.local".into(),
        }
    }

    pub(crate) async fn client(&self) -> Result<kube::Client, Error> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).map_err(|source| {
            Error::Kubeconfig {
                path: self.kubeconfig.display().to_string(),
                source,
            }
        })?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| Error::Client(e.to_string()))?;
        kube::Client::try_from(cfg).map_err(|e| Error::Client(e.to_string()))
    }
}

fn endpoint_path(endpoint: &str) -> Result<PathBuf, Error> {
    if let Some(p) = endpoint.strip_prefix("unix://") {
        return Ok(PathBuf::from(p));
    }
    if endpoint.starts_with('/') {
        return Ok(PathBuf::from(endpoint));
    }
    Err(Error::Endpoint(endpoint.into()))
}

/// Parses a Go-style duration flag (`40s`, `500ms`, `2m`).
pub fn parse_duration(s: &str) -> Result<Duration, Error> {
    minik8s_api::duration::parse_duration(s).map_err(|_| Error::Duration(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_endpoints() {
        assert_eq!(parse_duration("40s").unwrap(), Duration::from_secs(40));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("x").is_err());
        assert_eq!(
            endpoint_path("unix:///run/x.sock").unwrap(),
            PathBuf::from("/run/x.sock")
        );
        assert!(endpoint_path("tcp://x").is_err());
    }
}
