//! The minik8s node agent ("nodelet"): the kubelet's job for one node. It registers the Node,
//! renews its Lease, runs the pods bound to it through CRI on a unix socket and reports their
//! status back, taking the truth from the runtime (a PLEG-style relist every second).

pub mod config;
pub mod cri;
pub mod error;
pub mod network;
pub mod node;
pub mod pods;
pub mod server;

pub use config::{Args, Config};
pub use error::Error;

use tokio_util::sync::CancellationToken;

/// Runs the nodelet until `shutdown` is cancelled. Containers keep running when it stops:
/// a later nodelet adopts them from the labels it set on the CRI objects.
pub async fn run(mut config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let client = config.client().await?;
    let Some((rt, version)) =
        cri::Cri::connect_when_ready(&config.runtime_endpoint, &shutdown).await?
    else {
        return Ok(());
    };
    tracing::info!(node = %config.node_name, runtime = %version, "nodelet starting");
    // The server starts before registration so Node status reports the bound port (its
    // daemonEndpoints.kubeletEndpoint.Port), which is how the API server finds it.
    // Stopped with the nodelet on every return path, not only on `shutdown`.
    let server_stop = shutdown.child_token();
    let _server_guard = server_stop.clone().drop_guard();
    let serving = server::start(&config, client.clone(), rt.clone(), server_stop)
        .await
        .map_err(|e| {
            let addr = format!("{}:{}", config.node_ip, config.port);
            Error::io(
                "start the nodelet server on",
                addr,
                std::io::Error::other(e),
            )
        })?;
    config.port = serving.addr.port();
    let node = node::NodeAgent::new(client.clone(), config.clone(), version.clone());
    node.register().await?;
    let node_task = tokio::spawn(node.run(rt.clone(), shutdown.clone()));
    let network_task =
        network_loop(&config).map(|n| tokio::spawn(n.run(client.clone(), shutdown.clone())));
    let runtime = version.split("://").next().unwrap_or("cri").to_string();
    let pods = pods::Manager::new(client, rt, config, runtime);
    let result = pods.run(shutdown.clone()).await;
    drop(_server_guard);
    let _ = serving.task.await;
    shutdown.cancel();
    let _ = node_task.await;
    if let Some(t) = network_task {
        let _ = t.await;
    }
    result
}

/// The pod network loop, when the nodelet manages the pod network (`--cni-conf-dir`).
fn network_loop(config: &Config) -> Option<network::Network> {
    let conf_dir = config.cni_conf_dir.clone()?;
    Some(network::Network {
        node_name: config.node_name.clone(),
        cni: network::CniConf {
            conf_dir,
            bridge: config.cni_bridge.clone(),
            ipam_dir: config.root_dir.join("cni/networks"),
        },
        ip: network::routes::Ip::default(),
    })
}
