//! The pods of this node: a watch on `spec.nodeName=<node>`, one worker per pod, and the
//! cleanup of CRI objects whose pod no longer exists here.

pub mod admission;
pub mod atomic_writer;
pub mod backoff;
pub mod events;
pub mod grpc_probe;
pub mod http_action;
mod image_pull;
pub mod lifecycle;
pub mod probes;
pub mod restart_count;
pub mod service_env;
pub mod spec;
pub mod status;
mod termination;
pub mod volumes;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::cri::{Cri, LABEL_POD_UID};
use crate::{Config, Error};
use worker::{Ctx, Worker};

/// How long the pod manager waits for the first list of its Node before admitting pods.
const NODE_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

struct Handle {
    pod: watch::Sender<Pod>,
    /// Passed admission: what it requests counts against the node.
    admitted: bool,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Dispatches pod events to per-pod workers.
pub struct Manager {
    ctx: Arc<Ctx>,
    cri: Cri,
    node: admission::NodeCache,
}

impl Manager {
    pub fn new(client: kube::Client, cri: Cri, config: Config, runtime: String) -> Manager {
        Manager {
            node: admission::NodeCache::spawn(client.clone(), &config.node_name),
            ctx: Arc::new(Ctx {
                services: service_env::Services::spawn(client.clone()),
                client,
                config,
                runtime,
            }),
            cri,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let node = self.ctx.config.node_name.clone();
        let api: Api<Pod> = Api::all(self.ctx.client.clone());
        let wc = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let mut stream = watcher::watcher(api, wc).default_backoff().boxed();
        let mut workers: HashMap<String, Handle> = HashMap::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
        let mut listing: Option<Vec<Pod>> = None;
        // Admission needs the Node (allocatable, labels); it registered before this runs.
        if !self.node.ready(NODE_SYNC_WAIT).await {
            tracing::warn!(node = %node, "node not listed yet; admitting pods without it");
        }
        let mut synced = false;
        let mut relist = tokio::time::interval(self.ctx.config.relist * 2);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(uid) = done_rx.recv() => { workers.remove(&uid); }
                _ = relist.tick(), if synced => {
                    if let Err(e) = self.collect_orphans(&workers).await {
                        tracing::warn!(error = %e, "remove orphaned sandboxes");
                    }
                }
                ev = stream.next() => match ev {
                    None => break,
                    Some(Err(e)) => tracing::warn!(error = %e, "pod watch"),
                    Some(Ok(Event::Init)) => listing = Some(Vec::new()),
                    Some(Ok(Event::InitApply(p))) => match listing.as_mut() {
                        Some(l) => l.push(p),
                        None => self.upsert(&mut workers, p, &done_tx),
                    },
                    Some(Ok(Event::InitDone)) => {
                        let mut listed = listing.take().unwrap_or_default();
                        admission::sort_for_admission(&mut listed);
                        let keep: Vec<String> =
                            listed.iter().map(|p| spec::uid(p).to_string()).collect();
                        for p in listed {
                            self.upsert(&mut workers, p, &done_tx);
                        }
                        // Pods deleted while the watch was down: their workers stop.
                        workers.retain(|uid, h| {
                            let k = keep.contains(uid);
                            if !k { h.cancel.cancel(); }
                            k
                        });
                        synced = true;
                    }
                    Some(Ok(Event::Apply(p))) => self.upsert(&mut workers, p, &done_tx),
                    Some(Ok(Event::Delete(p))) => {
                        // Gone from the API: the orphan sweep removes what ran for it.
                        if let Some(h) = workers.remove(spec::uid(&p)) {
                            h.cancel.cancel();
                        }
                    }
                }
            }
        }
        for (_, h) in workers.drain() {
            h.cancel.cancel();
            let _ = h.task.await;
        }
        Ok(())
    }

    fn upsert(
        &self,
        workers: &mut HashMap<String, Handle>,
        pod: Pod,
        done: &mpsc::UnboundedSender<String>,
    ) {
        let bound_here = pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
            == Some(self.ctx.config.node_name.as_str());
        let uid = spec::uid(&pod).to_string();
        if !bound_here || uid.is_empty() {
            return;
        }
        if let Some(h) = workers.get(&uid) {
            if !h.task.is_finished() {
                h.pod.send_replace(pod);
                return;
            }
        }
        let rejection = self.admit(workers, &pod);
        let admitted = rejection.is_none();
        let (tx, rx) = watch::channel(pod);
        let cancel = CancellationToken::new();
        let w = Worker::new(self.ctx.clone(), self.cri.clone(), uid.clone()).rejected(rejection);
        let task = tokio::spawn(w.run(rx, cancel.clone(), done.clone()));
        workers.insert(
            uid,
            Handle {
                pod: tx,
                admitted,
                cancel,
                task,
            },
        );
    }

    /// The admission check of a pod new to this nodelet, beside the admitted pods; terminal
    /// and deleted pods need none.
    fn admit(&self, workers: &HashMap<String, Handle>, pod: &Pod) -> Option<admission::Rejection> {
        if admission::is_terminal(pod) || pod.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let node = self.node.node()?;
        let mut used = admission::Usage::default();
        for h in workers
            .values()
            .filter(|h| h.admitted && !h.task.is_finished())
        {
            used.add(&h.pod.borrow());
        }
        admission::check(pod, &node, &used).err()
    }

    /// Stops and removes sandboxes (with their containers) of pods without a worker: deleted
    /// pods, or pods now bound elsewhere.
    async fn collect_orphans(&self, workers: &HashMap<String, Handle>) -> Result<(), Error> {
        let cri = self.cri.clone();
        let orphans = cri.clone().sandboxes(None).await?.into_iter().filter(|s| {
            !workers.contains_key(s.labels.get(LABEL_POD_UID).map_or("", String::as_str))
        });
        // Every orphan at once: a node back from a partition may hold many, each waiting out
        // its containers' grace period.
        let removals = orphans.map(|s| {
            let mut cri = cri.clone();
            async move {
                let uid = s.labels.get(LABEL_POD_UID).cloned().unwrap_or_default();
                tracing::info!(sandbox = %s.id, pod_uid = %uid, "removing sandbox of a pod not on this node");
                let stops = cri.containers(Some(&uid)).await?.into_iter().map(|c| {
                    let mut cri = cri.clone();
                    async move { cri.stop_container(&c.id, orphan_grace(&c)).await }
                });
                futures::future::join_all(stops).await;
                cri.stop_sandbox(&s.id).await?;
                cri.remove_sandbox(&s.id).await
            }
        });
        for r in futures::future::join_all(removals).await {
            r?;
        }
        Ok(())
    }
}

/// The grace period of a container whose pod object is gone: the pod's own, kept in the
/// container's annotation, at least 2 s (the kubelet's minimumGracePeriodInSeconds).
fn orphan_grace(c: &crate::cri::types::Container) -> i64 {
    c.annotations
        .get(crate::cri::ANNOTATION_GRACE)
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(30)
        .max(2)
}
