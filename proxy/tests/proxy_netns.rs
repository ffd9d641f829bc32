//! The proxy against a real API server and a test-made node: a network namespace with a bridge
//! and busybox httpd "pods" (see support/netns.rs). The proxy writes its table inside the node
//! namespace (`Config::netns`), where its DNS also listens. Run as root.

mod support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use support::cluster::{within, Apiserver};
use support::netns::{http_get, udp_ask, Netns, NetnsThread, Node, UdpEcho, HTTP_PORT};
use tokio_util::sync::CancellationToken;

fn slice(svc: &str, ips: &[Ipv4Addr]) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": svc, "namespace": "default",
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": ips.iter().map(|ip| json!({
            "addresses": [ip.to_string()], "conditions": {"ready": true}
        })).collect::<Vec<_>>(),
        "ports": [{"name": "http", "port": HTTP_PORT, "protocol": "TCP"},
                  {"name": "echo", "port": UDP_PORT, "protocol": "UDP"}],
    }))
    .unwrap()
}

const UDP_PORT: u16 = 9000;

async fn create_service(client: &Client, svc: serde_json::Value) -> Service {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(svc).unwrap();
    api.create(&PostParams::default(), &svc)
        .await
        .expect("creating the Service")
}

async fn set_slice(client: &Client, svc: &str, ips: &[Ipv4Addr]) {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let params = PatchParams::apply("proxy-test").force();
    api.patch(svc, &params, &Patch::Apply(slice(svc, ips)))
        .await
        .expect("writing the EndpointSlice");
}

/// `n` GETs to `addr` from inside `ns`: who answered how often (failures under "error").
async fn hits(ns: &Netns, addr: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let path = ns.path();
    tokio::task::spawn_blocking(move || {
        let ns = NetnsThread(path);
        ns.run(move || {
            let mut out = BTreeMap::new();
            for _ in 0..n {
                let who = http_get(addr).unwrap_or_else(|e| format!("error: {e}"));
                *out.entry(who).or_insert(0) += 1;
            }
            out
        })
    })
    .await
    .unwrap()
}

fn proxy_config(kubeconfig: &std::path::Path, node: &Node) -> minik8s_proxy::Config {
    let mut config = minik8s_proxy::Config::new(kubeconfig.to_path_buf(), &node.ns.name);
    config.netns = Some(node.ns.path());
    config.dns_bind = Some("0.0.0.0:10053".parse().unwrap());
    config
}

