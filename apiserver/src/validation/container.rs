//! Container validation (`validateContainers` and friends): names, images, ports, env,
//! volume mounts, resources, probes and lifecycle hooks.

use std::collections::HashSet;

use serde_json::Value;

use super::names::{dns1123_label, env_var_name, port_name, port_number};
use super::pod::enum_field;
use super::quantity::{parse_quantity, QUANTITY_MSG};
use super::{array_at, str_at, FieldCause, Path};

/// Which list a container is in: the rules differ (`validateContainers`,
/// `validateInitContainers`, `validateEphemeralContainers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContainerKind {
    Regular,
    Init,
    Ephemeral,
}

impl ContainerKind {
    pub(crate) fn field(self) -> &'static str {
        match self {
            ContainerKind::Regular => "containers",
            ContainerKind::Init => "initContainers",
            ContainerKind::Ephemeral => "ephemeralContainers",
        }
    }
}

const PROBES: [&str; 3] = ["livenessProbe", "readinessProbe", "startupProbe"];

/// Validates a list of containers. `names` collects container names in Kubernetes' order
/// (regular, then init, then ephemeral), so a clash is reported on the later list.
pub(crate) fn validate_containers(
    containers: &[Value],
    kind: ContainerKind,
    path: &Path,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    grace_period: i64,
    causes: &mut Vec<FieldCause>,
) {
    for (i, container) in containers.iter().enumerate() {
        let at = path.index(i);
        validate_container_common(container, &at, volumes, causes);
        let name = str_at(container, "name");
        if !names.insert(name.to_string()) && !name.is_empty() {
            causes.push(FieldCause::duplicate(&at.child("name"), name));
        }
        let set = |field: &str| container.get(field).is_some_and(|v| !v.is_null());
        let restart_always = str_at(container, "restartPolicy") == "Always";
        match kind {
            ContainerKind::Regular => {
                validate_probes(container, &at, causes);
                validate_lifecycle(container, &at, grace_period, causes);
                if set("restartPolicy") {
                    let detail = "may not be set for non-init containers";
                    causes.push(FieldCause::forbidden(&at.child("restartPolicy"), detail));
                }
            }
            ContainerKind::Init => {
                if set("restartPolicy") && !restart_always {
                    let policy = str_at(container, "restartPolicy");
                    causes.push(FieldCause::not_supported(
                        &at.child("restartPolicy"),
                        policy,
                        &["Always"],
                    ));
                }
                if restart_always {
                    validate_probes(container, &at, causes);
                    validate_lifecycle(container, &at, grace_period, causes);
                } else {
                    for field in ["lifecycle"].into_iter().chain(PROBES).filter(|f| set(f)) {
                        let detail =
                            "may not be set for init containers without restartPolicy=Always";
                        causes.push(FieldCause::forbidden(&at.child(field), detail));
                    }
                }
            }
            ContainerKind::Ephemeral => {
                // Ephemeral containers may not provide services: no ports, probes, lifecycle
                // or resources (`allowedEphemeralContainerFields`).
                let banned = [
                    "ports",
                    "livenessProbe",
                    "readinessProbe",
                    "startupProbe",
                    "lifecycle",
                    "resources",
                ];
                for field in banned.into_iter().filter(|f| set(f)) {
                    causes.push(FieldCause::forbidden(
                        &at.child(field),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
    }
    if kind == ContainerKind::Regular {
        validate_host_ports(containers, path, causes);
    }
}

/// `validateContainerCommon`: what every container must satisfy.
fn validate_container_common(
    container: &Value,
    at: &Path,
    volumes: &HashSet<String>,
    causes: &mut Vec<FieldCause>,
) {
    let name = str_at(container, "name");
    if name.is_empty() {
        causes.push(FieldCause::required(&at.child("name"), ""));
    } else {
        for msg in dns1123_label(name) {
            causes.push(FieldCause::invalid(&at.child("name"), name, &msg));
        }
    }
    // Kubernetes accepts a whitespace image in templates (kept for compatibility); only "" is
    // refused here, pods refuse padding separately.
    if str_at(container, "image").is_empty() {
        causes.push(FieldCause::required(&at.child("image"), ""));
    }
    let policies = ["File", "FallbackToLogsOnError"];
    enum_field(container, "terminationMessagePolicy", at, &policies, causes);
    validate_ports(array_at(container, "ports"), &at.child("ports"), causes);
    validate_env(array_at(container, "env"), &at.child("env"), causes);
    let mounts = array_at(container, "volumeMounts");
    validate_mounts(mounts, &at.child("volumeMounts"), volumes, causes);
    let pull = ["Always", "IfNotPresent", "Never"];
    enum_field(container, "imagePullPolicy", at, &pull, causes);
    if let Some(resources) = container.get("resources") {
        validate_resources(resources, &at.child("resources"), causes);
    }
}

fn validate_probes(container: &Value, at: &Path, causes: &mut Vec<FieldCause>) {
    for probe in PROBES {
        if let Some(p) = container.get(probe).filter(|p| !p.is_null()) {
            validate_probe(p, &at.child(probe), probe != "readinessProbe", causes);
        }
    }
}

/// `checkHostPortConflicts`: one host port (per protocol and host IP) per pod.
fn validate_host_ports(containers: &[Value], path: &Path, causes: &mut Vec<FieldCause>) {
    let mut seen = HashSet::new();
    for (i, container) in containers.iter().enumerate() {
        for (j, port) in array_at(container, "ports").iter().enumerate() {
            let host_port = port.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{host_port}",
                str_at(port, "protocol"),
                str_at(port, "hostIP")
            );
            if !seen.insert(key.clone()) {
                let at = path.index(i).child("ports").index(j).child("hostPort");
                causes.push(FieldCause::duplicate(&at, key));
            }
        }
    }
}

/// `validateContainerPorts`.
fn validate_ports(ports: &[Value], path: &Path, causes: &mut Vec<FieldCause>) {
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = path.index(i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            let problems = port_name(name);
            for msg in &problems {
                causes.push(FieldCause::invalid(&at.child("name"), name, msg));
            }
            if problems.is_empty() && !names.insert(name) {
                causes.push(FieldCause::duplicate(&at.child("name"), name));
            }
        }
        match port
            .get("containerPort")
            .and_then(Value::as_i64)
            .unwrap_or(0)
        {
            0 => causes.push(FieldCause::required(&at.child("containerPort"), "")),
            n => {
                for msg in port_number(n) {
                    causes.push(FieldCause::invalid(&at.child("containerPort"), n, &msg));
                }
            }
        }
        if let Some(n) = port
            .get("hostPort")
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            for msg in port_number(n) {
                causes.push(FieldCause::invalid(&at.child("hostPort"), n, &msg));
            }
        }
        enum_field(port, "protocol", &at, &["SCTP", "TCP", "UDP"], causes);
    }
}

/// `ValidateEnv`: names, and `value` xor exactly one `valueFrom` source.
fn validate_env(env: &[Value], path: &Path, causes: &mut Vec<FieldCause>) {
    for (i, var) in env.iter().enumerate() {
        let at = path.index(i);
        let name = str_at(var, "name");
        if name.is_empty() {
            causes.push(FieldCause::required(&at.child("name"), ""));
        } else {
            for msg in env_var_name(name) {
                causes.push(FieldCause::invalid(&at.child("name"), name, &msg));
            }
        }
        let Some(Value::Object(from)) = var.get("valueFrom") else {
            continue;
        };
        let sources = from.values().filter(|v| !v.is_null()).count();
        let from_path = at.child("valueFrom");
        if !str_at(var, "value").is_empty() {
            let detail = "may not be specified when `value` is not empty";
            causes.push(FieldCause::invalid(&from_path, "", detail));
        }
        if sources == 0 {
            let detail = "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`";
            causes.push(FieldCause::invalid(&from_path, "", detail));
        } else if sources > 1 {
            let detail = "may not have more than one field specified at a time";
            causes.push(FieldCause::invalid(&from_path, "", detail));
        }
    }
}

/// `ValidateVolumeMounts`: the volume must exist, mount paths are required and unique.
fn validate_mounts(
    mounts: &[Value],
    path: &Path,
    volumes: &HashSet<String>,
    causes: &mut Vec<FieldCause>,
) {
    let mut paths = HashSet::new();
    for (i, mount) in mounts.iter().enumerate() {
        let at = path.index(i);
        let name = str_at(mount, "name");
        if name.is_empty() {
            causes.push(FieldCause::required(&at.child("name"), ""));
        }
        if !volumes.contains(name) {
            causes.push(FieldCause::not_found(&at.child("name"), name));
        }
        let mount_path = str_at(mount, "mountPath");
        if mount_path.is_empty() {
            causes.push(FieldCause::required(&at.child("mountPath"), ""));
        } else if !paths.insert(mount_path) {
            causes.push(FieldCause::invalid(
                &at.child("mountPath"),
                mount_path,
                "must be unique",
            ));
        }
    }
}

/// Resource names of containers: the standard ones or fully qualified extended resources.
fn standard_or_qualified(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage")
        || name.starts_with("hugepages-")
        || name.contains('/')
}

/// `ValidateResourceRequirements`: quantities parse, are non-negative, and requests do not
/// exceed limits.
fn validate_resources(resources: &Value, path: &Path, causes: &mut Vec<FieldCause>) {
    let mut parsed = [Vec::new(), Vec::new()];
    for (slot, field) in ["limits", "requests"].into_iter().enumerate() {
        let Some(Value::Object(map)) = resources.get(field) else {
            continue;
        };
        for (name, quantity) in map {
            let at = path.child(field).key(name);
            if !standard_or_qualified(name) {
                let detail = "must be a standard resource type or fully qualified";
                causes.push(FieldCause::invalid(&at, name.as_str(), detail));
            }
            let text = match quantity {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            match parse_quantity(&text) {
                None => causes.push(FieldCause::invalid(&at, text.as_str(), QUANTITY_MSG)),
                Some(v) if v < 0.0 => causes.push(FieldCause::invalid(
                    &at,
                    text.as_str(),
                    "must be greater than or equal to 0",
                )),
                Some(v) => parsed[slot].push((name.clone(), text, v)),
            }
        }
    }
    let [limits, requests] = parsed;
    for (name, text, request) in &requests {
        if let Some((_, limit_text, limit)) = limits.iter().find(|(n, _, _)| n == name) {
            if request > limit {
                let detail = format!("must be less than or equal to {name} limit of {limit_text}");
                let at = path.child("requests").key(name);
                causes.push(FieldCause::invalid(&at, text.as_str(), &detail));
            }
        }
    }
}

/// `validateProbe`: exactly one handler (the first set one is checked, later ones are
/// forbidden), non-negative numbers; liveness and startup probes need `successThreshold` 1.
fn validate_probe(
    probe: &Value,
    path: &Path,
    success_must_be_one: bool,
    causes: &mut Vec<FieldCause>,
) {
    let handlers: Vec<&str> = ["exec", "httpGet", "tcpSocket", "grpc"]
        .into_iter()
        .filter(|h| probe.get(*h).is_some_and(|v| !v.is_null()))
        .collect();
    match handlers.as_slice() {
        [] => causes.push(FieldCause::required(path, "must specify a handler type")),
        [first, rest @ ..] => {
            validate_handler(first, &probe[*first], &path.child(first), causes);
            for extra in rest {
                let detail = "may not specify more than 1 handler type";
                causes.push(FieldCause::forbidden(&path.child(extra), detail));
            }
        }
    }
    for field in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        if let Some(n) = probe.get(field).and_then(Value::as_i64).filter(|n| *n < 0) {
            let detail = "must be greater than or equal to 0";
            causes.push(FieldCause::invalid(&path.child(field), n, detail));
        }
    }
    if success_must_be_one {
        if let Some(n) = probe
            .get("successThreshold")
            .and_then(Value::as_i64)
            .filter(|n| *n != 1)
        {
            causes.push(FieldCause::invalid(
                &path.child("successThreshold"),
                n,
                "must be 1",
            ));
        }
    }
}

/// `validateLifecycle`: each hook has exactly one handler (exec, httpGet, tcpSocket or
/// sleep); a sleep lasts no longer than the pod's grace period.
fn validate_lifecycle(
    container: &Value,
    at: &Path,
    grace_period: i64,
    causes: &mut Vec<FieldCause>,
) {
    let Some(lifecycle) = container.get("lifecycle").filter(|l| !l.is_null()) else {
        return;
    };
    let at = at.child("lifecycle");
    for hook in ["postStart", "preStop"] {
        let Some(h) = lifecycle.get(hook).filter(|h| !h.is_null()) else {
            continue;
        };
        let path = at.child(hook);
        let handlers: Vec<&str> = ["exec", "httpGet", "tcpSocket", "sleep"]
            .into_iter()
            .filter(|k| h.get(*k).is_some_and(|v| !v.is_null()))
            .collect();
        match handlers.as_slice() {
            [] => causes.push(FieldCause::required(&path, "must specify a handler type")),
            [first, rest @ ..] => {
                let handler_path = path.child(first);
                if *first == "sleep" {
                    let seconds = h[*first]
                        .get("seconds")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    if !(0..=grace_period).contains(&seconds) {
                        let detail = format!("must be non-negative and less than terminationGracePeriodSeconds ({grace_period})");
                        causes.push(FieldCause::invalid(&handler_path, seconds, &detail));
                    }
                } else {
                    validate_handler(first, &h[*first], &handler_path, causes);
                }
                for extra in rest {
                    let detail = "may not specify more than 1 handler type";
                    causes.push(FieldCause::forbidden(&path.child(extra), detail));
                }
            }
        }
    }
}

/// `validateExecAction`, `validateHTTPGetAction`, `validateTCPSocketAction`, `validateGRPCAction`.
fn validate_handler(kind: &str, handler: &Value, path: &Path, causes: &mut Vec<FieldCause>) {
    match kind {
        "exec" if array_at(handler, "command").is_empty() => {
            causes.push(FieldCause::required(&path.child("command"), ""));
        }
        "httpGet" | "tcpSocket" | "grpc" => {
            match handler.get("port") {
                Some(port) => validate_probe_port(port, &path.child("port"), causes),
                None => causes.push(FieldCause::required(&path.child("port"), "")),
            }
            if let Some(scheme) = handler.get("scheme").and_then(Value::as_str) {
                if kind == "httpGet" && !matches!(scheme, "HTTP" | "HTTPS") {
                    causes.push(FieldCause::not_supported(
                        &path.child("scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
            }
        }
        _ => {}
    }
}

/// A probe's port: a number in range or an IANA service name.
pub(crate) fn validate_probe_port(port: &Value, path: &Path, causes: &mut Vec<FieldCause>) {
    match port {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            for msg in port_number(n) {
                causes.push(FieldCause::invalid(path, n, &msg));
            }
        }
        Value::String(name) => {
            for msg in port_name(name) {
                causes.push(FieldCause::invalid(path, name.as_str(), &msg));
            }
        }
        _ => causes.push(FieldCause::required(path, "")),
    }
}
