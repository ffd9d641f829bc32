//! Test fixtures: a real in-process API server on 127.0.0.1:0 with a temp dir, schedulers
//! started against it, and builders for Nodes and Pods.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use minik8s_leader::LeaseConfig;
use minik8s_scheduler::plugins::Strategy;
use minik8s_scheduler::{Config, Scheduler, Stats};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running API server; stopped (and its directory removed) on drop.
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

pub async fn client_for(kubeconfig: &std::path::Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("reading the admin kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("client config from the admin kubeconfig");
    Client::try_from(config).expect("building a client")
}

impl Cluster {
    pub async fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir for the API server");
        let shutdown = CancellationToken::new();
        let config = minik8s_apiserver::Config::new(
            dir.path().to_path_buf(),
            "127.0.0.1:0".parse().expect("address"),
        );
        let running = minik8s_apiserver::start(config, shutdown.clone())
            .await
            .expect("starting the API server");
        let client = client_for(&running.kubeconfig).await;
        Cluster {
            client,
            kubeconfig: running.kubeconfig,
            shutdown,
            _dir: dir,
        }
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    pub async fn create_node(&self, node: Node) {
        create_node(&self.client, node).await;
    }

    pub async fn create_pod(&self, pod: Pod) {
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .expect("creating a pod");
    }

    pub fn scheduler_config(&self) -> Config {
        Config {
            kubeconfig: self.kubeconfig.clone(),
            scheduler_name: "minik8s-scheduler".into(),
            leader: None,
            strategy: Strategy::LeastAllocated,
            percentage_of_nodes_to_score: 0,
            parallel_bindings: 16,
            identity: format!("test_{:x}", rand_id()),
        }
    }

    /// A leader-electing config with short timings (lease 3 s, renew 2 s, retry 500 ms).
    pub fn leader_config(&self, lease: &str) -> Config {
        let mut config = self.scheduler_config();
        config.leader = Some(LeaseConfig {
            namespace: "kube-system".into(),
            name: lease.into(),
            identity: config.identity.clone(),
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_millis(500),
        });
        config
    }

    pub async fn start_scheduler(&self, config: Config) -> RunningScheduler {
        let scheduler = Scheduler::connect(config)
            .await
            .expect("connecting the scheduler");
        let stats = scheduler.stats();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(scheduler.run(shutdown.clone()));
        RunningScheduler {
            shutdown,
            handle,
            stats,
        }
    }

    /// Pods of the default namespace by name, with their node (None while pending).
    pub async fn placements(&self) -> BTreeMap<String, Option<String>> {
        self.pods()
            .list(&ListParams::default())
            .await
            .expect("listing pods")
            .items
            .into_iter()
            .map(|p| {
                let node = p.spec.and_then(|s| s.node_name);
                (p.metadata.name.unwrap_or_default(), node)
            })
            .collect()
    }
}

fn rand_id() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id())
}

/// A scheduler task; stopped on drop.
pub struct RunningScheduler {
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<Result<(), minik8s_scheduler::SchedulerError>>,
    pub stats: Arc<Stats>,
}

impl Drop for RunningScheduler {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Creates a Node, then sets its status (Kubernetes keeps a Node's status on create, but the
/// status write makes the test independent of that).
pub async fn create_node(client: &Client, node: Node) {
    let api: Api<Node> = Api::all(client.clone());
    let name = node.metadata.name.clone().expect("node name");
    let status = node.status.clone();
    let mut created = api
        .create(&PostParams::default(), &node)
        .await
        .expect("creating a node");
    if created.status != status {
        created.status = status;
        api.replace_status(&name, &PostParams::default(), &created)
            .await
            .expect("setting node status");
    }
}

fn quantities(cpu: &str, memory: &str, pods: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu.into())),
        ("memory".to_string(), Quantity(memory.into())),
        ("pods".to_string(), Quantity(pods.into())),
    ])
}

/// A Ready node with `kubernetes.io/hostname` set.
pub fn node(name: &str, cpu: &str, memory: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_string(),
                name.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: Some(quantities(cpu, memory, "110")),
            allocatable: Some(quantities(cpu, memory, "110")),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

pub fn with_label(mut node: Node, key: &str, value: &str) -> Node {
    node.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value.into());
    node
}

pub fn with_taint(mut node: Node, key: &str, value: &str, effect: &str) -> Node {
    let spec = node.spec.get_or_insert_with(Default::default);
    spec.taints.get_or_insert_with(Vec::new).push(Taint {
        key: key.into(),
        value: Some(value.into()),
        effect: effect.into(),
        time_added: None,
    });
    node
}

/// A pending pod requesting `cpu` and `memory` (empty: no request).
pub fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
    let mut requests = BTreeMap::new();
    if !cpu.is_empty() {
        requests.insert("cpu".to_string(), Quantity(cpu.into()));
    }
    if !memory.is_empty() {
        requests.insert("memory".to_string(), Quantity(memory.into()));
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("busybox".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(requests),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn owned_by_replicaset(mut pod: Pod, rs: &str, uid: &str) -> Pod {
    pod.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: rs.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    pod
}

pub fn spec_mut(pod: &mut Pod) -> &mut PodSpec {
    pod.spec.get_or_insert_with(Default::default)
}

/// Polls `check` every 50 ms until it returns Some, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
