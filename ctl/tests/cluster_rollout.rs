//! End to end (issue #10): a rolling update of the Deployment under a steady request loop
//! through its Service drops no request, and `minictl cluster down` then removes every
//! trace of the cluster (processes, namespaces, bridge, cgroups, mounts, state). Real
//! processes, nodes as network namespaces; needs root and target/debug/minik8s.

mod cluster_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use minictl::cmd::cluster::state::{clusters_dir, ClusterState, Proc};
use minictl::cmd::cluster::{cgroups, launch, netns};

/// How long a test may take before it is called hung.
const TEST_LIMIT: Duration = Duration::from_secs(300);

/// How the web server meets SIGTERM, which decides whether it outlives its endpoint.
#[derive(Clone, Copy)]
enum App {
    /// busybox httpd exec'd as PID 1 of the pod's PID namespace, with no SIGTERM handler:
    /// the kernel ignores the signal, so it serves until the SIGKILL at the end of its grace
    /// period, like any server that drains for its whole grace period.
    ServesUntilKilled,
    /// A shell that exits on SIGTERM (as most servers do), protected the way Kubernetes
    /// users protect such servers: a preStop sleep, which the kubelet runs before SIGTERM,
    /// so the pod keeps serving while its endpoint removal reaches every node's proxy.
    ExitsOnSigtermWithPreStop,
}

/// The web server's files: index.html (its pod name) and /cgi-bin/slow, which answers the
/// pod name after half a second, so that requests are in flight whenever an old pod is
/// told to stop (busybox httpd serves each request from a child process).
const SITE: &str = r#"mkdir -p /www/cgi-bin && hostname > /www/index.html && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\nsleep 0.5\\nhostname\\n' > /www/cgi-bin/slow && chmod +x /www/cgi-bin/slow"#;

/// The web Deployment with a rolling update that never drops capacity (Kubernetes' zero
/// downtime recipe): one extra pod at a time (maxSurge 1), no old pod removed before its
/// replacement is Ready (maxUnavailable 0, readiness probe). `version` is an env var:
/// changing it changes the pod template, which starts a rollout.
fn web_rolling(app: App, version: &str) -> String {
    let (command, pre_stop) = match app {
        App::ServesUntilKilled => (format!("{SITE} && exec httpd -f -p 8080 -h /www"), ""),
        App::ExitsOnSigtermWithPreStop => (
            format!("trap 'exit 0' TERM; {SITE} && httpd -f -p 8080 -h /www & wait"),
            "\n          lifecycle:\n            preStop:\n              sleep: {seconds: 2}",
        ),
    };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 4
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: httpd
          image: busybox
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "{command}"]
          env: [{{name: VERSION, value: "{version}"}}]
          ports: [{{containerPort: 8080}}]
          readinessProbe:
            tcpSocket: {{port: 8080}}
            periodSeconds: 1{pre_stop}
"#
    )
}

/// One answer of the request loop: which node asked, when, and the pod name or the error.
struct Answer {
    from: String,
    at: Duration,
    result: Result<String, String>,
}

