//! The Endpoints and EndpointSlice controllers: for each Service with a selector, the
//! addresses of the pods it selects, kept current as pods come, go and change readiness.
#![allow(deprecated)] // core/v1 Endpoints is deprecated upstream but still served and read.

pub mod build;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{EndpointSubset, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use minik8s_api::ready_store::ReadyStore;
use minik8s_api::selector::LabelSelector;
use tokio_util::sync::CancellationToken;

use crate::cached_pod::CachedPod;
use crate::informer::PodEvents;
use tracing::debug;

use crate::owner::controller_ref;

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    #[error("the pod cache closed before its first list")]
    CacheClosed,
    #[error("writing endpoints of service {service}: {source}")]
    Write {
        service: String,
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    pods: ReadyStore<CachedPod>,
}

/// `pods` and `pod_events` come from the shared pod watch (`informer.rs`).
pub async fn run(
    client: Client,
    pods: ReadyStore<CachedPod>,
    pod_events: PodEvents,
    shutdown: CancellationToken,
) {
    let (services, svc_writer) = reflector::store::<Service>();
    let deleter = client.clone();
    // Endpoints carry no owner reference (as in Kubernetes), so a deleted Service's
    // Endpoints are removed here, on the delete event; its EndpointSlices are owned and go
    // through the garbage collector.
    let service_events = reflector::reflector(
        svc_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .inspect(move |event| {
        if let Ok(watcher::Event::Delete(svc)) = event {
            if selector_of(svc).is_some() {
                let api: Api<Endpoints> =
                    Api::namespaced(deleter.clone(), &svc.namespace().unwrap_or_default());
                let name = svc.name_any();
                tokio::spawn(async move {
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                });
            }
        }
    })
    .touched_objects();
    let controller = Controller::for_stream(service_events, services.clone());
    let ctx = Arc::new(Ctx { client, pods });
    controller
        .watches_stream(pod_events, move |pod| services_of(&pod, &services))
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            ctx,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                debug!(error = %e, "endpoints reconcile");
            }
        })
        .await;
}

fn selector_of(svc: &Service) -> Option<LabelSelector> {
    let sel = svc.spec.as_ref()?.selector.as_ref()?;
    (!sel.is_empty()).then(|| LabelSelector::from_map(sel))
}

fn services_of(pod: &CachedPod, services: &Store<Service>) -> Vec<ObjectRef<Service>> {
    services
        .state()
        .iter()
        .filter(|s| s.namespace() == pod.namespace())
        .filter(|s| selector_of(s).is_some_and(|m| m.matches_map(pod.labels())))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, EndpointsError> {
    // Services without a selector have manually managed Endpoints (Kubernetes leaves them).
    let Some(selector) = selector_of(&svc) else {
        return Ok(Action::await_change());
    };
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // An unlisted pod cache would publish empty Endpoints for a moment after every restart.
    ctx.pods
        .wait_until_ready()
        .await
        .map_err(|_| EndpointsError::CacheClosed)?;
    let ns = svc.namespace().unwrap_or_default();
    let pods: Vec<Arc<CachedPod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.namespace().as_deref() == Some(ns.as_str()) && selector.matches_map(p.labels())
        })
        .collect();
    let groups = build::groups(&svc, &pods);
    let err = |source| EndpointsError::Write {
        service: format!("{ns}/{}", svc.name_any()),
        source,
    };
    write_endpoints(&ctx.client, &svc, &groups)
        .await
        .map_err(err)?;
    write_slices(&ctx.client, &svc, &groups)
        .await
        .map_err(err)?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn write_endpoints(
    client: &Client,
    svc: &Service,
    groups: &BTreeMap<Vec<build::Port>, build::Group>,
) -> Result<(), kube::Error> {
    let subsets: Vec<EndpointSubset> = groups
        .iter()
        .map(|(ports, g)| EndpointSubset {
            addresses: (!g.ready.is_empty()).then(|| g.ready.iter().map(|a| a.0.clone()).collect()),
            not_ready_addresses: (!g.not_ready.is_empty())
                .then(|| g.not_ready.iter().map(|a| a.0.clone()).collect()),
            ports: Some(build::endpoint_ports(ports)),
        })
        .collect();
    let api: Api<Endpoints> = Api::namespaced(client.clone(), &svc.namespace().unwrap_or_default());
    let desired = Endpoints {
        metadata: ObjectMeta {
            name: Some(svc.name_any()),
            labels: svc.metadata.labels.clone(),
            ..Default::default()
        },
        subsets: Some(subsets),
    };
    match api.get_opt(&svc.name_any()).await? {
        Some(current)
            if current.subsets.clone().unwrap_or_default()
                == desired.subsets.clone().unwrap_or_default() =>
        {
            Ok(())
        }
        Some(current) => {
            let mut next = desired;
            next.metadata.resource_version = current.metadata.resource_version;
            api.replace(&svc.name_any(), &PostParams::default(), &next)
                .await
                .map(|_| ())
        }
        None => api
            .create(&PostParams::default(), &desired)
            .await
            .map(|_| ()),
    }
}

/// One EndpointSlice per port group, named `<service>` then `<service>-1`, …; surplus ones
/// are deleted. Owned by the Service so they go with it.
async fn write_slices(
    client: &Client,
    svc: &Service,
    groups: &BTreeMap<Vec<build::Port>, build::Group>,
) -> Result<(), kube::Error> {
    let ns = svc.namespace().unwrap_or_default();
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let mut names = Vec::new();
    for (i, (ports, g)) in groups.iter().enumerate() {
        let name = if i == 0 {
            svc.name_any()
        } else {
            format!("{}-{i}", svc.name_any())
        };
        let endpoints: Vec<Endpoint> = g
            .ready
            .iter()
            .map(|a| (a, true))
            .chain(g.not_ready.iter().map(|a| (a, false)))
            .map(|((addr, serving), ready)| Endpoint {
                addresses: vec![addr.ip.clone()],
                conditions: Some(EndpointConditions {
                    ready: Some(ready),
                    serving: Some(*serving),
                    terminating: Some(!ready && *serving),
                }),
                node_name: addr.node_name.clone(),
                target_ref: addr.target_ref.clone(),
                ..Default::default()
            })
            .collect();
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(
                    [
                        (SERVICE_NAME_LABEL.to_string(), svc.name_any()),
                        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
                    ]
                    .into(),
                ),
                owner_references: Some(vec![controller_ref("v1", "Service", &svc.metadata)]),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(endpoints),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, proto)| EndpointPort {
                        name: n.clone(),
                        port: Some(*p),
                        protocol: Some(proto.clone()),
                        app_protocol: None,
                    })
                    .collect(),
            ),
        };
        match api.get_opt(&name).await? {
            Some(current)
                if current.endpoints == slice.endpoints && current.ports == slice.ports => {}
            Some(current) => {
                let mut next = slice;
                next.metadata.resource_version = current.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &next).await?;
            }
            None => {
                api.create(&PostParams::default(), &slice).await?;
            }
        }
        names.push(name);
    }
    let lp = ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}={}", svc.name_any()));
    for old in api.list(&lp).await?.items {
        if !names.contains(&old.name_any()) {
            let _ = api.delete(&old.name_any(), &DeleteParams::default()).await;
        }
    }
    Ok(())
}
