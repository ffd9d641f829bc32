//! ReplicaSet controller against a real API server.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::ResourceExt;
use support::*;

fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(name)),
                ..Default::default()
            },
            template: Some(template(name, "busybox:1")),
            ..Default::default()
        },
        status: None,
    }
}

async fn scale(c: &Cluster, name: &str, n: i32) {
    let body = serde_json::json!({"spec": {"replicas": n}});
    c.replica_sets()
        .patch(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .expect("scaling the replicaset");
}

async fn count_owned(c: &Cluster, want: usize) -> Option<Vec<Pod>> {
    let pods = c.active_pods().await;
    (pods.len() == want).then_some(pods)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_up_and_down_adopting_orphans_and_deleting_unready_first() {
    within(40, "the replicaset controller never converged", async {
        // The orphan exists before the controller-manager starts (as after a restart), so its
        // first pod list holds it: adopted instead of creating a fourth pod.
        let c = Cluster::start_without_controllers().await;
        let orphan = Pod {
            metadata: ObjectMeta {
                name: Some("orphan".into()),
                labels: Some(labels("web")),
                ..Default::default()
            },
            spec: template("web", "busybox:1").spec,
            status: None,
        };
        c.pods()
            .create(&PostParams::default(), &orphan)
            .await
            .expect("orphan pod");
        let _controllers = c.start_controllers();
        c.replica_sets()
            .create(&PostParams::default(), &replica_set("web", 3))
            .await
            .expect("creating the replicaset");
        let pods = eventually(10, "3 pods", || count_owned(&c, 3)).await;
        for p in &pods {
            let owner = &p.owner_references()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.name.as_str()),
                ("ReplicaSet", "web")
            );
            assert_eq!(owner.controller, Some(true));
            assert_eq!(owner.block_owner_deletion, Some(true));
        }
        assert!(
            pods.iter().any(|p| p.name_any() == "orphan"),
            "orphan adopted"
        );
        assert!(pods
            .iter()
            .filter(|p| p.name_any() != "orphan")
            .all(|p| p.name_any().starts_with("web-")));

        scale(&c, "web", 5).await;
        let pods = eventually(10, "5 pods", || count_owned(&c, 5)).await;
        // Ready: everything but one; scaling to 4 must delete that one.
        let unready = pods[2].name_any();
        for p in pods.iter().filter(|p| p.name_any() != unready) {
            mark_ready(&c.pods(), &p.name_any()).await;
        }
        eventually(10, "readyReplicas 4", || async {
            let rs = c.replica_sets().get("web").await.ok()?;
            let s = rs.status?;
            (s.ready_replicas == Some(4)
                && s.replicas == 5
                && s.available_replicas == Some(4)
                && s.fully_labeled_replicas == Some(5)
                && s.observed_generation == rs.metadata.generation)
                .then_some(())
        })
        .await;
        scale(&c, "web", 4).await;
        let pods = eventually(10, "4 pods", || count_owned(&c, 4)).await;
        assert!(
            pods.iter().all(|p| p.name_any() != unready),
            "the not-ready pod goes first"
        );

        scale(&c, "web", 1).await;
        eventually(10, "1 pod", || count_owned(&c, 1)).await;
        // Stays at 1: expectations keep a slow cache from re-creating or over-deleting.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(c.active_pods().await.len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaces_deleted_pods_and_releases_relabeled_ones() {
    within(30, "the replicaset never replaced its pods", async {
        let c = Cluster::start().await;
        c.replica_sets()
            .create(&PostParams::default(), &replica_set("api", 2))
            .await
            .expect("creating the replicaset");
        let pods = eventually(10, "2 pods", || count_owned(&c, 2)).await;
        let victim = pods[0].name_any();
        c.pods()
            .delete(&victim, &Default::default())
            .await
            .expect("deleting a pod");
        let relabel = pods[1].name_any();
        let body = serde_json::json!({"metadata": {"labels": {"app": "other"}}});
        c.pods()
            .patch(&relabel, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .expect("relabeling");
        eventually(10, "2 fresh pods plus the released one", || async {
            let pods = c.active_pods().await;
            let owned: Vec<_> = pods
                .iter()
                .filter(|p| p.labels().get("app").map(String::as_str) == Some("api"))
                .collect();
            let released = pods.iter().find(|p| p.name_any() == relabel)?;
            (owned.len() == 2 && released.owner_references().is_empty()).then_some(())
        })
        .await;
    })
    .await;
}
