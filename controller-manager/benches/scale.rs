//! Controller-manager scale through the real API server, in one run: 1,000 Deployments of
//! 10 replicas each (10,000 pods) created at once.
//!
//! Three processes, so that each RSS is its own: this driver (creates the Deployments,
//! watches the ReplicaSets), an API server child and a controller-manager child (this binary
//! re-executed with `--child-apiserver DIR` / `--child-controller-manager KUBECONFIG`, every
//! controller enabled). Reported: seconds from the first Deployment create until every
//! ReplicaSet reports `status.replicas` equal to its desired count (all its pods created),
//! and the peak RSS (VmHWM) of the controller-manager and of the API server. The peer
//! measured in the same run: the driver creating as many pods directly with the
//! controller-manager's concurrency ceiling in mind (64 in flight), the API server's own
//! create rate for the same pod template.
//!
//! Run: `cargo bench -p minik8s-controller-manager --bench scale` (figures printed and
//! written to `target/bench/controller-manager.json`). Override sizes with DEPLOYMENTS=…
//! REPLICAS=…, and run only some controllers with CONTROLLERS=replicaset,deployment (to see
//! what each costs in memory).

#[path = "../../scheduler/benches/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::Api;
use support::*;

/// Concurrent creates by the driver.
const CONCURRENCY: usize = 64;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.get(1).map(String::as_str) {
        Some("--child-apiserver") => rt.block_on(child_apiserver(PathBuf::from(&args[2]))),
        Some("--child-controller-manager") => {
            rt.block_on(child_controller_manager(PathBuf::from(&args[2])))
        }
        _ => rt.block_on(driver()),
    }
}

async fn child_controller_manager(kubeconfig: PathBuf) -> anyhow::Result<()> {
    let shutdown = stop_on_stdin_close();
    let mut config = minik8s_controller_manager::Config::new(kubeconfig);
    if let Ok(only) = std::env::var("CONTROLLERS") {
        config
            .controllers
            .retain(|c| only.split(',').any(|o| o == *c));
    }
    minik8s_controller_manager::run(config, shutdown).await?;
    Ok(())
}

fn labels(app: &str) -> std::collections::BTreeMap<String, String> {
    [("app".to_string(), app.to_string())].into()
}

fn pod_spec() -> PodSpec {
    PodSpec {
        containers: vec![Container {
            name: "app".into(),
            image: Some("busybox".into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn deployment(i: usize, replicas: i32) -> Deployment {
    let name = format!("app-{i:04}");
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&name)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&name)),
                    ..Default::default()
                }),
                spec: Some(pod_spec()),
            },
            ..Default::default()
        },
        status: None,
    }
}

