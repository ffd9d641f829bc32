//! `cargo bench -p minictl --bench failover` (root): brings up a 3-node local cluster with
//! issue #10's short failover settings (node-monitor grace 4 s, tolerations 2 s), runs a
//! 6-replica busybox httpd Deployment, then
//! - sums the RSS of every cluster process (control plane, runtimes, nodelets, shims; not the
//!   containers' own httpd), idle and with the 6 pods, and
//! - kills the node with the most pods (SIGKILL runtime+nodelet, containers frozen) and times
//!   the kill until the Deployment is fully available again on the other nodes.
//!
//! Writes target/bench/cluster.json. Uses `$MINIK8S_BIN`, else target/release/minik8s if
//! built, else target/debug/minik8s (the JSON says which: debug binaries use more memory).
//! No peer runs here (no kind/k3s offline); Kubernetes' defaults are given for reference:
//! grace 40 s + tolerationSeconds 300 s + rescheduling ≈ 5 min 50 s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use minictl::cmd::cluster::args::{NameArgs, UpArgs};
use minictl::cmd::cluster::state::ClusterState;
use minictl::cmd::cluster::{self as cluster, launch, netns, node};

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
    for p in &state.control_plane {
        *by_component.entry(p.component.clone()).or_default() += measure(p.pid).unwrap_or(0);
    }
    for n in &state.nodes {
        let recorded: Vec<i32> = n.procs.iter().map(|p| p.pid).collect();
        for p in &n.procs {
            *by_component.entry(p.component.clone()).or_default() += measure(p.pid).unwrap_or(0);
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
    let startup = t.elapsed().as_secs_f64();
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
    let mib = |b: u64| (b as f64 / 1048576.0 * 10.0).round() / 10.0;
    println!("6 pods Ready on 3 nodes in {startup:.2} s");
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
        "deployment_6_pods_ready_seconds": startup,
        "rss_idle_mib": mib(idle_rss),
        "rss_with_6_pods_mib": mib(loaded_rss),
        "pss_idle_mib": mib(idle_pss),
        "pss_with_6_pods_mib": mib(loaded_pss),
        "pss_with_6_pods_by_component_mib": loaded_pss_parts.iter().map(|(k, v)| (k.clone(), mib(*v))).collect::<BTreeMap<_, _>>(),
        "rss_idle_by_component_mib": idle_parts.iter().map(|(k, v)| (k.clone(), mib(*v))).collect::<BTreeMap<_, _>>(),
        "rss_with_6_pods_by_component_mib": loaded_parts.iter().map(|(k, v)| (k.clone(), mib(*v))).collect::<BTreeMap<_, _>>(),
    })
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
        tokio::time::timeout(Duration::from_secs(300), measure(&client, &mut state)).await
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
