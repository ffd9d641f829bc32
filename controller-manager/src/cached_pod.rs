//! The pod as the controllers cache it: only the fields they read. A k8s-openapi `Pod` is
//! ~5 KiB in memory even when nearly empty (every optional field of its spec, status and each
//! container is laid out inline), so 10,000 cached pods took ~50 MiB; this keeps the metadata
//! (without managedFields) and the few spec and status fields the ReplicaSet, Endpoints and
//! node lifecycle controllers use, under the same names and paths as in `Pod`, so the code
//! reading them reads like code over pods.
//!
//! Never written back to the API server: controllers patch or delete pods by name.

use k8s_openapi::api::core::v1::{ContainerPort, Pod, PodCondition, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CachedPod {
    pub metadata: ObjectMeta,
    pub spec: Option<Spec>,
    pub status: Option<Status>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub node_name: Option<String>,
    pub tolerations: Option<Vec<Toleration>>,
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
        CachedPod {
            metadata,
            spec: pod.spec.map(|s| Spec {
                node_name: s.node_name,
                tolerations: s.tolerations,
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

    #[test]
    fn is_several_times_smaller_than_a_pod() {
        // The inline sizes alone (spec and status are inline in both): a pod with one
        // container against its cached form.
        let pod = std::mem::size_of::<Pod>() + std::mem::size_of::<PodContainer>();
        let cached = std::mem::size_of::<CachedPod>() + std::mem::size_of::<Container>();
        assert!(cached * 3 < pod, "cached {cached} B, pod {pod} B");
    }
}
