//! A real local cluster (`minictl cluster up`) for end-to-end tests: real processes, nodes
//! as network namespaces. The guard runs `minictl cluster down` on every path, panics
//! included, so no process, namespace, cgroup, mount or bridge outlives a test.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::{Api, Client};
use minictl::cmd::cluster::state::{ClusterState, NodeState};

pub const MINICTL: &str = env!("CARGO_BIN_EXE_minictl");

/// The Deployment the tests run: busybox httpd answering with its pod's name (the runtime
/// sets the UTS hostname to it), the image imported on every node by `cluster up`.
pub fn web_deployment(replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: httpd
          image: busybox
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
          ports: [{{containerPort: 8080}}]
          readinessProbe:
            tcpSocket: {{port: 8080}}
            periodSeconds: 1
"#
    )
}

/// A ClusterIP Service in front of the web pods (port 80 to their 8080).
pub const WEB_SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  selector: {app: web}
  ports:
    - port: 80
      targetPort: 8080
"#;

pub struct LocalCluster {
    pub name: String,
    pub state: ClusterState,
    pub client: Client,
}

/// Runs `minictl ARGS` and returns its output; panics (with both streams) if it fails.
pub fn minictl(args: &[&str]) -> Output {
    let out = Command::new(MINICTL)
        .args(args)
        .output()
        .expect("minictl runs");
    assert!(
        out.status.success(),
        "minictl {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl LocalCluster {
    /// `minictl cluster up --name NAME --nodes N` plus the extra flags.
    pub async fn up(name: &str, nodes: u8, extra: &[&str]) -> LocalCluster {
        // A cluster of the same name left by a killed earlier run is removed first.
        let _ = Command::new(MINICTL)
            .args(["cluster", "down", "--name", name])
            .output();
        let nodes = nodes.to_string();
        // Tests send nothing beyond the machine: the nodes' DNS forwards no outside names.
        let mut args = vec![
            "cluster",
            "up",
            "--name",
            name,
            "--nodes",
            &nodes,
            "--resolv-conf",
            "",
        ];
        args.extend_from_slice(extra);
        let out = Command::new(MINICTL)
            .args(&args)
            .output()
            .expect("minictl runs");
        let guard_name = name.to_string();
        assert!(
            out.status.success(),
            "cluster up {guard_name} failed (is target/debug/minik8s built? cargo build -p minik8s):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let state = ClusterState::load(name).expect("cluster state after up");
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(state.kubeconfig()).expect("kubeconfig"),
            &Default::default(),
        )
        .await
        .expect("kube config");
        let client = Client::try_from(config).expect("kube client");
        LocalCluster {
            name: guard_name,
            state,
            client,
        }
    }

    pub fn kubeconfig(&self) -> String {
        self.state.kubeconfig().display().to_string()
    }

    /// `minictl cluster VERB NODE --name NAME` (kill-node, restart-node, ...).
    pub fn node_cmd(&self, verb: &str, node: &str) {
        minictl(&["cluster", verb, node, "--name", &self.name]);
    }

    pub fn node(&self, name: &str) -> NodeState {
        self.state.node(name).expect("node of the cluster").clone()
    }

    pub fn apply(&self, manifest: &str) {
        let file = tempfile::NamedTempFile::new().expect("temp manifest");
        std::fs::write(file.path(), manifest).expect("write manifest");
        minictl(&[
            "--kubeconfig",
            &self.kubeconfig(),
            "apply",
            "-f",
            &file.path().display().to_string(),
        ]);
    }

    /// Pods of the web Deployment that are not being deleted.
    pub async fn live_pods(&self) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        match pods.list(&ListParams::default().labels("app=web")).await {
            Ok(l) => l
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Running and Ready pods of the web Deployment, by node.
    pub async fn ready_by_node(&self) -> BTreeMap<String, Vec<Pod>> {
        let mut out: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
        for pod in self.live_pods().await.into_iter().filter(pod_ready) {
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            out.entry(node).or_default().push(pod);
        }
        out
    }

    pub async fn available(&self) -> i32 {
        let deploys: Api<Deployment> = Api::namespaced(self.client.clone(), "default");
        deploys
            .get("web")
            .await
            .ok()
            .and_then(|d| d.status)
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
    }

    /// The web Service's ClusterIP once allocated.
    pub async fn service_ip(&self) -> String {
        let services: Api<k8s_openapi::api::core::v1::Service> =
            Api::namespaced(self.client.clone(), "default");
        services
            .get("web")
            .await
            .ok()
            .and_then(|s| s.spec?.cluster_ip)
            .unwrap_or_default()
    }

    pub async fn node_ready(&self, node: &str) -> Option<bool> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes
            .get(node)
            .await
            .ok()
            .map(|n| minictl::cmd::cluster::is_ready(&n))
    }

    /// httpd processes (the pods' containers) running below the node's cgroup parent.
    pub fn httpd_on(&self, node: &str) -> usize {
        minictl::cmd::cluster::cgroups::count_comm(&self.node(node).cgroup_parent, "httpd")
    }

    pub fn httpd_total(&self) -> usize {
        self.state
            .nodes
            .iter()
            .map(|n| self.httpd_on(&n.name))
            .sum()
    }

    /// GET http://IP:8080/ from inside the node's network namespace. (`timeout`, not wget's
    /// own -T: Debian's busybox-static wget segfaults with -T.)
    pub fn fetch_from_node(&self, node: &str, ip: &str) -> Result<String, String> {
        self.fetch_url_from_node(node, &format!("http://{ip}:8080/"))
    }

    pub fn fetch_url_from_node(&self, node: &str, url: &str) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.node(node).netns])
            .args(["timeout", "5", "busybox", "wget", "-q", "-O-"])
            .arg(url)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(state) = ClusterState::load(&self.name) {
                let kept = minictl::cmd::cluster::keep_logs(&state);
                eprintln!(
                    "cluster {}: component logs kept in {}",
                    self.name,
                    kept.display()
                );
            }
        }
        let out = Command::new(MINICTL)
            .args(["cluster", "down", "--name", &self.name])
            .output();
        if !out.is_ok_and(|o| o.status.success()) {
            eprintln!("cluster down --name {} failed", self.name);
        }
    }
}

pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn pod_ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

pub fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Polls `check` every 200 ms until it yields Some, or panics naming `what` after `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
