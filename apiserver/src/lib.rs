//! The minik8s API server: the Kubernetes REST API (discovery, CRUD, watch, patch,
//! subresources, tables, OpenAPI) over HTTPS, on a pluggable revisioned store.
//!
//! Start it in-process (tests, `minik8s server`) with [`start`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), minik8s_apiserver::Error> {
//! let dir = std::path::PathBuf::from("/tmp/minik8s-demo");
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let config = minik8s_apiserver::Config::new(dir, "127.0.0.1:0".parse().unwrap());
//! let running = minik8s_apiserver::start(config, shutdown.clone()).await?;
//! // running.addr: the bound address; running.kubeconfig: admin kubeconfig for clients.
//! shutdown.cancel();
//! running.handle.await.expect("server task")?;
//! # Ok(()) }
//! ```

pub mod admission;
pub mod defaults;
pub mod discovery;
mod handlers;
pub mod ipalloc;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod request;
mod server;
pub mod status;
pub mod storage;
pub mod table;
pub mod tls;
pub mod validation;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

pub use server::{run, start, Running};

/// Flags of `minik8s apiserver`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Directory for the store, the CA, the tokens and admin.kubeconfig.
    #[arg(long, default_value = minik8s_api::kubeconfig::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Address to serve HTTPS on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub bind: SocketAddr,
    /// CIDR Service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: String,
    /// More names or addresses for the serving certificate (repeatable), e.g. a load
    /// balancer's or a public address agents join through.
    #[arg(long = "tls-san", value_delimiter = ',')]
    pub tls_sans: Vec<String>,
    /// tolerationSeconds of the node.kubernetes.io/not-ready:NoExecute toleration added
    /// to every pod (Kubernetes' DefaultTolerationSeconds admission).
    #[arg(long, default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,
    /// tolerationSeconds of the node.kubernetes.io/unreachable:NoExecute toleration.
    #[arg(long, default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,
}

/// The validated configuration of a server.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind: SocketAddr,
    pub service_cidr: ipalloc::Cidr,
    pub defaults: defaults::DefaultsConfig,
    /// Extra names of the serving certificate (`--tls-san`).
    pub tls_sans: Vec<String>,
}

impl Config {
    /// A server on `bind` keeping its state in `data_dir`, with Kubernetes' defaults
    /// (service CIDR 10.96.0.0/12, 300 s not-ready/unreachable tolerations).
    pub fn new(data_dir: PathBuf, bind: SocketAddr) -> Self {
        Self {
            data_dir,
            bind,
            service_cidr: "10.96.0.0/12".parse().expect("valid default"),
            defaults: defaults::DefaultsConfig::default(),
            tls_sans: Vec::new(),
        }
    }
}

impl TryFrom<Args> for Config {
    type Error = Error;
    fn try_from(a: Args) -> Result<Self, Error> {
        let service_cidr = a
            .service_cidr
            .parse()
            .map_err(|e: ipalloc::AllocError| Error::Config(e.to_string()))?;
        Ok(Config {
            data_dir: a.data_dir,
            bind: a.bind,
            service_cidr,
            defaults: defaults::DefaultsConfig {
                not_ready_toleration_seconds: a.default_not_ready_toleration_seconds,
                unreachable_toleration_seconds: a.default_unreachable_toleration_seconds,
            },
            tls_sans: a.tls_sans,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("creating data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening the store: {0}")]
    Storage(#[from] storage::StorageError),
    #[error("setting up TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("writing the admin kubeconfig: {0}")]
    Kubeconfig(#[from] minik8s_api::kubeconfig::KubeconfigError),
    #[error("initialising the API: {0}")]
    Init(#[from] status::ApiError),
}

/// Runs the binary's server until `shutdown` is cancelled.
pub async fn run_args(args: Args, shutdown: CancellationToken) -> Result<(), Error> {
    run(Config::try_from(args)?, shutdown).await
}
