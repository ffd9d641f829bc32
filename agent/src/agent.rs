//! `minik8s agent`: joins a cluster with the node token, then runs this node's CRI runtime
//! (on its own socket under the data dir) and the nodelet in one process, k3s style. On
//! shutdown both stop; containers keep running (their shims own them) and a later agent on
//! the same data dir adopts them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::join::{self, JoinError, ServerUrl};
use crate::token::{JoinToken, TokenError};

/// Wait between join attempts while the server is unreachable.
const JOIN_RETRY: Duration = Duration::from_secs(2);
/// How long the agent waits for its runtime to serve CRI (it imports the images dir first).
const RUNTIME_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// `minik8s agent` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// The API server to join, `https://HOST:PORT`.
    #[arg(long, env = "MINIK8S_URL", required_unless_present = "kubeconfig")]
    pub server: Option<String>,
    /// The join token the server printed (`K10<ca sha256>::node:<secret>`), or a plain
    /// secret (then the CA is not pinned).
    #[arg(
        long,
        env = "MINIK8S_TOKEN",
        hide_env_values = true,
        required_unless_present = "kubeconfig"
    )]
    pub token: Option<String>,
    /// Use this kubeconfig instead of joining with --server and --token: a node whose
    /// credentials are already on the machine (`minictl cluster up`'s nodes).
    #[arg(long, conflicts_with_all = ["server", "token"])]
    pub kubeconfig: Option<PathBuf>,
    /// Name of this node (default: the hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// State of this agent: kubeconfig, runtime socket and root, nodelet root, images.
    #[arg(long, default_value = "/var/lib/minik8s/agent")]
    pub data_dir: PathBuf,
    /// InternalIP of the node (default: the first non-loopback IPv4 address).
    #[arg(long)]
    pub node_ip: Option<Ipv4Addr>,
    /// The nodelet's port (logs/exec/healthz).
    #[arg(long, default_value_t = 10250)]
    pub port: u16,
    /// Node Lease duration; renewed every quarter of it.
    #[arg(long, default_value = "40s")]
    pub lease_duration: String,
    /// Period of Node status updates.
    #[arg(long, default_value = "10s")]
    pub status_update: String,
    /// Parent cgroup of all pods.
    #[arg(long, default_value = "minik8s")]
    pub cgroup_parent: String,
    /// Image tarballs imported at start (default: `<data-dir>/images` when it exists).
    #[arg(long)]
    pub images_dir: Option<PathBuf>,
    /// Which OCI runtime creates containers.
    #[arg(long, value_enum, default_value = "builtin")]
    pub oci_runtime: minik8s_runtime::cri::OciRuntimeKind,
    #[arg(long, default_value = "/usr/lib/cni")]
    pub cni_bin_dir: PathBuf,
    /// Default: `<data-dir>/runtime/cni/net.d`.
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
    /// Name of the default CNI network.
    #[arg(long, default_value = "minik8s")]
    pub cni_network: String,
    /// Bridge of the default CNI network (at most 15 characters).
    #[arg(long, default_value = "mk8s0")]
    pub cni_bridge: String,
    /// Pod subnet of the default CNI network.
    #[arg(long, default_value = "10.88.0.0/16")]
    pub pod_cidr: String,
    /// Registries spoken to over plain HTTP.
    #[arg(long)]
    pub insecure_registry: Vec<String>,
    /// The cluster's pod CIDR (the controller-manager's `--cluster-cidr`): traffic leaving it
    /// is masqueraded by the service proxy.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// The cluster DNS IP in pods' resolv.conf, answered by this node's proxy.
    #[arg(long, default_value = "10.96.0.10")]
    pub cluster_dns: Ipv4Addr,
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Run no service proxy and no cluster DNS on this node (k3s' --disable-kube-proxy).
    #[arg(long)]
    pub disable_proxy: bool,
    /// An upstream resolver (IP or IP:PORT) for names outside the cluster domain; repeat for
    /// more. Default: the nameservers of --resolv-conf.
    #[arg(long = "dns-upstream", value_name = "IP[:PORT]")]
    pub dns_upstreams: Vec<String>,
    /// The resolv.conf whose nameservers the cluster DNS forwards to; "" forwards nothing.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("joining the cluster: {0}")]
    Join(#[from] JoinError),
    #[error("invalid duration {0:?} (expected e.g. 500ms, 10s, 1m)")]
    Duration(String),
    #[error("the CRI runtime: {0}")]
    Runtime(#[from] minik8s_runtime::cri::CriError),
    #[error("the CRI runtime did not serve {path} within {timeout:?}")]
    RuntimeNotReady { path: PathBuf, timeout: Duration },
    #[error("the nodelet: {0}")]
    Nodelet(#[from] minik8s_nodelet::Error),
    #[error("the service proxy: {0}")]
    Proxy(#[from] minik8s_proxy::Error),
    #[error("{0} task panicked")]
    Panicked(&'static str),
}

/// How the agent gets its credentials.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Join with the server's node token, which writes `<data-dir>/kubeconfig`.
    Join { server: ServerUrl, token: JoinToken },
    /// A kubeconfig that is already here.
    Kubeconfig(PathBuf),
}

/// The validated agent configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub credentials: Credentials,
    pub node_name: String,
    pub data_dir: PathBuf,
    pub node_ip: Option<Ipv4Addr>,
    pub port: u16,
    pub lease_duration: Duration,
    pub status_update: Duration,
    pub runtime: minik8s_runtime::cri::Args,
    pub cluster_dns: Ipv4Addr,
    pub cluster_domain: String,
    /// The service proxy, `None` with `--disable-proxy`.
    pub proxy: Option<minik8s_proxy::Config>,
}

impl AgentArgs {
    pub fn into_config(self) -> Result<AgentConfig, AgentError> {
        let duration = |s: &str| {
            minik8s_api::duration::parse_duration(s).map_err(|_| AgentError::Duration(s.into()))
        };
        let dir = self.data_dir;
        let mut runtime =
            minik8s_runtime::cri::Args::new(dir.join("runtime.sock"), dir.join("runtime"));
        runtime.cgroup_parent = self.cgroup_parent;
        runtime.images_dir = self
            .images_dir
            .or_else(|| Some(dir.join("images")).filter(|d| d.is_dir()));
        runtime.oci_runtime = self.oci_runtime;
        runtime.cni_bin_dir = self.cni_bin_dir;
        // One conf dir for both: the nodelet writes the Node's podCIDR network there and the
        // runtime picks it up for the next sandbox.
        runtime.cni_conf_dir = Some(
            self.cni_conf_dir
                .unwrap_or_else(|| dir.join("runtime").join("cni/net.d")),
        );
        runtime.cni_network = self.cni_network;
        runtime.cni_bridge = self.cni_bridge;
        runtime.pod_cidr = self.pod_cidr;
        runtime.insecure_registry = self.insecure_registry;
        let node_name = self
            .node_name
            .unwrap_or_else(minik8s_nodelet::node::hostname)
            .to_lowercase();
        // clap requires --server and --token unless --kubeconfig is given.
        let credentials = match (self.kubeconfig, self.server, self.token) {
            (Some(path), _, _) => Credentials::Kubeconfig(path),
            (None, server, token) => Credentials::Join {
                server: ServerUrl::parse(server.as_deref().unwrap_or_default())?,
                token: JoinToken::parse(token.as_deref().unwrap_or_default())?,
            },
        };
        Ok(AgentConfig {
            credentials,
            node_name: node_name.clone(),
            data_dir: dir,
            node_ip: self.node_ip,
            port: self.port,
            lease_duration: duration(&self.lease_duration)?,
            status_update: duration(&self.status_update)?,
            // Checked now, so a bad flag stops the agent before anything runs.
            proxy: match self.disable_proxy {
                true => None,
                false => Some(minik8s_proxy::Config::try_from(minik8s_proxy::Args {
                    // Set once the join has written the kubeconfig.
                    kubeconfig: PathBuf::new(),
                    node_name: Some(node_name.clone()),
                    cluster_cidr: self.cluster_cidr,
                    cluster_dns: self.cluster_dns,
                    cluster_domain: self.cluster_domain.clone(),
                    dns_bind: ([0, 0, 0, 0], 10053).into(),
                    netns: None,
                    disable_dns: false,
                    dns_upstreams: self.dns_upstreams.clone(),
                    resolv_conf: self.resolv_conf.clone(),
                })?),
            },
            cluster_dns: self.cluster_dns,
            cluster_domain: self.cluster_domain,
            runtime,
        })
    }
}

/// Joins, then runs the runtime and the nodelet until `shutdown` or until one of them stops
/// (then the other is stopped too, as k3s stops when a component does).
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    let kubeconfig = match &config.credentials {
        Credentials::Kubeconfig(path) => path.clone(),
        Credentials::Join { server, token } => {
            let Some(path) =
                join_when_reachable(server, token, &config.data_dir, &shutdown).await?
            else {
                return Ok(());
            };
            tracing::info!(server = %server.url, node = %config.node_name,
                kubeconfig = %path.display(), "joined the cluster");
            path
        }
    };
    // One token for this agent's components, so a failing one stops the others.
    let stop = shutdown.child_token();
    let socket = config.runtime.socket.clone();
    let runtime: JoinHandle<Result<(), AgentError>> = tokio::spawn({
        let (args, stop) = (config.runtime.clone(), stop.clone());
        async move { Ok(minik8s_runtime::cri::run(args, stop.cancelled_owned()).await?) }
    });
    if !runtime_ready(&socket, &runtime, &stop).await {
        // The runtime stopped (its error is the answer), timed out, or we were told to stop.
        stop.cancel();
        return match runtime.await {
            Ok(Ok(())) if !shutdown.is_cancelled() => Err(AgentError::RuntimeNotReady {
                path: socket,
                timeout: RUNTIME_READY_TIMEOUT,
            }),
            Ok(r) => r,
            Err(_) => Err(AgentError::Panicked("runtime")),
        };
    }

    let mut nodelet_config = minik8s_nodelet::Config::new(
        kubeconfig.clone(),
        &config.node_name,
        socket,
        config.data_dir.join("nodelet"),
    );
    if let Some(ip) = config.node_ip {
        nodelet_config.node_ip = ip;
    }
    nodelet_config.port = config.port;
    nodelet_config.lease_duration = config.lease_duration;
    nodelet_config.status_update = config.status_update;
    nodelet_config.cni_conf_dir = config.runtime.cni_conf_dir.clone();
    nodelet_config.cni_bridge = config.runtime.cni_bridge.clone();
    nodelet_config.cluster_dns = config.cluster_dns;
    nodelet_config.cluster_domain = config.cluster_domain.clone();
    let nodelet: JoinHandle<Result<(), AgentError>> = tokio::spawn({
        let stop = stop.clone();
        async move { Ok(minik8s_nodelet::run(nodelet_config, stop).await?) }
    });
    let mut tasks = vec![("runtime", runtime), ("nodelet", nodelet)];
    if let Some(mut proxy) = config.proxy.clone() {
        // The service proxy (ClusterIP/NodePort rules) and cluster DNS, as k3s embeds
        // kube-proxy in its agent.
        proxy.kubeconfig = kubeconfig;
        let proxy: JoinHandle<Result<(), AgentError>> = tokio::spawn({
            let stop = stop.clone();
            async move { Ok(minik8s_proxy::run(proxy, stop).await?) }
        });
        tasks.push(("proxy", proxy));
    }
    crate::supervise(stop, tasks, AgentError::Panicked).await
}

/// Joins, retrying while the server is unreachable or not answering yet (k3s: "waiting to
/// retrieve agent configuration"), so agents may start before their server. A CA mismatch or
/// a rejected secret fails at once. None when `shutdown` came first.
async fn join_when_reachable(
    server: &ServerUrl,
    token: &JoinToken,
    data_dir: &Path,
    shutdown: &CancellationToken,
) -> Result<Option<PathBuf>, AgentError> {
    loop {
        match join::join(server, token, data_dir).await {
            Ok(path) => return Ok(Some(path)),
            Err(e @ (JoinError::Connect { .. } | JoinError::Status { .. })) => {
                tracing::warn!(error = %e, "server not ready; retrying the join");
            }
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(JOIN_RETRY) => {}
        }
    }
}

/// Waits until the runtime serves its socket: false if it stops first, `stop` is cancelled,
/// or it takes longer than [`RUNTIME_READY_TIMEOUT`].
async fn runtime_ready(
    socket: &Path,
    runtime: &JoinHandle<Result<(), AgentError>>,
    stop: &CancellationToken,
) -> bool {
    let deadline = tokio::time::Instant::now() + RUNTIME_READY_TIMEOUT;
    // The runtime removes a stale socket before binding, so wait for a connectable one.
    while tokio::net::UnixStream::connect(socket).await.is_err() {
        if runtime.is_finished() || stop.is_cancelled() || tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    fn parse(args: &[&str]) -> Result<AgentArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("agent").chain(args.iter().copied())).map(|c| c.agent)
    }

    #[test]
    fn a_kubeconfig_replaces_the_join_and_excludes_its_flags() {
        let config = parse(&["--kubeconfig", "/k"])
            .unwrap()
            .into_config()
            .unwrap();
        assert!(matches!(config.credentials, Credentials::Kubeconfig(p) if p == Path::new("/k")));
        let join = ["--server", "https://10.0.0.1:6443", "--token", "secret"];
        let config = parse(&join).unwrap().into_config().unwrap();
        assert!(matches!(config.credentials, Credentials::Join { .. }));

        let kind = |args: &[&str]| parse(args).err().map(|e| e.kind());
        assert_eq!(kind(&[]), Some(ErrorKind::MissingRequiredArgument));
        assert_eq!(
            kind(&["--server", "https://10.0.0.1:6443"]),
            Some(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            kind(&["--kubeconfig", "/k", "--token", "secret"]),
            Some(ErrorKind::ArgumentConflict)
        );
    }
}
