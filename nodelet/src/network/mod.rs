//! The node's pod network (when `--cni-conf-dir` is set; otherwise the runtime's own default
//! network is left alone, as before):
//!
//! - [`cni_conf`]: once the Node has `spec.podCIDR`, the runtime's CNI conf list for it;
//! - [`routes`]: host-gw routes to every other node's podCIDR, removed when nodes go;
//! - [`dns`]: pods' resolv.conf (CRI DNSConfig) — used by the pod workers, not by this loop.
//!
//! One loop watches all Nodes (a reflector) and reconciles both on every change, debounced,
//! and every [`RESYNC`] in case a route was removed behind its back.

pub mod cni_conf;
pub mod dns;
pub mod routes;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use cni_conf::CniConf;

/// Re-check period without Node events (routes are cheap to list).
pub const RESYNC: Duration = Duration::from_secs(30);
/// Wait after a Node event for the rest of a burst (a node registering writes several times).
const DEBOUNCE: Duration = Duration::from_millis(100);

/// What the network loop manages for one node.
#[derive(Debug, Clone)]
pub struct Network {
    pub node_name: String,
    pub cni: CniConf,
    pub ip: routes::Ip,
}

impl Network {
    /// One reconcile over the cached Nodes.
    pub fn reconcile(&self, nodes: &Store<Node>) {
        let nodes = nodes.state();
        let own = nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(self.node_name.as_str()));
        if let Some(cidr) = own.and_then(|n| n.spec.as_ref()?.pod_cidr.clone()) {
            match self.cni.write(&cidr) {
                Ok(true) => {
                    tracing::info!(pod_cidr = %cidr, path = %self.cni.path().display(), "wrote the pod network config")
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "writing the pod network config failed"),
            }
        }
        let want = routes::desired(nodes.iter().map(|n| n.as_ref()), &self.node_name);
        match self.ip.reconcile(&want) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                changes = n,
                routes = want.len(),
                "pod routes to other nodes updated"
            ),
            Err(e) => tracing::warn!(error = %e, "updating pod routes failed"),
        }
    }

    /// Watches Nodes and reconciles until shutdown.
    pub async fn run(self, client: Client, shutdown: CancellationToken) {
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(
            writer,
            watcher(Api::<Node>::all(client), watcher::Config::default()),
        )
        .default_backoff()
        .touched_objects();
        let changed = std::sync::Arc::new(Notify::new());
        let notify = changed.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    ev = stream.next() => match ev {
                        Some(Ok(_)) => notify.notify_one(),
                        Some(Err(e)) => tracing::debug!(error = %e, "node watch error; retrying"),
                        None => return,
                    },
                }
            }
        });
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = store.wait_until_ready() => if r.is_err() { return },
        }
        loop {
            let this = self.clone();
            let nodes = store.clone();
            // iproute2 and file writes block: keep them off the async workers.
            let _ = tokio::task::spawn_blocking(move || this.reconcile(&nodes)).await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = changed.notified() => tokio::time::sleep(DEBOUNCE).await,
                _ = tokio::time::sleep(RESYNC) => {}
            }
        }
    }
}
