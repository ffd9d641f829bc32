//! Container logs end to end on one node: a real API server, our CRI runtime and the
//! nodelet with its HTTPS server; `minictl logs` and the installed `kubectl logs` go through
//! the API server's pods/log proxy to the nodelet's /containerLogs.

mod cluster;

use std::time::Duration;

use cluster::{all_running, cstatus, wait_pod, Cluster};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use serde_json::json;

const TEST: &str = "container_logs_through_minictl_kubectl_and_the_nodelet_server";

fn main() {
    cluster::run_test(
        TEST,
        Duration::from_secs(180),
        "a log request or a pod never reached its state",
        || None,
        scenario,
    );
}

fn pod(v: serde_json::Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

/// A line longer than the runtime's 16 KiB record: written as P records then an F record.
const LONG: usize = 20_000;

async fn create_pods(c: &Cluster, trigger: &str, state: &str) {
    let pods = c.pods();
    let pp = PostParams::default();
    let vol = |name: &str, path: &str| json!({"name": name, "hostPath": {"path": path}});
    let container = |name: &str, script: String, mounts: serde_json::Value| {
        json!({"name": name, "image": "busybox", "imagePullPolicy": "IfNotPresent",
               "command": ["sh", "-c", script], "volumeMounts": mounts})
    };
    let wait_for = |f: &str| format!("while [ ! -f /trigger/{f} ]; do sleep 0.1; done");
    let a = format!(
        "echo a-one; head -c {LONG} /dev/zero | tr '\\0' x; echo; echo a-two; echo a-three >&2; \
         {}; echo a-after; sleep 3600",
        wait_for("go")
    );
    let two = json!({"metadata": {"name": "two"}, "spec": {
        "nodeName": c.node, "terminationGracePeriodSeconds": 1,
        "containers": [
            container("a", a, json!([{"name": "t", "mountPath": "/trigger"}])),
            container("b", "echo b-only; sleep 3600".into(), json!([])),
        ],
        "volumes": [vol("t", trigger)]}});
    pods.create(&pp, &pod(two)).await.unwrap();
    // The first instance exits 1, the second runs: restartCount 1 with a previous log.
    let crash = "n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n; \
                 echo instance-$n; if [ $n = 1 ]; then exit 1; fi; sleep 3600";
    let crash = json!({"metadata": {"name": "crash"}, "spec": {
        "nodeName": c.node, "restartPolicy": "Always", "terminationGracePeriodSeconds": 1,
        "containers": [container("c", crash.into(), json!([{"name": "s", "mountPath": "/state"}]))],
        "volumes": [vol("s", state)]}});
    pods.create(&pp, &pod(crash)).await.unwrap();
    let ends = format!("echo ends-first; {}; echo ends-last", wait_for("end"));
    let ends = json!({"metadata": {"name": "ends"}, "spec": {
        "nodeName": c.node, "restartPolicy": "Never",
        "containers": [container("c", ends, json!([{"name": "t", "mountPath": "/trigger"}]))],
        "volumes": [vol("t", trigger)]}});
    pods.create(&pp, &pod(ends)).await.unwrap();
    let missing = json!({"metadata": {"name": "missing"}, "spec": {
        "nodeName": c.node, "containers": [{"name": "c", "image": "example.invalid/none:1",
            "imagePullPolicy": "Never"}]}});
    pods.create(&pp, &pod(missing)).await.unwrap();
    let pending = json!({"metadata": {"name": "pending"}, "spec": {
        "containers": [container("c", "true".into(), json!([]))]}});
    pods.create(&pp, &pod(pending)).await.unwrap();
}

async fn scenario() {
    let (mut c, socket) = Cluster::with_runtime("logs-e2e", 87).await;
    let port = c.start_nodelet(&socket).await;
    let trigger = c.tmp.path().join("trigger");
    let state = c.tmp.path().join("state");
    std::fs::create_dir_all(&trigger).unwrap();
    std::fs::create_dir_all(&state).unwrap();

    nodelet_server_auth(&c, port).await;
    create_pods(&c, trigger.to_str().unwrap(), state.to_str().unwrap()).await;
    let pods = c.pods();
    wait_pod(&pods, "two", 60, "both containers running", all_running).await;
    wait_pod(&pods, "ends", 60, "running", all_running).await;
    minictl_logs(&c).await;
    direct_logs(&c, port).await;
    follow(&c, &trigger, port).await;
    previous(&c).await;

    // The node agent gone: the proxy says it cannot reach it.
    c.stop_nodelet().await;
    let r = c.minictl(&["logs", "two", "-c", "b"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with("Error from server (InternalError): ")
            && r.stderr.contains("cannot reach the node agent of node"),
        "{r:?}"
    );
    c.stop().await;
}

/// The nodelet's own server: /healthz, and /containerLogs only with a token the API
/// server accepts.
async fn nodelet_server_auth(c: &Cluster, port: u16) {
    let req = |path: &str| http::Request::get(path).body(Vec::new()).unwrap();
    let anon = c.nodelet_client(port, None);
    assert_eq!(anon.request_text(req("/healthz")).await.unwrap(), "ok");
    let path = "/containerLogs/default/two/a";
    for client in [anon, c.nodelet_client(port, Some("not-a-token"))] {
        match client.request_text(req(path)).await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 401, "{s:?}"),
            other => panic!("{path} without a valid token: {other:?}"),
        }
    }
    let admin = c.nodelet_client(port, Some(&c.token));
    match admin
        .request_text(req("/containerLogs/default/nope/c"))
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404, "{s:?}"),
        other => panic!("logs of an unknown pod: {other:?}"),
    }
}

