//! Deployment controller against a real API server; the test plays kubelet.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, ResourceExt};
use support::*;

const HASH: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

fn rolling(surge: i32, unavailable: i32) -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(surge)),
            max_unavailable: Some(IntOrString::Int(unavailable)),
        }),
    }
}

fn recreate() -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    }
}

async fn patch(c: &Cluster, name: &str, body: serde_json::Value) {
    c.deployments()
        .patch(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .expect("patching the deployment");
}

async fn set_image(c: &Cluster, name: &str, image: &str) {
    let body = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
    patch(c, name, body).await;
}

/// What `kubectl rollout status` waits for.
fn rolled_out(d: &Deployment) -> bool {
    let want = d.spec.replicas.unwrap_or(1);
    let Some(s) = &d.status else { return false };
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas == Some(want)
        && s.replicas == Some(want)
        && s.available_replicas == Some(want)
}

async fn wait_rolled_out(c: &Cluster, name: &str) -> Deployment {
    eventually(20, "the rollout to complete", || async {
        let d = c.deployments().get(name).await.ok()?;
        rolled_out(&d).then_some(d)
    })
    .await
}

fn progressing_reason(d: &Deployment) -> Option<String> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))?
        .reason
        .clone()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// (active pods, ready pods, template hashes present) after each pod event.
type Observed = Arc<Mutex<Vec<(usize, usize, BTreeSet<String>)>>>;

