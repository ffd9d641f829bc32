//! Endpoints and EndpointSlices follow pod readiness; named target ports are resolved.
#![allow(deprecated)]

mod support;

use k8s_openapi::api::core::v1::{
    ContainerPort, Endpoints, Pod, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use support::*;

fn pod(name: &str) -> Pod {
    let mut spec = template("web", "busybox:1").spec.unwrap();
    spec.containers[0].ports = Some(vec![ContainerPort {
        name: Some("http".into()),
        container_port: 8080,
        ..Default::default()
    }]);
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels("web")),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

async fn set_status(c: &Cluster, name: &str, ip: Option<&str>, ready: bool) {
    let body = serde_json::json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
    }});
    c.pods()
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .expect("pod status");
}

/// (ready IPs, not-ready IPs, ports) of the Endpoints.
async fn endpoints(c: &Cluster) -> Option<(Vec<String>, Vec<String>, Vec<i32>)> {
    let api: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    let ep = api.get_opt("web").await.ok()??;
    let subsets = ep.subsets.unwrap_or_default();
    let ips = |f: fn(&k8s_openapi::api::core::v1::EndpointSubset) -> Option<&Vec<_>>| {
        subsets
            .iter()
            .flat_map(|s| f(s).cloned().unwrap_or_default())
            .map(|a: k8s_openapi::api::core::v1::EndpointAddress| a.ip)
            .collect::<Vec<_>>()
    };
    let ports = subsets
        .iter()
        .flat_map(|s| s.ports.clone().unwrap_or_default())
        .map(|p| p.port)
        .collect();
    Some((
        ips(|s| s.addresses.as_ref()),
        ips(|s| s.not_ready_addresses.as_ref()),
        ports,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_pod_readiness() {
    within(30, "endpoints never reflected the pods", async {
        let c = Cluster::start().await;
        let services: Api<Service> = Api::namespaced(c.client.clone(), "default");
        let svc = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(labels("web")),
                ports: Some(vec![ServicePort {
                    name: Some("web".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("http".into())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        };
        services
            .create(&PostParams::default(), &svc)
            .await
            .expect("service");
        for n in ["a", "b", "c"] {
            c.pods()
                .create(&PostParams::default(), &pod(n))
                .await
                .expect("pod");
        }
        set_status(&c, "a", Some("10.0.0.1"), true).await;
        set_status(&c, "b", Some("10.0.0.2"), false).await;
        // c has no IP: not listed at all.
        set_status(&c, "c", None, false).await;
        eventually(10, "a ready, b not ready, port 8080", || async {
            let e = endpoints(&c).await?;
            (e == (vec!["10.0.0.1".into()], vec!["10.0.0.2".into()], vec![8080])).then_some(())
        })
        .await;
        set_status(&c, "b", Some("10.0.0.2"), true).await;
        eventually(10, "both ready", || async {
            let e = endpoints(&c).await?;
            (e.0 == vec!["10.0.0.1".to_string(), "10.0.0.2".to_string()] && e.1.is_empty())
                .then_some(())
        })
        .await;
        let slices: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
        let slice = eventually(10, "an EndpointSlice with both endpoints ready", || async {
            let s = slices.get_opt("web").await.ok()??;
            let eps = s.endpoints.clone()?;
            (eps.len() == 2
                && eps
                    .iter()
                    .all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true)))
            .then_some(s)
        })
        .await;
        assert_eq!(slice.labels_or_empty("kubernetes.io/service-name"), "web");
        assert_eq!(slice.ports.unwrap()[0].port, Some(8080));
        c.pods()
            .delete("a", &Default::default())
            .await
            .expect("deleting a");
        eventually(10, "a removed", || async {
            let e = endpoints(&c).await?;
            (e.0 == vec!["10.0.0.2".to_string()]).then_some(())
        })
        .await;
        services
            .delete("web", &Default::default())
            .await
            .expect("deleting the service");
        eventually(
            10,
            "the service's endpoints and slices to go with it",
            || async {
                let ep: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
                let gone = ep.get_opt("web").await.ok()?.is_none()
                    && slices.get_opt("web").await.ok()?.is_none();
                gone.then_some(())
            },
        )
        .await;
    })
    .await;
}

trait LabelOf {
    fn labels_or_empty(&self, key: &str) -> String;
}

impl LabelOf for EndpointSlice {
    fn labels_or_empty(&self, key: &str) -> String {
        self.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
            .unwrap_or_default()
    }
}
