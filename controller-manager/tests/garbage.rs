//! Cascading deletion through the garbage collector in all three propagation modes (through
//! the kube client and through kubectl), and namespace deletion through the namespace
//! controller.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DeploymentStrategy, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use support::*;

const HOLD: &str = "example.com/hold";

async fn deployment_with_pods(c: &Cluster, name: &str, replicas: i32) {
    c.deployments()
        .create(
            &PostParams::default(),
            &deployment(name, replicas, DeploymentStrategy::default()),
        )
        .await
        .expect("creating the deployment");
    eventually(15, "the deployment's pods", || async {
        (c.active_pods().await.len() == replicas as usize).then_some(())
    })
    .await;
}

async fn replica_sets(c: &Cluster) -> Vec<ReplicaSet> {
    c.replica_sets()
        .list(&ListParams::default())
        .await
        .expect("listing replicasets")
        .items
}

async fn all_pods(c: &Cluster) -> Vec<Pod> {
    c.pods()
        .list(&ListParams::default())
        .await
        .expect("listing pods")
        .items
}

/// Runs kubectl against the test's API server; fails the test on a non-zero exit.
async fn kubectl(c: &Cluster, args: &[&str]) -> String {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("running kubectl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn everything_gone(c: &Cluster, name: &str) {
    eventually(20, "owner, replicasets and pods gone", || async {
        let owner = c.deployments().get_opt(name).await.ok()?;
        (owner.is_none() && replica_sets(c).await.is_empty() && all_pods(c).await.is_empty())
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_deletion_of_a_deployment_removes_its_replicasets_and_pods() {
    within(
        40,
        "dependents of a deleted deployment were never collected",
        async {
            let c = Cluster::start().await;
            deployment_with_pods(&c, "web", 3).await;
            c.deployments()
                .delete("web", &DeleteParams::background())
                .await
                .expect("deleting the deployment");
            // Background: the owner goes at once, its dependents after.
            assert!(c.deployments().get_opt("web").await.unwrap().is_none());
            everything_gone(&c, "web").await;
        },
    )
    .await;
}

/// Foreground: the owner stays, deleting and with `foregroundDeletion`, for as long as a
/// blocking dependent exists. A pod held by a finalizer of the test's keeps its
/// ReplicaSet, and so the Deployment, until released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_keeps_the_owner_until_its_dependents_are_gone() {
    within(40, "foreground deletion never finished", async {
        let c = Cluster::start().await;
        deployment_with_pods(&c, "fg", 2).await;
        let held = c.active_pods().await[0].name_any();
        c.pods()
            .patch(
                &held,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": [HOLD]}})),
            )
            .await
            .expect("holding a pod");
        c.deployments()
            .delete("fg", &DeleteParams::foreground())
            .await
            .expect("deleting the deployment");
        eventually(
            15,
            "the unheld pod deleted and the held one deleting",
            || async {
                let pods = all_pods(&c).await;
                (pods.len() == 1 && pods[0].metadata.deletion_timestamp.is_some()).then_some(())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let owner = c
            .deployments()
            .get("fg")
            .await
            .expect("owner still visible");
        assert!(owner.metadata.deletion_timestamp.is_some());
        assert!(owner.finalizers().iter().any(|f| f == "foregroundDeletion"));
        let sets = replica_sets(&c).await;
        assert_eq!(sets.len(), 1, "the replicaset waits for its held pod");
        assert!(sets[0]
            .finalizers()
            .iter()
            .any(|f| f == "foregroundDeletion"));
        c.pods()
            .patch(
                &held,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await
            .expect("releasing the pod");
        everything_gone(&c, "fg").await;
    })
    .await;
}

async fn assert_orphaned(c: &Cluster, name: &str, pods: usize) {
    eventually(15, "the owner gone and its replicaset orphaned", || async {
        let owner = c.deployments().get_opt(name).await.ok()?;
        let sets = replica_sets(c).await;
        let orphaned = sets.len() == 1 && sets[0].owner_references().is_empty();
        (owner.is_none() && orphaned).then_some(())
    })
    .await;
    // The orphaned ReplicaSet keeps its pods and is not collected.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(c.active_pods().await.len(), pods);
    assert_eq!(replica_sets(c).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_leaves_dependents_without_owner_references() {
    within(40, "orphan deletion never finished", async {
        let c = Cluster::start().await;
        deployment_with_pods(&c, "orph", 2).await;
        let pending = c
            .deployments()
            .delete("orph", &DeleteParams::orphan())
            .await
            .expect("deleting the deployment");
        let marked = pending.left().expect("the owner waits for orphaning");
        assert_eq!(marked.finalizers(), ["orphan"]);
        assert_orphaned(&c, "orph", 2).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_cascade_modes() {
    within(90, "kubectl delete --cascade never finished", async {
        let c = Cluster::start().await;
        deployment_with_pods(&c, "orph", 2).await;
        let out = kubectl(&c, &["delete", "deploy", "orph", "--cascade=orphan"]).await;
        assert!(out.contains("deployment.apps \"orph\" deleted"), "{out}");
        assert_orphaned(&c, "orph", 2).await;
        // Clean the orphans up by hand, then the other two modes; kubectl waits for
        // the owner to be gone before returning.
        kubectl(&c, &["delete", "rs", "--all"]).await;
        eventually(15, "orphaned pods collected", || async {
            all_pods(&c).await.is_empty().then_some(())
        })
        .await;
        deployment_with_pods(&c, "fg", 2).await;
        kubectl(&c, &["delete", "deploy", "fg", "--cascade=foreground"]).await;
        // Foreground: by the time the owner is gone, so are its dependents.
        assert!(replica_sets(&c).await.is_empty());
        assert!(all_pods(&c).await.is_empty());
        deployment_with_pods(&c, "bg", 2).await;
        kubectl(&c, &["delete", "deploy", "bg", "--cascade=background"]).await;
        everything_gone(&c, "bg").await;
    })
    .await;
}

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_terminates_empties_and_removes_it() {
    within(60, "namespace deletion never finished", async {
        let c = Cluster::start().await;
        let namespaces: Api<Namespace> = Api::all(c.client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace");
        let deployments = Api::namespaced(c.client.clone(), "team");
        deployments
            .create(
                &PostParams::default(),
                &deployment("app", 2, DeploymentStrategy::default()),
            )
            .await
            .expect("creating the deployment");
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "team");
        eventually(15, "2 pods in the namespace", || async {
            (pods.list(&ListParams::default()).await.ok()?.items.len() == 2).then_some(())
        })
        .await;
        // A pod held by a finalizer keeps the namespace Terminating while the test looks.
        let held = pods.list(&ListParams::default()).await.unwrap().items[0].name_any();
        pods.patch(
            &held,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": [HOLD]}})),
        )
        .await
        .expect("holding a pod");
        namespaces
            .delete("team", &DeleteParams::default())
            .await
            .expect("deleting the namespace");
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "team");
        let refused = cms
            .create(&PostParams::default(), &config_map("late"))
            .await
            .expect_err("creates in a terminating namespace are refused");
        match refused {
            kube::Error::Api(s) => {
                assert_eq!(s.code, 403);
                assert!(
                    s.message.contains("because it is being terminated"),
                    "{s:?}"
                );
            }
            other => panic!("expected 403, got {other:?}"),
        }
        let terminating = eventually(15, "the content-remaining condition", || async {
            let ns = namespaces.get("team").await.ok()?;
            let status = ns.status.clone()?;
            let remaining = status.conditions.as_ref()?.iter().find(|c| {
                c.type_ == "NamespaceContentRemaining"
                    && c.status == "True"
                    && c.message.as_deref().is_some_and(|m| m.contains("pods."))
            })?;
            let held_only = pods.list(&ListParams::default()).await.ok()?.items.len() == 1;
            held_only.then_some((status.phase, remaining.reason.clone()))
        })
        .await;
        assert_eq!(terminating.0.as_deref(), Some("Terminating"));
        assert_eq!(terminating.1.as_deref(), Some("SomeResourcesRemain"));
        let sets: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "team");
        assert!(sets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty());
        pods.patch(
            &held,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("releasing the pod");
        eventually(15, "the namespace and its contents to be gone", || async {
            let gone = namespaces.get_opt("team").await.ok()?.is_none();
            let empty = pods
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty();
            (gone && empty).then_some(())
        })
        .await;
        // kubectl waits for the namespace to be gone.
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace again");
        cms.create(&PostParams::default(), &config_map("c"))
            .await
            .expect("a config map");
        let out = kubectl(&c, &["delete", "ns", "team"]).await;
        assert!(out.contains("namespace \"team\" deleted"), "{out}");
        assert!(namespaces.get_opt("team").await.unwrap().is_none());
    })
    .await;
}
