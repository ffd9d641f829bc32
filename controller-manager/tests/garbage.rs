//! Cascading deletion through the garbage collector in all three propagation modes (through
//! the kube client and through kubectl), for the workload kinds and for any other kind, and
//! namespace deletion through the namespace controller.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DeploymentStrategy, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
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

// The collector is generic: any kind the API server serves may own, or be owned by, any
// other, and every propagation mode finishes for every kind.

/// An owner reference to `owner` (a created object of `kind` in `api_version`).
fn owner_ref(api_version: &str, kind: &str, owner: &ObjectMeta, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap(),
        uid: owner.uid.clone().unwrap(),
        block_owner_deletion: Some(block),
        controller: None,
    }
}

fn config_maps(c: &Cluster) -> Api<ConfigMap> {
    Api::namespaced(c.client.clone(), "default")
}

fn secrets(c: &Cluster) -> Api<Secret> {
    Api::namespaced(c.client.clone(), "default")
}

async fn create_config_map(c: &Cluster, name: &str, owners: Vec<OwnerReference>) -> ObjectMeta {
    let mut cm = config_map(name);
    cm.metadata.owner_references = Some(owners);
    config_maps(c)
        .create(&PostParams::default(), &cm)
        .await
        .expect("creating a config map")
        .metadata
}

