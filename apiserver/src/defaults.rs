//! Per-kind defaulting, as Kubernetes' `SetDefaults_*` functions and the
//! DefaultTolerationSeconds admission plugin fill objects in before they are stored.

use serde_json::{json, Map, Value};

/// Tunables that defaulting reads from the server's flags.
#[derive(Debug, Clone, Copy)]
pub struct DefaultsConfig {
    pub not_ready_toleration_seconds: i64,
    pub unreachable_toleration_seconds: i64,
}

impl Default for DefaultsConfig {
    fn default() -> Self {
        Self {
            not_ready_toleration_seconds: 300,
            unreachable_toleration_seconds: 300,
        }
    }
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("just made an object")
}

fn set_default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.into(), value);
    }
}

/// Kubernetes' image pull policy default: Always for `:latest` or no tag, else IfNotPresent.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    let image = m
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    set_default(m, "imagePullPolicy", json!(default_pull_policy(&image)));
    set_default(m, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(m, "terminationMessagePolicy", json!("File"));
    set_default(m, "resources", json!({}));
    // Limits without requests: requests default to the limits.
    if let Some(limits) = m["resources"].get("limits").cloned() {
        let res = m["resources"]
            .as_object_mut()
            .expect("resources is an object");
        let requests = res.entry("requests").or_insert_with(|| json!({}));
        if let (Some(req), Some(lim)) = (requests.as_object_mut(), limits.as_object()) {
            for (k, v) in lim {
                req.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
        }
    }
}

/// Pod spec defaults shared by pods and pod templates.
pub fn default_pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    set_default(m, "restartPolicy", json!("Always"));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "schedulerName", json!("default-scheduler"));
    set_default(m, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(default_container);
        }
    }
}

/// Whether an existing toleration already tolerates a NoExecute taint with `key`
/// (DefaultTolerationSeconds only adds its tolerations when none does).
fn tolerates(tolerations: &[Value], key: &str) -> bool {
    tolerations.iter().any(|t| {
        let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
        let tkey = t.get("key").and_then(Value::as_str).unwrap_or("");
        let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
        (effect.is_empty() || effect == "NoExecute")
            && (tkey == key || (tkey.is_empty() && op == "Exists"))
    })
}

/// The DefaultTolerationSeconds admission plugin: pods tolerate the not-ready and
/// unreachable NoExecute taints for a bounded time, so they are evicted from dead nodes.
pub fn add_default_tolerations(spec: &mut Value, cfg: &DefaultsConfig) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    let list = m.entry("tolerations").or_insert_with(|| json!([]));
    if !list.is_array() {
        return;
    }
    let arr = list.as_array_mut().expect("checked");
    for (key, secs) in [
        (
            "node.kubernetes.io/not-ready",
            cfg.not_ready_toleration_seconds,
        ),
        (
            "node.kubernetes.io/unreachable",
            cfg.unreachable_toleration_seconds,
        ),
    ] {
        if !tolerates(arr, key) {
            arr.push(
                json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                            "tolerationSeconds": secs}),
            );
        }
    }
}

/// The QoS class Kubernetes derives from the containers' requests and limits.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = spec
        .get("containers")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let (mut any, mut guaranteed) = (false, !containers.is_empty());
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        any |= req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty());
        let full = ["cpu", "memory"].iter().all(|r| {
            let l = lim.and_then(|l| l.get(*r));
            l.is_some() && req.and_then(|q| q.get(*r)).is_none_or(|q| Some(q) == l)
        });
        guaranteed &= full;
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn default_template(obj: &mut Value) {
    if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
        default_pod_spec(spec);
    }
}

/// Applies the kind's defaults in place (create and update alike).
pub fn apply(kind: &str, obj: &mut Value) {
    match kind {
        "Pod" => {
            default_pod_spec(&mut obj["spec"]);
        }
        "Deployment" => {
            let spec = obj_mut(obj, "spec");
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(spec, "strategy", json!({"type": "RollingUpdate"}));
            let strategy = spec.get_mut("strategy").and_then(Value::as_object_mut);
            if let Some(st) = strategy {
                set_default(st, "type", json!("RollingUpdate"));
                if st.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                    let ru = st.entry("rollingUpdate").or_insert_with(|| json!({}));
                    if let Some(ru) = ru.as_object_mut() {
                        set_default(ru, "maxUnavailable", json!("25%"));
                        set_default(ru, "maxSurge", json!("25%"));
                    }
                }
            }
            default_template(obj);
        }
        "ReplicaSet" => {
            set_default(obj_mut(obj, "spec"), "replicas", json!(1));
            default_template(obj);
        }
        "Service" => default_service(obj),
        "Secret" => {
            if let Some(m) = obj.as_object_mut() {
                set_default(m, "type", json!("Opaque"));
            }
        }
        "Namespace" => {
            let name = obj
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            let spec = obj_mut(obj, "spec");
            set_default(spec, "finalizers", json!(["kubernetes"]));
            // Kubernetes labels every namespace with its own name (since 1.21).
            let meta = obj_mut(obj, "metadata");
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), name);
            }
        }
        _ => {}
    }
}

fn default_service(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if ty != "ExternalName" {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set_default(p, "targetPort", port);
            }
        }
    }
}

/// What a new object's status starts as (Kubernetes' PrepareForCreate resets it).
pub fn initial_status(kind: &str, obj: &mut Value) {
    let status = match kind {
        "Pod" => json!({"phase": "Pending", "qosClass": qos_class(&obj["spec"])}),
        "Deployment" | "ReplicaSet" => json!({}),
        "Namespace" => json!({"phase": "Active"}),
        "Service" => json!({"loadBalancer": {}}),
        _ => return,
    };
    obj["status"] = status;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/busybox:v1"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("a@sha256:00"), "IfNotPresent");
    }

    #[test]
    fn pod_defaults_and_tolerations() {
        let mut pod = json!({"spec": {"containers": [{"name": "c", "image": "busybox:1",
            "ports": [{"containerPort": 80}]}],
            "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]}});
        apply("Pod", &mut pod);
        add_default_tolerations(&mut pod["spec"], &DefaultsConfig::default());
        let s = &pod["spec"];
        assert_eq!(s["restartPolicy"], "Always");
        assert_eq!(s["dnsPolicy"], "ClusterFirst");
        assert_eq!(s["terminationGracePeriodSeconds"], 30);
        assert_eq!(s["schedulerName"], "default-scheduler");
        assert_eq!(s["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(s["containers"][0]["ports"][0]["protocol"], "TCP");
        let tol = s["tolerations"].as_array().unwrap();
        // The existing unreachable toleration suffices; only not-ready is added.
        assert_eq!(tol.len(), 2);
        assert_eq!(tol[1]["key"], "node.kubernetes.io/not-ready");
        assert_eq!(tol[1]["tolerationSeconds"], 300);
        initial_status("Pod", &mut pod);
        assert_eq!(pod["status"]["qosClass"], "BestEffort");
    }

    #[test]
    fn deployment_and_service_defaults() {
        let mut d =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        apply("Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply("Service", &mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
    }
}
