//! Test fixtures: a real in-process API server on 127.0.0.1:0 in a temp dir, the
//! controllers running against it, and a test "kubelet" that writes pod status.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

pub struct Cluster {
    pub client: Client,
    pub kubeconfig: PathBuf,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Cluster {
    /// An API server plus the controller-manager (all controllers).
    pub async fn start() -> Cluster {
        Cluster::start_tuned(300, Duration::from_secs(40)).await
    }

    /// Only the API server; the test starts the controller-manager itself.
    pub async fn start_without_controllers() -> Cluster {
        Cluster::boot(300, None).await
    }

    pub async fn start_tuned(toleration_seconds: i64, grace: Duration) -> Cluster {
        Cluster::boot(toleration_seconds, Some(grace)).await
    }

    /// With the API server's default not-ready/unreachable tolerationSeconds and the node
    /// monitor grace period set.
    async fn boot(toleration_seconds: i64, grace: Option<Duration>) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir for the API server");
        let shutdown = CancellationToken::new();
        let mut config = minik8s_apiserver::Config::new(
            dir.path().to_path_buf(),
            "127.0.0.1:0".parse().unwrap(),
        );
        config.defaults.not_ready_toleration_seconds = toleration_seconds;
        config.defaults.unreachable_toleration_seconds = toleration_seconds;
        let running = minik8s_apiserver::start(config, shutdown.clone())
            .await
            .expect("starting the API server");
        let kc = Kubeconfig::read_from(&running.kubeconfig).expect("admin kubeconfig");
        let kconfig = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("client config");
        let client = Client::try_from(kconfig).expect("client");
        if let Some(grace) = grace {
            let mut cm = minik8s_controller_manager::Config::new(running.kubeconfig.clone());
            cm.node_monitor_grace_period = grace;
            tokio::spawn(minik8s_controller_manager::run(cm, shutdown.child_token()));
        }
        Cluster {
            client,
            kubeconfig: running.kubeconfig,
            shutdown,
            _dir: dir,
        }
    }

    /// Starts the controller-manager against this API server until the guard drops.
    pub fn start_controllers(&self) -> tokio_util::sync::DropGuard {
        let stop = self.shutdown.child_token();
        let config = minik8s_controller_manager::Config::new(self.kubeconfig.clone());
        tokio::spawn(minik8s_controller_manager::run(config, stop.clone()));
        stop.drop_guard()
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }
    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), "default")
    }
    pub fn replica_sets(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Active (not terminating) pods.
    pub async fn active_pods(&self) -> Vec<Pod> {
        let list = self
            .pods()
            .list(&ListParams::default())
            .await
            .expect("listing pods");
        list.items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// Plays kubelet until dropped: every pod without a Ready condition becomes Running and
    /// Ready after `delay`.
    pub fn kubelet(&self, delay: Duration) -> tokio_util::task::AbortOnDropHandle<()> {
        let pods = self.pods();
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            loop {
                if let Ok(list) = pods.list(&ListParams::default()).await {
                    for p in list.items {
                        let has_ready = p
                            .status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready"));
                        if !has_ready && p.metadata.deletion_timestamp.is_none() {
                            tokio::time::sleep(delay).await;
                            mark_ready(&pods, &p.name_any()).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }))
    }
}

pub async fn mark_ready(pods: &Api<Pod>, name: &str) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let body = serde_json::json!({"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
    }});
    // The pod may be gone meanwhile; that is fine for a kubelet.
    let _ = pods
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await;
}

pub fn labels(app: &str) -> BTreeMap<String, String> {
    [("app".to_string(), app.to_string())].into()
}

pub fn template(app: &str, image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(app)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

pub fn deployment(name: &str, replicas: i32, strategy: DeploymentStrategy) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(name)),
                ..Default::default()
            },
            template: template(name, "busybox:1"),
            strategy: Some(strategy),
            ..Default::default()
        },
        status: None,
    }
}

/// Polls `check` every 50 ms until it returns Some, failing with `what` after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a test body under a timeout whose message says what a hang means.
pub async fn within<F: Future<Output = ()>>(secs: u64, what: &str, f: F) {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("test hung for {secs}s: {what}"));
}
