//! ConfigMap and Secret volumes are kept current: a running container sees a changed key's
//! new value, a new key appear and a removed key disappear, without a restart, through the
//! kubelet's atomic layout (`key -> ..data/key`, `..data -> ..<timestamp>`).
//!
//! One node with real processes: the API server, our CRI runtime and the nodelet (see
//! `cluster`); the container's view is read with ExecSync through CRI.

mod cluster;

use std::time::{Duration, Instant};

use cluster::{cstatus, wait_pod, Cluster};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const TEST: &str = "configmap_and_secret_volumes_follow_updates_in_a_running_container";
/// The nodelet re-projects volumes every 10 s (Config::volume_resync); the bound leaves
/// room for a slow machine.
const UPDATE_BOUND: Duration = Duration::from_secs(40);

fn main() {
    cluster::run_test(
        TEST,
        Duration::from_secs(150),
        "the pod never ran or its volume files never changed",
        || None,
        scenario,
    );
}

/// What the container sees, as one line.
const VIEW: &str = "echo G=$(cat /cfg/greeting) A=$(cat /cfg/added 2>/dev/null) \
    R=$(test -e /cfg/removed && echo present || echo gone) T=$(cat /sec/token) \
    O=$(test -e /sec/old && echo present || echo gone) L=$(readlink /cfg/greeting)";

async fn view(cri: &mut minik8s_nodelet::cri::Cri, id: &str) -> String {
    let cmd = vec!["sh".into(), "-c".into(), VIEW.into()];
    let (code, out) = cri
        .exec_sync(id, cmd, 10)
        .await
        .expect("exec in the container");
    assert_eq!(code, 0, "exec: {}", String::from_utf8_lossy(&out));
    String::from_utf8_lossy(&out).trim().to_string()
}

fn pod(node: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "reader"},
        "spec": {
            "nodeName": node, "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"},
                    {"name": "sec", "mountPath": "/sec"}],
            }],
            "volumes": [{"name": "cfg", "configMap": {"name": "app"}},
                {"name": "sec", "secret": {"secretName": "creds"}}],
        }
    }))
    .unwrap()
}

async fn scenario() {
    let (mut c, socket) = Cluster::with_runtime("nodelet-vol", 85).await;
    c.start_nodelet(&socket).await;
    let pp = PostParams::default();
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let cm = json!({"metadata": {"name": "app"}, "data": {"greeting": "v1", "removed": "bye"}});
    cms.create(&pp, &serde_json::from_value(cm).unwrap())
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), "default");
    // s1, x
    let sec = json!({"metadata": {"name": "creds"}, "data": {"token": "czE=", "old": "eA=="}});
    secrets
        .create(&pp, &serde_json::from_value(sec).unwrap())
        .await
        .unwrap();
    let pods = c.pods();
    pods.create(&pp, &pod(&c.node)).await.unwrap();
    let running = wait_pod(&pods, "reader", 60, "Running", cluster::all_running).await;
    let before = cstatus(&running, "c").unwrap();
    let id = before.container_id.clone().unwrap();
    let id = id.trim_start_matches("minik8s://").to_string();
    let mut cri = minik8s_nodelet::cri::Cri::connect(&socket).await.unwrap();
    assert_eq!(
        view(&mut cri, &id).await,
        "G=v1 A= R=present T=s1 O=present L=..data/greeting",
        "the first projection"
    );
    let uid = running.metadata.uid.clone().unwrap();
    let vol = c
        .config
        .root_dir
        .join("pods")
        .join(&uid)
        .join("volumes/cfg");
    let first_data = std::fs::read_link(vol.join("..data")).expect("..data is a link");

    // Change one key, add one, remove one; in the Secret change one and remove one.
    let patch = json!({"data": {"greeting": "v2", "added": "new", "removed": null}});
    let pt = PatchParams::default();
    cms.patch("app", &pt, &Patch::Merge(&patch)).await.unwrap();
    let patch = json!({"data": {"token": "czI=", "old": null}}); // s2
    secrets
        .patch("creds", &pt, &Patch::Merge(&patch))
        .await
        .unwrap();
    let want = "G=v2 A=new R=gone T=s2 O=gone L=..data/greeting";
    let began = Instant::now();
    let mut seen = view(&mut cri, &id).await;
    while seen != want {
        assert!(
            began.elapsed() < UPDATE_BOUND,
            "the container still sees {seen:?} {UPDATE_BOUND:?} after the updates; want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        seen = view(&mut cri, &id).await;
    }
    // Swapped atomically: a new projection directory behind ..data, the old one gone.
    let data = std::fs::read_link(vol.join("..data")).unwrap();
    assert_ne!(data, first_data, "..data points at a new projection");
    assert!(
        !vol.join(&first_data).exists(),
        "the old projection is removed"
    );

    // The same container saw it all: no restart.
    let after = cstatus(&pods.get("reader").await.unwrap(), "c").unwrap();
    assert_eq!(after.container_id, before.container_id);
    assert_eq!(after.restart_count, 0);
    c.stop().await;
}