async fn create_all<K, I>(api: &Api<K>, objects: I) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    I: IntoIterator<Item = K>,
{
    futures::stream::iter(objects)
        .map(|o| async move { api.create(&PostParams::default(), &o).await })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Watches ReplicaSets from `rv` until `count` of them report all `replicas` created.
async fn wait_created(
    api: Api<ReplicaSet>,
    rv: String,
    count: usize,
    replicas: i32,
) -> anyhow::Result<Instant> {
    let mut done = HashSet::new();
    let mut rv = rv;
    loop {
        let stream = api.watch(&WatchParams::default().timeout(290), &rv).await?;
        futures::pin_mut!(stream);
        while let Some(event) = stream.try_next().await? {
            let rs = match event {
                WatchEvent::Added(r) | WatchEvent::Modified(r) => r,
                WatchEvent::Error(e) => anyhow::bail!("watch error: {e:?}"),
                _ => continue,
            };
            if let Some(v) = rs.metadata.resource_version.clone() {
                rv = v;
            }
            let created = rs.status.as_ref().map(|s| s.replicas).unwrap_or(0);
            let name = rs.metadata.name.clone().unwrap_or_default();
            if created >= replicas && done.insert(name) && done.len() == count {
                return Ok(Instant::now());
            }
        }
    }
}

async fn driver() -> anyhow::Result<()> {
    let deployments = env_usize("DEPLOYMENTS", 1000);
    let replicas = env_usize("REPLICAS", 10) as i32;
    let pods = deployments * replicas as usize;
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("apiserver");
    let (apiserver, mut out) =
        ChildProcess::spawn(&["--child-apiserver", data_dir.to_str().unwrap_or_default()])?;
    let mut line = String::new();
    out.read_line(&mut line)?;
    let kubeconfig = PathBuf::from(line.trim());
    let client = client_for(&kubeconfig).await?;

    let (manager, _) = ChildProcess::spawn(&[
        "--child-controller-manager",
        kubeconfig.to_str().unwrap_or_default(),
    ])?;
    // Let it connect and finish its (empty) initial lists, so the figure is the work.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_hwm, _) = manager.rss_kib();

    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let rv = rs_api
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let watch = tokio::spawn(wait_created(rs_api, rv, deployments, replicas));
    let started = Instant::now();
    let deploy_api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    create_all(
        &deploy_api,
        (0..deployments).map(|i| deployment(i, replicas)),
    )
    .await?;
    let created_in = started.elapsed();
    println!("created {deployments} deployments in {created_in:.1?}");
    let done = watch.await??;
    let elapsed = done - started;
    let (cm_hwm, cm_rss) = manager.rss_kib();
    drop(manager);

    // Peer: the same server creating as many pods posted directly, same concurrency.
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let direct = Namespace {
        metadata: ObjectMeta {
            name: Some("direct".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    ns_api.create(&PostParams::default(), &direct).await?;
    let direct_api: Api<Pod> = Api::namespaced(client.clone(), "direct");
    let direct_start = Instant::now();
    create_all(
        &direct_api,
        (0..pods).map(|i| Pod {
            metadata: ObjectMeta {
                name: Some(format!("pod-{i:05}")),
                labels: Some(labels("direct")),
                ..Default::default()
            },
            spec: Some(pod_spec()),
            ..Default::default()
        }),
    )
    .await?;
    let direct_elapsed = direct_start.elapsed();
    let (api_hwm, api_rss) = apiserver.rss_kib();
    drop(apiserver);

    let mib = |kib: u64| kib as f64 / 1024.0;
    let result = serde_json::json!({
        "deployments": deployments,
        "replicas": replicas,
        "pods": pods,
        "seconds_until_all_replicasets_created_their_pods": elapsed.as_secs_f64(),
        "pods_created_per_second": pods as f64 / elapsed.as_secs_f64(),
        "seconds_to_post_the_deployments": created_in.as_secs_f64(),
        "controller_manager_peak_rss_mib": mib(cm_hwm),
        "controller_manager_rss_at_end_mib": mib(cm_rss),
        "controller_manager_idle_peak_rss_mib": mib(idle_hwm),
        "apiserver_peak_rss_mib": mib(api_hwm),
        "apiserver_rss_at_end_mib": mib(api_rss),
        "peer_direct_pod_creates_seconds": direct_elapsed.as_secs_f64(),
        "peer_direct_pods_per_second": pods as f64 / direct_elapsed.as_secs_f64(),
        "target_seconds": 20,
        "target_rss_mib": 100,
        "notes": "time = first Deployment POST to the driver's watch seeing the last ReplicaSet with status.replicas == spec.replicas; every controller runs (replicaset, deployment, garbagecollector, nodelifecycle, endpoint, namespace); RSS from /proc/<pid>/status of the separate controller-manager and apiserver processes; peer = the driver POSTing the same number of pods directly with the same concurrency (64)"
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = manifest.parent().unwrap_or(manifest).join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let path = out_dir.join("controller-manager.json");
    std::fs::write(&path, serde_json::to_string_pretty(&result)?)?;
    println!("written to {}", path.display());
    Ok(())
}
