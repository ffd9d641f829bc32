//! End to end on one node: a real API server, our CRI runtime (in-process, own socket, root,
//! cgroup parent, bridge and /24) and the nodelet, driving real containers.
//!
//! `harness = false`: the runtime re-executes this binary as each container's shim, so `main`
//! dispatches `shim` (and the runc monitor) before running the scenario (`cluster::run_test`).

mod cluster;

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const TEST: &str = "pods_run_restart_report_and_survive_a_nodelet_restart";

fn main() {
    cluster::run_test(
        TEST,
        Duration::from_secs(180),
        "the nodelet never brought the pods to the expected states",
        || None,
        scenario,
    );
}

struct Nodelet {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), minik8s_nodelet::Error>>,
}

fn start_nodelet(config: &minik8s_nodelet::Config) -> Nodelet {
    let stop = CancellationToken::new();
    let task = tokio::spawn(minik8s_nodelet::run(config.clone(), stop.clone()));
    Nodelet { stop, task }
}

impl Nodelet {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().expect("nodelet ran cleanly");
    }
}

fn pod(name: &str, node: &str, policy: &str, script: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node, "restartPolicy": policy, "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                    {"name": "PLAIN", "value": "v-$(POD_NAME)"},
                ],
                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}],
                "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
            }],
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
        }
    }))
    .unwrap()
}

