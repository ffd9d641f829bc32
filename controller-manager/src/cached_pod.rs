//! The pod as the controllers cache it: only the fields they read. A k8s-openapi `Pod` is
//! ~5 KiB in memory even when nearly empty (every optional field of its spec, status and each
//! container is laid out inline), so 10,000 cached pods took ~50 MiB; this keeps the metadata
//! (without managedFields) and the few spec and status fields the ReplicaSet, Endpoints and
//! node lifecycle controllers use, under the same names and paths as in `Pod`, so the code
//! reading them reads like code over pods.
//!
//! The labels and the tolerations, the same for every pod of a ReplicaSet (and the API server
//! gives every pod the same two default tolerations), are shared between pods through an
//! [`Interner`]: one copy per distinct set instead of ~0.6 KiB each per pod.
//!
//! Never written back to the API server: controllers patch or delete pods by name.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, LazyLock, Mutex};

use k8s_openapi::api::core::v1::{ContainerPort, Pod, PodCondition, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CachedPod {
    /// The pod's metadata without managedFields, and without labels: those are in `labels`.
    pub metadata: ObjectMeta,
    labels: Arc<BTreeMap<String, String>>,
    pub spec: Option<Spec>,
    pub status: Option<Status>,
}

impl CachedPod {
    /// The pod's labels. An inherent method, so it is what `pod.labels()` calls rather than
    /// `ResourceExt::labels`, which would read the (empty) `metadata.labels`.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub node_name: Option<String>,
    pub tolerations: Arc<Vec<Toleration>>,
    pub containers: Vec<Container>,
}

/// A container's name and ports (Endpoints resolve named target ports with them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    pub ports: Option<Vec<ContainerPort>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub phase: Option<String>,
    pub conditions: Option<Vec<PodCondition>>,
    pub pod_ip: Option<String>,
    pub container_statuses: Option<Vec<ContainerStatus>>,
}

/// What deletion ranking reads of a container's status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub restart_count: i32,
}

impl From<Pod> for CachedPod {
    fn from(pod: Pod) -> CachedPod {
        let mut metadata = pod.metadata;
        // The bulk of a stored pod's metadata, and no controller reads it.
        metadata.managed_fields = None;
        let labels = LABELS.intern(metadata.labels.take().unwrap_or_default());
        CachedPod {
            metadata,
            labels,
            spec: pod.spec.map(|s| Spec {
                node_name: s.node_name,
                tolerations: intern_tolerations(s.tolerations.unwrap_or_default()),
                containers: s
                    .containers
                    .into_iter()
                    .map(|c| Container {
                        name: c.name,
                        ports: c.ports,
                    })
                    .collect(),
            }),
            status: pod.status.map(|s| Status {
                phase: s.phase,
                conditions: s.conditions,
                pod_ip: s.pod_ip,
                container_statuses: s.container_statuses.map(|cs| {
                    cs.into_iter()
                        .map(|c| ContainerStatus {
                            restart_count: c.restart_count,
                        })
                        .collect()
                }),
            }),
        }
    }
}

/// Shares equal values: `intern` returns the one `Arc` held for a value equal to the one
/// given. Values no pod holds any more are dropped once the table has doubled since the last
/// sweep, so the table stays proportional to the distinct values in use.
pub struct Interner<K, V> {
    table: Mutex<(HashMap<K, Arc<V>>, usize)>,
}

/// The table size below which no sweep is made.
const SWEEP_FLOOR: usize = 64;

impl<K: Hash + Eq, V> Interner<K, V> {
    pub fn new() -> Self {
        Interner {
            table: Mutex::new((HashMap::new(), SWEEP_FLOOR)),
        }
    }

    /// The shared value for `key`, made by `make` the first time.
    pub fn get_or_insert(&self, key: K, make: impl FnOnce() -> V) -> Arc<V> {
        let mut guard = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let (table, sweep_at) = &mut *guard;
        if let Some(v) = table.get(&key) {
            return v.clone();
        }
        if table.len() >= *sweep_at {
            table.retain(|_, v| Arc::strong_count(v) > 1);
            *sweep_at = (table.len() * 2).max(SWEEP_FLOOR);
        }
        let v = Arc::new(make());
        table.insert(key, v.clone());
        v
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).0.len()
    }
}

impl<K: Hash + Eq, V> Default for Interner<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Hash + Eq + Clone> Interner<T, T> {
    /// The shared copy of `value`.
    pub fn intern(&self, value: T) -> Arc<T> {
        let copy = value.clone();
        self.get_or_insert(value, || copy)
    }
}

