//! `describe pod` and the container/pod-template blocks deployments and replica sets reuse.

use k8s_openapi::api::core::v1::{
    ContainerStatus, Pod, PodSpec, PodStatus, PodTemplateSpec, Toleration,
};

use super::container::{container, volumes};
use super::format::{timestamp, Out};
use super::{controlled_by, events, Related};

pub fn describe(pod: &Pod, rel: &Related) -> String {
    let mut out = Out::default();
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    out.line(0, format!("Name:\t{}", meta.name.as_deref().unwrap_or("")));
    out.line(
        0,
        format!("Namespace:\t{}", meta.namespace.as_deref().unwrap_or("")),
    );
    // kubectl prints these only when the pod has them.
    if let Some(p) = spec.priority {
        out.line(0, format!("Priority:\t{p}"));
    }
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        out.line(0, format!("Service Account:\t{sa}"));
    }
    let node = match (&spec.node_name, &status.host_ip) {
        (Some(n), Some(ip)) => format!("{n}/{ip}"),
        (Some(n), None) => n.clone(),
        _ => "<none>".to_string(),
    };
    out.line(0, format!("Node:\t{node}"));
    if let Some(t) = &status.start_time {
        out.line(0, format!("Start Time:\t{}", timestamp(Some(t))));
    }
    out.map(0, "Labels", meta.labels.as_ref());
    out.annotations(0, meta.annotations.as_ref());
    if let Some(t) = &meta.deletion_timestamp {
        out.line(
            0,
            format!(
                "Status:\tTerminating (lasts {})",
                super::format::age(Some(t))
            ),
        );
    } else {
        out.line(
            0,
            format!("Status:\t{}", status.phase.as_deref().unwrap_or("Pending")),
        );
    }
    if let Some(r) = &status.reason {
        out.line(0, format!("Reason:\t{r}"));
    }
    if let Some(m) = &status.message {
        out.line(0, format!("Message:\t{m}"));
    }
    out.line(
        0,
        format!("IP:\t{}", status.pod_ip.as_deref().unwrap_or("")),
    );
    let ips: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|i| i.ip.clone())
        .collect();
    if ips.is_empty() {
        out.line(0, "IPs:\t<none>");
    } else {
        out.line(0, "IPs:");
        for ip in ips {
            out.line(1, format!("IP:\t{ip}"));
        }
    }
    controlled_by(&mut out, meta);
    containers(&mut out, &spec, &status);
    let conditions = status.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        out.line(0, "Conditions:");
        out.line(1, "Type\tStatus");
        for c in conditions {
            out.line(1, format!("{}\t{}", c.type_, c.status));
        }
    }
    volumes(&mut out, 0, "", spec.volumes.as_deref().unwrap_or(&[]));
    out.line(
        0,
        format!(
            "QoS Class:\t{}",
            status.qos_class.as_deref().unwrap_or("BestEffort")
        ),
    );
    out.map(0, "Node-Selectors", spec.node_selector.as_ref());
    let tolerations: Vec<String> = spec.tolerations.iter().flatten().map(toleration).collect();
    list(&mut out, "Tolerations", &tolerations);
    events::section(&mut out, &rel.events);
    out.finish()
}

/// `Init Containers:` (when there are any) and `Containers:` with their statuses.
fn containers(out: &mut Out, spec: &PodSpec, status: &PodStatus) {
    if !spec.init_containers.as_ref().is_none_or(|c| c.is_empty()) {
        out.line(0, "Init Containers:");
        for c in spec.init_containers.iter().flatten() {
            container(
                out,
                c,
                find_status(&status.init_container_statuses, &c.name),
                "",
            );
        }
    }
    out.line(0, "Containers:");
    for c in &spec.containers {
        container(out, c, find_status(&status.container_statuses, &c.name), "");
    }
}

/// kubectl's toleration text: `key=value:Effect op=Exists for 300s`.
fn toleration(t: &Toleration) -> String {
    let mut s = t.key.clone().unwrap_or_default();
    if let Some(v) = &t.value {
        s = format!("{s}={v}");
    }
    if let Some(e) = &t.effect {
        s = format!("{s}:{e}");
    }
    if let Some(secs) = t.toleration_seconds {
        s = format!(
            "{s} op={} for {secs}s",
            t.operator.as_deref().unwrap_or("Equal")
        );
    }
    s
}

fn find_status<'a>(
    statuses: &'a Option<Vec<ContainerStatus>>,
    name: &str,
) -> Option<&'a ContainerStatus> {
    statuses.iter().flatten().find(|s| s.name == name)
}

fn list(out: &mut Out, title: &str, items: &[String]) {
    match items.split_first() {
        None => out.line(0, format!("{title}:\t<none>")),
        Some((first, rest)) => {
            out.line(0, format!("{title}:\t{first}"));
            for i in rest {
                out.line(0, format!("\t{i}"));
            }
        }
    }
}

/// `Pod Template:` as deployments and replica sets print it, in the same aligned block as
/// the rest of the description (kubectl writes it through the same tabwriter).
pub fn template(out: &mut Out, t: &PodTemplateSpec) {
    out.line(0, "Pod Template:");
    let meta = t.metadata.clone().unwrap_or_default();
    let spec = t.spec.clone().unwrap_or_default();
    out.map(1, "Labels", meta.labels.as_ref());
    if meta.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
        out.annotations(1, meta.annotations.as_ref());
    }
    out.line(1, "Containers:");
    for c in &spec.containers {
        container(out, c, None, " ");
    }
    volumes(out, 1, " ", spec.volumes.as_deref().unwrap_or(&[]));
    out.map(1, "Node-Selectors", spec.node_selector.as_ref());
    out.line(1, "Tolerations:\t<none>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_sections_in_kubectl_order() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "busybox",
                "command": ["httpd", "-f", "-p", "8080"], "ports": [{"containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": "10.244.0.5", "hostIP": "10.0.0.1",
                "containerStatuses": [{"name": "web", "ready": true, "restartCount": 2, "image": "busybox", "imageID": "sha256:x",
                    "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}],
                "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let text = describe(&pod, &Related::default());
        let order = [
            "Name:",
            "Namespace:",
            "Node:",
            "Labels:",
            "Status:",
            "IP:",
            "Containers:",
            "Conditions:",
            "QoS Class:",
            "Events:",
        ];
        let mut pos = 0;
        for o in order {
            let p = text[pos..]
                .find(o)
                .unwrap_or_else(|| panic!("{o} missing or out of order in\n{text}"));
            pos += p;
        }
        assert!(text.contains("Node:         n1/10.0.0.1\n"), "{text}");
        assert!(text.contains("    Port:          8080/TCP\n"), "{text}");
        assert!(text.contains("    Restart Count:  2\n"), "{text}");
        assert!(text.contains("      httpd\n"), "{text}");
        assert!(text.ends_with("Events:          <none>\n"), "{text}");
    }
}
