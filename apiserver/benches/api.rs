//! API-level benchmark: the whole request path (HTTPS, auth, decode, defaulting,
//! validation, managedFields, durable group-committed write) through the `kube` crate
//! against an in-process server on 127.0.0.1:0.
//!
//! - durable creates/s (ConfigMaps) with 1, 16 and 64 concurrent clients;
//! - list latency of 10k pods (full list, and one 500-item page);
//! - watch fan-out: events/s delivered to 100 watchers while 64 writers create objects.
//!
//! Prints a table and writes the figures to `target/bench/api.json`.
//! `API_BENCH_SECS` sets the seconds per create level (default 5). The store-level peer
//! comparison with etcd is the `store` bench.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const PODS: usize = 10_000;
const WATCHERS: usize = 100;
const WATCH_EVENTS: usize = 2_000;

async fn client(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kc = Kubeconfig::read_from(path)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
}

fn cm(name: String) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

fn pod(name: String) -> Pod {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}),
    )
    .unwrap()
}

/// Creates ConfigMaps from `clients` concurrent tasks for `secs`; returns creates/s.
async fn creates(clients: &[kube::Client], n: usize, secs: u64, tag: &str) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|w| {
            let api: Api<ConfigMap> =
                Api::namespaced(clients[w % clients.len()].clone(), "default");
            let (done, tag) = (done.clone(), tag.to_string());
            tokio::spawn(async move {
                let mut i = 0;
                while Instant::now() < deadline {
                    api.create(&PostParams::default(), &cm(format!("{tag}-{w}-{i}")))
                        .await
                        .expect("create");
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn fill_pods(clients: &[kube::Client]) {
    let per = PODS / 64;
    let tasks: Vec<_> = (0..64)
        .map(|w| {
            let api: Api<Pod> = Api::namespaced(clients[w % clients.len()].clone(), "default");
            tokio::spawn(async move {
                for i in 0..per {
                    api.create(&PostParams::default(), &pod(format!("p-{w}-{i}")))
                        .await
                        .expect("create pod");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

async fn list_ms(api: &Api<Pod>, lp: &ListParams) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let l = api.list(lp).await.expect("list");
        assert!(!l.items.is_empty());
        best = best.min(t.elapsed().as_secs_f64() * 1000.0);
    }
    best
}

/// WATCHERS watches, then WATCH_EVENTS creates by 64 writers; events/s delivered.
async fn fan_out(clients: &[kube::Client]) -> f64 {
    let api: Api<ConfigMap> = Api::namespaced(clients[0].clone(), "default");
    let rv = api.list(&ListParams::default().limit(1)).await.unwrap();
    let rv = rv.metadata.resource_version.unwrap();
    let delivered = Arc::new(AtomicU64::new(0));
    let mut watchers = Vec::new();
    for w in 0..WATCHERS {
        let api: Api<ConfigMap> = Api::namespaced(clients[w % clients.len()].clone(), "default");
        let wp = WatchParams::default().labels("fan=out");
        let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
        let delivered = delivered.clone();
        watchers.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < WATCH_EVENTS {
                match stream.next().await {
                    Some(Ok(WatchEvent::Added(_))) => seen += 1,
                    Some(Ok(_)) => {}
                    other => panic!("watch ended early: {other:?}"),
                }
            }
            delivered.fetch_add(seen as u64, Ordering::Relaxed);
        }));
    }
    let start = Instant::now();
    let per = WATCH_EVENTS / 64;
    let writers: Vec<_> = (0..64)
        .map(|w| {
            let api: Api<ConfigMap> =
                Api::namespaced(clients[w % clients.len()].clone(), "default");
            tokio::spawn(async move {
                for i in 0..per {
                    let mut c = cm(format!("fan-{w}-{i}"));
                    c.metadata.labels = Some([("fan".to_string(), "out".to_string())].into());
                    api.create(&PostParams::default(), &c).await.unwrap();
                }
            })
        })
        .collect();
    for t in writers {
        t.await.unwrap();
    }
    let remaining = WATCH_EVENTS - per * 64;
    for i in 0..remaining {
        let mut c = cm(format!("fan-rest-{i}"));
        c.metadata.labels = Some([("fan".to_string(), "out".to_string())].into());
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    for w in watchers {
        w.await.unwrap();
    }
    delivered.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("API_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let config = minik8s_apiserver::Config::new(dir.path().into(), "127.0.0.1:0".parse()?);
    let running = minik8s_apiserver::start(config, shutdown.clone()).await?;
    // One client (connection pool) per 8 concurrent callers.
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(client(&running.kubeconfig).await?);
    }
    let mut create_rates = serde_json::Map::new();
    for n in [1usize, 16, 64] {
        let rate = creates(&clients, n, secs, &format!("c{n}")).await;
        println!("api creates, {n:>2} clients: {rate:>8.0} durable creates/s");
        create_rates.insert(n.to_string(), json!(rate));
    }
    fill_pods(&clients).await;
    let pods: Api<Pod> = Api::namespaced(clients[0].clone(), "default");
    let full = list_ms(&pods, &ListParams::default()).await;
    let page = list_ms(&pods, &ListParams::default().limit(500)).await;
    println!("list {PODS} pods: full {full:.1} ms, first 500-page {page:.1} ms (best of 5)");
    let fan = fan_out(&clients).await;
    println!("watch fan-out: {fan:.0} events/s to {WATCHERS} watchers");

    let report = json!({
        "creates_per_sec_by_clients": create_rates,
        "list_10k_pods_ms": {"full": full, "page_500": page},
        "watch_fan_out_events_per_sec": fan,
        "watchers": WATCHERS,
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("api.json"), serde_json::to_vec_pretty(&report)?)?;
    println!("wrote {}", out.join("api.json").display());
    shutdown.cancel();
    running.handle.await??;
    Ok(())
}
