//! End to end (issue #10): `minictl cluster up` brings up real local clusters — the control
//! plane as host processes, each node a network namespace running its own agent (runtime, nodelet, proxy) —
//! and the tests drive them as users do: a Deployment spread over the nodes, a node killed or
//! cut off and healed, the API server restarted, kubectl. Each test has its own cluster name;
//! the guard runs `cluster down` on every path. Needs root and target/debug/minik8s
//! (scripts/test.sh builds it).

mod cluster_support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::Api;

/// The short failover settings of issue #10: NotReady after 4 s without a lease renewal,
/// evicted 2 s later.
const FAST_FAILOVER: &[&str] = &[
    "--node-monitor-grace-period",
    "4s",
    "--default-toleration-seconds",
    "2",
];

/// How long a test may take before it is called hung.
const TEST_LIMIT: Duration = Duration::from_secs(420);

async fn ready_six(c: &LocalCluster) -> std::collections::BTreeMap<String, Vec<Pod>> {
    wait_for(Duration::from_secs(120), "6 ready web pods", || async {
        let m = c.ready_by_node().await;
        (m.values().map(Vec::len).sum::<usize>() == 6 && c.available().await == 6).then_some(m)
    })
    .await
}

/// Every ready pod answers on its pod IP from inside its own node, with its own name.
async fn each_pod_answers(c: &LocalCluster) {
    for (node, pods) in c.ready_by_node().await {
        for pod in pods {
            let body = c.fetch_from_node(&node, &pod_ip(&pod));
            assert_eq!(
                body,
                Ok(pod_name(&pod)),
                "pod {} on {node} at {} does not answer",
                pod_name(&pod),
                pod_ip(&pod)
            );
        }
    }
}

/// Every ready pod answers on its pod IP from every node (host-gw routes between the nodes).
async fn each_pod_answers_from_every_node(c: &LocalCluster) {
    for pod in c.ready_by_node().await.values().flatten() {
        for node in &c.state.nodes {
            assert_eq!(
                c.fetch_from_node(&node.name, &pod_ip(pod)),
                Ok(pod_name(pod)),
                "pod {} at {} from {}",
                pod_name(pod),
                pod_ip(pod),
                node.name
            );
        }
    }
}

