//! The minik8s controller-manager: the reconcile loops that make declared state real —
//! ReplicaSets and Deployments — each on kube's Controller runtime, optionally behind leader
//! election on the Lease kube-system/minik8s-controller-manager.

pub mod cached_pod;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod expectations;
pub mod garbage;
pub mod informer;
pub mod namespace;
pub mod node;
pub mod options;
pub mod owner;
pub mod pods;
pub mod replicaset;

pub use options::{Args, Config, OptionsError};

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use minik8s_leader::{LeaderElector, LeaderError};
use tokio_util::sync::CancellationToken;
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum ControllerManagerError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("building a client from kubeconfig {path}: {source}")]
    Client { path: String, source: kube::Error },
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// A client for the configured kubeconfig.
pub async fn connect(config: &Config) -> Result<Client, ControllerManagerError> {
    let path = config.kubeconfig.display().to_string();
    let kc = Kubeconfig::read_from(&config.kubeconfig).map_err(|source| {
        ControllerManagerError::Kubeconfig {
            path: path.clone(),
            source,
        }
    })?;
    let kconfig = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|source| ControllerManagerError::Kubeconfig {
            path: path.clone(),
            source,
        })?;
    Client::try_from(kconfig).map_err(|source| ControllerManagerError::Client { path, source })
}

/// Runs the enabled controllers until `shutdown`; with leader election, only while holding
/// the Lease.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), ControllerManagerError> {
    let client = connect(&config).await?;
    match config.leader.clone() {
        None => {
            run_controllers(client, config, shutdown).await;
            Ok(())
        }
        Some(lease) => {
            let elector = LeaderElector::new(client.clone(), lease);
            elector
                .run(shutdown, move |leading| {
                    run_controllers(client, config, leading)
                })
                .await?;
            Ok(())
        }
    }
}

/// Starts every enabled controller and waits for all of them to stop. The controllers that
/// read pods share one pod watch, and those that read ReplicaSets one ReplicaSet watch.
pub async fn run_controllers(client: Client, config: Config, shutdown: CancellationToken) {
    info!(controllers = ?config.controllers, "starting controllers");
    let mut pods = informer::Shared::<cached_pod::CachedPod>::default();
    let mut replica_sets = informer::Shared::<ReplicaSet>::default();
    let mut tasks = Vec::new();
    for name in &config.controllers {
        let events = events::Events::new(
            client.clone(),
            &format!("{name}-controller"),
            &config.identity,
        );
        let (client, shutdown) = (client.clone(), shutdown.clone());
        tasks.push(match *name {
            "replicaset" => tokio::spawn(replicaset::run(
                client,
                (replica_sets.store(), replica_sets.subscribe()),
                (pods.store(), pods.subscribe()),
                events,
                shutdown,
            )),
            "deployment" => tokio::spawn(deployment::run(
                client,
                (replica_sets.store(), replica_sets.subscribe()),
                events,
                shutdown,
            )),
            "garbagecollector" => tokio::spawn(garbage::run(client, shutdown)),
            "endpoint" => tokio::spawn(endpoints::run(
                client,
                pods.store(),
                pods.subscribe(),
                shutdown,
            )),
            "namespace" => tokio::spawn(namespace::run(client, shutdown)),
            "nodelifecycle" => tokio::spawn(node::run(
                client,
                pods.store(),
                events,
                config.node_monitor_grace_period,
                config.allocator.clone(),
                shutdown,
            )),
            _ => continue,
        });
    }
    let watch = futures::future::join(
        pods.run(informer::pod_events(client.clone())),
        replica_sets.run(informer::replica_set_events(client)),
    );
    tokio::select! {
        _ = watch => {}
        _ = shutdown.cancelled() => {}
    }
    for t in tasks {
        let _ = t.await;
    }
}
