//! The nodelet's end-to-end suite against containerd's CRI (issue #6: "the same suite runs
//! against containerd's CRI where containerd is installed"): a private containerd (own root,
//! state, socket, CNI conf on its own bridge, a busybox-based pause image), the API server
//! and the nodelet as a child process; pods run and report Ready with env and a configMap
//! volume, crash and restart with back-off (restartCount 2 after the 10 s back-off), fail
//! under Never, succeed under OnFailure, restart on a failed liveness probe, stay unready
//! under a failing readiness probe, show OOMKilled past their memory limit, and their logs
//! come back through `minictl logs` (with -f and --previous); the nodelet killed with SIGKILL
//! and started again adopts the running container (same id, no restart, one sandbox);
//! deleting a pod ends it within its grace period and removes its sandbox. Skipped, saying
//! why, only where containerd is not installed.

mod cluster;
#[path = "../../tests/cri_support/containerd.rs"]
mod containerd;

use std::path::Path;
use std::time::Duration;

use cluster::{all_running, cstatus, oom_pod, wait_pod, Cluster};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const TEST: &str = "nodelet_runs_pods_on_containerd";

fn main() {
    cluster::run_test(
        TEST,
        Duration::from_secs(240),
        "a pod on containerd never reached its state",
        containerd::unavailable,
        scenario,
    );
}

/// containerd plus a guard that removes every pod sandbox it still has (through CRI, so
/// their shims end) before containerd is stopped, and the cgroups it made.
struct Ctrd {
    inner: Option<containerd::Containerd>,
    cgroup_parent_existed: bool,
}

/// Where containerd's CRI puts containers without a cgroup parent (its namespaced default).
const CTRD_CGROUP: &str = "k8s.io";

impl Drop for Ctrd {
    fn drop(&mut self) {
        let Some(c) = self.inner.take() else { return };
        let socket = c.socket.clone();
        // Drop runs inside the test's runtime: CRI calls go on a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(remove_all_sandboxes(&socket));
        })
        .join();
        drop(c);
        if !self.cgroup_parent_existed {
            remove_cgroup_dirs(CTRD_CGROUP);
        }
    }
}

async fn remove_all_sandboxes(socket: &Path) {
    let Ok(mut cri) = minik8s_nodelet::cri::Cri::connect(socket).await else {
        return;
    };
    let ids: Vec<String> = match cri.sandboxes(None).await {
        Ok(list) => list.into_iter().map(|s| s.id).collect(),
        Err(_) => return,
    };
    for id in ids {
        let _ = cri.stop_sandbox(&id).await;
        if let Err(e) = cri.remove_sandbox(&id).await {
            eprintln!("cleanup: remove containerd sandbox {id}: {e}");
        }
    }
}

/// Removes `<controller>/<name>` under every cgroup v1 hierarchy (only empty ones go).
fn remove_cgroup_dirs(name: &str) {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for e in entries.flatten() {
        let _ = std::fs::remove_dir(e.path().join(name));
    }
}

fn cgroup_dir_exists(name: &str) -> bool {
    std::fs::read_dir("/sys/fs/cgroup")
        .is_ok_and(|entries| entries.flatten().any(|e| e.path().join(name).exists()))
}

async fn start_containerd(dir: &Path) -> Ctrd {
    let n = std::process::id() as usize;
    let bridge = format!("mk8d{:x}", n % 0xfffff);
    let subnet = format!("10.86.{}.0/24", 1 + n % 250);
    let dir = dir.to_path_buf();
    let existed = cgroup_dir_exists(CTRD_CGROUP);
    let c = tokio::task::spawn_blocking(move || {
        let images = dir.join("images");
        std::fs::create_dir_all(&images).unwrap();
        let tar = images.join("busybox.tar");
        minik8s_runtime::image::testimage::build_busybox_oci_tar(&tar, cluster::BUSYBOX)
            .expect("build the busybox tarball");
        let ctrd = dir.join("containerd");
        std::fs::create_dir_all(&ctrd).unwrap();
        containerd::Containerd::start(&ctrd, &bridge, &subnet, &tar)
    })
    .await
    .unwrap();
    Ctrd {
        inner: Some(c),
        cgroup_parent_existed: existed,
    }
}

fn pod(name: &str, node: &str, policy: &str, script: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node, "restartPolicy": policy, "terminationGracePeriodSeconds": 3,
            "containers": [{
                "name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                ],
                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}],
                "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
            }],
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
        }
    }))
    .unwrap()
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

