//! The CRI server: `minik8s runtime`, what containerd is to a kubelet. It serves CRI v1
//! (RuntimeService + ImageService, `k8s-cri` types, tonic) on a unix socket and drives:
//!
//! - [`crate::sandbox`]: each pod's network/UTS/IPC namespaces, pinned by bind mounts (no pause
//!   process), plus its hostname, hosts and resolv.conf files;
//! - [`crate::cni`]: the pod network through the installed CNI plugins;
//! - [`crate::snapshot`]: each container's overlayfs root over the image's layers;
//! - the OCI runtime ([`backend`]): the builtin [`crate::oci`] runtime and its shim, or runc/crun;
//! - the image store ([`images`]).
//!
//! Everything a restart must find again is under `--root`:
//! `sandboxes/<id>/` (record, namespaces, files), `containers/<id>/` (record, OCI bundle and
//! snapshot), `oci/` (the low-level runtime's state), `cni/` (config and IPAM), `images/`.

pub mod backend;
mod containers;
mod error;
mod exec;
pub mod images;
pub mod monitor;
mod pods;
mod server;
mod service;
mod spec;
mod stats;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use error::CriError;
pub use k8s_cri;
pub use server::{accepting, connect, serve};
pub use tonic;

use crate::cni::{ConfDir, DefaultNetwork};
use backend::Backend;
use images::Images;
use store::{ContainerRecord, SandboxRecord};

/// Which OCI runtime creates the containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OciRuntimeKind {
    /// The builtin `oci` module and its shim.
    Builtin,
    Runc,
    Crun,
}

/// `minik8s runtime` flags. Every name that must be unique per instance on one machine
/// (socket, state, cgroup parent, CNI network, bridge, subnet) comes from a flag.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The CRI socket to serve.
    #[arg(long, default_value = "/run/minik8s/runtime.sock")]
    pub socket: PathBuf,
    /// State root: sandboxes, containers, images, CNI config and IPAM.
    #[arg(long, default_value = "/var/lib/minik8s/runtime")]
    pub root: PathBuf,
    #[arg(long, default_value = "/usr/lib/cni")]
    pub cni_bin_dir: PathBuf,
    /// Default: `<root>/cni/net.d`.
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "builtin")]
    pub oci_runtime: OciRuntimeKind,
    /// Image tarballs imported at start (like k3s' agent/images directory).
    #[arg(long)]
    pub images_dir: Option<PathBuf>,
    /// Parent cgroup of all pods.
    #[arg(long, default_value = "minik8s")]
    pub cgroup_parent: String,
    /// Registries spoken to over plain HTTP.
    #[arg(long)]
    pub insecure_registry: Vec<String>,
    /// Name of the default CNI network written when the conf dir holds none.
    #[arg(long, default_value = "minik8s")]
    pub cni_network: String,
    /// Bridge of the default CNI network (at most 15 characters).
    #[arg(long, default_value = "mk8s0")]
    pub cni_bridge: String,
    /// Pod subnet of the default CNI network.
    #[arg(long, default_value = "10.88.0.0/16")]
    pub pod_cidr: String,
    /// The binary started as each container's shim (default: this executable).
    #[arg(long, hide = true)]
    pub shim_binary: Option<PathBuf>,
}

impl Args {
    /// Defaults for a runtime rooted at `root` serving `socket` (tests and embedders).
    pub fn new(socket: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Args {
        Args {
            socket: socket.into(),
            root: root.into(),
            cni_bin_dir: "/usr/lib/cni".into(),
            cni_conf_dir: None,
            oci_runtime: OciRuntimeKind::Builtin,
            images_dir: None,
            cgroup_parent: "minik8s".into(),
            insecure_registry: Vec::new(),
            cni_network: "minik8s".into(),
            cni_bridge: "mk8s0".into(),
            pod_cidr: "10.88.0.0/16".into(),
            shim_binary: None,
        }
    }
}

/// The runtime's state: configuration, drivers and the in-memory copy of the records.
pub struct Cri {
    pub(crate) args: Args,
    pub(crate) backend: Backend,
    pub(crate) cni: ConfDir,
    pub(crate) images: Box<dyn Images>,
    pub(crate) cgroups: Option<crate::cgroups::Layout>,
    pub(crate) sandboxes: Mutex<HashMap<String, SandboxRecord>>,
    pub(crate) containers: Mutex<HashMap<String, ContainerRecord>>,
}

impl Cri {
    /// Opens (or creates) the state under `args.root` and loads the records a previous run left.
    pub fn open(args: Args, images: Box<dyn Images>) -> Result<Cri, CriError> {
        for dir in ["sandboxes", "containers", "cni"] {
            let path = args.root.join(dir);
            std::fs::create_dir_all(&path).map_err(|source| CriError::Io {
                what: "create",
                path,
                source,
            })?;
        }
        let conf_dir = args
            .cni_conf_dir
            .clone()
            .unwrap_or_else(|| args.root.join("cni/net.d"));
        let cni = ConfDir::open(
            &args.cni_bin_dir,
            &conf_dir,
            &DefaultNetwork {
                name: args.cni_network.clone(),
                bridge: args.cni_bridge.clone(),
                subnet: args.pod_cidr.clone(),
                ipam_dir: args.root.join("cni/networks"),
            },
        )?;
        let backend = Backend::new(&args)?;
        let sandboxes =
            store::load_all::<SandboxRecord>(&args.root.join("sandboxes"), store::SANDBOX_FILE)
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect();
        let containers = store::load_all::<ContainerRecord>(
            &args.root.join("containers"),
            store::CONTAINER_FILE,
        )
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
        Ok(Cri {
            cgroups: crate::cgroups::Layout::detect().ok(),
            args,
            backend,
            cni,
            images,
            sandboxes: Mutex::new(sandboxes),
            containers: Mutex::new(containers),
        })
    }

    pub(crate) fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.args.root.join("sandboxes").join(id)
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.args.root.join("containers").join(id)
    }
}

/// Serves CRI per `args` until `shutdown` completes. Containers keep running afterwards (their
/// shims own them); a new `run` on the same root picks them up.
pub async fn run(
    args: Args,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CriError> {
    let socket = args.socket.clone();
    let cri = tokio::task::spawn_blocking(move || {
        let images = images::open_store(&args)?;
        Cri::open(args, images)
    })
    .await
    .map_err(|e| CriError::Task(e.to_string()))??;
    tracing::info!(socket = %socket.display(), "serving CRI");
    serve(Arc::new(cri), &socket, shutdown).await
}

/// A new random 64-hex-digit id, the form CRI ids have in containerd.
pub(crate) fn new_id() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{b}")
}

/// Unix time in nanoseconds (CRI timestamps).
pub(crate) fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}
