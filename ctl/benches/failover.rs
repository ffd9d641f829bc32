//! `cargo bench -p minictl --bench failover` (root): brings up a 3-node local cluster with
//! issue #10's short failover settings (node-monitor grace 4 s, tolerations 2 s), runs a
//! 6-replica busybox httpd Deployment, then
//! - sums the RSS of every cluster process (control plane, node agents, shims; not the
//!   containers' own httpd), idle and with the 6 pods, and
//! - kills the node with the most pods (SIGKILL its agent, containers frozen) and times
//!   the kill until the Deployment is fully available again on the other nodes.
//!
//! - then restarts that node and measures the pod startup latency of 300 bare pods created at
//!   once over the 3 nodes (100 a node, under the nodelet's 110-pods cap): from each pod's
//!   create request to its Running status received by a dedicated watch task — Kubernetes'
//!   pod startup SLI, image already present; p50 and p99 (target p99 <= 2 s).
//!   `MINIK8S_BENCH_PODS=N` runs N pods instead.
//!
//! Writes target/bench/cluster.json. Uses `$MINIK8S_BIN`, else target/release/minik8s if
//! built, else target/debug/minik8s (the JSON says which: debug binaries use more memory).
//! No peer runs here (no kind/k3s offline); Kubernetes' defaults are given for reference:
//! grace 40 s + tolerationSeconds 300 s + rescheduling ≈ 5 min 50 s.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use minictl::cmd::cluster::args::{NameArgs, UpArgs};
use minictl::cmd::cluster::state::ClusterState;
use minictl::cmd::cluster::{self as cluster, cgroups, launch, netns, node};

const NAME: &str = "bench-failover";

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: httpd
          image: busybox
          imagePullPolicy: IfNotPresent
          command: ["httpd", "-f", "-p", "8080", "-h", "/"]
          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
"#;

fn pick_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("MINIK8S_BIN") {
        return PathBuf::from(bin);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target");
    let release = root.join("release").join("minik8s");
    let bin = if release.is_file() {
        release
    } else {
        root.join("debug").join("minik8s")
    };
    // SAFETY: set before any thread of ours reads the environment.
    unsafe { std::env::set_var("MINIK8S_BIN", &bin) };
    bin
}

/// Memory of the cluster's own processes, by component: control plane, and everything in
/// the node namespaces (runtime, nodelet, shims); containers live in pod namespaces and are
/// not counted. `measure` is RSS or PSS.
fn cluster_mem(
    state: &ClusterState,
    measure: fn(i32) -> Option<u64>,
) -> (u64, BTreeMap<String, u64>) {
    let mut by_component: BTreeMap<String, u64> = BTreeMap::new();
    // Every component must be running: a process that is gone would count as no memory
    // (seen: a stale release binary refusing a newer flag).
    let running = |p: &minictl::cmd::cluster::state::Proc| {
        measure(p.pid).unwrap_or_else(|| {
            panic!(
                "{} (pid {}) is not running; is {} current? (cargo build --release -p minik8s)",
                p.component,
                p.pid,
                std::env::var("MINIK8S_BIN").unwrap_or_default()
            )
        })
    };
    for p in &state.control_plane {
        *by_component.entry(p.component.clone()).or_default() += running(p);
    }
    for n in &state.nodes {
        let recorded: Vec<i32> = n.procs.iter().map(|p| p.pid).collect();
        for p in &n.procs {
            *by_component.entry(p.component.clone()).or_default() += running(p);
        }
        for pid in netns::pids_in(&n.netns)
            .into_iter()
            .filter(|p| !recorded.contains(p))
        {
            *by_component.entry("shims".into()).or_default() += measure(pid).unwrap_or(0);
        }
    }
    (by_component.values().sum(), by_component)
}

async fn ready_by_node(client: &Client) -> BTreeMap<String, usize> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut out = BTreeMap::new();
    for p in pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready && p.metadata.deletion_timestamp.is_none() {
            let node = p.spec.and_then(|s| s.node_name).unwrap_or_default();
            *out.entry(node).or_insert(0) += 1;
        }
    }
    out
}

async fn available(client: &Client) -> i32 {
    let d: Api<Deployment> = Api::namespaced(client.clone(), "default");
    d.get("web")
        .await
        .ok()
        .and_then(|d| d.status?.available_replicas)
        .unwrap_or(0)
}