async fn create_secret(c: &Cluster, name: &str, owners: Vec<OwnerReference>) -> ObjectMeta {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: Some(owners),
            ..Default::default()
        },
        ..Default::default()
    };
    secrets(c)
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating a secret")
        .metadata
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_deletion_collects_dependents_of_any_kind() {
    within(
        40,
        "dependents of other kinds were never collected",
        async {
            let c = Cluster::start().await;
            let deploy = c
                .deployments()
                .create(
                    &PostParams::default(),
                    &deployment("app", 0, DeploymentStrategy::default()),
                )
                .await
                .expect("creating the deployment")
                .metadata;
            // A ConfigMap owned by a Deployment; a ConfigMap owned by a ConfigMap, owning a
            // Secret in turn: deleting the roots collects the whole chains.
            create_config_map(
                &c,
                "app-config",
                vec![owner_ref("apps/v1", "Deployment", &deploy, false)],
            )
            .await;
            let root = create_config_map(&c, "root", vec![]).await;
            let child = create_config_map(
                &c,
                "child",
                vec![owner_ref("v1", "ConfigMap", &root, false)],
            )
            .await;
            create_secret(
                &c,
                "grandchild",
                vec![owner_ref("v1", "ConfigMap", &child, false)],
            )
            .await;
            // Live owners keep their dependents.
            tokio::time::sleep(Duration::from_millis(800)).await;
            assert!(config_maps(&c)
                .get_opt("app-config")
                .await
                .unwrap()
                .is_some());
            assert!(secrets(&c).get_opt("grandchild").await.unwrap().is_some());
            c.deployments()
                .delete("app", &DeleteParams::background())
                .await
                .expect("deleting the deployment");
            config_maps(&c)
                .delete("root", &DeleteParams::background())
                .await
                .expect("deleting the root config map");
            eventually(
                15,
                "the dependents of the deleted owners collected",
                || async {
                    let cm = config_maps(&c);
                    let gone = cm.get_opt("app-config").await.ok()?.is_none()
                        && cm.get_opt("child").await.ok()?.is_none()
                        && secrets(&c).get_opt("grandchild").await.ok()?.is_none();
                    gone.then_some(())
                },
            )
            .await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_of_a_config_map_waits_for_its_blocking_secret() {
    within(
        40,
        "the foreground delete of a config map never finished",
        async {
            let c = Cluster::start().await;
            let owner = create_config_map(&c, "owner", vec![]).await;
            let held = Secret {
                metadata: ObjectMeta {
                    name: Some("dependent".into()),
                    owner_references: Some(vec![owner_ref("v1", "ConfigMap", &owner, true)]),
                    finalizers: Some(vec![HOLD.into()]),
                    ..Default::default()
                },
                ..Default::default()
            };
            secrets(&c)
                .create(&PostParams::default(), &held)
                .await
                .expect("creating the held secret");
            config_maps(&c)
                .delete("owner", &DeleteParams::foreground())
                .await
                .expect("deleting the owner");
            // The collector deletes the dependent (it stays, held by the test's finalizer)…
            eventually(15, "the dependent secret marked for deletion", || async {
                let s = secrets(&c).get_opt("dependent").await.ok()??;
                s.metadata.deletion_timestamp.map(|_| ())
            })
            .await;
            // …and the owner waits for it.
            tokio::time::sleep(Duration::from_millis(800)).await;
            let waiting = config_maps(&c)
                .get("owner")
                .await
                .expect("the owner waits for its blocking dependent");
            assert!(waiting.metadata.deletion_timestamp.is_some());
            assert!(waiting
                .finalizers()
                .iter()
                .any(|f| f == "foregroundDeletion"));
            secrets(&c)
                .patch(
                    "dependent",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                )
                .await
                .expect("releasing the dependent");
            // Each time the owner is seen, its dependent must already be gone.
            eventually(15, "the owner gone after its dependent", || async {
                let dependent_gone = secrets(&c).get_opt("dependent").await.ok()?.is_none();
                let owner_gone = config_maps(&c).get_opt("owner").await.ok()?.is_none();
                assert!(
                    dependent_gone || !owner_gone,
                    "the owner went before its dependent"
                );
                owner_gone.then_some(())
            })
            .await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_of_a_config_map_keeps_its_dependent_without_the_reference() {
    within(
        40,
        "the orphan delete of a config map never finished",
        async {
            let c = Cluster::start().await;
            let owner = create_config_map(&c, "owner", vec![]).await;
            let other = create_config_map(&c, "other", vec![]).await;
            create_secret(
                &c,
                "dependent",
                vec![
                    owner_ref("v1", "ConfigMap", &owner, true),
                    owner_ref("v1", "ConfigMap", &other, false),
                ],
            )
            .await;
            let pending = config_maps(&c)
                .delete("owner", &DeleteParams::orphan())
                .await
                .expect("deleting the owner");
            assert!(pending.is_left(), "the owner waits for orphaning");
            eventually(15, "the owner gone", || async {
                config_maps(&c)
                    .get_opt("owner")
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            })
            .await;
            let kept = secrets(&c)
                .get("dependent")
                .await
                .expect("the dependent stays");
            let refs: Vec<&str> = kept
                .owner_references()
                .iter()
                .map(|r| r.name.as_str())
                .collect();
            assert_eq!(
                refs,
                ["other"],
                "only the reference to the deleted owner is removed"
            );
            // And, orphaned, it is not collected later.
            tokio::time::sleep(Duration::from_millis(800)).await;
            assert!(secrets(&c).get_opt("dependent").await.unwrap().is_some());
        },
    )
    .await;
}

/// Regression: the API server adds `foregroundDeletion` (or `orphan`) on a cascading
/// delete of any kind, and the collector used to finish it only for Deployments,
/// ReplicaSets and Services, leaving other objects deleting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_cascading_delete_of_a_config_map_without_dependents_completes() {
    within(60, "kubectl delete cm --cascade never returned", async {
        let c = Cluster::start().await;
        for mode in ["foreground", "orphan"] {
            let name = format!("lonely-{mode}");
            create_config_map(&c, &name, vec![]).await;
            let cascade = format!("--cascade={mode}");
            // kubectl waits for the object to be gone.
            let out = kubectl(&c, &["delete", "cm", &name, &cascade, "--timeout=20s"]).await;
            assert!(
                out.contains(&format!("configmap \"{name}\" deleted")),
                "{out}"
            );
            assert!(config_maps(&c).get_opt(&name).await.unwrap().is_none());
        }
    })
    .await;
}