async fn scenario() {
    let tmp = tempfile::Builder::new()
        .prefix("ctrd-e2e")
        .tempdir()
        .unwrap();
    let mut c = Cluster::start_api(tmp).await;
    let ctrd = start_containerd(c.tmp.path()).await;
    let socket = ctrd.inner.as_ref().unwrap().socket.clone();
    c.runtime = Some(Box::new(ctrd));
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let cm = json!({"metadata": {"name": "cfg"}, "data": {"greeting": "hello-from-configmap"}});
    cms.create(&PostParams::default(), &serde_json::from_value(cm).unwrap())
        .await
        .unwrap();
    c.start_nodelet_process(&socket).await;
    let node = c.node.clone();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.client.clone());
    let info = nodes
        .get(&node)
        .await
        .unwrap()
        .status
        .unwrap()
        .node_info
        .unwrap();
    assert!(
        info.container_runtime_version.starts_with("containerd://"),
        "{}",
        info.container_runtime_version
    );

    let trigger = c.tmp.path().join("trigger");
    std::fs::create_dir_all(&trigger).unwrap();
    let pods = c.pods();
    let pp = PostParams::default();
    let web = "cat /cfg/greeting; echo; echo POD=$POD_NAME GREETING=$GREETING; \
               while [ ! -f /trigger/go ]; do sleep 0.1; done; echo after; sleep 3600";
    let mut web = pod("web", &node, "Always", web);
    let spec = web.spec.as_mut().unwrap();
    spec.containers[0]
        .volume_mounts
        .as_mut()
        .unwrap()
        .push(serde_json::from_value(json!({"name": "t", "mountPath": "/trigger"})).unwrap());
    spec.volumes
        .as_mut()
        .unwrap()
        .push(serde_json::from_value(json!({"name": "t", "hostPath": {"path": trigger}})).unwrap());
    pods.create(&pp, &web).await.unwrap();
    pods.create(&pp, &pod("crash", &node, "Always", "echo boom; exit 3"))
        .await
        .unwrap();
    pods.create(&pp, &pod("never", &node, "Never", "exit 4"))
        .await
        .unwrap();
    pods.create(&pp, &pod("onfail", &node, "OnFailure", "exit 0"))
        .await
        .unwrap();
    let mut live = pod(
        "live",
        &node,
        "Always",
        "touch /tmp/ok; sleep 2; rm /tmp/ok; sleep 3600",
    );
    live.spec.as_mut().unwrap().containers[0].liveness_probe = Some(
        serde_json::from_value(json!({"exec": {"command": ["cat", "/tmp/ok"]},
            "periodSeconds": 1, "failureThreshold": 2}))
        .unwrap(),
    );
    pods.create(&pp, &live).await.unwrap();
    let mut unready = pod("unready", &node, "Always", "sleep 3600");
    unready.spec.as_mut().unwrap().containers[0].readiness_probe = Some(
        serde_json::from_value(json!({"exec": {"command": ["false"]}, "periodSeconds": 1}))
            .unwrap(),
    );
    pods.create(&pp, &unready).await.unwrap();
    pods.create(&pp, &oom_pod(&node)).await.unwrap();

    let web = wait_pod(&pods, "web", 90, "Running and Ready", |p| {
        all_running(p) && ready(p)
    })
    .await;
    let web_id = cstatus(&web, "c").unwrap().container_id.unwrap();
    assert!(web_id.starts_with("containerd://"), "{web_id}");
    logs(&c, &trigger).await;

    let never = wait_pod(&pods, "never", 60, "Failed", |p| phase(p) == "Failed").await;
    let term = cstatus(&never, "c")
        .unwrap()
        .state
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(term.exit_code, 4);
    wait_pod(
        &pods,
        "crash",
        60,
        "CrashLoopBackOff after a restart",
        |p| {
            cstatus(p, "c").is_some_and(|s| {
                s.restart_count >= 1
                    && s.state.and_then(|st| st.waiting?.reason).as_deref()
                        == Some("CrashLoopBackOff")
            })
        },
    )
    .await;
    let onfail = wait_pod(&pods, "onfail", 60, "Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await;
    assert_eq!(cstatus(&onfail, "c").unwrap().restart_count, 0);
    wait_pod(&pods, "live", 60, "restarted by its liveness probe", |p| {
        cstatus(p, "c").is_some_and(|s| s.restart_count >= 1)
    })
    .await;
    let r = c.minictl(&["logs", "crash", "--previous"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "boom\n"), "{r:?}");
    // Restart 1 is immediate, restart 2 waits the 10 s back-off.
    let crash = wait_pod(&pods, "crash", 40, "restartCount >= 2", |p| {
        cstatus(p, "c").is_some_and(|s| s.restart_count >= 2)
    })
    .await;
    let last = cstatus(&crash, "c").unwrap().last_state.unwrap();
    assert_eq!(last.terminated.unwrap().exit_code, 3);

    // containerd reports the cgroup's OOM kill; the nodelet shows it as Kubernetes does.
    let oom = wait_pod(&pods, "oom", 60, "Failed", |p| phase(p) == "Failed").await;
    let ended = cstatus(&oom, "c")
        .unwrap()
        .state
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(ended.reason.as_deref(), Some("OOMKilled"), "{ended:?}");
    assert_eq!(ended.exit_code, 137, "killed by SIGKILL: {ended:?}");

    // Readiness gates Ready.
    wait_pod(&pods, "unready", 30, "Running", |p| phase(p) == "Running").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !ready(&pods.get("unready").await.unwrap()),
        "a failing readiness probe keeps the pod unready"
    );
    cluster::assert_events(
        &c.client,
        &["Created", "Started", "BackOff", "Unhealthy", "Killing"],
    )
    .await;

    // kill -9 the nodelet and start it again: it adopts the running container (same id, no
    // restart, one sandbox).
    let web_uid = web.metadata.uid.clone().unwrap();
    let mut cri = minik8s_nodelet::cri::Cri::connect(&socket).await.unwrap();
    let sandboxes = cri.sandboxes(Some(&web_uid)).await.unwrap();
    assert_eq!(sandboxes.len(), 1, "one sandbox for web");
    c.kill_nodelet_process();
    c.start_nodelet_process(&socket).await;
    // Several relists (1 s) and status periods (2 s) of the new nodelet.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let web = pods.get("web").await.unwrap();
    let cs = cstatus(&web, "c").unwrap();
    assert_eq!(cs.container_id.as_deref(), Some(web_id.as_str()), "adopted");
    assert_eq!(cs.restart_count, 0);
    assert!(ready(&web), "still Ready");
    let after: Vec<String> = cri
        .sandboxes(Some(&web_uid))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let before: Vec<String> = sandboxes.into_iter().map(|s| s.id).collect();
    assert_eq!(after, before, "the same one sandbox for web");

    // Graceful deletion: web's shell ignores SIGTERM as PID 1, so its 3 s grace period ends
    // in SIGKILL; the pod object then goes.
    let began = std::time::Instant::now();
    pods.delete("web", &DeleteParams::default()).await.unwrap();
    wait_gone(&pods, "web").await;
    assert!(
        began.elapsed() < Duration::from_secs(12),
        "took {:?}",
        began.elapsed()
    );

    // Deleting the other pods stops and removes their sandboxes in containerd.
    const ALL: [&str; 7] = ["web", "crash", "never", "onfail", "live", "unready", "oom"];
    for name in &ALL[1..] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in ALL {
        wait_gone(&pods, name).await;
    }
    let mut left = Vec::new();
    for i in 0..50 {
        left = cri.sandboxes(None).await.unwrap();
        if left.is_empty() {
            break;
        }
        if i == 0 {
            let names: Vec<_> = left.iter().filter_map(|s| s.metadata.as_ref()).collect();
            eprintln!("sandboxes still in containerd after their pods were deleted: {names:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "sandboxes left in containerd: {left:#?}");
    c.stop().await;
}

async fn wait_gone(pods: &Api<Pod>, name: &str) {
    for _ in 0..150 {
        if pods.get_opt(name).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("pod {name} still exists 15 s after its deletion");
}

async fn logs(c: &Cluster, trigger: &Path) {
    let want = "hello-from-configmap\nPOD=web GREETING=hello-from-configmap\n";
    let mut r = c.minictl(&["logs", "web"]).await;
    for _ in 0..50 {
        if r.stdout == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        r = c.minictl(&["logs", "web"]).await;
    }
    assert_eq!((r.code, r.stdout.as_str()), (0, want), "{r:?}");
    let f = c.minictl_follow(&["logs", "web", "-f", "--tail", "1"]);
    f.expect_line("POD=web GREETING=hello-from-configmap", 20)
        .await;
    std::fs::write(trigger.join("go"), "").unwrap();
    f.expect_line("after", 20).await;
}