/// A container over its 24Mi memory limit: `tail` keeps a 64 MiB line in memory. Bounded,
/// so a lost limit ends the container (exit 0) instead of eating the host's memory.
/// Polls the pod until `ok` holds; panics with `what` and the last status otherwise.
async fn wait_pod(
    api: &Api<Pod>,
    name: &str,
    secs: u64,
    what: &str,
    ok: impl Fn(&Pod) -> bool,
) -> Pod {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let p = api.get_opt(name).await.unwrap();
        if let Some(p) = &p {
            if ok(p) {
                return p.clone();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pod {name}: {what} not reached in {secs}s; pod {:?}",
            p
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn cstatus(p: &Pod) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()
        .cloned()
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn scenario() {
    let tmp = tempfile::Builder::new()
        .prefix("nodelet-e2e")
        .tempdir()
        .unwrap();
    let shutdown = CancellationToken::new();
    let _cancel_api = shutdown.clone().drop_guard();
    let api_cfg =
        minik8s_apiserver::Config::new(tmp.path().join("api"), "127.0.0.1:0".parse().unwrap());
    let server = minik8s_apiserver::start(api_cfg, shutdown.clone())
        .await
        .expect("API server starts");
    let runtime = cluster::start_runtime(tmp.path(), 89).await;
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.default_retry = false;
    let client = kube::Client::try_from(cfg).unwrap();

    let node = format!("node-{}", std::process::id());
    let root = tmp.path().join("nodelet");
    let mut config = minik8s_nodelet::Config::new(
        server.kubeconfig.clone(),
        &node,
        runtime.args.socket.clone(),
        root.clone(),
    );
    config.status_update = Duration::from_secs(2);
    // The log server on loopback and a free port: never clashes with another nodelet.
    config.node_ip = std::net::Ipv4Addr::LOCALHOST;
    config.port = 0;
    config.lease_duration = Duration::from_secs(8);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cfg"},
        "data": {"greeting": "hello-from-configmap"}}))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();

    let nodelet = start_nodelet(&config);
    let nodes: Api<Node> = Api::all(client.clone());
    let n = loop {
        if let Some(n) = nodes.get_opt(&node).await.unwrap() {
            if n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some()
            {
                break n;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let st = n.status.unwrap();
    assert!(st.capacity.unwrap().contains_key("memory"));
    assert_eq!(
        st.node_info
            .unwrap()
            .container_runtime_version
            .split("://")
            .next(),
        Some("minik8s")
    );
    assert!(st
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True"));
    assert_eq!(
        n.metadata.labels.unwrap().get("kubernetes.io/hostname"),
        Some(&node)
    );

    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-node-lease");
    let mut lease = None;
    for _ in 0..50 {
        lease = leases.get_opt(&node).await.unwrap();
        if lease.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lease = lease
        .expect("node lease created in kube-node-lease")
        .spec
        .unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some(node.as_str()));
    assert_eq!(lease.lease_duration_seconds, Some(8));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let script =
        "cat /cfg/greeting; echo; echo POD=$POD_NAME GREETING=$GREETING PLAIN=$PLAIN; sleep 3600";
    pods.create(&PostParams::default(), &pod("web", &node, "Always", script))
        .await
        .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("crash", &node, "Always", "echo boom; exit 3"),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("never", &node, "Never", "exit 4"),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("onfail", &node, "OnFailure", "exit 0"),
    )
    .await
    .unwrap();
    pods.create(&PostParams::default(), &cluster::oom_pod(&node))
        .await
        .unwrap();
    let mut live = pod(
        "live",
        &node,
        "Always",
        "touch /tmp/ok; sleep 2; rm /tmp/ok; sleep 3600",
    );
    let c = &mut live.spec.as_mut().unwrap().containers[0];
    c.liveness_probe = Some(
        serde_json::from_value(json!({"exec": {"command": ["cat", "/tmp/ok"]},
        "periodSeconds": 1, "failureThreshold": 2}))
        .unwrap(),
    );
    pods.create(&PostParams::default(), &live).await.unwrap();
    let mut unready = pod("unready", &node, "Always", "sleep 3600");
    unready.spec.as_mut().unwrap().containers[0].readiness_probe = Some(
        serde_json::from_value(json!({"exec": {"command": ["false"]}, "periodSeconds": 1}))
            .unwrap(),
    );
    pods.create(&PostParams::default(), &unready).await.unwrap();

    let web = wait_pod(&pods, "web", 60, "Running and Ready with a pod IP", |p| {
        phase(p) == "Running"
            && ready(p)
            && p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()
    })
    .await;
    let uid = web.metadata.uid.clone().unwrap();
    let log = root
        .join("logs")
        .join(format!("default_web_{uid}"))
        .join("c/0.log");
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("PLAIN=") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        text.contains("hello-from-configmap"),
        "configMap volume file in the log: {text:?}"
    );
    assert!(
        text.contains("POD=web GREETING=hello-from-configmap PLAIN=v-web"),
        "env in the log: {text:?}"
    );
    let web_cs = cstatus(&web).unwrap();
    assert!(web_cs
        .container_id
        .as_deref()
        .unwrap()
        .starts_with("minik8s://"));
    assert_eq!(web_cs.restart_count, 0);

    let never = wait_pod(&pods, "never", 30, "Failed", |p| phase(p) == "Failed").await;
    let cs = cstatus(&never).unwrap();
    assert_eq!(cs.restart_count, 0);
    assert_eq!(cs.state.unwrap().terminated.unwrap().exit_code, 4);
    let onfail = wait_pod(&pods, "onfail", 30, "Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await;
    assert_eq!(cstatus(&onfail).unwrap().restart_count, 0);

    // The memory limit reaches the runtime as a cgroup limit, whose OOM kill shows as the
    // reason OOMKilled.
    let oom = wait_pod(&pods, "oom", 30, "Failed", |p| phase(p) == "Failed").await;
    let ended = cstatus(&oom).unwrap().state.unwrap().terminated.unwrap();
    assert_eq!(ended.reason.as_deref(), Some("OOMKilled"), "{ended:?}");
    assert_eq!(ended.exit_code, 137, "killed by SIGKILL: {ended:?}");

    // restart 1 is immediate, restart 2 waits the 10 s back-off.
    let backoff_seen = wait_pod(&pods, "crash", 30, "CrashLoopBackOff", |p| {
        cstatus(p).and_then(|c| c.state?.waiting?.reason).as_deref() == Some("CrashLoopBackOff")
    })
    .await;
    let last = cstatus(&backoff_seen)
        .unwrap()
        .last_state
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(last.exit_code, 3);
    wait_pod(&pods, "crash", 40, "restartCount >= 2", |p| {
        cstatus(p).is_some_and(|c| c.restart_count >= 2)
    })
    .await;

    // Readiness gates Ready; a failing liveness probe restarts the container.
    let unready = wait_pod(&pods, "unready", 20, "Running", |p| phase(p) == "Running").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let unready = pods.get("unready").await.unwrap_or(unready);
    assert!(
        !ready(&unready),
        "a failing readiness probe keeps the pod unready"
    );
    wait_pod(&pods, "live", 30, "restarted by its liveness probe", |p| {
        cstatus(p).is_some_and(|c| c.restart_count >= 1)
    })
    .await;
    cluster::assert_events(
        &client,
        &["Created", "Started", "BackOff", "Unhealthy", "Killing"],
    )
    .await;

    // A nodelet restart adopts the running container: same id, no restart.
    nodelet.stop().await;
    let nodelet = start_nodelet(&config);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let web = pods.get("web").await.unwrap();
    let cs = cstatus(&web).unwrap();
    assert_eq!(
        cs.container_id, web_cs.container_id,
        "adopted, not recreated"
    );
    assert_eq!(cs.restart_count, 0);
    assert!(ready(&web));
    let listed = runtime.cri.list_pod_sandbox(None);
    assert_eq!(
        listed
            .iter()
            .filter(|s| s.metadata.as_ref().is_some_and(|m| m.uid == uid))
            .count(),
        1,
        "one sandbox for web after the restart"
    );

    // Graceful deletion: `sleep` ignores SIGTERM as PID 1, so the 5 s grace period ends in
    // SIGKILL; the pod object then disappears.
    let began = std::time::Instant::now();
    pods.delete("web", &DeleteParams::default()).await.unwrap();
    for _ in 0..150 {
        if pods.get_opt("web").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        pods.get_opt("web").await.unwrap().is_none(),
        "web still exists after 15 s"
    );
    assert!(
        began.elapsed() < Duration::from_secs(12),
        "took {:?}",
        began.elapsed()
    );
    assert!(
        !runtime
            .cri
            .list_pod_sandbox(None)
            .iter()
            .any(|s| s.metadata.as_ref().is_some_and(|m| m.uid == uid)),
        "web's sandbox removed"
    );
    let _ = PathBuf::new();
    nodelet.stop().await;
    drop(runtime);
    shutdown.cancel();
    let _ = server.handle.await;
}