/// Watches pods and records, after every event, (active pods, ready pods, template hashes).
fn observe(c: &Cluster) -> (Observed, tokio_util::task::AbortOnDropHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (store, writer) = kube::runtime::reflector::store::<Pod>();
    let stream = kube::runtime::reflector(writer, watcher(c.pods(), watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {
            let pods: Vec<_> = store
                .state()
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let ready = pods.iter().filter(|p| is_ready(p)).count();
            let hashes = pods
                .iter()
                .filter_map(|p| p.labels().get(HASH).cloned())
                .collect();
            record.lock().unwrap().push((pods.len(), ready, hashes));
        }
    });
    (seen, tokio_util::task::AbortOnDropHandle::new(task))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_respects_surge_and_unavailability_then_rolls_back() {
    within(50, "a rolling update or rollback never completed", async {
        let c = Cluster::start().await;
        let _kubelet = c.kubelet(Duration::from_millis(30));
        c.deployments()
            .create(&PostParams::default(), &deployment("web", 4, rolling(1, 1)))
            .await
            .expect("creating the deployment");
        let d = wait_rolled_out(&c, "web").await;
        assert_eq!(d.annotations().get(REVISION).map(String::as_str), Some("1"));
        assert_eq!(
            progressing_reason(&d).as_deref(),
            Some("NewReplicaSetAvailable")
        );
        let first_hash = c.active_pods().await[0].labels()[HASH].clone();

        let (seen, _watch) = observe(&c);
        tokio::time::sleep(Duration::from_millis(300)).await;
        set_image(&c, "web", "busybox:2").await;
        eventually(20, "all pods on the new template", || async {
            let d = c.deployments().get("web").await.ok()?;
            let pods = c.active_pods().await;
            (rolled_out(&d)
                && pods.len() == 4
                && pods.iter().all(|p| p.labels()[HASH] != first_hash))
            .then_some(())
        })
        .await;
        // Before the watch's initial list completes the store reads empty; skip that.
        let seen: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .skip_while(|s| s.0 == 0)
            .cloned()
            .collect();
        assert!(
            seen.iter().any(|(_, _, h)| h.len() == 2),
            "old and new pods overlapped during the roll"
        );
        for (total, ready, _) in &seen {
            assert!(*total <= 5, "more than replicas+maxSurge pods: {seen:?}");
            assert!(
                *ready >= 3,
                "fewer than replicas-maxUnavailable ready pods: {seen:?}"
            );
        }
        let d = c.deployments().get("web").await.unwrap();
        assert_eq!(d.annotations().get(REVISION).map(String::as_str), Some("2"));

        // Rollback (kubectl rollout undo copies the old template back): the revision-1
        // ReplicaSet is reused and becomes revision 3.
        set_image(&c, "web", "busybox:1").await;
        eventually(20, "the rollback to reuse the first replicaset", || async {
            let d = c.deployments().get("web").await.ok()?;
            let pods = c.active_pods().await;
            (rolled_out(&d)
                && pods.len() == 4
                && pods.iter().all(|p| p.labels()[HASH] == first_hash))
            .then_some(())
        })
        .await;
        let sets = c
            .replica_sets()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        assert_eq!(sets.len(), 2, "rollback must not create a third replicaset");
        let old = sets
            .iter()
            .find(|rs| rs.labels()[HASH] == first_hash)
            .unwrap();
        assert_eq!(old.annotations()[REVISION], "3");
        eventually(
            5,
            "the deployment's revision annotation to follow",
            || async {
                let d = c.deployments().get("web").await.ok()?;
                (d.annotations().get(REVISION).map(String::as_str) == Some("3")).then_some(())
            },
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_never_runs_two_versions_at_once() {
    within(40, "a Recreate rollout never completed", async {
        let c = Cluster::start().await;
        let _kubelet = c.kubelet(Duration::from_millis(20));
        c.deployments()
            .create(&PostParams::default(), &deployment("db", 3, recreate()))
            .await
            .expect("creating the deployment");
        wait_rolled_out(&c, "db").await;
        let (seen, _watch) = observe(&c);
        tokio::time::sleep(Duration::from_millis(300)).await;
        set_image(&c, "db", "busybox:2").await;
        eventually(20, "the new version", || async {
            let d = c.deployments().get("db").await.ok()?;
            let sets = c
                .replica_sets()
                .list(&ListParams::default())
                .await
                .ok()?
                .items;
            (rolled_out(&d) && sets.len() == 2).then_some(())
        })
        .await;
        let seen: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .skip_while(|s| s.0 == 0)
            .cloned()
            .collect();
        assert!(
            seen.iter().all(|(_, _, h)| h.len() <= 1),
            "old and new pods coexisted: {seen:?}"
        );
        assert!(
            seen.iter().any(|(n, _, _)| *n == 0),
            "Recreate goes through zero pods"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_deployment_does_not_roll_until_resumed() {
    within(40, "pause/resume never converged", async {
        let c = Cluster::start().await;
        let _kubelet = c.kubelet(Duration::from_millis(10));
        c.deployments()
            .create(&PostParams::default(), &deployment("api", 2, rolling(1, 0)))
            .await
            .expect("creating the deployment");
        wait_rolled_out(&c, "api").await;
        patch(&c, "api", serde_json::json!({"spec": {"paused": true}})).await;
        set_image(&c, "api", "busybox:2").await;
        eventually(10, "the DeploymentPaused condition", || async {
            let d = c.deployments().get("api").await.ok()?;
            (progressing_reason(&d).as_deref() == Some("DeploymentPaused")).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let sets = c
            .replica_sets()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        assert_eq!(
            sets.len(),
            1,
            "a paused deployment must not create a new replicaset"
        );
        patch(&c, "api", serde_json::json!({"spec": {"paused": false}})).await;
        eventually(20, "the resumed rollout", || async {
            let d = c.deployments().get("api").await.ok()?;
            let sets = c
                .replica_sets()
                .list(&ListParams::default())
                .await
                .ok()?
                .items;
            (rolled_out(&d) && sets.len() == 2).then_some(())
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_deadline_exceeded_when_pods_never_become_ready() {
    within(30, "the progress deadline never fired", async {
        let c = Cluster::start().await;
        // No kubelet: pods never become ready.
        let mut d = deployment("stuck", 2, rolling(1, 0));
        d.spec.progress_deadline_seconds = Some(2);
        c.deployments()
            .create(&PostParams::default(), &d)
            .await
            .expect("creating");
        let d = eventually(15, "ProgressDeadlineExceeded", || async {
            let d = c.deployments().get("stuck").await.ok()?;
            (progressing_reason(&d).as_deref() == Some("ProgressDeadlineExceeded")).then_some(d)
        })
        .await;
        let conds = d.status.unwrap().conditions.unwrap();
        let available = conds
            .iter()
            .find(|c| c.type_.as_deref() == Some("Available"))
            .unwrap();
        assert_eq!(available.status.as_deref(), Some("False"));
        assert_eq!(
            available.reason.as_deref(),
            Some("MinimumReplicasUnavailable")
        );
    })
    .await;
}

fn revisions(sets: &[ReplicaSet]) -> Vec<String> {
    let mut out: Vec<String> = sets
        .iter()
        .filter_map(|rs| rs.annotations().get(REVISION).cloned())
        .collect();
    out.sort();
    out
}

/// Kubernetes' cleanupDeployment: scaled-down old ReplicaSets beyond revisionHistoryLimit
/// are deleted, oldest revision first; the limit counts old sets, not the current one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_replicasets_beyond_the_revision_history_limit_are_deleted_oldest_first() {
    within(60, "old replicasets were never cleaned up", async {
        let c = Cluster::start().await;
        let _kubelet = c.kubelet(Duration::from_millis(10));
        let mut d = deployment("hist", 1, rolling(1, 0));
        d.spec.revision_history_limit = Some(1);
        c.deployments()
            .create(&PostParams::default(), &d)
            .await
            .expect("creating the deployment");
        wait_rolled_out(&c, "hist").await;
        for (image, want) in [
            ("busybox:2", vec!["1", "2"]),
            ("busybox:3", vec!["2", "3"]),
            ("busybox:4", vec!["3", "4"]),
        ] {
            set_image(&c, "hist", image).await;
            let what = format!("revisions {want:?} left after rolling to {image}");
            let sets = eventually(20, &what, || async {
                let d = c.deployments().get("hist").await.ok()?;
                let sets = c
                    .replica_sets()
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items;
                (rolled_out(&d) && revisions(&sets) == want).then_some(sets)
            })
            .await;
            let current = sets.iter().find(|rs| rs.annotations()[REVISION] == want[1]);
            let image_of = |rs: &ReplicaSet| {
                let spec = rs.spec.template.as_ref()?.spec.as_ref()?;
                spec.containers[0].image.clone()
            };
            assert_eq!(current.and_then(image_of).as_deref(), Some(image));
        }
    })
    .await;
}

async fn events_about(c: &Cluster, kind: &str, name: &str, reason: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let list = events
        .list(&ListParams::default())
        .await
        .expect("listing events");
    list.items
        .into_iter()
        .filter(|e| {
            let about = &e.involved_object;
            e.reason.as_deref() == Some(reason)
                && about.kind.as_deref() == Some(kind)
                && about.name.as_deref() == Some(name)
        })
        .collect()
}

fn messages(events: &[Event]) -> BTreeSet<String> {
    events.iter().filter_map(|e| e.message.clone()).collect()
}

/// The events `kubectl describe` shows for a scale up and down: ScalingReplicaSet on the
/// Deployment, SuccessfulCreate and SuccessfulDelete on its ReplicaSet, each naming what it
/// changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_publishes_events_about_the_deployment_and_its_replicaset() {
    within(40, "the controllers' events never appeared", async {
        let c = Cluster::start().await;
        let _kubelet = c.kubelet(Duration::from_millis(10));
        let d = c
            .deployments()
            .create(&PostParams::default(), &deployment("evt", 2, rolling(1, 0)))
            .await
            .expect("creating the deployment");
        wait_rolled_out(&c, "evt").await;
        let rs = c
            .replica_sets()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .remove(0);
        let rs_name = rs.name_any();
        let created: BTreeSet<String> = c
            .active_pods()
            .await
            .iter()
            .map(|p| format!("Created pod: {}", p.name_any()))
            .collect();
        patch(&c, "evt", serde_json::json!({"spec": {"replicas": 1}})).await;
        let survivor = eventually(15, "one pod left", || async {
            let pods = c.active_pods().await;
            (pods.len() == 1).then(|| pods[0].name_any())
        })
        .await;
        let (scaling, creates, deletes) = eventually(10, "all three kinds of event", || async {
            let scaling = events_about(&c, "Deployment", "evt", "ScalingReplicaSet").await;
            let creates = events_about(&c, "ReplicaSet", &rs_name, "SuccessfulCreate").await;
            let deletes = events_about(&c, "ReplicaSet", &rs_name, "SuccessfulDelete").await;
            (scaling.len() >= 2 && creates.len() >= 2 && !deletes.is_empty())
                .then_some((scaling, creates, deletes))
        })
        .await;
        let scaled = messages(&scaling);
        assert!(
            scaled.contains(&format!("Scaled up replica set {rs_name} to 2")),
            "{scaled:?}"
        );
        assert!(
            scaled.contains(&format!("Scaled down replica set {rs_name} to 1 from 2")),
            "{scaled:?}"
        );
        assert_eq!(messages(&creates), created);
        let deleted = messages(&deletes);
        assert_eq!(deleted.len(), 1, "{deleted:?}");
        let victim = deleted
            .iter()
            .next()
            .unwrap()
            .strip_prefix("Deleted pod: ")
            .unwrap();
        assert!(created.contains(&format!("Created pod: {victim}")) && victim != survivor);
        // Each names its object exactly, uid included, and says who reported it.
        for (e, uid, component) in scaling
            .iter()
            .map(|e| (e, &d.metadata.uid, "deployment-controller"))
            .chain(
                creates
                    .iter()
                    .chain(&deletes)
                    .map(|e| (e, &rs.metadata.uid, "replicaset-controller")),
            )
        {
            assert_eq!(&e.involved_object.uid, uid, "{e:?}");
            assert_eq!(e.involved_object.namespace.as_deref(), Some("default"));
            assert_eq!(e.type_.as_deref(), Some("Normal"));
            let source = e.source.as_ref().and_then(|s| s.component.as_deref());
            assert_eq!(source, Some(component), "{e:?}");
        }
    })
    .await;
}
