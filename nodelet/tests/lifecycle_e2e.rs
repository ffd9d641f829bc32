//! Container lifecycle hooks end to end: postStart runs before the container is reported
//! running, preStop runs before SIGTERM when the pod is deleted, a failed postStart kills and
//! restarts the container, a failed preStop does not keep the pod from going, a postStart
//! that hangs does not keep the pod from being deleted; each failure is an event. What the hooks and the container did is written to a hostPath file the test
//! reads, so the order is the order things happened in.
//!
//! One node with real processes: the API server, our CRI runtime and the nodelet (see
//! `cluster`).

mod cluster;

use std::path::Path;
use std::time::Duration;

use cluster::{cstatus, wait_pod, Cluster};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const TEST: &str = "lifecycle_hooks_run_in_order_and_their_failures_are_events";

fn main() {
    cluster::run_test(
        TEST,
        Duration::from_secs(150),
        "a pod never ran, a hook never ran or a deleted pod never went",
        || None,
        scenario,
    );
}

/// A busybox pod on `node` running `script`, with `lifecycle`, the host's `dir` at /hooks.
fn pod(name: &str, node: &str, dir: &Path, script: &str, lifecycle: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node, "terminationGracePeriodSeconds": 10,
            "containers": [{
                "name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
                "lifecycle": lifecycle,
                "volumeMounts": [{"name": "hooks", "mountPath": "/hooks"}],
            }],
            "volumes": [{"name": "hooks", "hostPath": {"path": dir}}],
        }
    }))
    .unwrap()
}

fn exec(line: &str) -> serde_json::Value {
    json!({"exec": {"command": ["sh", "-c", line]}})
}

/// A server-like container: notes its start, and on SIGTERM notes it and exits.
const SERVER: &str =
    "trap 'echo term >> /hooks/log; exit 0' TERM; echo main >> /hooks/log; while true; do sleep 0.1; done";

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn reasons(c: &Cluster, pod: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let list = events.list(&Default::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(pod))
        .filter_map(|e| e.reason)
        .collect()
}

async fn wait_event(c: &Cluster, pod: &str, reason: &str) {
    for _ in 0..150 {
        if reasons(c, pod).await.iter().any(|r| r == reason) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "no {reason} event for pod {pod}: {:?}",
        reasons(c, pod).await
    );
}

async fn delete_and_wait_gone(pods: &Api<Pod>, name: &str) {
    pods.delete(name, &DeleteParams::default()).await.unwrap();
    for _ in 0..150 {
        if pods.get_opt(name).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("pod {name} still there 30 s after its deletion");
}

async fn scenario() {
    let (mut c, socket) = Cluster::with_runtime("nodelet-hooks", 86).await;
    c.start_nodelet(&socket).await;
    let pods = c.pods();
    let pp = PostParams::default();
    let dirs: Vec<_> = ["ordered", "bad-post", "bad-pre", "hanging"]
        .iter()
        .map(|n| {
            let d = c.tmp.path().join(n);
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();

    // postStart takes a while and preStop too: both are waited for, in their places.
    let hooks = json!({
        "postStart": exec("sleep 1; echo poststart >> /hooks/log"),
        "preStop": exec("echo prestop >> /hooks/log; sleep 1; echo prestop-done >> /hooks/log"),
    });
    let ordered = pod("ordered", &c.node, &dirs[0], SERVER, hooks);
    // A postStart that fails: the container is killed and restarted (restartPolicy Always).
    let bad_post = json!({"postStart": exec("echo poststart >> /hooks/log; exit 3")});
    let bad_post = pod("bad-post", &c.node, &dirs[1], SERVER, bad_post);
    // A preStop that fails: the pod still stops, with SIGTERM after the hook.
    let bad_pre = json!({"preStop": exec("echo prestop >> /hooks/log; exit 4")});
    let bad_pre = pod("bad-pre", &c.node, &dirs[2], SERVER, bad_pre);
    // A postStart that never returns: the pod's deletion ends it.
    let hanging = json!({"postStart": exec("echo poststart >> /hooks/log; sleep 3600")});
    let hanging = pod("hanging", &c.node, &dirs[3], SERVER, hanging);
    for p in [&ordered, &bad_post, &bad_pre, &hanging] {
        pods.create(&pp, p).await.unwrap();
    }

    let log = dirs[0].join("log");
    wait_pod(&pods, "ordered", 60, "Running", cluster::all_running).await;
    assert!(
        lines(&log).contains(&"poststart".to_string()),
        "the container is reported running only after its postStart hook: {:?}",
        lines(&log)
    );
    wait_pod(&pods, "bad-pre", 60, "Running", cluster::all_running).await;

    wait_event(&c, "bad-post", "FailedPostStartHook").await;
    wait_pod(
        &pods,
        "bad-post",
        60,
        "restarted after its failed postStart",
        |p| cstatus(p, "c").is_some_and(|s| s.restart_count >= 1),
    )
    .await;
    let post_log = lines(&dirs[1].join("log"));
    assert!(
        post_log.iter().filter(|l| *l == "poststart").count() >= 1
            && post_log.iter().filter(|l| *l == "main").count() >= 2,
        "the failed hook ran and the container started again: {post_log:?}"
    );

    delete_and_wait_gone(&pods, "ordered").await;
    let seen = lines(&log);
    let at = |what: &str| seen.iter().position(|l| l == what);
    let (pre, pre_done, term) = (at("prestop"), at("prestop-done"), at("term"));
    assert!(
        at("main").is_some() && at("poststart").is_some() && pre.is_some(),
        "every step ran: {seen:?}"
    );
    assert!(
        pre < pre_done && pre_done < term,
        "preStop runs to its end before SIGTERM: {seen:?}"
    );

    delete_and_wait_gone(&pods, "bad-pre").await;
    wait_event(&c, "bad-pre", "FailedPreStopHook").await;
    let pre_log = lines(&dirs[2].join("log"));
    assert_eq!(
        pre_log,
        ["main", "prestop", "term"],
        "SIGTERM after the failed preStop hook"
    );

    delete_and_wait_gone(&pods, "bad-post").await;

    let hang_log = dirs[3].join("log");
    for _ in 0..150 {
        if lines(&hang_log).contains(&"poststart".to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut started = lines(&hang_log);
    started.sort();
    assert_eq!(
        started,
        ["main", "poststart"],
        "the container and its hook run"
    );
    let hung = pods.get("hanging").await.unwrap();
    assert!(
        !cluster::all_running(&hung),
        "not reported running while its postStart hook runs"
    );
    delete_and_wait_gone(&pods, "hanging").await;
    c.stop().await;
}
