//! The nodelet's pod network loop against a real API server: the CNI conf list follows the
//! Node's podCIDR, and host-gw routes to the other nodes' podCIDRs appear in (and vanish from)
//! a network namespace made by this test. Run as root.

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use minik8s_nodelet::network::{routes, CniConf, Network};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A network namespace with an "uplink" 172.31.200.1/24 (a veth pair, both ends inside), so
/// other nodes' InternalIPs on that subnet are valid gateways. Deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("mk8snodelet-{}-routes", std::process::id());
        let ns = Netns(name);
        ns.cmd(&["ip", "netns", "add", &ns.0]);
        for args in [
            vec![
                "link", "add", "ext0", "type", "veth", "peer", "name", "ext1",
            ],
            vec!["addr", "add", "172.31.200.1/24", "dev", "ext0"],
            vec!["link", "set", "ext0", "up"],
            vec!["link", "set", "ext1", "up"],
        ] {
            let mut all = vec!["ip", "-n", &ns.0];
            all.extend(args);
            ns.cmd(&all);
        }
        ns
    }

    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn routes(&self) -> String {
        self.cmd(&[
            "ip",
            "-n",
            &self.0,
            "-4",
            "route",
            "show",
            "proto",
            routes::PROTO,
        ])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn node(name: &str, cidr: &str, ip: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]}
    }))
    .unwrap()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what} not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cni_conf_follows_pod_cidr_and_routes_follow_other_nodes() {
    let scenario = async {
        let dir = tempfile::tempdir().unwrap();
        let shutdown = CancellationToken::new();
        let _stop = shutdown.clone().drop_guard();
        let config =
            minik8s_apiserver::Config::new(dir.path().join("api"), "127.0.0.1:0".parse().unwrap());
        let running = minik8s_apiserver::start(config, shutdown.clone())
            .await
            .unwrap();
        let kc = kube::config::Kubeconfig::read_from(&running.kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = Client::try_from(cfg).unwrap();
        let nodes: Api<Node> = Api::all(client.clone());
        let pp = PostParams::default();
        nodes
            .create(&pp, &node("own", "10.244.1.0/24", "172.31.200.1"))
            .await
            .unwrap();
        nodes
            .create(&pp, &node("b", "10.244.2.0/24", "172.31.200.2"))
            .await
            .unwrap();
        nodes
            .create(&pp, &node("c", "10.244.3.0/24", "172.31.200.3"))
            .await
            .unwrap();

        let ns = Netns::new();
        let cni = CniConf {
            conf_dir: dir.path().join("net.d"),
            bridge: "mk8s0".into(),
            ipam_dir: dir.path().join("ipam"),
        };
        let conf_path = cni.path();
        let network = Network {
            node_name: "own".into(),
            cni,
            ip: routes::Ip {
                netns: Some(ns.0.clone()),
            },
        };
        tokio::spawn(network.run(client.clone(), shutdown.clone()));

        wait_for("routes to b and c", Duration::from_secs(5), || {
            let r = ns.routes();
            r.contains("10.244.2.0/24 via 172.31.200.2")
                && r.contains("10.244.3.0/24 via 172.31.200.3")
        })
        .await;
        assert!(
            !ns.routes().contains("10.244.1.0/24"),
            "no route to our own pods"
        );
        let conf: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&conf_path).unwrap()).unwrap();
        let range = &conf["plugins"][0]["ipam"]["ranges"][0][0];
        assert_eq!(range["subnet"], "10.244.1.0/24");
        assert_eq!(range["gateway"], "10.244.1.1");

        nodes.delete("c", &DeleteParams::default()).await.unwrap();
        wait_for(
            "route to deleted node c removed",
            Duration::from_secs(2),
            || !ns.routes().contains("10.244.3.0/24"),
        )
        .await;
        assert!(ns.routes().contains("10.244.2.0/24 via 172.31.200.2"));
    };
    tokio::time::timeout(Duration::from_secs(60), scenario)
        .await
        .expect("network loop scenario hung: routes or conf never converged");
}
