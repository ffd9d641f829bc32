//! Events the controllers publish, as core/v1 Events (what `kubectl describe` and
//! `kubectl get events` read; the API server serves that group). Best effort and off the
//! reconcile path: a failed event never fails or slows a reconcile.
//!
//! As client-go's event broadcaster does, events go through a bounded queue (1,000) that one
//! writer drains in order, and an event that finds the queue full is dropped
//! (`DropIfChannelFull`): a burst — 10,000 pods created at once — costs the API server a
//! steady trickle of writes, not 10,000 concurrent requests.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::mpsc;
use tracing::debug;

/// client-go's `maxQueuedEvents`.
const MAX_QUEUED_EVENTS: usize = 1000;

#[derive(Clone)]
pub struct Events {
    queue: mpsc::Sender<Event>,
    component: String,
    instance: String,
}

impl Events {
    /// Starts the writer (on the current tokio runtime); it stops when every clone of the
    /// returned `Events` is dropped.
    pub fn new(client: Client, component: &str, instance: &str) -> Events {
        let (queue, mut pending) = mpsc::channel::<Event>(MAX_QUEUED_EVENTS);
        tokio::spawn(async move {
            while let Some(event) = pending.recv().await {
                let ns = event.metadata.namespace.clone().unwrap_or_default();
                let api: Api<Event> = Api::namespaced(client.clone(), &ns);
                if let Err(e) = api.create(&PostParams::default(), &event).await {
                    debug!(reason = ?event.reason, error = %e, "publishing an event failed");
                }
            }
        });
        Events {
            queue,
            component: component.into(),
            instance: instance.into(),
        }
    }

    pub async fn normal(&self, about: &ObjectReference, reason: &str, note: String) {
        self.publish(about, "Normal", reason, note);
    }

    pub async fn warning(&self, about: &ObjectReference, reason: &str, note: String) {
        self.publish(about, "Warning", reason, note);
    }

    fn publish(&self, about: &ObjectReference, type_: &str, reason: &str, note: String) {
        let now = Timestamp::now();
        let ns = about.namespace.clone().unwrap_or_else(|| "default".into());
        let name = about.name.clone().unwrap_or_default();
        // Kubernetes names events <object>.<unique hex>.
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:016x}", rand::random::<u64>())),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: about.clone(),
            reason: Some(reason.into()),
            message: Some(note),
            type_: Some(type_.into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone()),
            action: Some(reason.into()),
            ..Default::default()
        };
        if self.queue.try_send(event).is_err() {
            debug!(%reason, "event queue full; event dropped");
        }
    }
}
