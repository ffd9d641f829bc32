//! Pod printer cases: kubelet status reasons, init containers, restarts, wide cells.

use serde_json::{json, Value};

use super::*;

#[test]
fn pod_columns_are_kubes() {
    let names = column_names("pods");
    let want = [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ];
    let want: Vec<(String, i64)> = want.iter().map(|(n, p)| (n.to_string(), *p)).collect();
    assert_eq!(names, want);
}

#[test]
fn running_pod_with_wide_cells() {
    let mut p = pod(
        &["a", "b"],
        json!({
            "phase": "Running",
            "podIPs": [{ "ip": "10.244.0.5" }],
            "conditions": [{ "type": "Ready", "status": "True" }, { "type": "gate", "status": "True" }],
            "containerStatuses": [running("a", true, 0), running("b", true, 0)]
        }),
    );
    p["spec"]["nodeName"] = json!("node-1");
    p["spec"]["readinessGates"] = json!([{ "conditionType": "gate" }]);
    assert_eq!(
        cells("pods", p),
        json!([
            "web",
            "2/2",
            "Running",
            "0",
            "5m",
            "10.244.0.5",
            "node-1",
            "<none>",
            "1/1"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
}

#[test]
fn pending_pod_shows_waiting_reason_and_none_cells() {
    let p = pod(
        &["a"],
        json!({
            "phase": "Pending",
            "containerStatuses": [{ "name": "a", "ready": false, "restartCount": 0, "state": { "waiting": { "reason": "ContainerCreating" } } }]
        }),
    );
    let c = cells("pods", p);
    assert_eq!(
        c[1..4],
        [json!("0/1"), json!("ContainerCreating"), json!("0")]
    );
    assert_eq!(
        c[5..9],
        [
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>")
        ]
    );
}

#[test]
fn crash_looping_pod_shows_restarts_with_last_restart_age() {
    let p = pod(
        &["a"],
        json!({
            "phase": "Running",
            "containerStatuses": [{
                "name": "a", "ready": false, "restartCount": 5,
                "state": { "waiting": { "reason": "CrashLoopBackOff" } },
                "lastState": { "terminated": { "exitCode": 1, "reason": "Error", "finishedAt": ago(300) } }
            }]
        }),
    );
    let c = cells("pods", p);
    assert_eq!(
        c[1..4],
        [json!("0/1"), json!("CrashLoopBackOff"), json!("5 (5m ago)")]
    );
}

#[test]
fn completed_pod_has_completed_row_condition() {
    let p = pod(
        &["a"],
        json!({
            "phase": "Succeeded",
            "containerStatuses": [{ "name": "a", "ready": false, "restartCount": 0, "state": { "terminated": { "exitCode": 0, "reason": "Completed" } } }]
        }),
    );
    let table = to_table_at(now(), "pods", &[p], IncludeObject::None, None);
    assert_eq!(table["rows"][0]["cells"][2], "Completed");
    assert_eq!(table["rows"][0]["conditions"][0]["type"], "Completed");
    assert_eq!(table["rows"][0]["conditions"][0]["reason"], "Succeeded");
}

#[test]
fn exit_code_and_signal_without_reason() {
    let term = |t: Value| {
        pod(
            &["a"],
            json!({ "phase": "Running", "containerStatuses": [{ "name": "a", "restartCount": 0, "state": { "terminated": t } }] }),
        )
    };
    assert_eq!(
        cells("pods", term(json!({ "exitCode": 3 })))[2],
        "ExitCode:3"
    );
    assert_eq!(
        cells("pods", term(json!({ "exitCode": 137, "signal": 9 })))[2],
        "Signal:9"
    );
}

#[test]
fn deleting_pod_is_terminating_unless_finished_or_node_lost() {
    let mut p = pod(
        &["a"],
        json!({ "phase": "Running", "containerStatuses": [running("a", true, 0)] }),
    );
    p["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(cells("pods", p.clone())[2], "Terminating");
    p["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells("pods", p.clone())[2], "Unknown");
    let mut done = pod(&["a"], json!({ "phase": "Succeeded" }));
    done["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(cells("pods", done)[2], "Succeeded");
}

#[test]
fn init_containers_show_progress_and_failures() {
    let mut p = pod(
        &["a"],
        json!({
            "phase": "Pending",
            "initContainerStatuses": [{ "name": "init", "ready": false, "restartCount": 0, "state": { "waiting": { "reason": "PodInitializing" } } }],
            "containerStatuses": [{ "name": "a", "ready": false, "restartCount": 0, "state": { "waiting": { "reason": "PodInitializing" } } }]
        }),
    );
    p["spec"]["initContainers"] = json!([{ "name": "init", "image": "busybox" }]);
    assert_eq!(
        cells("pods", p.clone())[1..3],
        [json!("0/1"), json!("Init:0/1")]
    );
    p["status"]["initContainerStatuses"][0]["state"] =
        json!({ "terminated": { "exitCode": 1, "reason": "Error" } });
    p["status"]["initContainerStatuses"][0]["restartCount"] = json!(2);
    assert_eq!(
        cells("pods", p.clone())[2..4],
        [json!("Init:Error"), json!("2")]
    );
    p["status"]["initContainerStatuses"][0]["state"] =
        json!({ "waiting": { "reason": "ImagePullBackOff" } });
    assert_eq!(cells("pods", p)[2], "Init:ImagePullBackOff");
}

#[test]
fn sidecar_init_containers_count_as_containers() {
    let mut p = pod(
        &["a"],
        json!({
            "phase": "Running",
            "conditions": [{ "type": "Initialized", "status": "True" }, { "type": "Ready", "status": "True" }],
            "initContainerStatuses": [{ "name": "side", "ready": true, "started": true, "restartCount": 1, "state": { "running": {} } }],
            "containerStatuses": [running("a", true, 0)]
        }),
    );
    p["spec"]["initContainers"] =
        json!([{ "name": "side", "image": "busybox", "restartPolicy": "Always" }]);
    assert_eq!(
        cells("pods", p)[1..4],
        [json!("2/2"), json!("Running"), json!("1")]
    );
}

#[test]
fn scheduling_gated_pod() {
    let p = pod(
        &["a"],
        json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "SchedulingGated" }] }),
    );
    assert_eq!(cells("pods", p)[2], "SchedulingGated");
}