/// Requests to the Service's ClusterIP from the given nodes until every ready replica has
/// answered; each request must succeed.
async fn service_reaches_every_replica(c: &LocalCluster, from: &[String]) {
    let ip = wait_for(
        Duration::from_secs(30),
        "the Service's ClusterIP",
        || async { Some(c.service_ip().await).filter(|ip| !ip.is_empty() && ip != "None") },
    )
    .await;
    let want: BTreeSet<String> = c
        .ready_by_node()
        .await
        .values()
        .flatten()
        .map(pod_name)
        .collect();
    let mut seen = BTreeSet::new();
    for round in 0..60 {
        for node in from {
            match c.fetch_url_from_node(node, &format!("http://{ip}/")) {
                Ok(name) => {
                    seen.insert(name);
                }
                // The proxy may still be writing the Service's rules on the first rounds.
                Err(e) if round < 10 => {
                    eprintln!("service {ip} from {node}: {e:?} (retrying)");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => panic!("the Service {ip} failed from {node}: {e:?}"),
            }
        }
        if want.is_subset(&seen) {
            return;
        }
    }
    panic!("the Service {ip} reached only {seen:?} of {want:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_run_a_deployment_spread_and_every_pod_answers() {
    tokio::time::timeout(TEST_LIMIT, async {
        let c = LocalCluster::up("e2e-spread", 3, &[]).await;
        c.apply(&web_deployment(6));
        c.apply(WEB_SERVICE);
        let by_node = ready_six(&c).await;
        let nodes: BTreeSet<&String> = by_node.keys().collect();
        assert_eq!(
            nodes.len(),
            3,
            "6 replicas spread over the 3 nodes: {nodes:?}"
        );
        each_pod_answers(&c).await;
        each_pod_answers_from_every_node(&c).await;
        let all: Vec<String> = c.state.nodes.iter().map(|n| n.name.clone()).collect();
        service_reaches_every_replica(&c, &all).await;
        // One container per pod, each in its node's cgroup parent.
        for (node, pods) in &by_node {
            assert_eq!(c.httpd_on(node), pods.len(), "containers on {node}");
        }
    })
    .await
    .expect("the spread test hung: cluster up, scheduling or pod start-up never finished");
}

/// Kill a node and measure: NotReady, evicted, replaced, Deployment fully available again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_is_replaced_and_its_old_containers_go_when_it_returns() {
    tokio::time::timeout(TEST_LIMIT, async {
        let c = LocalCluster::up("e2e-kill", 3, FAST_FAILOVER).await;
        c.apply(&web_deployment(6));
        c.apply(WEB_SERVICE);
        let by_node = ready_six(&c).await;
        let (victim, lost) = by_node.iter().max_by_key(|(_, p)| p.len()).unwrap();
        let (victim, lost) = (victim.clone(), lost.len());
        let t0 = Instant::now();
        c.node_cmd("kill-node", &victim);
        wait_for(Duration::from_secs(30), "the killed node to be NotReady", || async {
            (c.node_ready(&victim).await == Some(false)).then_some(())
        })
        .await;
        let not_ready = t0.elapsed();
        // As on a machine that hung: the victim's containers are frozen, not ended.
        assert_eq!(
            freezer_state(&c.node(&victim).cgroup_parent).as_deref(),
            Some("FROZEN"),
            "the killed node's containers are not frozen"
        );
        recovered_elsewhere(&c, &victim).await;
        println!(
            "kill-node {victim} ({lost} pods): NotReady after {:.1}s, Deployment fully available on the other nodes after {:.1}s",
            not_ready.as_secs_f64(),
            t0.elapsed().as_secs_f64()
        );
        // Its containers were frozen, not ended: still there until the node returns.
        assert_eq!(c.httpd_on(&victim), lost, "frozen containers on {victim}");
        each_pod_answers(&c).await;
        // The Service answers from the surviving nodes, from every replica.
        let others: Vec<String> =
            c.state.nodes.iter().map(|n| n.name.clone()).filter(|n| *n != victim).collect();
        service_reaches_every_replica(&c, &others).await;

        c.node_cmd("restart-node", &victim);
        wait_for(Duration::from_secs(30), "the restarted node to be Ready", || async {
            (c.node_ready(&victim).await == Some(true)).then_some(())
        })
        .await;
        old_containers_removed(&c, &victim).await;
    })
    .await
    .expect("the kill-node test hung: eviction, rescheduling or the node's clean-up never finished");
}

/// Cut the node's network instead: same outcome, and after healing no pod runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_node_is_replaced_and_after_healing_no_pod_runs_twice() {
    tokio::time::timeout(TEST_LIMIT, async {
        let c = LocalCluster::up("e2e-part", 3, FAST_FAILOVER).await;
        c.apply(&web_deployment(6));
        let by_node = ready_six(&c).await;
        let victim = by_node.iter().max_by_key(|(_, p)| p.len()).unwrap().0.clone();
        let t0 = Instant::now();
        c.node_cmd("partition-node", &victim);
        wait_for(Duration::from_secs(30), "the cut-off node to be NotReady", || async {
            (c.node_ready(&victim).await == Some(false)).then_some(())
        })
        .await;
        recovered_elsewhere(&c, &victim).await;
        println!(
            "partition-node {victim}: Deployment fully available on the other nodes after {:.1}s",
            t0.elapsed().as_secs_f64()
        );
        c.node_cmd("heal-node", &victim);
        wait_for(Duration::from_secs(30), "the healed node to be Ready", || async {
            (c.node_ready(&victim).await == Some(true)).then_some(())
        })
        .await;
        old_containers_removed(&c, &victim).await;
    })
    .await
    .expect("the partition test hung: eviction, rescheduling or the healed node's clean-up never finished");
}

/// The freezer state of a node's cgroup parent: freezer.state of the cgroup-v1 freezer
/// hierarchy (THAWED, FREEZING, FROZEN), or on a cgroup-v2 host "FROZEN"/"THAWED" from the
/// `frozen` key of cgroup.events.
fn freezer_state(parent: &str) -> Option<String> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    if let Ok(s) = std::fs::read_to_string(root.join("freezer").join(parent).join("freezer.state"))
    {
        return Some(s.trim().to_string());
    }
    let events = std::fs::read_to_string(root.join(parent).join("cgroup.events")).ok()?;
    let frozen = events.lines().any(|l| l.trim() == "frozen 1");
    Some(if frozen { "FROZEN" } else { "THAWED" }.to_string())
}

/// No live pod left on `victim`, 6 ready elsewhere, Deployment available 6.
async fn recovered_elsewhere(c: &LocalCluster, victim: &str) {
    wait_for(
        Duration::from_secs(60),
        "6 available replicas off the failed node",
        || async {
            let live = c.live_pods().await;
            let on_victim = live
                .iter()
                .any(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(victim));
            let ready = live.iter().filter(|p| pod_ready(p)).count();
            (!on_victim && ready == 6 && c.available().await == 6).then_some(())
        },
    )
    .await;
}

