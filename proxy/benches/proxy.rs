//! Service proxy benchmark (run as root: `cargo bench -p minik8s-proxy --bench proxy`).
//!
//! 1. Rule sync time for 1,000 Services × 10 endpoints, in a test-made network namespace:
//!    joining the API objects, rendering, and the first full write of the table; a full
//!    replacement of the loaded table; and an incremental update after one endpoint change.
//! 2. Requests per second to a busybox httpd pod, through a ClusterIP (DNAT by the table, the
//!    1,000 Services still loaded) versus straight to the pod IP, in the same run, alternating
//!    rounds so drift hits both equally. The clients are other pods on the node's bridge. Each request is a new TCP connection (HTTP/1.0), so
//!    every one pays the NAT's per-connection cost.
//!
//! Figures are printed and written to target/bench/proxy.json.

#[path = "../tests/support/netns.rs"]
mod netns;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use minik8s_proxy::model;
use minik8s_proxy::nft::{render, script, Table};
use netns::{http_get, NetnsThread, Node, HTTP_PORT};
use serde_json::json;

const SERVICES: usize = 1000;
const ENDPOINTS: usize = 10;
/// Length of one load round, per target.
const ROUND: Duration = Duration::from_secs(2);
const ROUNDS: usize = 5;
/// Concurrent client connections (2 cores on the reference machine).
const CLIENTS: usize = 4;

fn service(i: usize) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": format!("svc-{i}"), "namespace": "bench"},
        "spec": {"clusterIP": format!("10.100.{}.{}", i / 250, i % 250 + 1),
                 "ports": [{"name": "http", "port": 80}]}
    }))
    .unwrap()
}

fn slice(i: usize, shift: usize) -> EndpointSlice {
    let eps: Vec<_> = (0..ENDPOINTS)
        .map(|e| {
            let n = i * ENDPOINTS + e + shift;
            json!({"addresses": [format!("10.245.{}.{}", n / 250, n % 250 + 1)]})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("svc-{i}"), "namespace": "bench",
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
    .unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Requests per second against `addr` from inside the client's namespace for one round.
fn rate(client: &NetnsThread, addr: SocketAddr) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (done, failed, stop) = (done.clone(), failed.clone(), stop.clone());
            let ns = NetnsThread(client.0.clone());
            std::thread::spawn(move || {
                ns.run(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match http_get(addr) {
                            Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(ROUND);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let (ok, failures) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    // A rare timeout under a loaded machine is reported, not fatal; a broken path is.
    assert!(
        failures * 100 <= ok,
        "{failures} of {} requests to {addr} failed",
        ok + failures
    );
    if failures > 0 {
        println!(
            "  ({failures} of {} requests to {addr} failed)",
            ok + failures
        );
    }
    ok as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // Pod 0 serves; pods 1 and 2 are the clients (pods are what reach Services), one per mode:
    // sharing one would make each mode's new connections clash in conntrack with the other's
    // TIME_WAIT entries (same reply tuple pod0:8080 → client:port), a cost of the benchmark,
    // not of either path.
    let node = Node::new(9, 3);
    let pod = node.pods[0].ip;
    let table_name = format!("minik8s-bench-{}", std::process::id());
    let mut table = Table::new(table_name.clone(), Some(node.ns.path()));
    let opts = render::Options {
        cluster_cidr: Some("10.244.0.0/16".into()),
        dns: None,
    };

    // The measured Service: its ClusterIP leads to the one pod that is also hit directly.
    let vip = Ipv4Addr::new(10, 96, 0, 80);
    let mut services: Vec<Service> = (0..SERVICES).map(service).collect();
    let mut slices: Vec<EndpointSlice> = (0..SERVICES).map(|i| slice(i, 0)).collect();
    services.push(
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "bench"},
            "spec": {"clusterIP": vip.to_string(), "ports": [{"name": "http", "port": 80}]}
        }))
        .unwrap(),
    );
    slices.push(
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "bench",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [pod.to_string()]}],
            "ports": [{"name": "http", "port": HTTP_PORT, "protocol": "TCP"}]
        }))
        .unwrap(),
    );

    let t = Instant::now();
    let snapshot = model::build(&services, &slices);
    let build = t.elapsed();
    let t = Instant::now();
    let rs = render::ruleset(&snapshot, &opts);
    let render_time = t.elapsed();
    let chains = rs.chains.len();
    let t = Instant::now();
    table.sync(rs.clone()).expect("first full write");
    let first_write = t.elapsed();

    // A full replacement of the loaded table (what a restart or a failed update costs).
    let full_text = script::full(&table_name, &rs);
    let t = Instant::now();
    minik8s_proxy::nft::run(&table_name, Some(&node.ns.path()), &full_text).expect("full rewrite");
    let full_rewrite = t.elapsed();

    // One Service's endpoints change: join + render + incremental transaction.
    slices[0] = slice(0, SERVICES * ENDPOINTS + 7);
    let t = Instant::now();
    let snapshot = model::build(&services, &slices);
    let rs2 = render::ruleset(&snapshot, &opts);
    let update_text_len = script::update(&table_name, &rs, &rs2).lines().count();
    table.sync(rs2).expect("incremental update");
    let incremental = t.elapsed();

    let full_resync = build + render_time + full_rewrite;
    println!("rules: {SERVICES} services x {ENDPOINTS} endpoints = {chains} chains");
    println!(
        "  join {:.1} ms, render {:.1} ms, first write {:.1} ms, full rewrite {:.1} ms",
        ms(build),
        ms(render_time),
        ms(first_write),
        ms(full_rewrite)
    );
    println!(
        "  full resync (join + render + rewrite) {:.1} ms (target <= 1000 ms)",
        ms(full_resync)
    );
    println!(
        "  one endpoint change: {:.1} ms ({update_text_len} nft commands)",
        ms(incremental)
    );

    // Throughput: ClusterIP vs pod IP, alternating rounds.
    let ns = NetnsThread(node.pods[1].ns.path());
    let ns_vip = NetnsThread(node.pods[2].ns.path());
    let direct_addr = SocketAddr::from((pod, HTTP_PORT));
    let vip_addr = SocketAddr::from((vip, 80));
    assert!(
        ns.run(move || http_get(vip_addr)).is_ok(),
        "ClusterIP answers"
    );
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        direct.push(rate(&ns, direct_addr));
        through.push(rate(&ns_vip, vip_addr));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (d, c) = (mean(&direct), mean(&through));
    println!("requests/s (HTTP/1.0, {CLIENTS} clients, {ROUNDS}x{ROUND:?} each):");
    println!(
        "  direct to pod IP {d:.0}, through ClusterIP {c:.0}, ratio {:.3} (target >= 0.9)",
        c / d
    );

    table.delete().expect("removing the bench table");
    let out = json!({
        "services": SERVICES,
        "endpoints_per_service": ENDPOINTS,
        "chains": chains,
        "join_ms": ms(build),
        "render_ms": ms(render_time),
        "first_write_ms": ms(first_write),
        "full_rewrite_ms": ms(full_rewrite),
        "full_resync_ms": ms(full_resync),
        "incremental_update_ms": ms(incremental),
        "incremental_update_commands": update_text_len,
        "rps_direct": d,
        "rps_cluster_ip": c,
        "rps_ratio": c / d,
        "rps_rounds_direct": direct,
        "rps_rounds_cluster_ip": through,
        "clients": CLIENTS,
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("wrote {}", path.display());
}
