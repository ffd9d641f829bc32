//! The sync loop: Services and EndpointSlices are mirrored by kube-runtime reflectors; every
//! change wakes the loop, which waits `debounce` for the rest of a burst, joins the caches into a
//! [`Snapshot`], hands it to DNS and writes the nftables table. Level-triggered: each pass
//! renders everything from the caches, and the table module decides what actually changed.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::model::{self, Snapshot};
use crate::nft::{self, render, Table};

/// Wait after a failed nft transaction before trying again.
const RETRY: Duration = Duration::from_secs(1);

/// Starts a reflector for `K`, waking `changed` on every event; returns its cache.
fn mirror<K>(api: Api<K>, changed: Arc<Notify>, shutdown: CancellationToken) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = stream.next() => match ev {
                    Some(Ok(_)) => changed.notify_one(),
                    Some(Err(e)) => tracing::debug!(error = %e, "watch error; retrying"),
                    None => return,
                },
            }
        }
    });
    store
}

/// Runs until shutdown, then removes the table.
pub async fn run(
    client: Client,
    mut table: Table,
    opts: render::Options,
    config: crate::Config,
    snapshots: watch::Sender<Arc<Snapshot>>,
    shutdown: CancellationToken,
) -> Result<(), nft::NftError> {
    let changed = Arc::new(Notify::new());
    let services = mirror(
        Api::<Service>::all(client.clone()),
        changed.clone(),
        shutdown.clone(),
    );
    let slices = mirror(
        Api::<EndpointSlice>::all(client),
        changed.clone(),
        shutdown.clone(),
    );
    // Like kube-proxy, program nothing until both caches hold a full list: a partial view
    // would briefly reject every Service whose slices were not listed yet.
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        r = async { tokio::try_join!(services.wait_until_ready(), slices.wait_until_ready()) } => {
            if r.is_err() {
                return Ok(());
            }
        }
    }
    let mut resync = tokio::time::interval(config.resync);
    loop {
        let snapshot = Arc::new(model::build(
            services.state().iter().map(|s| s.as_ref()),
            slices.state().iter().map(|s| s.as_ref()),
        ));
        snapshots.send_replace(snapshot.clone());
        let rs = render::ruleset(&snapshot, &opts);
        let (back, result) = tokio::task::spawn_blocking(move || {
            let r = table.sync(rs);
            (table, r)
        })
        .await
        .expect("nft sync task does not panic");
        table = back;
        let wait = match result {
            Ok(wrote) => {
                if wrote {
                    tracing::debug!(table = %table.name(), services = snapshot.services.len(), "rules synced");
                }
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "writing the service rules failed; retrying");
                Some(RETRY)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = changed.notified() => tokio::time::sleep(config.debounce).await,
            _ = resync.tick() => {}
            _ = tokio::time::sleep(wait.unwrap_or(Duration::MAX / 4)), if wait.is_some() => {}
        }
    }
    tokio::task::spawn_blocking(move || table.delete())
        .await
        .expect("nft delete task does not panic")
}