async fn minictl_logs(c: &Cluster) {
    let long = "x".repeat(LONG);
    let want_a = format!("a-one\n{long}\na-two\na-three\n");
    let a = wait_logs(c, &["logs", "two", "-c", "a"], &want_a).await;
    assert_eq!(a.stderr, "");
    let r = c.minictl(&["logs", "two"]).await;
    assert_eq!(r.stdout, want_a, "the default container is the first");
    assert_eq!(r.stderr, "Defaulted container \"a\" out of: a, b\n");
    let r = c.minictl(&["logs", "pod/two", "-c", "b"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "b-only\n"), "{r:?}");
    let r = c.minictl(&["logs", "two", "-c", "a", "--tail", "2"]).await;
    assert_eq!(r.stdout, "a-two\na-three\n", "{r:?}");
    let r = c.minictl(&["logs", "two", "-c", "a", "--tail", "0"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    let r = c.minictl(&["logs", "two", "-c", "b", "--timestamps"]).await;
    let (ts, line) = r
        .stdout
        .trim_end()
        .split_once(' ')
        .expect("timestamp, line");
    assert_eq!(line, "b-only");
    assert!(
        chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
        "RFC3339 timestamp: {ts:?}"
    );
    let r = c.minictl(&["logs", "two", "-c", "zzz"]).await;
    assert_eq!(
        r.stderr,
        "Error from server (BadRequest): container zzz is not valid for pod two\n"
    );
    let r = c.minictl(&["logs", "pending"]).await;
    assert_eq!(
        r.stderr,
        "Error from server (BadRequest): pod pending does not have a host assigned\n"
    );
    wait_pod(
        &c.pods(),
        "missing",
        30,
        "waiting with ErrImageNeverPull",
        |p| {
            cstatus(p, "c")
                .and_then(|s| s.state?.waiting?.reason)
                .as_deref()
                == Some("ErrImageNeverPull")
        },
    )
    .await;
    let r = c.minictl(&["logs", "missing"]).await;
    assert_eq!(
        r.stderr,
        "Error from server (BadRequest): container \"c\" in pod \"missing\" is waiting to \
         start: ErrImageNeverPull\n"
    );
    // kubectl through the same proxy.
    let r = c.kubectl(&["logs", "two", "-c", "b"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "b-only\n"), "{r:?}");
    let r = c.kubectl(&["logs", "two", "-c", "a", "--tail=1"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "a-three\n"), "{r:?}");
    // limitBytes and sinceSeconds are forwarded to the node.
    let r = c
        .kubectl(&["logs", "two", "-c", "b", "--limit-bytes=3", "--since=1h"])
        .await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "b-o"), "{r:?}");
    let path = "/api/v1/namespaces/default/pods/two/log?container=b&tailLines=-2";
    match c
        .client
        .request_text(http::Request::get(path).body(Vec::new()).unwrap())
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(
            (s.code, s.message.as_str()),
            (
                422,
                "PodLogOptions \"two\" is invalid: tailLines: Invalid value: -2: must be \
                 greater than or equal to 0"
            )
        ),
        other => panic!("negative tailLines through the API server: {other:?}"),
    }
}

