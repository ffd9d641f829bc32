//! Deleting a namespace's content: every namespaced kind the API server serves, listed and
//! deleted object by object (pods with their default grace period, so the node agents stop
//! their containers first), and a tally of what is still there.

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use minik8s_api::resource::{ResourceInfo, RESOURCES};

use super::conditions::Tally;

/// The namespaced kinds the namespace controller empties: those that can be listed and
/// deleted.
pub fn deletable() -> impl Iterator<Item = &'static ResourceInfo> {
    RESOURCES
        .iter()
        .filter(|r| r.namespaced && r.verbs.contains(&"list") && r.verbs.contains(&"delete"))
}

fn api_resource(info: &ResourceInfo) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(info.group, info.version, info.kind),
        info.plural,
    )
}

/// Deletes what is left of `ns` (objects already being deleted are left to finish) and
/// counts what remains, as kube-controller-manager's deleteAllContent does.
pub async fn delete_all(client: &Client, ns: &str) -> Tally {
    let mut tally = Tally::default();
    for info in deletable() {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &api_resource(info));
        let items = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(e) => {
                tally.failures.push(format!("listing {}: {e}", info.plural));
                continue;
            }
        };
        if items.is_empty() {
            continue;
        }
        let key = format!("{}.{}", info.plural, info.group);
        *tally.remaining.entry(key).or_default() += items.len();
        for obj in &items {
            for f in obj.finalizers() {
                *tally.finalizers.entry(f.clone()).or_default() += 1;
            }
            if obj.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match api.delete(&obj.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => {
                    tally
                        .failures
                        .push(format!("deleting {} {}: {e}", info.plural, obj.name_any()))
                }
            }
        }
    }
    tally
}
