//! The container and volume blocks `describe` prints for pods and pod templates.

use k8s_openapi::api::core::v1::{Container, ContainerState, ContainerStatus, Probe, Volume};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::format::{or_none, timestamp, Out};

/// One container, with its status when it belongs to a running pod.
/// `space` is " " inside a pod template, where kubectl indents names one extra space.
pub fn container(out: &mut Out, c: &Container, st: Option<&ContainerStatus>, space: &str) {
    out.line(1, format!("{space}{}:", c.name));
    if let Some(st) = st {
        out.line(
            2,
            format!(
                "Container ID:\t{}",
                st.container_id.as_deref().unwrap_or("")
            ),
        );
    }
    out.line(2, format!("Image:\t{}", c.image.as_deref().unwrap_or("")));
    if let Some(st) = st {
        out.line(2, format!("Image ID:\t{}", st.image_id));
    }
    let ports: Vec<String> = c
        .ports
        .iter()
        .flatten()
        .map(|p| {
            format!(
                "{}/{}",
                p.container_port,
                p.protocol.as_deref().unwrap_or("TCP")
            )
        })
        .collect();
    let host: Vec<String> = c
        .ports
        .iter()
        .flatten()
        .map(|p| {
            format!(
                "{}/{}",
                p.host_port.unwrap_or(0),
                p.protocol.as_deref().unwrap_or("TCP")
            )
        })
        .collect();
    out.line(
        2,
        format!(
            "Port:\t{}",
            if ports.is_empty() {
                "<none>".into()
            } else {
                ports.join(", ")
            }
        ),
    );
    out.line(
        2,
        format!(
            "Host Port:\t{}",
            if host.is_empty() {
                "<none>".into()
            } else {
                host.join(", ")
            }
        ),
    );
    for (title, items) in [("Command", &c.command), ("Args", &c.args)] {
        if let Some(items) = items.as_ref().filter(|i| !i.is_empty()) {
            out.line(2, format!("{title}:"));
            for i in items {
                out.line(3, i);
            }
        }
    }
    if let Some(st) = st {
        state(out, "State", st.state.as_ref());
        if let Some(last) = st
            .last_state
            .as_ref()
            .filter(|s| s.running.is_some() || s.terminated.is_some() || s.waiting.is_some())
        {
            state(out, "Last State", Some(last));
        }
        out.line(
            2,
            format!("Ready:\t{}", if st.ready { "True" } else { "False" }),
        );
        out.line(2, format!("Restart Count:\t{}", st.restart_count));
    }
    resources(out, c);
    for (title, probe) in [
        ("Liveness", &c.liveness_probe),
        ("Readiness", &c.readiness_probe),
        ("Startup", &c.startup_probe),
    ] {
        if let Some(p) = probe {
            out.line(2, format!("{title}:\t{}", probe_text(p)));
        }
    }
    let env: Vec<String> = c
        .env
        .iter()
        .flatten()
        .map(|e| match (&e.value, &e.value_from) {
            (Some(v), _) => format!("{}:\t{v}", e.name),
            (None, Some(_)) => format!("{}:\t<set from a reference>", e.name),
            _ => format!("{}:\t", e.name),
        })
        .collect();
    if env.is_empty() {
        out.line(2, "Environment:\t<none>");
    } else {
        out.line(2, "Environment:");
        for e in env {
            out.line(3, e);
        }
    }
    let mounts: Vec<String> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            format!(
                "{} from {} ({})",
                m.mount_path,
                m.name,
                if m.read_only == Some(true) {
                    "ro"
                } else {
                    "rw"
                }
            )
        })
        .collect();
    if mounts.is_empty() {
        out.line(2, "Mounts:\t<none>");
    } else {
        out.line(2, "Mounts:");
        for m in mounts {
            out.line(3, m);
        }
    }
}

fn resources(out: &mut Out, c: &Container) {
    let Some(r) = &c.resources else { return };
    for (title, map) in [("Limits", &r.limits), ("Requests", &r.requests)] {
        if let Some(map) = map.as_ref().filter(|m| !m.is_empty()) {
            out.line(2, format!("{title}:"));
            for (k, v) in map {
                out.line(3, format!("{k}:\t{}", v.0));
            }
        }
    }
}

