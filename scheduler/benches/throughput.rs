//! Scheduler throughput through the real API server, in one run:
//! 5,000 Node objects, 10,000 pending pods with requests, and `minik8s-scheduler` binding them.
//!
//! Three processes, so that each RSS is its own: this driver (creates objects, watches
//! bindings), an API server child and a scheduler child (both this binary re-executed with
//! `--child-apiserver DIR` / `--child-scheduler KUBECONFIG`). Reported: pods bound per second
//! end to end (from starting the scheduler process until the driver's watch has seen the last
//! pod bound, so it includes the scheduler's connect and initial list of 5,000 nodes and
//! 10,000 pods) and in steady state (first to last binding seen); the peak RSS (VmHWM) of the
//! scheduler and of the API server. The peer measured in the same run: the same API server
//! binding 10,000 more pods posted directly by the driver with the same concurrency (no
//! scheduling), the ceiling the API allows.
//!
//! Run: `cargo bench -p minik8s-scheduler --bench throughput` (figures printed and written to
//! `target/bench/scheduler.json`). Override sizes with NODES=… PODS=….

mod support;

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{
    Binding, Container, Namespace, Node, NodeCondition, NodeStatus, ObjectReference, Pod, PodSpec,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::Api;
use support::*;

/// Concurrent creates by the driver.
const CONCURRENCY: usize = 64;

/// Bindings in flight: the scheduler's default, or PARALLEL_BINDINGS; the peer run binds
/// directly with the same concurrency.
fn parallel_bindings() -> usize {
    env_usize(
        "PARALLEL_BINDINGS",
        minik8s_scheduler::options::DEFAULT_PARALLEL_BINDINGS,
    )
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.get(1).map(String::as_str) {
        Some("--child-apiserver") => rt.block_on(child_apiserver(PathBuf::from(&args[2]))),
        Some("--child-scheduler") => rt.block_on(child_scheduler(PathBuf::from(&args[2]))),
        _ => rt.block_on(driver()),
    }
}

async fn child_scheduler(kubeconfig: PathBuf) -> anyhow::Result<()> {
    let shutdown = stop_on_stdin_close();
    let config = minik8s_scheduler::Config {
        kubeconfig,
        scheduler_name: "minik8s-scheduler".into(),
        leader: None,
        strategy: Default::default(),
        percentage_of_nodes_to_score: 0,
        parallel_bindings: parallel_bindings(),
        identity: "bench".into(),
    };
    let scheduler = minik8s_scheduler::Scheduler::connect(config).await?;
    let stats = scheduler.stats();
    scheduler.run(shutdown).await?;
    // Where the scheduling loop's time went, for the bench log.
    let ms = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed) / 1000;
    eprintln!(
        "scheduler loop: bound {}, waiting for a binding slot {} ms, waiting for a pod {} ms, scheduling {} ms",
        stats.bound(),
        ms(&stats.waiting_for_binding_slot_micros),
        ms(&stats.waiting_for_pod_micros),
        ms(&stats.scheduling_micros)
    );
    Ok(())
}

fn quantities(cpu: &str, memory: &str, pods: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu.into())),
        ("memory".to_string(), Quantity(memory.into())),
        ("pods".to_string(), Quantity(pods.into())),
    ])
}

