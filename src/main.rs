//! `minik8s`: one binary, k3s-style, whose subcommands are the components.
//! Each component is a library with `run(config, shutdown)`; this file only parses
//! flags, sets up tracing and calls it.

use std::future::Future;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "minik8s",
    version,
    about = "A small, fast, Kubernetes-compatible container orchestrator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version of this binary.
    Version,
    /// Run a cluster's control plane (API server, scheduler, controller-manager) in one
    /// process, plus a local node unless --disable-agent; prints how to join more nodes.
    Server(Box<minik8s_agent::ServerArgs>),
    /// Join a cluster with the server's token and run this node (CRI runtime + nodelet).
    Agent(Box<minik8s_agent::AgentArgs>),
    /// Run the Kubernetes API server (HTTPS, sled store in --data-dir).
    Apiserver(minik8s_apiserver::Args),
    /// Run the scheduler: bind pending pods to nodes.
    Scheduler(minik8s_scheduler::Args),
    /// Run the controller-manager: ReplicaSets, Deployments, node lifecycle, Endpoints, GC.
    ControllerManager(minik8s_controller_manager::Args),
    /// Run the CRI runtime service (RuntimeService + ImageService) on a unix socket.
    Runtime(Box<minik8s_runtime::cri::Args>),
    /// Run the node agent: register the node, run its pods through CRI, report status.
    Nodelet(minik8s_nodelet::Args),
    /// Run the service proxy (nftables ClusterIP/NodePort rules) and cluster DNS for one node.
    Proxy(minik8s_proxy::Args),
    /// Manage the runtime's image store: import, list, pull, remove, build-busybox.
    Images(minik8s_runtime::image::cli::ImagesArgs),
    /// Low-level OCI runtime with runc's commands (create, start, state, kill, delete, run, ...).
    Oci(Box<minik8s_runtime::oci::cli::Args>),
    /// Per-container shim (internal: started by the runtime; dispatched before anything else).
    #[command(hide = true)]
    Shim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> anyhow::Result<()> {
    // The shim is started once per container: dispatch to it before any setup (tracing, clap)
    // so it starts quickly and stays small.
    let mut argv = std::env::args_os();
    if argv.nth(1).is_some_and(|a| a == "shim") {
        let args: Vec<std::ffi::OsString> = argv.collect();
        minik8s_runtime::shim::main(&args);
    }
    // The per-container monitor of `runtime --oci-runtime runc|crun`: also small and fork-safe.
    let mut argv = std::env::args_os();
    if argv
        .nth(1)
        .is_some_and(|a| a == minik8s_runtime::cri::monitor::ARG)
    {
        let args: Vec<std::ffi::OsString> = argv.collect();
        minik8s_runtime::cri::monitor::main(&args);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("minik8s {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Server(args) => {
            let config = args.into_config()?;
            run_until_signal(|shutdown| minik8s_agent::server::run(config, shutdown))
        }
        Command::Agent(args) => {
            let config = args.into_config()?;
            run_until_signal(|shutdown| minik8s_agent::agent::run(config, shutdown))
        }
        Command::Apiserver(args) => {
            let config = minik8s_apiserver::Config::try_from(args)?;
            run_until_signal(|shutdown| minik8s_apiserver::run(config, shutdown))
        }
        Command::Scheduler(args) => {
            let config = args.into_config()?;
            run_until_signal(|shutdown| minik8s_scheduler::run(config, shutdown))
        }
        Command::ControllerManager(args) => {
            let config = args.into_config()?;
            run_until_signal(|shutdown| minik8s_controller_manager::run(config, shutdown))
        }
        Command::Runtime(args) => run_until_signal(|shutdown| {
            minik8s_runtime::cri::run(*args, shutdown.cancelled_owned())
        }),
        Command::Nodelet(args) => {
            let config = minik8s_nodelet::Config::try_from(args)?;
            run_until_signal(|shutdown| minik8s_nodelet::run(config, shutdown))
        }
        Command::Proxy(args) => {
            let config = minik8s_proxy::Config::try_from(args)?;
            run_until_signal(|shutdown| minik8s_proxy::run(config, shutdown))
        }
        Command::Images(args) => Ok(minik8s_runtime::image::cli::run(args)?),
        Command::Oci(args) => std::process::exit(minik8s_runtime::oci::cli::main(*args)),
        Command::Shim { args } => minik8s_runtime::shim::main(&args),
    }
}

/// Runs a long-lived component on a fresh tokio runtime until it returns, cancelling its
/// shutdown token on SIGTERM or SIGINT so it can stop cleanly.
fn run_until_signal<F, Fut, E>(component: F) -> anyhow::Result<()>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    tokio::runtime::Runtime::new()?.block_on(async {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("signal received, shutting down");
            on_signal.cancel();
        });
        component(shutdown).await?;
        Ok(())
    })
}