/// The returned node removes the containers of its evicted pods (never restarting them), so
/// exactly one container per live pod runs cluster-wide.
async fn old_containers_removed(c: &LocalCluster, victim: &str) {
    let t = Instant::now();
    wait_for(
        Duration::from_secs(240),
        "the returned node to remove its old containers",
        || async { (c.httpd_on(victim) == 0).then_some(()) },
    )
    .await;
    println!(
        "{victim} removed its old containers {:.1}s after it returned",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(c.live_pods().await.len(), 6, "live pods");
    assert_eq!(c.httpd_total(), 6, "one container per pod cluster-wide");
    assert_eq!(c.available().await, 6);
}

fn kubectl(c: &LocalCluster, args: &[&str]) -> String {
    let out = std::process::Command::new("kubectl")
        .env("KUBECONFIG", c.kubeconfig())
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// kubectl drives the cluster (apply, get, logs, rollout status, scale, delete) across an API
/// server restart: a watch opened before the restart keeps delivering, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drives_the_cluster_across_an_apiserver_restart() {
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("kubectl not installed: the kubectl end-to-end test is skipped");
        return;
    }
    tokio::time::timeout(TEST_LIMIT, async {
        let c = LocalCluster::up("e2e-kubectl", 2, &[]).await;
        // A watch opened now must see the pods created after the restart.
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let watch = {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut events =
                    watcher(pods, watcher::Config::default().labels("app=web")).boxed();
                while let Some(ev) = events.next().await {
                    if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev {
                        seen.lock().unwrap().insert(pod_name(&p));
                    }
                }
            })
        };
        // The container says which pod it serves on stdout, for `kubectl logs`.
        let manifest = web_deployment(2).replace(
            "\"mkdir -p /www && ",
            "\"echo serving $(hostname) && mkdir -p /www && ",
        );
        assert!(
            manifest.contains("echo serving"),
            "the web command changed:\n{manifest}"
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), manifest).unwrap();
        let path = file.path().display().to_string();
        kubectl(&c, &["apply", "-f", &path]);
        kubectl(
            &c,
            &["rollout", "status", "deployment/web", "--timeout=120s"],
        );
        let listed = kubectl(&c, &["get", "pods", "-l", "app=web", "-o", "wide"]);
        assert_eq!(
            listed.matches("Running").count(),
            2,
            "kubectl get pods:\n{listed}"
        );
        // kubectl logs: API server -> the pod's nodelet -> the runtime's log file.
        let pod = pod_name(&c.live_pods().await[0]);
        let want = format!("serving {pod}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = std::process::Command::new("kubectl")
                .env("KUBECONFIG", c.kubeconfig())
                .args(["logs", &pod])
                .output()
                .expect("kubectl runs");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            if out.status.success() && text.contains(&want) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl logs {pod}, want {want:?}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let uid = kubectl(
            &c,
            &["get", "deployment", "web", "-o", "jsonpath={.metadata.uid}"],
        );

        minictl(&["cluster", "restart-apiserver", "--name", &c.name]);

        // Nothing lost: the same object (uid) is served by the new process.
        let after = kubectl(
            &c,
            &["get", "deployment", "web", "-o", "jsonpath={.metadata.uid}"],
        );
        assert_eq!(after, uid, "the Deployment survives the restart");
        // Controllers, scheduler and nodelets resumed their watches: a scale goes through.
        kubectl(&c, &["scale", "deployment/web", "--replicas=4"]);
        kubectl(
            &c,
            &["rollout", "status", "deployment/web", "--timeout=120s"],
        );
        let names: BTreeSet<String> = c.live_pods().await.iter().map(pod_name).collect();
        assert_eq!(names.len(), 4);
        wait_for(
            Duration::from_secs(30),
            "the pre-restart watch to see the new pods",
            || async {
                let seen = seen.lock().unwrap();
                names.is_subset(&seen).then_some(())
            },
        )
        .await;
        watch.abort();
        each_pod_answers(&c).await;

        kubectl(
            &c,
            &[
                "delete",
                "deployment",
                "web",
                "--wait=true",
                "--timeout=60s",
            ],
        );
        wait_for(
            Duration::from_secs(90),
            "the pods' containers to be gone",
            || async { (c.live_pods().await.is_empty() && c.httpd_total() == 0).then_some(()) },
        )
        .await;
    })
    .await
    .expect("the kubectl test hung: a kubectl command or the restarted API server never answered");
}