async fn wait(limit: Duration, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "bench: timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn measure(client: &Client, state: &mut ClusterState) -> serde_json::Value {
    let (idle_rss, idle_parts) = cluster_mem(state, launch::rss_bytes);
    let (idle_pss, _) = cluster_mem(state, launch::pss_bytes);
    let deploy: Deployment = serde_yaml::from_str(DEPLOYMENT).expect("deployment yaml");
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &deploy)
        .await
        .expect("create deployment");
    let t = Instant::now();
    wait(Duration::from_secs(120), "6 ready pods", async || {
        ready_by_node(client).await.values().sum::<usize>() == 6 && available(client).await == 6
    })
    .await;
    let deployment_startup = t.elapsed().as_secs_f64();
    let (loaded_rss, loaded_parts) = cluster_mem(state, launch::rss_bytes);
    let (loaded_pss, loaded_pss_parts) = cluster_mem(state, launch::pss_bytes);
    let by_node = ready_by_node(client).await;
    let victim = by_node
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(n, _)| n.clone())
        .unwrap();

    let t0 = Instant::now();
    node::kill(state, &victim).expect("kill-node");
    wait(
        Duration::from_secs(120),
        "the Deployment back to 6 available",
        async || {
            let m = ready_by_node(client).await;
            !m.contains_key(&victim)
                && m.values().sum::<usize>() == 6
                && available(client).await == 6
        },
    )
    .await;
    let failover = t0.elapsed().as_secs_f64();
    let restart = restart_node(state, &victim).await;
    let pod_startup = pod_startup_latency(client, startup_pod_count()).await;
    let mib = |b: u64| (b as f64 / 1048576.0 * 10.0).round() / 10.0;
    println!("6 pods Ready on 3 nodes in {deployment_startup:.2} s");
    println!("node kill -> Deployment fully available: {failover:.2} s (target <= 10 s)");
    println!(
        "cluster RSS idle {} MiB, with 6 pods {} MiB (target <= 200 MiB)",
        mib(idle_rss),
        mib(loaded_rss)
    );
    println!(
        "cluster PSS idle {} MiB, with 6 pods {} MiB (shared pages such as the binary's text counted once)",
        mib(idle_pss),
        mib(loaded_pss)
    );
    println!(
        "  PSS by component (6 pods): {:?}",
        loaded_pss_parts
            .iter()
            .map(|(k, v)| (k, mib(*v)))
            .collect::<BTreeMap<_, _>>()
    );
    println!(
        "  RSS by component (6 pods): {:?}",
        loaded_parts
            .iter()
            .map(|(k, v)| (k, mib(*v)))
            .collect::<BTreeMap<_, _>>()
    );
    serde_json::json!({
        "failover_seconds": failover,
        "failover_settings": {"node_monitor_grace_period": "4s", "default_toleration_seconds": 2},
        "kubernetes_default_failover_seconds_reference": 350,
        "deployment_6_pods_ready_seconds": deployment_startup,
        "node_restart_seconds": restart,
        "pod_startup": pod_startup,
        "rss_idle_mib": mib(idle_rss),
        "rss_with_6_pods_mib": mib(loaded_rss),
        "pss_idle_mib": mib(idle_pss),
        "pss_with_6_pods_mib": mib(loaded_pss),
        "pss_with_6_pods_by_component_mib": loaded_pss_parts.iter().map(|(k, v)| (k.clone(), mib(*v))).collect::<BTreeMap<_, _>>(),
        "rss_idle_by_component_mib": idle_parts.iter().map(|(k, v)| (k.clone(), mib(*v))).collect::<BTreeMap<_, _>>(),
        "rss_with_6_pods_by_component_mib": loaded_parts.iter().map(|(k, v)| (k.clone(), mib(*v))).collect::<BTreeMap<_, _>>(),
    })
}

/// Brings the killed node back and waits until it is Ready and has removed the containers
/// of its evicted pods, so the next phase runs on three idle nodes; returns the seconds.
async fn restart_node(state: &mut ClusterState, victim: &str) -> f64 {
    let t = Instant::now();
    node::restart(state, victim).expect("restart-node");
    let names: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    cluster::wait_ready(state, &names, Duration::from_secs(120))
        .await
        .expect("the restarted node Ready");
    let parent = state.node(victim).expect("victim").cgroup_parent.clone();
    wait(
        Duration::from_secs(120),
        "the restarted node to remove its old containers",
        async || cgroups::count_comm(&parent, "httpd") == 0,
    )
    .await;
    t.elapsed().as_secs_f64()
}

fn startup_pod_count() -> usize {
    std::env::var("MINIK8S_BENCH_PODS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

fn startup_pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"bench": "startup"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"]}]},
    }))
    .expect("startup pod")
}

