//! core/v1 Events about a pod, as the kubelet records them (source component "kubelet").

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;

use super::spec;

/// Records an event without waiting for it: events are best effort.
pub fn record(
    client: &kube::Client,
    node: &str,
    pod: &Pod,
    container: Option<&str>,
    warning: bool,
    reason: &str,
    message: String,
) {
    let now = chrono::Utc::now();
    let ns = spec::namespace(pod).to_string();
    let nanos = now.timestamp_nanos_opt().unwrap_or_default();
    let mut involved = json!({"kind": "Pod", "apiVersion": "v1", "namespace": ns,
        "name": spec::name(pod), "uid": spec::uid(pod),
        "resourceVersion": pod.metadata.resource_version});
    if let Some(c) = container {
        involved["fieldPath"] = json!(format!("spec.containers{{{c}}}"));
    }
    let ts = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{}.{:x}", spec::name(pod), nanos), "namespace": ns},
        "involvedObject": involved,
        "reason": reason, "message": message,
        "type": if warning { "Warning" } else { "Normal" },
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet", "reportingInstance": node,
        "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
    });
    let Ok(event) = serde_json::from_value::<Event>(event) else {
        return;
    };
    tracing::debug!(pod = %spec::name(pod), reason, "event");
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    tokio::spawn(async move {
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(error = %e, "record event");
        }
    });
}
