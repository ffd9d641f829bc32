//! The minik8s service proxy and cluster DNS: kube-proxy's and CoreDNS's jobs for one node.
//!
//! - [`model`] joins Services with their EndpointSlices (ready endpoints per Service port).
//! - [`nft`] renders that into one nftables table, `ip minik8s-<node>`, and writes it with
//!   `nft -f -` in one atomic transaction per change (ClusterIP and NodePort, TCP and UDP,
//!   random spreading, ClientIP affinity, hairpin/NodePort masquerade, reject without
//!   endpoints). The table is removed on a clean shutdown; nothing else in the ruleset is
//!   touched.
//! - [`dns`] answers `<svc>.<ns>.svc.<zone>` A/SRV queries with hickory-server; the table
//!   redirects the cluster DNS IP :53 to it, so pods reach it at the IP in their resolv.conf.
//! - [`sync`] watches the API and drives both, debounced so a change lands within ~50 ms.

pub mod config;
pub mod dns;
pub mod model;
pub mod netns;
pub mod nft;
pub mod sync;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{Args, Config};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid cluster CIDR {0:?}: expected a.b.c.d/n")]
    Cidr(String),
    #[error("{0}")]
    DnsUpstream(String),
    #[error("reading kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error(transparent)]
    Dns(#[from] dns::DnsError),
    #[error(transparent)]
    Nft(#[from] nft::NftError),
    #[error("proxy task failed: {0}")]
    Task(String),
}

/// A started proxy.
pub struct Running {
    /// The DNS listener's bound address (when DNS is enabled).
    pub dns_addr: Option<SocketAddr>,
    /// Finishes after shutdown, once the table is removed.
    pub task: JoinHandle<Result<(), Error>>,
}

/// Runs the proxy (and DNS) until `shutdown` is cancelled; removes its table before returning.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let client = client(&config).await?;
    let running = start(client, config, shutdown).await?;
    running.task.await.map_err(|e| Error::Task(e.to_string()))?
}

/// Binds DNS and starts the sync loop with an existing client (for embedding in the agent).
pub async fn start(
    client: kube::Client,
    config: Config,
    shutdown: CancellationToken,
) -> Result<Running, Error> {
    let (snapshots, snapshot_rx) = watch::channel(Arc::new(model::Snapshot::default()));
    let mut dns_addr = None;
    let mut dns_task = None;
    if let Some(bind) = config.dns_bind {
        let forwarder = dns::forward::Forwarder::new(config.dns_upstreams.clone());
        let handler =
            dns::Handler::new(&config.cluster_domain, snapshot_rx).forwarding_to(forwarder);
        let server = dns::DnsServer::bind(bind, config.netns.as_deref(), handler).await?;
        dns_addr = Some(server.local_addr());
        tracing::info!(addr = %server.local_addr(), upstreams = ?config.dns_upstreams,
            "cluster DNS listening");
        dns_task = Some(tokio::spawn(server.serve(shutdown.clone())));
    }
    let opts = nft::Options {
        cluster_cidr: config.cluster_cidr.clone(),
        dns: dns_addr.map(|a| (config.cluster_dns, a.port())),
    };
    let ns_path = config.netns.clone();
    tokio::task::spawn_blocking(move || netns::apply_sysctls(ns_path.as_deref()))
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
    let table = nft::Table::new(config.table.clone(), config.netns.clone());
    tracing::info!(table = %config.table, "service proxy starting");
    let task = tokio::spawn(async move {
        let result = sync::run(client, table, opts, config, snapshots, shutdown).await;
        if let Some(t) = dns_task {
            let _ = t.await;
        }
        result.map_err(Error::from)
    });
    Ok(Running { dns_addr, task })
}

async fn client(config: &Config) -> Result<kube::Client, Error> {
    let err = |message: String| Error::Kubeconfig {
        path: config.kubeconfig.display().to_string(),
        message,
    };
    let kc =
        kube::config::Kubeconfig::read_from(&config.kubeconfig).map_err(|e| err(e.to_string()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    kube::Client::try_from(cfg).map_err(|e| err(e.to_string()))
}