/// The dedicated watch: the instant each startup pod is first seen Running, taken as the
/// event is received. `synced` fires once the initial list is in, before any pod is made.
async fn watch_running(
    pods: Api<Pod>,
    running: Arc<Mutex<HashMap<String, Instant>>>,
    synced: tokio::sync::oneshot::Sender<()>,
) {
    let mut synced = Some(synced);
    let config = watcher::Config::default().labels("bench=startup");
    let mut events = watcher(pods, config).boxed();
    while let Ok(Some(ev)) = events.try_next().await {
        let at = Instant::now();
        match ev {
            watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                if phase == Some("Running") {
                    let name = p.metadata.name.unwrap_or_default();
                    running.lock().unwrap().entry(name).or_insert(at);
                }
            }
            watcher::Event::InitDone => {
                if let Some(tx) = synced.take() {
                    let _ = tx.send(());
                }
            }
            _ => {}
        }
    }
}

/// Nearest-rank percentile of sorted seconds.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Creates `count` pods at once (64 create requests in flight) and times each from its
/// create request to its Running status received by the watch.
async fn pod_startup_latency(client: &Client, count: usize) -> serde_json::Value {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let running = Arc::new(Mutex::new(HashMap::new()));
    let (tx, synced) = tokio::sync::oneshot::channel();
    let watch = tokio::spawn(watch_running(pods.clone(), running.clone(), tx));
    synced.await.expect("the startup watch lists");
    let t0 = Instant::now();
    let created: HashMap<String, Instant> = futures::stream::iter(0..count)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let name = format!("startup-{i}");
                let at = Instant::now();
                pods.create(&PostParams::default(), &startup_pod(&name))
                    .await
                    .expect("create pod");
                (name, at)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let created_in = t0.elapsed().as_secs_f64();
    wait(
        Duration::from_secs(600),
        "every startup pod Running",
        async || running.lock().unwrap().len() >= count,
    )
    .await;
    let all_in = t0.elapsed().as_secs_f64();
    watch.abort();
    let running = running.lock().unwrap().clone();
    let mut secs: Vec<f64> = created
        .iter()
        .map(|(name, at)| running[name].duration_since(*at).as_secs_f64())
        .collect();
    secs.sort_by(f64::total_cmp);
    let per_node = pods_per_node(&pods).await;
    let (p50, p99) = (percentile(&secs, 50.0), percentile(&secs, 99.0));
    println!(
        "{count} pods created in {created_in:.2} s, all Running after {all_in:.2} s; startup latency p50 {p50:.2} s, p99 {p99:.2} s, max {:.2} s (target p99 <= 2 s); per node {per_node:?}",
        secs[secs.len() - 1]
    );
    serde_json::json!({
        "pods": count, "p50_seconds": p50, "p99_seconds": p99, "max_seconds": secs[secs.len() - 1],
        "target_p99_seconds": 2.0, "created_in_seconds": created_in,
        "all_running_after_seconds": all_in, "pods_per_node": per_node,
    })
}

async fn pods_per_node(pods: &Api<Pod>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let list = pods
        .list(&ListParams::default().labels("bench=startup"))
        .await
        .expect("list startup pods");
    for p in list.items {
        let node = p.spec.and_then(|s| s.node_name).unwrap_or_default();
        *out.entry(node).or_insert(0) += 1;
    }
    out
}

fn main() {
    let bin = pick_binary();
    println!("minik8s binary: {}", bin.display());
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let _ = cluster::down(NAME);
    let args = UpArgs {
        cluster: NameArgs { name: NAME.into() },
        nodes: 3,
        node_monitor_grace_period: "4s".into(),
        default_toleration_seconds: 2,
        // Nothing leaves the machine: names outside the cluster are not forwarded.
        resolv_conf: String::new(),
    };
    let result = rt.block_on(async {
        let mut state = cluster::up(&args).await.expect("cluster up");
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(state.kubeconfig()).expect("kubeconfig"),
            &Default::default(),
        )
        .await
        .expect("kube config");
        let client = Client::try_from(config).expect("client");
        tokio::time::timeout(Duration::from_secs(900), measure(&client, &mut state)).await
    });
    let _ = cluster::down(NAME);
    let mut figures = result.expect("bench hung: a wait above never finished");
    figures["minik8s_binary"] = serde_json::json!(bin.display().to_string());
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    let path = out.join("cluster.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&figures).unwrap())
        .expect("write cluster.json");
    println!("wrote {}", path.display());
}
