//! `minik8s server`: the API server, scheduler and controller-manager in one process (tokio
//! tasks under one shutdown token), plus a local agent unless `--disable-agent`, as k3s'
//! server does. It prints where the admin kubeconfig and the join token are, and the exact
//! command that joins another machine.

use std::path::{Path, PathBuf};

use clap::Parser;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentArgs, AgentError};
use crate::token::JoinToken;

/// `minik8s server` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Server state: store, CA, tokens, admin.kubeconfig (the local agent uses `<dir>/agent`).
    #[arg(long, default_value = "/var/lib/minik8s/server")]
    pub data_dir: PathBuf,
    /// Address the API server serves HTTPS on (port 0 picks a free port).
    #[arg(long, default_value = "0.0.0.0:6443")]
    pub bind: String,
    /// Run only the control plane: no local runtime and nodelet.
    #[arg(long)]
    pub disable_agent: bool,
    /// CIDR Service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: String,
    /// More names or addresses for the API server's certificate (repeatable).
    #[arg(long = "tls-san", value_delimiter = ',')]
    pub tls_sans: Vec<String>,
    /// CIDR range nodes' pod CIDRs are allocated from.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// How long a node may go without renewing its Lease before it is marked NotReady.
    #[arg(long, default_value = "40s")]
    pub node_monitor_grace_period: String,
    /// tolerationSeconds of the not-ready/unreachable NoExecute tolerations added to pods
    /// (how long pods stay on a failed node before eviction).
    #[arg(long, default_value_t = 300)]
    pub default_toleration_seconds: i64,
    /// Flags of the local agent (ignored with --disable-agent).
    #[command(flatten)]
    pub agent: LocalAgentArgs,
}

