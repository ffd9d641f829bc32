//! Status and scale subresources, field selectors on list and watch, health endpoints and
//! unauthenticated requests, against a real server on 127.0.0.1:0.

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::ResourceExt;
use serde_json::json;
use support::{raw_request, within, TestServer};

fn replica_set(name: &str) -> ReplicaSet {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}))
    .unwrap()
}

fn pod(name: &str, node: Option<&str>) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x:1"}]}}))
    .unwrap()
}

/// `kubectl scale` right after a create, while the controller writes status: the scale patch
/// applies to the object as it is when written (kube-apiserver retries a patch on a
/// conflict), so only a patch that names a resourceVersion can conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_patches_racing_status_writes_conflict_only_on_a_named_resource_version() {
    let s = TestServer::start().await;
    within(120, "a scale or status request hung", async {
        let rs: Api<ReplicaSet> = Api::namespaced(s.client.clone(), "default");
        let created = rs
            .create(&PostParams::default(), &replica_set("race"))
            .await
            .unwrap();
        let writer = {
            let rs = rs.clone();
            tokio::spawn(async move {
                for i in 0..400 {
                    let status = json!({"status": {"replicas": i}});
                    rs.patch_status("race", &PatchParams::default(), &Patch::Merge(status))
                        .await
                        .expect("status patch");
                }
            })
        };
        let mut scaled = 0;
        while !writer.is_finished() {
            let patch = json!({"spec": {"replicas": scaled % 7}});
            rs.patch_scale("race", &PatchParams::default(), &Patch::Merge(patch))
                .await
                .unwrap_or_else(|e| panic!("scale patch {scaled} during status writes: {e}"));
            scaled += 1;
        }
        writer.await.unwrap();
        assert!(
            scaled > 10,
            "only {scaled} scale patches ran during the status writes"
        );

        let stale = json!({"metadata": {"resourceVersion": created.resource_version()},
                           "spec": {"replicas": 1}});
        let err = rs
            .patch_scale("race", &PatchParams::default(), &Patch::Merge(stale))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, kube::Error::Api(s) if s.code == 409),
            "a stale resourceVersion in the patch: {err}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_scale_and_status_deployment_and_namespace_status() {
    let s = TestServer::start().await;
    within(60, "a subresource request hung", async {
        let c = &s.client;
        let rs: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
        rs.create(&PostParams::default(), &replica_set("web"))
            .await
            .unwrap();

        let scale = rs.get_scale("web").await.unwrap();
        assert_eq!(scale.spec.unwrap().replicas, Some(2));
        assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
        rs.patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("scale patch");
        let after = rs.get("web").await.unwrap();
        assert_eq!(after.spec.replicas, Some(5));
        assert_eq!(
            after.metadata.generation,
            Some(2),
            "scaling bumps generation"
        );

        // A status write keeps the spec; a spec write keeps the status.
        let patched = rs
            .patch_status(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 9},
                                     "status": {"replicas": 3, "readyReplicas": 1}})),
            )
            .await
            .expect("replicaset status patch");
        assert_eq!(patched.spec.replicas, Some(5));
        let st = patched.status.unwrap();
        assert_eq!((st.replicas, st.ready_replicas), (3, Some(1)));
        assert_eq!(
            patched.metadata.generation,
            Some(2),
            "status keeps generation"
        );
        let mut whole = rs.get("web").await.unwrap();
        whole.status.as_mut().unwrap().replicas = 0;
        whole.spec.min_ready_seconds = Some(4);
        let replaced = rs
            .replace("web", &PostParams::default(), &whole)
            .await
            .unwrap();
        assert_eq!(
            replaced.status.unwrap().replicas,
            3,
            "update ignores status"
        );

        let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
        let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}},
                                  "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}))
        .unwrap();
        deploys.create(&PostParams::default(), &d).await.unwrap();
        let d = deploys
            .patch_status(
                "d",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"availableReplicas": 1, "observedGeneration": 1}})),
            )
            .await
            .expect("deployment status patch");
        assert_eq!(d.status.unwrap().available_replicas, Some(1));

        let namespaces: Api<Namespace> = Api::all(c.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let cond = json!({"status": {"conditions": [{"type": "NamespaceDeletionDiscoveryFailure",
            "status": "False", "reason": "ResourcesDiscovered", "message": "all discovered"}]}});
        let ns = namespaces
            .patch_status("team", &PatchParams::default(), &Patch::Merge(cond))
            .await
            .expect("namespace status patch");
        let conds = ns.status.unwrap().conditions.unwrap();
        assert_eq!(conds[0].reason.as_deref(), Some("ResourcesDiscovered"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selectors_filter_lists_and_watches() {
    let s = TestServer::start().await;
    within(60, "a field-selected list or watch hung", async {
        let c = &s.client;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        for (name, node) in [("a", Some("n1")), ("b", Some("n2")), ("c", None)] {
            pods.create(&PostParams::default(), &pod(name, node))
                .await
                .unwrap();
        }
        pods.patch_status(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap();
        let names = |list: kube::core::ObjectList<Pod>| {
            let mut n: Vec<String> = list.items.iter().map(|p| p.name_any()).collect();
            n.sort();
            n
        };
        let on_n1 = pods
            .list(&ListParams::default().fields("spec.nodeName=n1"))
            .await
            .unwrap();
        assert_eq!(names(on_n1), ["a"]);
        // The scheduler's own query: pods with no node yet.
        let unbound = pods
            .list(&ListParams::default().fields("spec.nodeName="))
            .await
            .unwrap();
        assert_eq!(names(unbound), ["c"]);
        let not_running = pods
            .list(&ListParams::default().fields("status.phase!=Running"))
            .await
            .unwrap();
        assert_eq!(names(not_running), ["a", "c"]);

        // A watch with a field selector sees only its node's pods (the nodelet's watch).
        let list = pods.list(&ListParams::default()).await.unwrap();
        let rv = list.metadata.resource_version.unwrap();
        let mut watch = pods
            .watch(&WatchParams::default().fields("spec.nodeName=n2"), &rv)
            .await
            .unwrap()
            .boxed();
        pods.create(&PostParams::default(), &pod("elsewhere", Some("n1")))
            .await
            .unwrap();
        pods.create(&PostParams::default(), &pod("mine", Some("n2")))
            .await
            .unwrap();
        let first = watch.try_next().await.unwrap().expect("a watch event");
        match first {
            WatchEvent::Added(p) => assert_eq!(p.name_any(), "mine"),
            other => panic!("expected ADDED mine, got {other:?}"),
        }

        // Events by their involved object, as `kubectl describe` asks for them.
        let events: Api<Event> = Api::namespaced(c.clone(), "default");
        for (name, about) in [("e1", "a"), ("e2", "b")] {
            let ev: Event = serde_json::from_value(json!({"metadata": {"name": name},
                "involvedObject": {"kind": "Pod", "namespace": "default", "name": about},
                "reason": "Tested", "message": "m", "type": "Normal"}))
            .unwrap();
            events.create(&PostParams::default(), &ev).await.unwrap();
        }
        let about_b = events
            .list(&ListParams::default().fields("involvedObject.kind=Pod,involvedObject.name=b"))
            .await
            .unwrap();
        let names: Vec<String> = about_b.items.iter().map(|e| e.name_any()).collect();
        assert_eq!(names, ["e2"]);

        // A field the kind does not support is a 400, as in Kubernetes.
        let (code, status) = raw_request(
            c,
            "GET",
            "/api/v1/namespaces/default/pods?fieldSelector=spec.image%3Dx",
            None,
            vec![],
        )
        .await;
        assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_are_public_and_everything_else_needs_a_token() {
    let s = TestServer::start().await;
    within(30, "a plain HTTPS request hung", async {
        let addr = s.addr();
        // curl with -k: the point is the token, not the certificate (tested elsewhere).
        let get = |path: &str, token: Option<&str>| {
            let url = format!("https://{addr}{path}");
            let mut cmd = std::process::Command::new("curl");
            cmd.args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", &url]);
            if let Some(t) = token {
                cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
            }
            let out = cmd
                .output()
                .expect("curl runs (scripts/prereqs.sh installs it)");
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        for path in ["/healthz", "/livez", "/readyz", "/version"] {
            assert_eq!(get(path, None), "200", "{path} without a token");
        }
        assert_eq!(
            get("/api/v1/namespaces", None),
            "401",
            "no Authorization header"
        );
        assert_eq!(
            get("/api/v1/namespaces", Some("wrong")),
            "401",
            "a wrong token"
        );
        assert_eq!(get("/api/v1/namespaces", Some(&s.token())), "200");
    })
    .await;
}