/// Polls `minictl ARGS` until its stdout is `want` (the containers may still be writing).
async fn wait_logs(c: &Cluster, args: &[&str], want: &str) -> cluster::Out {
    let mut r = c.minictl(args).await;
    for _ in 0..50 {
        if r.stdout == want {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        r = c.minictl(args).await;
    }
    panic!("minictl {args:?}: want {want:?}, got {r:?}");
}

/// limitBytes and sinceSeconds straight at the nodelet, with the admin token.
async fn direct_logs(c: &Cluster, port: u16) {
    let admin = c.nodelet_client(port, Some(&c.token));
    let get = |q: &str| {
        let path = format!("/containerLogs/default/two/b{q}");
        http::Request::get(path).body(Vec::new()).unwrap()
    };
    assert_eq!(admin.request_text(get("")).await.unwrap(), "b-only\n");
    assert_eq!(
        admin.request_text(get("?limitBytes=3")).await.unwrap(),
        "b-o"
    );
    assert_eq!(
        admin.request_text(get("?sinceSeconds=3600")).await.unwrap(),
        "b-only\n"
    );
    match admin.request_text(get("?tailLines=-1")).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 400, "{s:?}"),
        other => panic!("negative tailLines: {other:?}"),
    }
}

/// `-f` streams lines written after the call started, and ends when the container exits.
async fn follow(c: &Cluster, trigger: &std::path::Path, port: u16) {
    let f = c.minictl_follow(&["logs", "two", "-c", "a", "-f", "--tail", "1"]);
    f.expect_line("a-three", 20).await;
    let k = c.kubectl_follow(&["logs", "-f", "ends"]);
    k.expect_line("ends-first", 20).await;
    std::fs::write(trigger.join("go"), "").unwrap();
    f.expect_line("a-after", 20).await;
    drop(f);
    let mut k = k;
    std::fs::write(trigger.join("end"), "").unwrap();
    k.expect_line("ends-last", 20).await;
    assert_eq!(
        k.wait_exit(20).await,
        0,
        "kubectl logs -f ends when the container exits"
    );
    // Both followers gone (one killed, one done): the API server closed its connections to
    // the nodelet, so the nodelet's readers ended too.
    let mut open = usize::MAX;
    for _ in 0..100 {
        open = established_to(port);
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        open, 0,
        "connections to the nodelet left after the followers ended"
    );
    // minictl -f on the exited container prints the whole log and returns at once.
    let r = c.minictl(&["logs", "ends", "-f"]).await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "ends-first\nends-last\n"),
        "{r:?}"
    );
}

/// `--previous` reads the instance before the restart.
async fn previous(c: &Cluster) {
    let pods = c.pods();
    wait_pod(&pods, "crash", 60, "restarted once and running", |p| {
        cstatus(p, "c").is_some_and(|s| {
            s.restart_count == 1 && s.state.as_ref().is_some_and(|st| st.running.is_some())
        })
    })
    .await;
    wait_logs(c, &["logs", "crash"], "instance-2\n").await;
    let r = c.minictl(&["logs", "crash", "--previous"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "instance-1\n"), "{r:?}");
    let r = c.kubectl(&["logs", "crash", "-p"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "instance-1\n"), "{r:?}");
    let r = c.minictl(&["logs", "two", "-c", "b", "--previous"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error from server (BadRequest): previous terminated container \"b\" in pod \"two\" not found\n"
    );
}

/// Established TCP connections whose local port is `port` (the nodelet's side of each).
fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let want = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&want) && f[3] == "01"
        })
        .count()
}