fn table_exists(node: &Node, table: &str) -> bool {
    node.ns
        .exec(&["nft", "list", "table", "ip", table])
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ip_node_port_hairpin_dns_and_endpoint_changes() {
    within("the proxy end-to-end scenario (a hang means rules never converged)", 90, async {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("minik8s_proxy=debug")
            .try_init();
        let api = Apiserver::start().await;
        let node = tokio::task::spawn_blocking(|| Node::new(7, 3)).await.unwrap();
        let (p0, p1, p2) = (node.pods[0].ip, node.pods[1].ip, node.pods[2].ip);
        let svc = create_service(&api.client, json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": HTTP_PORT},
                               {"name": "echo", "port": 53, "protocol": "UDP", "targetPort": UDP_PORT}]}
        })).await;
        let spec = svc.spec.unwrap();
        let cluster_ip: Ipv4Addr = spec.cluster_ip.unwrap().parse().unwrap();
        let node_port = spec.ports.unwrap()[0].node_port.unwrap() as u16;
        set_slice(&api.client, "web", &[p0, p1]).await;
        let sticky = create_service(&api.client, json!({
            "metadata": {"name": "sticky", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "sessionAffinity": "ClientIP",
                     "ports": [{"name": "http", "port": 80, "targetPort": HTTP_PORT}]}
        })).await;
        let sticky_ip: Ipv4Addr = sticky.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
        set_slice(&api.client, "sticky", &[p0, p1, p2]).await;

        let shutdown = CancellationToken::new();
        let config = proxy_config(&api.kubeconfig, &node);
        let table = config.table.clone();
        let client = api.client.clone();
        let running = minik8s_proxy::start(client, config, shutdown.clone()).await.expect("proxy starts");
        let vip = SocketAddr::from((cluster_ip, 80));

        // Converges: every request through the ClusterIP answered, from both endpoints.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = hits(&node.ns, vip, 1).await;
            if seen.keys().all(|k| !k.starts_with("error")) {
                break;
            }
            if Instant::now() > deadline {
                let rules = node.ns.exec(&["nft", "list", "ruleset"]);
                panic!("ClusterIP never answered: {seen:?}\n{}", String::from_utf8_lossy(&rules.stdout));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let from_node = hits(&node.ns, vip, 60).await;
        assert_eq!(from_node.keys().collect::<Vec<_>>(), ["pod-0", "pod-1"], "node → ClusterIP: {from_node:?}");
        let from_pod = hits(&node.pods[2].ns, vip, 60).await;
        assert_eq!(from_pod.keys().collect::<Vec<_>>(), ["pod-0", "pod-1"], "pod → ClusterIP: {from_pod:?}");
        let hairpin = hits(&node.pods[0].ns, vip, 60).await;
        assert_eq!(hairpin.keys().collect::<Vec<_>>(), ["pod-0", "pod-1"], "pod → own Service: {hairpin:?}");

        // NodePort: on the node IP from the node, and on the gateway from a pod.
        let np = hits(&node.ns, SocketAddr::from((node.node_ip, node_port)), 40).await;
        assert_eq!(np.keys().collect::<Vec<_>>(), ["pod-0", "pod-1"], "NodePort: {np:?}");
        let np = hits(&node.pods[2].ns, SocketAddr::from((node.gateway, node_port)), 10).await;
        assert!(np.keys().all(|k| k.starts_with("pod-")), "NodePort from a pod: {np:?}");

        // UDP through the ClusterIP, spread over both endpoints (each datagram from a new port).
        let echoes: Vec<UdpEcho> = node.pods[..2]
            .iter()
            .map(|p| UdpEcho::start(&p.ns, UDP_PORT, &p.name))
            .collect();
        let path = node.pods[2].ns.path();
        let udp_vip = SocketAddr::from((cluster_ip, 53));
        let udp: BTreeMap<String, usize> = tokio::task::spawn_blocking(move || {
            NetnsThread(path).run(move || {
                let mut out = BTreeMap::new();
                for _ in 0..30 {
                    let who = udp_ask(udp_vip).unwrap_or_else(|e| format!("error: {e}"));
                    *out.entry(who).or_insert(0) += 1;
                }
                out
            })
        })
        .await
        .unwrap();
        assert_eq!(udp.keys().collect::<Vec<_>>(), ["pod-0", "pod-1"], "UDP ClusterIP: {udp:?}");
        drop(echoes);

        // ClientIP affinity: one client keeps its endpoint.
        let sticky_hits = hits(&node.pods[2].ns, SocketAddr::from((sticky_ip, 80)), 30).await;
        assert_eq!(sticky_hits.len(), 1, "affinity spread a client: {sticky_hits:?}");

        // Cluster DNS through the redirected cluster DNS IP, from a pod.
        let out = node.pods[2].ns.exec(&["busybox", "nslookup", "web.default.svc.cluster.local", "10.96.0.10"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&cluster_ip.to_string()), "nslookup via 10.96.0.10: {text} {out:?}");

        // An endpoint removed is out of rotation within a second (issue #9: "updates within a
        // second of an Endpoints change"; measured 0.1-0.35 s on a loaded 2-core machine).
        set_slice(&api.client, "web", &[p0]).await;
        let removed = Instant::now();
        loop {
            let seen = hits(&node.ns, vip, 20).await;
            if seen.len() == 1 && seen.contains_key("pod-0") {
                break;
            }
            assert!(removed.elapsed() < Duration::from_secs(1), "pod-1 still served: {seen:?}");
        }
        assert!(removed.elapsed() < Duration::from_secs(1), "removal took {:?}", removed.elapsed());

        // No endpoints: rejected at once (connection refused), not left to time out.
        set_slice(&api.client, "web", &[]).await;
        let since = Instant::now();
        loop {
            let path = node.ns.path();
            let err = tokio::task::spawn_blocking(move || NetnsThread(path).run(move || http_get(vip).err()))
                .await
                .unwrap();
            if let Some(e) = err {
                if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    break;
                }
            }
            assert!(since.elapsed() < Duration::from_secs(1), "Service without endpoints not rejected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Clean shutdown removes the table.
        assert!(table_exists(&node, &table));
        shutdown.cancel();
        running.task.await.unwrap().expect("proxy stops cleanly");
        assert!(!table_exists(&node, &table), "table {table} left behind");
    })
    .await;
}
