//! Truth from CRI across disruptions, on one node with real processes (API server and our
//! CRI runtime in this process, the nodelet as a child process; see `cluster`):
//! - the nodelet SIGKILLed and started again adopts what runs: the same container ids, no
//!   restart (nor a startup probe run again), one sandbox;
//! - a container removed behind the nodelet's back, and a sandbox that stops behind its back,
//!   are replaced with the restart counted (the kubelet keeps counting; never back to 0).

mod cluster;

use std::collections::BTreeSet;
use std::time::Duration;

use cluster::{cstatus, wait_pod, Cluster};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use minik8s_nodelet::cri::Cri;
use serde_json::json;

const TEST: &str = "a_killed_nodelet_adopts_its_pod_and_lost_instances_keep_restart_counts";

fn main() {
    cluster::run_test(
        TEST,
        Duration::from_secs(150),
        "the pod never reached the expected state around a nodelet kill or a lost instance",
        || None,
        scenario,
    );
}

/// Container `a`'s startup probe passes once per instance and fails ever after: a nodelet
/// that probed the startup of an adopted container again would restart it (the kubelet
/// does not probe a container its status reports started).
const ONCE: &str = "test ! -e /tmp/probed && touch /tmp/probed";

fn pod(node: &str) -> Pod {
    let c = |name: &str, startup: &[&str]| {
        json!({"name": name, "image": "busybox", "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"],
            "startupProbe": {"exec": {"command": startup}, "periodSeconds": 1,
                "failureThreshold": 1},
            "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}})
    };
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "steady"},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
            "containers": [c("a", &["sh", "-c", ONCE]), c("b", &["true"])]}
    }))
    .unwrap()
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Container `name`'s (id without the runtime prefix, restartCount), when it runs.
fn running(p: &Pod, name: &str) -> Option<(String, i32)> {
    let cs = cstatus(p, name)?;
    cs.state.as_ref()?.running.as_ref()?;
    let id = cs
        .container_id?
        .trim_start_matches("minik8s://")
        .to_string();
    Some((id, cs.restart_count))
}

/// The ids of the pod's sandboxes and containers in the runtime.
async fn cri_ids(cri: &mut Cri, uid: &str) -> (Vec<String>, BTreeSet<String>) {
    let sandboxes = cri.sandboxes(Some(uid)).await.unwrap();
    let containers = cri.containers(Some(uid)).await.unwrap();
    (
        sandboxes.into_iter().map(|s| s.id).collect(),
        containers.into_iter().map(|c| c.id).collect(),
    )
}

async fn scenario() {
    let (mut c, socket) = Cluster::with_runtime("nodelet-kill", 84).await;
    c.start_nodelet_process(&socket).await;
    let pods = c.pods();
    pods.create(&PostParams::default(), &pod(&c.node))
        .await
        .unwrap();
    let up = wait_pod(&pods, "steady", 60, "Running, Ready and started", |p| {
        ready(p)
            && ["a", "b"]
                .iter()
                .all(|n| cstatus(p, n).and_then(|s| s.started) == Some(true))
    })
    .await;
    let uid = up.metadata.uid.clone().unwrap();
    let (a, b) = (running(&up, "a").unwrap(), running(&up, "b").unwrap());
    assert_eq!((a.1, b.1), (0, 0));
    let mut cri = Cri::connect(&socket).await.unwrap();
    let (sandboxes, containers) = cri_ids(&mut cri, &uid).await;
    assert_eq!(sandboxes.len(), 1, "one sandbox");
    assert_eq!(containers, BTreeSet::from([a.0.clone(), b.0.clone()]));

    // kill -9 and start again: it adopts what runs.
    c.kill_nodelet_process();
    c.start_nodelet_process(&socket).await;
    // Several relists (1 s) and status periods (2 s) of the new nodelet.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = pods.get("steady").await.unwrap();
    assert_eq!(
        running(&after, "a"),
        Some(a.clone()),
        "a adopted, not restarted"
    );
    assert_eq!(
        running(&after, "b"),
        Some(b.clone()),
        "b adopted, not restarted"
    );
    assert!(ready(&after), "still Ready");
    assert_eq!(cstatus(&after, "a").unwrap().started, Some(true));
    assert_eq!(
        cri_ids(&mut cri, &uid).await,
        (sandboxes.clone(), containers),
        "no container or sandbox created or removed"
    );

    // A container removed behind the nodelet's back: replaced, restart counted.
    cri.stop_container(&a.0, 0).await.unwrap();
    cri.remove_container(&a.0).await.unwrap();
    let p = wait_pod(&pods, "steady", 30, "a replaced", |p| {
        running(p, "a").is_some_and(|r| r.0 != a.0)
    })
    .await;
    assert_eq!(running(&p, "a").unwrap().1, 1, "a's restart counted");
    assert_eq!(running(&p, "b"), Some(b.clone()), "b untouched");

    // The sandbox stopped behind its back: a new one, both containers' restarts counted.
    cri.stop_sandbox(&sandboxes[0]).await.unwrap();
    let p = wait_pod(&pods, "steady", 40, "both running in a new sandbox", |p| {
        running(p, "b").is_some_and(|r| r.0 != b.0) && running(p, "a").is_some()
    })
    .await;
    let (a2, b2) = (running(&p, "a").unwrap(), running(&p, "b").unwrap());
    assert!(a2.1 >= 2, "a counts on from 1: {a2:?}");
    assert!(b2.1 >= 1, "b counts on from 0: {b2:?}");
    let (now, _) = cri_ids(&mut cri, &uid).await;
    assert_eq!(now.len(), 1, "one sandbox");
    assert_ne!(now, sandboxes, "the sandbox was recreated");

    // The restarted nodelet still finishes the pod's life: deletion stops it and removes it.
    pods.delete("steady", &DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..150 {
        if pods.get_opt("steady").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        pods.get_opt("steady").await.unwrap().is_none(),
        "pod deleted"
    );
    c.stop().await;
}
