//! End to end (issue #9): cluster networking seen from a CLIENT POD of a real 3-node local
//! cluster (`minictl cluster up`: network-namespace nodes, real runtimes, CNI, nftables proxy
//! and cluster DNS). The client runs its requests inside its own container through the node
//! runtime's CRI ExecSync, as `kubectl exec` would: pod → pod across nodes, pod → Service by
//! ClusterIP, short name and FQDN (resolv.conf from the CRI DNSConfig), NodePorts on every node,
//! a deleted backend out of rotation within 2 s, and backends moved to another node.
//! One cluster serves every scenario to keep CI time down. Needs root and target/debug/minik8s.

mod cluster_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use cluster_support::*;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::DeleteParams;
use kube::Api;
use minik8s_runtime::cri::k8s_cri::v1 as cri;
use minik8s_runtime::cri::k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use minik8s_runtime::cri::tonic::transport::Channel;

const TEST_LIMIT: Duration = Duration::from_secs(300);
const REPLICAS: usize = 6;
/// Seconds one request from the client pod may take (a lost SYN is resent after 1 s).
const REQUEST_TIMEOUT: i64 = 3;
/// The client's node; the backends are moved away from it in the last scenario.
const CLIENT_NODE: &str = "node1";
/// Where the backends are moved to.
const TARGET_NODE: &str = "node3";

const CLIENT_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: default
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 1
  containers:
    - name: client
      image: busybox
      imagePullPolicy: IfNotPresent
      command: ["sleep", "3600"]
"#;

const NODEPORT_SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web-np
  namespace: default
spec:
  type: NodePort
  selector: {app: web}
  ports:
    - port: 80
      targetPort: 8080
"#;

/// The client pod's container, reached through its node runtime's CRI socket.
struct PodExec {
    runtime: RuntimeServiceClient<Channel>,
    container: String,
}

impl PodExec {
    /// Waits for the pod to run, then connects to the runtime of the node it runs on.
    async fn connect(c: &LocalCluster, pod: &str) -> PodExec {
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let (node, id) = wait_for(Duration::from_secs(60), "the client pod to run", || async {
            let p = pods.get(pod).await.ok()?;
            let node = p.spec.as_ref()?.node_name.clone()?;
            let status = p.status.as_ref()?.container_statuses.as_ref()?.first()?;
            status.state.as_ref()?.running.as_ref()?;
            let id = status
                .container_id
                .as_ref()?
                .split("://")
                .nth(1)?
                .to_string();
            Some((node, id))
        })
        .await;
        // The socket `cluster up` gives each node's runtime (cmd/cluster/node.rs).
        let socket = c.state.node_dir(&node).join("runtime.sock");
        let channel = minik8s_runtime::cri::connect(&socket)
            .await
            .expect("connect to the node runtime's CRI socket");
        PodExec {
            runtime: RuntimeServiceClient::new(channel),
            container: id,
        }
    }

    /// `sh -c SCRIPT` in the container, killed after `seconds`: (exit code, stdout).
    async fn sh(&mut self, script: &str, seconds: i64) -> (i32, String) {
        let reply = self
            .runtime
            .exec_sync(cri::ExecSyncRequest {
                container_id: self.container.clone(),
                cmd: vec!["sh".into(), "-c".into(), script.into()],
                timeout: seconds,
            })
            .await
            .expect("ExecSync in the client pod")
            .into_inner();
        (
            reply.exit_code,
            String::from_utf8_lossy(&reply.stdout).into_owned(),
        )
    }