/// GET `url` from inside the network namespace `ns` (as `LocalCluster::fetch_url_from_node`,
/// callable from the loop's own thread). `timeout` exits 124 when the 5 s run out.
fn get(ns: &str, url: &str) -> Result<String, String> {
    let t = Instant::now();
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "timeout", "5", "busybox", "wget", "-q", "-O-", url,
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{} after {:.2}s: {}",
            out.status,
            t.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Requests the Service from the node's namespace, back to back, until `stop`. Two of
/// these run per node.
fn request_loop(node: String, ns: String, url: String, stop: Arc<AtomicBool>) -> Vec<Answer> {
    let t0 = Instant::now();
    let mut answers = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let at = t0.elapsed();
        let result = get(&ns, &url);
        answers.push(Answer {
            from: node.clone(),
            at,
            result,
        });
        std::thread::sleep(Duration::from_millis(10));
    }
    answers
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn ready_names(c: &LocalCluster, n: usize) -> BTreeSet<String> {
    wait_for(
        Duration::from_secs(120),
        &format!("{n} ready web pods"),
        || async {
            let live = c.live_pods().await;
            let ready: BTreeSet<String> =
                live.iter().filter(|p| pod_ready(p)).map(pod_name).collect();
            (live.len() == n && ready.len() == n && c.available().await == n as i32)
                .then_some(ready)
        },
    )
    .await
}

/// Names of every web pod, terminating ones included.
async fn all_pod_names(c: &LocalCluster) -> Option<BTreeSet<String>> {
    let pods: kube::Api<Pod> = kube::Api::namespaced(c.client.clone(), "default");
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .ok()?;
    Some(list.items.iter().map(pod_name).collect())
}

/// The Service's URL once every node's proxy answers on it.
async fn service_url(c: &LocalCluster) -> String {
    let ip = wait_for(
        Duration::from_secs(30),
        "the Service's ClusterIP",
        || async { Some(c.service_ip().await).filter(|ip| !ip.is_empty() && ip != "None") },
    )
    .await;
    let url = format!("http://{ip}/");
    for n in &c.state.nodes {
        wait_for(Duration::from_secs(30), "the Service to answer", || async {
            c.fetch_url_from_node(&n.name, &url).ok()
        })
        .await;
    }
    url
}

/// Runs the web Deployment and its Service, requests the Service from every node in a
/// loop, rolls the Deployment to a new template and waits until `minictl rollout status`
/// says done and the old pods are gone; then every request must have succeeded, and both
/// old and new pods must have answered.
async fn rollout_under_load(c: &LocalCluster, app: App) {
    c.apply(&web_rolling(app, "v1"));
    c.apply(WEB_SERVICE);
    let old = ready_names(c, 4).await;
    let url = format!("{}cgi-bin/slow", service_url(c).await);
    let stop = Arc::new(AtomicBool::new(false));
    // Stops the loops on every path: a panic below must not leave them running, or the
    // runtime would wait for their threads forever.
    let _stop_on_drop = StopOnDrop(stop.clone());
    let loops: Vec<_> = c
        .state
        .nodes
        .iter()
        .flat_map(|n| [n, n])
        .map(|n| {
            let (node, ns, url, stop) =
                (n.name.clone(), n.netns.clone(), url.clone(), stop.clone());
            tokio::task::spawn_blocking(move || request_loop(node, ns, url, stop))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = Instant::now();
    c.apply(&web_rolling(app, "v2"));
    let kubeconfig = c.kubeconfig();
    let status = tokio::task::spawn_blocking(move || {
        let args = [
            "--kubeconfig",
            &kubeconfig,
            "rollout",
            "status",
            "deployment/web",
            "--timeout=120s",
        ];
        String::from_utf8_lossy(&minictl(&args).stdout).into_owned()
    })
    .await
    .expect("rollout status task");
    assert!(
        status.contains("successfully rolled out"),
        "rollout status:\n{status}"
    );
    let rolled = t.elapsed();
    // The last old pods may still be within their grace period: keep asking until they go.
    wait_for(
        Duration::from_secs(60),
        "the old pods to be gone",
        || async {
            all_pod_names(c)
                .await
                .filter(|all| all.is_disjoint(&old))
                .map(|_| ())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for l in loops {
        answers.extend(l.await.expect("request loop"));
    }
    let new = ready_names(c, 4).await;
    assert!(
        new.is_disjoint(&old),
        "every pod replaced: old {old:?}, new {new:?}"
    );
    check_answers(&answers, &old, &new);
    println!(
        "rolling update done in {:.1}s: {} requests through {url}, none failed",
        rolled.as_secs_f64(),
        answers.len()
    );
}

/// Every request must have been answered by a pod of the Deployment (an empty body is a
/// request whose CGI child was killed mid-way), and both versions must have answered.
fn check_answers(answers: &[Answer], old: &BTreeSet<String>, new: &BTreeSet<String>) {
    let failed: Vec<String> = answers
        .iter()
        .filter(|a| {
            !a.result
                .as_ref()
                .is_ok_and(|n| old.contains(n) || new.contains(n))
        })
        .map(|a| format!("{:.2}s from {}: {:?}", a.at.as_secs_f64(), a.from, a.result))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the rollout:\n{}",
        failed.len(),
        answers.len(),
        failed.join("\n")
    );
    assert!(
        answers.len() >= 20,
        "too few requests to mean anything: {}",
        answers.len()
    );
    let names: BTreeSet<&String> = answers
        .iter()
        .filter_map(|a| a.result.as_ref().ok())
        .collect();
    assert!(
        names.iter().any(|n| old.contains(*n)) && names.iter().any(|n| new.contains(*n)),
        "answers from old {old:?} and new {new:?} pods, got {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_under_load_drops_no_request_and_down_leaves_no_trace() {
    tokio::time::timeout(TEST_LIMIT, async {
        let t = Instant::now();
        let c = LocalCluster::up("e2e-roll", 2, &[]).await;
        rollout_under_load(&c, App::ServesUntilKilled).await;
        down_leaves_no_trace(c);
        println!("rollout and down test: {:.1}s", t.elapsed().as_secs_f64());
    })
    .await
    .expect("the rollout test hung: cluster up, the rollout or cluster down never finished");
}

/// The same rollout with a server that exits on SIGTERM and a preStop sleep. Without the
/// hook the old pod dies as soon as it is deleted, while the proxies may still send it
/// requests (seen: a request hung until its 5 s timeout). Kubernetes runs preStop before
/// SIGTERM (kuberuntime_container.go killContainer), and so does the nodelet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_of_a_server_exiting_on_sigterm_drops_no_request_with_a_prestop_sleep() {
    tokio::time::timeout(TEST_LIMIT, async {
        let c = LocalCluster::up("e2e-prestop", 2, &[]).await;
        rollout_under_load(&c, App::ExitsOnSigtermWithPreStop).await;
    })
    .await
    .expect("the preStop rollout test hung: cluster up or the rollout never finished");
}

/// What a cluster leaves on the host: everything `cluster down` must remove.
#[derive(Debug, Default, PartialEq)]
struct Traces {
    netns: Vec<String>,
    links: Vec<String>,
    cgroups: Vec<PathBuf>,
    mounts: Vec<String>,
    live_procs: Vec<Proc>,
    files: Vec<PathBuf>,
}

/// Network namespaces whose name starts with the cluster's `mk8s-<name>-` prefix.
fn cluster_netns(name: &str) -> Vec<String> {
    let prefix = format!("mk8s-{name}-");
    let mut out: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    out.sort();
    out
}

/// Mount points at or below `dir` (mountinfo field 5; the test runs in the mount namespace
/// the runtime mounts in, as the cluster's processes only change their network namespace).
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = dir.display().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| *p == dir || p.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

/// Every cgroup directory of `parent` in every hierarchy (v1: /sys/fs/cgroup/<controller>/,
/// or the v2 root), whether or not the controller's files are there.
fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(parent))
        .chain(std::iter::once(Path::new("/sys/fs/cgroup").join(parent)))
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn traces(state: &ClusterState, procs: &[Proc]) -> Traces {
    let mut links = vec![state.bridge.clone()];
    links.extend(state.nodes.iter().map(|n| n.veth.clone()));
    links.retain(|l| Path::new("/sys/class/net").join(l).exists());
    let subnet = subnet_marker(state.index);
    Traces {
        netns: cluster_netns(&state.name),
        links,
        cgroups: state
            .nodes
            .iter()
            .flat_map(|n| cgroup_dirs(&n.cgroup_parent))
            .collect(),
        mounts: mounts_under(&state.dir()),
        live_procs: procs.iter().filter(|p| launch::alive(p)).cloned().collect(),
        files: [state.dir(), subnet]
            .into_iter()
            .filter(|p| p.exists())
            .collect(),
    }
}

/// The subnet reservation `cluster up` makes (state::reserve_index).
fn subnet_marker(index: u8) -> PathBuf {
    clusters_dir().join(".subnets").join(index.to_string())
}

/// Every process of the cluster: control plane, node components, and whatever runs in the
/// node namespaces (shims) or below the nodes' cgroup parents (containers).
fn all_procs(state: &ClusterState) -> Vec<Proc> {
    let mut procs = state.control_plane.clone();
    for n in &state.nodes {
        procs.extend(n.procs.iter().cloned());
        let extra = netns::pids_in(&n.netns)
            .into_iter()
            .chain(cgroups::pids(&n.cgroup_parent));
        procs.extend(extra.filter_map(|pid| {
            Some(Proc {
                component: format!("{} pid", n.name),
                pid,
                start_time: launch::start_time(pid)?,
            })
        }));
    }
    procs
}

/// `minictl cluster down`, then nothing of the cluster is left. The traces are taken first
/// while it runs, so the check cannot pass because there was nothing to find.
fn down_leaves_no_trace(c: LocalCluster) {
    let state = ClusterState::load(&c.name).expect("state while up");
    let procs = all_procs(&state);
    let before = traces(&state, &procs);
    assert_eq!(
        before.netns.len(),
        state.nodes.len(),
        "node namespaces while up: {before:?}"
    );
    assert_eq!(
        before.links.len(),
        state.nodes.len() + 1,
        "bridge and veths while up: {before:?}"
    );
    assert!(
        before.cgroups.len() >= state.nodes.len(),
        "cgroup parents while up: {before:?}"
    );
    assert!(
        !before.mounts.is_empty(),
        "container mounts while up: {before:?}"
    );
    assert!(
        before.live_procs.len() > state.control_plane.len() + 3 * state.nodes.len(),
        "processes while up: {before:?}"
    );

    let t = Instant::now();
    minictl(&["cluster", "down", "--name", &c.name]);
    println!("cluster down in {:.1}s", t.elapsed().as_secs_f64());
    // Down ran: the guard has nothing left to remove (its own `down` would only fail).
    std::mem::forget(c);
    let after = traces(&state, &procs);
    assert_eq!(after, Traces::default(), "left behind by cluster down");
    let listed = Command::new(MINICTL)
        .args(["cluster", "list"])
        .output()
        .expect("cluster list");
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains(&state.name),
        "cluster list still shows {}",
        state.name
    );
}
