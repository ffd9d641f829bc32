//! The pod printer (`printPod` in kube's printers.go): READY counts, the STATUS reason the
//! kubelet's container states imply, RESTARTS with the time of the last restart.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::cells::{parse_time, since, text};
use super::{col, wide, Column, Printer, Row, AGE, NAME};

const COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster."),
    wide("Node", "string", "NodeName indicates in which node this pod is scheduled."),
    wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node."),
    wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
];

pub(super) const PRINTER: Printer = Printer {
    columns: COLUMNS,
    row,
};

/// Running totals while walking container statuses.
#[derive(Default)]
struct Restarts {
    count: i64,
    last: Option<DateTime<Utc>>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += status["restartCount"].as_i64().unwrap_or(0);
        if let Some(t) = parse_time(&status["lastState"]["terminated"]["finishedAt"]) {
            if self.last.is_none_or(|last| last < t) {
                self.last = Some(t);
            }
        }
    }
}

fn is_restartable_init_container(pod: &Value, name: &str) -> bool {
    pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["name"] == name && c["restartPolicy"] == "Always")
}

fn condition_true(pod: &Value, ty: &str) -> bool {
    let conditions = pod["status"]["conditions"].as_array().into_iter().flatten();
    conditions
        .filter(|c| c["type"] == ty)
        .any(|c| c["status"] == "True")
}

/// `Init:...` reasons while init containers run; `None` when initialization is not blocking.
fn init_reason(
    pod: &Value,
    restarts: &mut Restarts,
    sidecars: &mut Restarts,
    ready: &mut i64,
) -> Option<String> {
    let statuses = pod["status"]["initContainerStatuses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let total = pod["spec"]["initContainers"].as_array().map_or(0, Vec::len);
    for (i, status) in statuses.iter().enumerate() {
        restarts.add(status);
        let restartable =
            is_restartable_init_container(pod, status["name"].as_str().unwrap_or_default());
        if restartable {
            sidecars.add(status);
        }
        let terminated = &status["state"]["terminated"];
        let waiting = &status["state"]["waiting"];
        if terminated.is_object() && terminated["exitCode"].as_i64().unwrap_or(0) == 0 {
            continue;
        }
        if restartable && status["started"] == true {
            if status["ready"] == true {
                *ready += 1;
            }
            continue;
        }
        if terminated.is_object() {
            let reason = text(&terminated["reason"]);
            return Some(if !reason.is_empty() {
                format!("Init:{reason}")
            } else if terminated["signal"].as_i64().unwrap_or(0) != 0 {
                format!("Init:Signal:{}", terminated["signal"])
            } else {
                format!(
                    "Init:ExitCode:{}",
                    terminated["exitCode"].as_i64().unwrap_or(0)
                )
            });
        }
        let waiting_reason = text(&waiting["reason"]);
        if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            return Some(format!("Init:{waiting_reason}"));
        }
        return Some(format!("Init:{i}/{total}"));
    }
    None
}

/// Walks app container statuses last to first, as kube does, so the first container's state
/// wins the STATUS column.
fn container_reason(
    pod: &Value,
    mut reason: String,
    restarts: &mut Restarts,
    ready: &mut i64,
) -> String {
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut has_running = false;
    for status in statuses.iter().rev() {
        restarts.add(status);
        let state = &status["state"];
        let waiting_reason = text(&state["waiting"]["reason"]);
        let terminated = &state["terminated"];
        if !waiting_reason.is_empty() {
            reason = waiting_reason;
        } else if terminated.is_object() && !text(&terminated["reason"]).is_empty() {
            reason = text(&terminated["reason"]);
        } else if terminated.is_object() {
            let signal = terminated["signal"].as_i64().unwrap_or(0);
            reason = if signal != 0 {
                format!("Signal:{signal}")
            } else {
                format!("ExitCode:{}", terminated["exitCode"].as_i64().unwrap_or(0))
            };
        } else if status["ready"] == true && state["running"].is_object() {
            has_running = true;
            *ready += 1;
        }
    }
    // A pod whose last-walked container completed but another still runs is Running.
    if reason == "Completed" && has_running {
        reason = if condition_true(pod, "Ready") {
            "Running".into()
        } else {
            "NotReady".into()
        };
    }
    reason
}

fn row(now: DateTime<Utc>, pod: &Value) -> Row {
    let status = &pod["status"];
    let phase = text(&status["phase"]);
    let mut reason = if text(&status["reason"]).is_empty() {
        phase.clone()
    } else {
        text(&status["reason"])
    };
    let conditions = status["conditions"].as_array().into_iter().flatten();
    if conditions
        .clone()
        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let init_specs = pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten();
    let sidecar_count = init_specs
        .filter(|c| c["restartPolicy"] == "Always")
        .count() as i64;
    let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len) as i64 + sidecar_count;

    let mut ready = 0;
    let mut restarts = Restarts::default();
    let mut sidecars = Restarts::default();
    let init = init_reason(pod, &mut restarts, &mut sidecars, &mut ready);
    let initializing = init.is_some();
    if let Some(r) = init {
        reason = r;
    }
    if !initializing || condition_true(pod, "Initialized") {
        // Once initialized only sidecar restarts count among the init containers.
        restarts = sidecars;
        reason = container_reason(pod, reason, &mut restarts, &mut ready);
    }

    let deleting = !pod["metadata"]["deletionTimestamp"].is_null();
    if deleting && text(&status["reason"]) == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts_cell = match restarts.last {
        Some(t) if restarts.count != 0 => {
            format!(
                "{} ({} ago)",
                restarts.count,
                super::cells::human_duration((now - t).num_seconds())
            )
        }
        _ => restarts.count.to_string(),
    };
    let mut cells = vec![
        pod["metadata"]["name"].clone(),
        Value::from(format!("{ready}/{total}")),
        Value::from(reason),
        Value::from(restarts_cell),
        Value::from(since(now, &pod["metadata"]["creationTimestamp"])),
    ];
    cells.extend(wide_cells(pod).into_iter().map(Value::from));
    let mut out = Row::new(cells);
    out.conditions = match phase.as_str() {
        "Succeeded" => Some(completed(
            "Succeeded",
            "The pod has completed successfully.",
        )),
        "Failed" => Some(completed("Failed", "The pod failed.")),
        _ => None,
    };
    out
}

fn completed(reason: &str, message: &str) -> Value {
    json!([{ "type": "Completed", "status": "True", "reason": reason, "message": message }])
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

/// IP, NODE, NOMINATED NODE, READINESS GATES.
fn wide_cells(pod: &Value) -> [String; 4] {
    let status = &pod["status"];
    // v1 → internal conversion fills podIPs from podIP when only the latter is set.
    let ip = status["podIPs"][0]["ip"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| text(&status["podIP"]));
    let gates = pod["spec"]["readinessGates"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let readiness = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let conditions = status["conditions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let ready = gates
            .iter()
            .filter(|g| {
                let found = conditions.iter().find(|c| c["type"] == g["conditionType"]);
                found.is_some_and(|c| c["status"] == "True")
            })
            .count();
        format!("{ready}/{}", gates.len())
    };
    [
        or_none(ip),
        or_none(text(&pod["spec"]["nodeName"])),
        or_none(text(&status["nominatedNodeName"])),
        readiness,
    ]
}