/// The local agent's flags, each with the `minik8s agent` meaning.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalAgentArgs {
    /// Run no service proxy and no cluster DNS on the local node.
    #[arg(long)]
    pub disable_proxy: bool,
    /// Name of the local node (default: the hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// InternalIP of the local node (default: the first non-loopback IPv4 address).
    #[arg(long)]
    pub node_ip: Option<std::net::Ipv4Addr>,
    /// The local nodelet's port.
    #[arg(long, default_value_t = 10250)]
    pub nodelet_port: u16,
    /// Parent cgroup of the local node's pods.
    #[arg(long, default_value = "minik8s")]
    pub cgroup_parent: String,
    /// Bridge of the local node's default CNI network.
    #[arg(long, default_value = "mk8s0")]
    pub cni_bridge: String,
    /// Name of the local node's default CNI network.
    #[arg(long, default_value = "minik8s")]
    pub cni_network: String,
    /// Pod subnet of the local node's default CNI network.
    #[arg(long, default_value = "10.88.0.0/16")]
    pub pod_cidr: String,
    /// Image tarballs the local runtime imports at start (default: `<data-dir>/agent/images`).
    #[arg(long)]
    pub images_dir: Option<PathBuf>,
    /// Node Lease duration of the local node.
    #[arg(long, default_value = "40s")]
    pub lease_duration: String,
    /// The resolv.conf whose nameservers the local node's cluster DNS forwards other names
    /// to; "" forwards nothing.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: String,
    /// Node status update period of the local node.
    #[arg(long, default_value = "10s")]
    pub status_update: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid flag: {0}")]
    Flag(String),
    #[error("the API server: {0}")]
    Apiserver(#[from] minik8s_apiserver::Error),
    #[error("the scheduler: {0}")]
    Scheduler(#[from] minik8s_scheduler::SchedulerError),
    #[error("the controller-manager: {0}")]
    ControllerManager(#[from] minik8s_controller_manager::ControllerManagerError),
    #[error("the local agent: {0}")]
    Agent(#[from] AgentError),
    #[error("reading the node token {path}: {source}")]
    NodeToken {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the join token {path}: {source}")]
    JoinToken {
        path: PathBuf,
        source: minik8s_apiserver::tls::TlsError,
    },
    #[error("{0} task panicked")]
    Panicked(&'static str),
}

/// The validated configuration: each component's own, built from its own flag parser so
/// every flag not set here keeps that component's default.
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub apiserver: minik8s_apiserver::Config,
    pub node_monitor_grace_period: String,
    pub cluster_cidr: String,
    /// None with --disable-agent.
    pub agent: Option<LocalAgentArgs>,
}

/// Parses `argv` with a component's own clap flags.
fn component_args<A: clap::Args>(argv: &[&str]) -> Result<A, ServerError> {
    #[derive(clap::Parser)]
    struct Wrap<A: clap::Args> {
        #[command(flatten)]
        args: A,
    }
    Wrap::<A>::try_parse_from(argv)
        .map(|w| w.args)
        .map_err(|e| ServerError::Flag(e.to_string()))
}

impl ServerArgs {
    pub fn into_config(self) -> Result<ServerConfig, ServerError> {
        let data_dir = self.data_dir.display().to_string();
        let toleration = self.default_toleration_seconds.to_string();
        let mut argv = vec![
            "apiserver",
            "--data-dir",
            &data_dir,
            "--bind",
            &self.bind,
            "--service-cidr",
            &self.service_cidr,
            "--default-not-ready-toleration-seconds",
            &toleration,
            "--default-unreachable-toleration-seconds",
            &toleration,
        ];
        for san in &self.tls_sans {
            argv.extend(["--tls-san", san]);
        }
        let args: minik8s_apiserver::Args = component_args(&argv)?;
        let config = ServerConfig {
            apiserver: minik8s_apiserver::Config::try_from(args)?,
            data_dir: self.data_dir,
            node_monitor_grace_period: self.node_monitor_grace_period,
            cluster_cidr: self.cluster_cidr,
            agent: (!self.disable_agent).then_some(self.agent),
        };
        // Validate the controller-manager's flags now rather than after the API server starts.
        config.controller_manager(Path::new("/dev/null"))?;
        Ok(config)
    }
}

impl ServerConfig {
    fn scheduler(&self, kubeconfig: &Path) -> Result<minik8s_scheduler::Config, ServerError> {
        let kc = kubeconfig.display().to_string();
        let args: minik8s_scheduler::Args = component_args(&["scheduler", "--kubeconfig", &kc])?;
        args.into_config()
            .map_err(|e| ServerError::Flag(e.to_string()))
    }

    fn controller_manager(
        &self,
        kubeconfig: &Path,
    ) -> Result<minik8s_controller_manager::Config, ServerError> {
        let kc = kubeconfig.display().to_string();
        let args: minik8s_controller_manager::Args = component_args(&[
            "controller-manager",
            "--kubeconfig",
            &kc,
            "--node-monitor-grace-period",
            &self.node_monitor_grace_period,
            "--cluster-cidr",
            &self.cluster_cidr,
        ])?;
        args.into_config()
            .map_err(|e| ServerError::Flag(e.to_string()))
    }

    /// The local agent joins over loopback with the same token a remote one uses.
    fn local_agent(&self, server_url: &str, token: &str) -> Result<Option<AgentArgs>, ServerError> {
        let Some(a) = &self.agent else {
            return Ok(None);
        };
        let dir = self.data_dir.join("agent");
        let mut args: AgentArgs = component_args(&[
            "agent",
            "--server",
            server_url,
            "--token",
            token,
            "--data-dir",
            &dir.display().to_string(),
            "--port",
            &a.nodelet_port.to_string(),
            "--cgroup-parent",
            &a.cgroup_parent,
            "--cni-bridge",
            &a.cni_bridge,
            "--cni-network",
            &a.cni_network,
            "--pod-cidr",
            &a.pod_cidr,
            "--lease-duration",
            &a.lease_duration,
            "--status-update",
            &a.status_update,
        ])?;
        args.node_name = a.node_name.clone();
        args.node_ip = a.node_ip;
        args.images_dir = a.images_dir.clone();
        args.disable_proxy = a.disable_proxy;
        args.resolv_conf = a.resolv_conf.clone();
        args.cluster_cidr = self.cluster_cidr.clone();
        Ok(Some(args))
    }
}

/// Runs the control plane (and the local agent) until `shutdown`, or until a component stops.
pub async fn run(config: ServerConfig, shutdown: CancellationToken) -> Result<(), ServerError> {
    let stop = shutdown.child_token();
    let api = minik8s_apiserver::start(config.apiserver.clone(), stop.clone()).await?;
    let node_secret = read_node_token(&config.data_dir)?;
    let token = JoinToken::format(api.ca_pem.as_bytes(), &node_secret);
    let token_path = config.data_dir.join("join-token");
    minik8s_apiserver::tls::write_private(&token_path, format!("{token}\n").as_bytes()).map_err(
        |source| ServerError::JoinToken {
            path: token_path.clone(),
            source,
        },
    )?;
    let local_url = format!("https://127.0.0.1:{}", api.addr.port());
    let join_host = if api.addr.ip().is_unspecified() {
        minik8s_api::host::first_ipv4().to_string()
    } else {
        api.addr.ip().to_string()
    };
    let join_url = format!("https://{join_host}:{}", api.addr.port());
    announce(&api.kubeconfig, &token_path, &join_url, &token);

    let mut tasks: Vec<(&'static str, JoinHandle<Result<(), ServerError>>)> = vec![(
        "apiserver",
        tokio::spawn(async move {
            api.handle
                .await
                .map_err(|_| ServerError::Panicked("apiserver"))??;
            Ok(())
        }),
    )];
    let kubeconfig = config.data_dir.join("admin.kubeconfig");
    let scheduler = config.scheduler(&kubeconfig)?;
    let s = stop.clone();
    tasks.push((
        "scheduler",
        tokio::spawn(async move { Ok(minik8s_scheduler::run(scheduler, s).await?) }),
    ));
    let cm = config.controller_manager(&kubeconfig)?;
    let s = stop.clone();
    tasks.push((
        "controller-manager",
        tokio::spawn(async move { Ok(minik8s_controller_manager::run(cm, s).await?) }),
    ));
    if let Some(args) = config.local_agent(&local_url, &token)? {
        let agent = args.into_config()?;
        let s = stop.clone();
        tasks.push((
            "agent",
            tokio::spawn(async move { Ok(crate::agent::run(agent, s).await?) }),
        ));
    }
    crate::supervise(stop, tasks, ServerError::Panicked).await
}

fn read_node_token(dir: &Path) -> Result<String, ServerError> {
    let path = dir.join("node-token");
    std::fs::read_to_string(&path)
        .map(|t| t.trim().to_string())
        .map_err(|source| ServerError::NodeToken { path, source })
}

/// Tells the operator, on stderr, where things are and how to join (k3s prints the same).
fn announce(kubeconfig: &Path, token_path: &Path, join_url: &str, token: &str) {
    eprintln!(
        "minik8s server is up\n  \
         admin kubeconfig: {kc}   (export KUBECONFIG={kc})\n  \
         join token:       {tp}\n  \
         join another node with:\n    \
         minik8s agent --server {join_url} --token {token}",
        kc = kubeconfig.display(),
        tp = token_path.display(),
    );
}
