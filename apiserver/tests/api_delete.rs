//! Delete semantics the garbage collector and the namespace controller build on:
//! propagation policies leave the `foregroundDeletion` / `orphan` finalizer, an update that
//! removes the last finalizer of a deleting object deletes it, and namespace deletion goes
//! through Terminating and the `finalize` subresource.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use serde_json::json;
use support::{within, TestServer};

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

async fn deleted_with(cms: &Api<ConfigMap>, name: &str, dp: &DeleteParams) -> ConfigMap {
    cms.create(&PostParams::default(), &config_map(name))
        .await
        .unwrap();
    cms.delete(name, dp).await.unwrap();
    cms.get(name)
        .await
        .expect("kept while its finalizer remains")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_policies_leave_the_garbage_collector_finalizers() {
    let s = TestServer::start().await;
    within(30, "delete with a propagation policy", async {
        let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
        let fg = deleted_with(&cms, "fg", &DeleteParams::foreground()).await;
        assert!(fg.metadata.deletion_timestamp.is_some());
        assert_eq!(fg.metadata.deletion_grace_period_seconds, Some(0));
        assert_eq!(
            fg.metadata.finalizers,
            Some(vec!["foregroundDeletion".into()])
        );
        let orphan = deleted_with(&cms, "or", &DeleteParams::orphan()).await;
        assert_eq!(orphan.metadata.finalizers, Some(vec!["orphan".into()]));
        // The deprecated orphanDependents maps to Orphan; setting both is invalid.
        let legacy = json!({"kind": "DeleteOptions", "apiVersion": "v1", "orphanDependents": true});
        cms.create(&PostParams::default(), &config_map("legacy"))
            .await
            .unwrap();
        let background = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let raw = s.raw();
        let req = http::Request::delete("/api/v1/namespaces/default/configmaps/legacy")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&legacy).unwrap())
            .unwrap();
        raw.request::<serde_json::Value>(req).await.unwrap();
        let legacy = cms.get("legacy").await.unwrap();
        assert_eq!(legacy.metadata.finalizers, Some(vec!["orphan".into()]));
        let invalid = json!({"kind": "DeleteOptions", "apiVersion": "v1",
                             "propagationPolicy": "Sideways"});
        let req = http::Request::delete("/api/v1/namespaces/default/configmaps/legacy")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&invalid).unwrap())
            .unwrap();
        let err = api_err(raw.request::<serde_json::Value>(req).await.unwrap_err());
        assert_eq!(err.code, 422, "{err:?}");
        // A background delete of a deleting object drops the GC finalizer, and the
        // delete finishes at once (Kubernetes lets a later delete change the policy).
        cms.delete("fg", &background).await.unwrap();
        assert_eq!(api_err(cms.get("fg").await.unwrap_err()).code, 404);
        // An update that removes the last finalizer of a deleting object deletes it.
        cms.patch(
            "or",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
        assert_eq!(api_err(cms.get("or").await.unwrap_err()).code, 404);
        // Without a policy, an object without finalizers goes at once (background).
        cms.create(&PostParams::default(), &config_map("bg"))
            .await
            .unwrap();
        cms.delete("bg", &DeleteParams::default()).await.unwrap();
        assert_eq!(api_err(cms.get("bg").await.unwrap_err()).code, 404);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_delete_terminates_then_finalize_removes_it() {
    let s = TestServer::start().await;
    within(30, "namespace termination and finalize", async {
        let nss: Api<Namespace> = Api::all(s.client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
        let created = nss.create(&PostParams::default(), &ns).await.unwrap();
        let spec = created.spec.clone().unwrap_or_default();
        assert_eq!(spec.finalizers, Some(vec!["kubernetes".into()]));
        let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "team");
        cms.create(&PostParams::default(), &config_map("c"))
            .await
            .unwrap();
        nss.delete("team", &DeleteParams::default()).await.unwrap();
        let terminating = nss.get("team").await.expect("kept until finalized");
        assert!(terminating.metadata.deletion_timestamp.is_some());
        let phase = terminating.status.as_ref().and_then(|s| s.phase.clone());
        assert_eq!(phase.as_deref(), Some("Terminating"));
        let refused = api_err(
            cms.create(&PostParams::default(), &config_map("late"))
                .await
                .unwrap_err(),
        );
        assert_eq!(refused.code, 403);
        assert!(
            refused.message.contains("because it is being terminated"),
            "{}",
            refused.message
        );
        // A second delete while content remains is refused as kube-apiserver does.
        let again = api_err(
            nss.delete("team", &DeleteParams::default())
                .await
                .unwrap_err(),
        );
        assert_eq!(again.code, 409);
        assert!(again.message.contains("ensuring all content is removed"));
        // An ordinary update cannot clear spec.finalizers; the finalize subresource can.
        let mut cleared = terminating.clone();
        cleared.spec = Some(Default::default());
        let kept = nss
            .replace("team", &PostParams::default(), &cleared)
            .await
            .unwrap();
        let spec = kept.spec.unwrap_or_default();
        assert_eq!(spec.finalizers, Some(vec!["kubernetes".into()]));
        let mut body = nss.get("team").await.unwrap();
        body.spec = Some(Default::default());
        nss.replace_subresource("finalize", "team", &PostParams::default(), &body)
            .await
            .unwrap();
        assert_eq!(api_err(nss.get("team").await.unwrap_err()).code, 404);
    })
    .await;
}