fn node(i: usize) -> Node {
    let name = format!("node-{i:05}");
    Node {
        metadata: ObjectMeta {
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), name.clone()),
                (
                    "topology.kubernetes.io/zone".to_string(),
                    format!("zone-{}", i % 3),
                ),
            ])),
            name: Some(name),
            ..Default::default()
        },
        spec: None,
        status: Some(NodeStatus {
            capacity: Some(quantities("32", "64Gi", "110")),
            allocatable: Some(quantities("32", "64Gi", "110")),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn pod(namespace: &str, i: usize, scheduler: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("pod-{i:05}")),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            scheduler_name: Some(scheduler.into()),
            containers: vec![Container {
                name: "app".into(),
                image: Some("busybox".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(BTreeMap::from([
                        ("cpu".to_string(), Quantity("100m".into())),
                        ("memory".to_string(), Quantity("128Mi".into())),
                    ])),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create_all<K, I>(api: &Api<K>, objects: I) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    I: IntoIterator<Item = K>,
{
    futures::stream::iter(objects)
        .map(|o| async move { api.create(&PostParams::default(), &o).await })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
        .map_err(Into::into)
}

/// Watches pods of `namespace` from `rv` until `count` are bound; returns the instants of the
/// first and the last binding seen.
async fn wait_bound(api: Api<Pod>, rv: String, count: usize) -> anyhow::Result<(Instant, Instant)> {
    let mut bound = HashSet::new();
    let mut first = None;
    let mut rv = rv;
    loop {
        let stream = api.watch(&WatchParams::default().timeout(290), &rv).await?;
        futures::pin_mut!(stream);
        while let Some(event) = stream.try_next().await? {
            let pod = match event {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => p,
                WatchEvent::Error(e) => anyhow::bail!("watch error: {e:?}"),
                _ => continue,
            };
            if let Some(v) = pod.metadata.resource_version.clone() {
                rv = v;
            }
            if pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some()
                && bound.insert(pod.metadata.name.clone().unwrap_or_default())
            {
                let now = Instant::now();
                first.get_or_insert(now);
                if bound.len() == count {
                    return Ok((first.unwrap_or(now), now));
                }
            }
        }
    }
}

async fn driver() -> anyhow::Result<()> {
    let nodes = env_usize("NODES", 5000);
    let pods = env_usize("PODS", 10_000);
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("apiserver");
    let (apiserver, mut out) =
        ChildProcess::spawn(&["--child-apiserver", data_dir.to_str().unwrap_or_default()])?;
    let mut line = String::new();
    out.read_line(&mut line)?;
    let kubeconfig = PathBuf::from(line.trim());
    let client = client_for(&kubeconfig).await?;

    let started = Instant::now();
    let node_api: Api<Node> = Api::all(client.clone());
    let created = create_all(&node_api, (0..nodes).map(node)).await?;
    // Kubernetes keeps a Node's status on create; set it where this server did not.
    let missing: Vec<Node> = created
        .into_iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref())
                .is_none()
        })
        .collect();
    let fixed = missing.len();
    futures::stream::iter(missing)
        .map(|mut n| {
            let api = node_api.clone();
            async move {
                let name = n.metadata.name.clone().unwrap_or_default();
                let i: usize = name.trim_start_matches("node-").parse().unwrap_or(0);
                n.status = node(i).status;
                api.replace_status(&name, &PostParams::default(), &n).await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    create_all(
        &pod_api,
        (0..pods).map(|i| pod("default", i, "default-scheduler")),
    )
    .await?;
    println!(
        "created {nodes} nodes ({fixed} status writes) and {pods} pending pods in {:.1?}",
        started.elapsed()
    );

    let rv = pod_api
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let watch = tokio::spawn(wait_bound(pod_api.clone(), rv, pods));
    let scheduler_start = Instant::now();
    let (scheduler, _) =
        ChildProcess::spawn(&["--child-scheduler", kubeconfig.to_str().unwrap_or_default()])?;
    let (first, last) = watch.await??;
    let end_to_end = last - scheduler_start;
    let steady = last - first;
    let (sched_hwm, sched_rss) = scheduler.rss_kib();
    drop(scheduler);

    // Peer: the same server binding as many pods posted directly, same concurrency.
    let ns_api: Api<Namespace> = Api::all(client.clone());
    ns_api
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("direct".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    let direct_api: Api<Pod> = Api::namespaced(client.clone(), "direct");
    create_all(&direct_api, (0..pods).map(|i| pod("direct", i, "nobody"))).await?;
    let direct_start = Instant::now();
    futures::stream::iter(0..pods)
        .map(|i| {
            let api = direct_api.clone();
            async move {
                let name = format!("pod-{i:05}");
                let binding = Binding {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some("direct".into()),
                        ..Default::default()
                    },
                    target: ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Node".into()),
                        name: Some(format!("node-{:05}", i % nodes)),
                        ..Default::default()
                    },
                };
                api.create_subresource::<_, serde::de::IgnoredAny>(
                    "binding",
                    &name,
                    &PostParams::default(),
                    &binding,
                )
                .await
            }
        })
        .buffer_unordered(parallel_bindings())
        .try_collect::<Vec<_>>()
        .await?;
    let direct = direct_start.elapsed();
    let (api_hwm, api_rss) = apiserver.rss_kib();
    drop(apiserver);

    let rate = |d: Duration| pods as f64 / d.as_secs_f64();
    let result = serde_json::json!({
        "nodes": nodes,
        "pods": pods,
        "parallel_bindings": parallel_bindings(),
        "end_to_end_seconds": end_to_end.as_secs_f64(),
        "end_to_end_pods_per_second": rate(end_to_end),
        "steady_pods_per_second": rate(steady),
        "scheduler_startup_seconds": (first - scheduler_start).as_secs_f64(),
        "scheduler_peak_rss_mib": sched_hwm as f64 / 1024.0,
        "scheduler_rss_at_end_mib": sched_rss as f64 / 1024.0,
        "apiserver_peak_rss_mib": api_hwm as f64 / 1024.0,
        "apiserver_rss_at_end_mib": api_rss as f64 / 1024.0,
        "peer_direct_bindings_pods_per_second": rate(direct),
        "scheduler_vs_direct_binding_ratio": rate(steady) / rate(direct),
        "reference_kube_scheduler_perf_pods_per_second": 680,
        "notes": "end to end = scheduler process start to last binding seen by the driver's watch (includes connect and initial list); steady = first to last binding; RSS from /proc/<pid>/status of the separate scheduler and apiserver processes; peer = the driver POSTing pods/binding directly with the same concurrency; the 680 pods/s figure is the issue's kube-scheduler scheduler_perf reference, not measured here"
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = manifest.parent().unwrap_or(manifest).join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(
        out_dir.join("scheduler.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    println!("written to {}", out_dir.join("scheduler.json").display());
    Ok(())
}