    /// `n` GETs of `url` from the pod: who answered how often (failed requests count under
    /// "FAIL"). `timeout`, not wget's -T: Debian's busybox-static wget segfaults with -T.
    async fn hits(&mut self, url: &str, n: usize) -> BTreeMap<String, usize> {
        let get = format!("timeout {REQUEST_TIMEOUT} wget -q -O- {url} 2>/dev/null || echo FAIL");
        let script = format!("i=0; while [ $i -lt {n} ]; do {get}; i=$((i+1)); done");
        let (_, out) = self.sh(&script, n as i64 * REQUEST_TIMEOUT + 30).await;
        let mut seen = BTreeMap::new();
        for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
            *seen.entry(line.to_string()).or_insert(0) += 1;
        }
        seen
    }

    /// Polls single requests until `url` answers (the proxy may still be writing its rules).
    async fn until_answers(&mut self, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self.hits(url, 1).await;
            if !seen.contains_key("FAIL") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{url} never answered the client pod"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn node_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

/// Six ready web pods (Deployment available 6) spread over all three nodes.
async fn ready_spread(c: &LocalCluster) -> BTreeMap<String, Vec<Pod>> {
    let by_node = wait_for(Duration::from_secs(120), "6 ready web pods", || async {
        let m = c.ready_by_node().await;
        let ready = m.values().map(Vec::len).sum::<usize>() == REPLICAS;
        (ready && c.available().await == REPLICAS as i32).then_some(m)
    })
    .await;
    assert_eq!(
        by_node.len(),
        3,
        "replicas on every node: {:?}",
        by_node.keys()
    );
    by_node
}

/// Scenario 1: the client on node1 reaches every web pod on the other nodes by pod IP.
async fn pod_to_pod_across_nodes(client: &mut PodExec, by_node: &BTreeMap<String, Vec<Pod>>) {
    let remote = by_node.iter().filter(|(n, _)| n.as_str() != CLIENT_NODE);
    for (node, pods) in remote {
        for pod in pods {
            let url = format!("http://{}:8080/", pod_ip(pod));
            let (code, out) = client
                .sh(&format!("timeout {REQUEST_TIMEOUT} wget -q -O- {url}"), 30)
                .await;
            assert_eq!(
                (code, out.trim()),
                (0, pod_name(pod).as_str()),
                "client on {CLIENT_NODE} → pod {} on {node} at {url}",
                pod_name(pod)
            );
        }
    }
}

/// Scenario 2: over 100 requests each by ClusterIP, short name and FQDN, every request is
/// answered and every replica (on every node) answers.
async fn service_from_pod(client: &mut PodExec, cluster_ip: &str, want: &BTreeSet<String>) {
    let (_, resolv) = client.sh("cat /etc/resolv.conf", 30).await;
    assert!(
        resolv.contains("default.svc.cluster.local"),
        "ClusterFirst search path in the pod's resolv.conf:\n{resolv}"
    );
    for url in [
        format!("http://{cluster_ip}/"),
        "http://web/".to_string(),
        "http://web.default.svc.cluster.local/".to_string(),
    ] {
        client.until_answers(&url).await;
        let seen = client.hits(&url, 100).await;
        let names: BTreeSet<String> = seen.keys().cloned().collect();
        assert_eq!(
            &names, want,
            "answers to {url} from the client pod: {seen:?}"
        );
    }
}

/// Scenario 3: the NodePort answers on every node's IP, from the host (outside the cluster).
async fn nodeport_on_every_node(c: &LocalCluster, want: &BTreeSet<String>) {
    let services: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let port = wait_for(Duration::from_secs(30), "the NodePort", || async {
        let svc = services.get("web-np").await.ok()?;
        svc.spec?.ports?.first()?.node_port
    })
    .await;
    assert!((30000..=32767).contains(&port), "NodePort {port}");
    for node in &c.state.nodes {
        let url = format!("http://{}:{port}/", node.ip);
        let deadline = Instant::now() + Duration::from_secs(30);
        while host_get(&url).is_err() {
            assert!(Instant::now() < deadline, "{url} never answered");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for _ in 0..10 {
            let body = host_get(&url).unwrap_or_else(|e| panic!("{url} from the host: {e}"));
            assert!(
                want.contains(&body),
                "{url} answered {body:?}, not a web pod"
            );
        }
    }
}

/// GET from the host's own namespace (busybox wget, as the harness's node fetches).
fn host_get(url: &str) -> Result<String, String> {
    let out = Command::new("timeout")
        .args(["5", "busybox", "wget", "-q", "-O-", url])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Scenario 4: a deleted backend is out of rotation within 2 s: polled until it stops
/// answering, then, 2 s after the delete, 60 requests all succeed and none reaches it (its
/// httpd is gone, so a stale rule would show as a failed request too).
async fn deleted_backend_leaves_rotation(c: &LocalCluster, client: &mut PodExec, url: &str) {
    let by_node = c.ready_by_node().await;
    let victim = pod_name(&by_node.iter().find(|(n, _)| *n != CLIENT_NODE).unwrap().1[0]);
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let t0 = Instant::now();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .expect("delete a backend pod");
    let gone = loop {
        let seen = client.hits(url, 12).await;
        if !seen.contains_key(&victim) && !seen.contains_key("FAIL") {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{victim} still in rotation: {seen:?}"
        );
    };
    println!(
        "deleted backend {victim}: last seen, or failing, until {:.2}s",
        gone.as_secs_f64()
    );
    if let Some(rest) = Duration::from_secs(2).checked_sub(t0.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let seen = client.hits(url, 60).await;
    assert!(
        !seen.contains_key(&victim) && !seen.contains_key("FAIL"),
        "2 s after deleting {victim}: {seen:?}"
    );
}

/// Scenario 5: cordon node1 and node2 and delete their web pods: the replacements all run on
/// node3 and the client on node1 still reaches the Service, every answer from a node3 pod.
async fn backends_moved_to_another_node(c: &LocalCluster, client: &mut PodExec, urls: &[&str]) {
    let kubeconfig = c.kubeconfig();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for node in c.state.nodes.iter().filter(|n| n.name != TARGET_NODE) {
        minictl(&["--kubeconfig", &kubeconfig, "cordon", &node.name]);
    }
    for pod in c.live_pods().await {
        if node_of(&pod) != TARGET_NODE {
            pods.delete(&pod_name(&pod), &DeleteParams::default())
                .await
                .expect("delete a backend pod");
        }
    }
    let moved = wait_for(
        Duration::from_secs(90),
        "6 ready web pods on node3",
        || async {
            let m = c.ready_by_node().await;
            let all_there = m.len() == 1 && m.get(TARGET_NODE).map(Vec::len) == Some(REPLICAS);
            let live_elsewhere = c
                .live_pods()
                .await
                .iter()
                .any(|p| node_of(p) != TARGET_NODE);
            (all_there && !live_elsewhere && c.available().await == REPLICAS as i32).then_some(m)
        },
    )
    .await;
    let want: BTreeSet<String> = moved[TARGET_NODE].iter().map(pod_name).collect();
    for url in urls {
        only_these_answer(client, url, &want).await;
    }
}

/// Polls until only pods of `want` answer `url` (Endpoints follow readiness asynchronously),
/// then 100 requests must all be answered, by every pod of `want` and no other.
async fn only_these_answer(client: &mut PodExec, url: &str, want: &BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = client.hits(url, 12).await;
        if seen.keys().all(|name| want.contains(name)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the move, {url} from the client on {CLIENT_NODE}: {seen:?}, want {want:?}"
        );
    }
    let seen = client.hits(url, 100).await;
    let names: BTreeSet<String> = seen.keys().cloned().collect();
    assert_eq!(
        &names, want,
        "after the move, {url} from the client: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pod_reaches_pods_and_services_across_nodes() {
    tokio::time::timeout(TEST_LIMIT, async {
        let start = Instant::now();
        let c = LocalCluster::up("net-pods", 3, &[]).await;
        // `cluster up` returns once the nodes run, maybe before the last one is Ready; pods
        // created earlier would all go to the others.
        for node in &c.state.nodes {
            wait_for(Duration::from_secs(60), "every node Ready", || async {
                (c.node_ready(&node.name).await == Some(true)).then_some(())
            })
            .await;
        }
        c.apply(&web_deployment(REPLICAS as u32));
        c.apply(WEB_SERVICE);
        c.apply(NODEPORT_SERVICE);
        c.apply(CLIENT_POD);
        let by_node = ready_spread(&c).await;
        let mut client = PodExec::connect(&c, "client").await;
        let up = start.elapsed();

        pod_to_pod_across_nodes(&mut client, &by_node).await;
        let want: BTreeSet<String> = by_node.values().flatten().map(pod_name).collect();
        let cluster_ip = c.service_ip().await;
        assert!(!cluster_ip.is_empty(), "the web Service has a ClusterIP");
        service_from_pod(&mut client, &cluster_ip, &want).await;
        nodeport_on_every_node(&c, &want).await;
        let url = format!("http://{cluster_ip}/");
        deleted_backend_leaves_rotation(&c, &mut client, &url).await;
        backends_moved_to_another_node(&c, &mut client, &[&url, "http://web/"]).await;
        println!(
            "cluster networking: ready after {:.1}s, all scenarios after {:.1}s",
            up.as_secs_f64(),
            start.elapsed().as_secs_f64()
        );
    })
    .await
    .expect(
        "the cluster networking test hung: cluster up, pod start-up or a request never finished",
    );
}