fn state(out: &mut Out, title: &str, s: Option<&ContainerState>) {
    let Some(s) = s else {
        out.line(2, format!("{title}:\tWaiting"));
        return;
    };
    if let Some(r) = &s.running {
        out.line(2, format!("{title}:\tRunning"));
        out.line(3, format!("Started:\t{}", timestamp(r.started_at.as_ref())));
    } else if let Some(t) = &s.terminated {
        out.line(2, format!("{title}:\tTerminated"));
        out.line(3, format!("Reason:\t{}", or_none(t.reason.as_deref())));
        out.line(3, format!("Exit Code:\t{}", t.exit_code));
        out.line(3, format!("Started:\t{}", timestamp(t.started_at.as_ref())));
        out.line(
            3,
            format!("Finished:\t{}", timestamp(t.finished_at.as_ref())),
        );
    } else if let Some(w) = &s.waiting {
        out.line(2, format!("{title}:\tWaiting"));
        if let Some(r) = &w.reason {
            out.line(3, format!("Reason:\t{r}"));
        }
    } else {
        out.line(2, format!("{title}:\tWaiting"));
    }
}

/// `Volumes:` at `level`; each volume named at level 1 after `space` (kubectl indents a
/// template's volumes by one extra space), its details at level 2.
pub fn volumes(out: &mut Out, level: usize, space: &str, vols: &[Volume]) {
    if vols.is_empty() {
        out.line(level, "Volumes:\t<none>");
        return;
    }
    out.line(level, "Volumes:");
    for v in vols {
        out.line(1, format!("{space}{}:", v.name));
        let (kind, detail) = if let Some(e) = &v.empty_dir {
            (
                "EmptyDir (a temporary directory that shares a pod's lifetime)",
                format!("Medium:\t{}", e.medium.as_deref().unwrap_or("")),
            )
        } else if let Some(h) = &v.host_path {
            (
                "HostPath (bare host directory volume)",
                format!("Path:\t{}", h.path),
            )
        } else if let Some(c) = &v.config_map {
            (
                "ConfigMap (a volume populated by a ConfigMap)",
                format!(
                    "Name:\t{}\nOptional:\t{}",
                    c.name,
                    c.optional.unwrap_or(false)
                ),
            )
        } else if let Some(s) = &v.secret {
            (
                "Secret (a volume populated by a Secret)",
                format!(
                    "SecretName:\t{}\nOptional:\t{}",
                    s.secret_name.as_deref().unwrap_or(""),
                    s.optional.unwrap_or(false)
                ),
            )
        } else {
            ("<unknown>", String::new())
        };
        out.line(2, format!("Type:\t{kind}"));
        for d in detail.lines() {
            out.line(2, d);
        }
    }
}

/// kubectl's probe summary: `http-get http://:8080/healthz delay=0s timeout=1s period=10s
/// #success=1 #failure=3`.
pub fn probe_text(p: &Probe) -> String {
    let port = |p: &IntOrString| match p {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    };
    let action = if let Some(h) = &p.http_get {
        format!(
            "http-get {}://{}:{}{}",
            h.scheme.as_deref().unwrap_or("HTTP").to_lowercase(),
            h.host.as_deref().unwrap_or(""),
            port(&h.port),
            h.path.as_deref().unwrap_or("")
        )
    } else if let Some(t) = &p.tcp_socket {
        format!(
            "tcp-socket {}:{}",
            t.host.as_deref().unwrap_or(""),
            port(&t.port)
        )
    } else if let Some(e) = &p.exec {
        format!("exec [{}]", e.command.clone().unwrap_or_default().join(" "))
    } else if let Some(g) = &p.grpc {
        format!(
            "grpc <pod>:{} {}",
            g.port,
            g.service.as_deref().unwrap_or("")
        )
    } else {
        "unknown".to_string()
    };
    format!(
        "{action} delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(0),
        p.period_seconds.unwrap_or(0),
        p.success_threshold.unwrap_or(0),
        p.failure_threshold.unwrap_or(0)
    )
}