static LABELS: LazyLock<Interner<BTreeMap<String, String>, BTreeMap<String, String>>> =
    LazyLock::new(Interner::new);
/// Keyed by the tolerations' JSON: k8s-openapi's `Toleration` is not `Hash`.
static TOLERATIONS: LazyLock<Interner<String, Vec<Toleration>>> = LazyLock::new(Interner::new);

fn intern_tolerations(tolerations: Vec<Toleration>) -> Arc<Vec<Toleration>> {
    match serde_json::to_string(&tolerations) {
        Ok(key) => TOLERATIONS.get_or_insert(key, || tolerations),
        Err(_) => Arc::new(tolerations),
    }
}

/// The kind, group, version and path of `Pod`: events about a cached pod name the pod, and
/// the controller runtime keys its triggers by these.
impl k8s_openapi::Resource for CachedPod {
    const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for CachedPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container as PodContainer, ContainerStatus as PodContainerStatus, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use kube::{Resource, ResourceExt};

    #[test]
    fn keeps_what_the_controllers_read_and_drops_the_rest() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("default".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![PodContainer {
                    name: "c".into(),
                    image: Some("busybox".into()),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: 8080,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some("10.244.1.5".into()),
                container_statuses: Some(vec![PodContainerStatus {
                    name: "c".into(),
                    restart_count: 3,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        };
        let cached = CachedPod::from(pod);
        assert_eq!(cached.name_any(), "web-1");
        assert_eq!(cached.labels().get("app").map(String::as_str), Some("web"));
        assert_eq!(cached.metadata.managed_fields, None);
        let spec = cached.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(
            spec.containers[0].ports.as_ref().unwrap()[0].container_port,
            8080
        );
        let status = cached.status.as_ref().unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.244.1.5"));
        assert_eq!(
            status.container_statuses.as_ref().unwrap()[0].restart_count,
            3
        );
        // Events and triggers name it as the Pod it is.
        let r = cached.object_ref(&());
        assert_eq!(
            (r.kind.as_deref(), r.api_version.as_deref()),
            (Some("Pod"), Some("v1"))
        );
        assert_eq!(CachedPod::plural(&()), "pods");
    }

    fn pod_of(rs: &str, tolerate_for: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(format!("{rs}-{tolerate_for}")),
                labels: Some([("app".to_string(), rs.to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                tolerations: Some(vec![Toleration {
                    key: Some("node.kubernetes.io/unreachable".into()),
                    operator: Some("Exists".into()),
                    effect: Some("NoExecute".into()),
                    toleration_seconds: Some(tolerate_for),
                    value: None,
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn pods_with_equal_labels_and_tolerations_share_one_copy() {
        let a = CachedPod::from(pod_of("web", 300));
        let b = CachedPod::from(pod_of("web", 300));
        let other = CachedPod::from(pod_of("db", 30));
        assert!(Arc::ptr_eq(&a.labels, &b.labels));
        let tolerations = |p: &CachedPod| p.spec.as_ref().unwrap().tolerations.clone();
        assert!(Arc::ptr_eq(&tolerations(&a), &tolerations(&b)));
        assert!(!Arc::ptr_eq(&a.labels, &other.labels));
        assert_eq!(tolerations(&other)[0].toleration_seconds, Some(30));
        // `labels()` reads the shared copy; the metadata holds none.
        assert_eq!(b.labels().get("app").map(String::as_str), Some("web"));
        assert_eq!(b.metadata.labels, None);
    }

    #[test]
    fn the_interner_forgets_values_nobody_holds() {
        let interner: Interner<u32, u32> = Interner::new();
        let kept: Vec<Arc<u32>> = (0..10).map(|i| interner.intern(i)).collect();
        for i in 100..1000 {
            drop(interner.intern(i));
        }
        // Swept as the table doubled: what is left is what is held plus the latest values.
        assert!(
            interner.len() < 2 * SWEEP_FLOOR + kept.len(),
            "{}",
            interner.len()
        );
        for (i, k) in kept.iter().enumerate() {
            assert!(
                Arc::ptr_eq(k, &interner.intern(i as u32)),
                "held value {i} kept"
            );
        }
    }

    #[test]
    fn is_several_times_smaller_than_a_pod() {
        // The inline sizes alone (spec and status are inline in both): a pod with one
        // container against its cached form.
        let pod = std::mem::size_of::<Pod>() + std::mem::size_of::<PodContainer>();
        let cached = std::mem::size_of::<CachedPod>() + std::mem::size_of::<Container>();
        assert!(cached * 3 < pod, "cached {cached} B, pod {pod} B");
    }
}
