//! CRUD, conflicts, defaulting, lifecycle, selectors, paging and subresources against a
//! real server through the `kube` crate.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{raw_request, within, TestServer};

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap()
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_crud_conflicts_and_defaults() {
    let s = TestServer::start().await;
    within(60, "pod CRUD against the server", async {
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
        let created = pods
            .create(&PostParams::default(), &pod("a"))
            .await
            .unwrap();
        let meta = &created.metadata;
        assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
        let rv: u64 = meta.resource_version.as_ref().unwrap().parse().unwrap();
        let spec = created.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("Always")
        );
        let tolerations = spec.tolerations.as_ref().unwrap();
        assert!(tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/not-ready")
                && t.toleration_seconds == Some(300)));
        assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));

        let dup = pods
            .create(&PostParams::default(), &pod("a"))
            .await
            .unwrap_err();
        let dup = api_err(dup);
        assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));

        let mut got = pods.get("a").await.unwrap();
        got.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("v".into(), "2".into());
        let updated = pods
            .replace("a", &PostParams::default(), &got)
            .await
            .unwrap();
        let rv2: u64 = updated
            .metadata
            .resource_version
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rv2 > rv);
        // Writing with the old resourceVersion again is a conflict.
        let stale = api_err(
            pods.replace("a", &PostParams::default(), &got)
                .await
                .unwrap_err(),
        );
        assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));

        let missing: Api<Pod> = Api::namespaced(s.client.clone(), "nope");
        let e = api_err(
            missing
                .create(&PostParams::default(), &pod("x"))
                .await
                .unwrap_err(),
        );
        assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));

        let list = pods.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 1);
        // Unbound pods are deleted at once.
        let deleted = pods.delete("a", &DeleteParams::default()).await.unwrap();
        assert!(deleted.is_left());
        let e = api_err(pods.get("a").await.unwrap_err());
        assert_eq!(e.code, 404);

        let mut gen = pod("g");
        gen.metadata.name = None;
        gen.metadata.generate_name = Some("gen-".into());
        let g = pods.create(&PostParams::default(), &gen).await.unwrap();
        let name = g.metadata.name.unwrap();
        assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

        // The system namespaces exist.
        let nss: Api<Namespace> = Api::all(s.client.clone());
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            nss.get(ns).await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_delete_finalizers_and_dry_run() {
    let s = TestServer::start().await;
    within(60, "graceful deletion", async {
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
        let mut p = pod("bound");
        p.spec.as_mut().unwrap().node_name = Some("n1".into());
        pods.create(&PostParams::default(), &p).await.unwrap();
        let first = pods
            .delete("bound", &DeleteParams::default())
            .await
            .unwrap();
        let marked = first.left().expect("pending pod comes back");
        assert!(marked.metadata.deletion_timestamp.is_some());
        assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
        pods.get("bound").await.unwrap();
        pods.delete("bound", &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
        assert_eq!(api_err(pods.get("bound").await.unwrap_err()).code, 404);

        let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "f",
            "finalizers": ["example.com/hold"]}, "data": {"k": "v"}}))
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        cms.delete("f", &DeleteParams::default()).await.unwrap();
        let held = cms.get("f").await.unwrap();
        assert!(held.metadata.deletion_timestamp.is_some());
        let mut release = held.clone();
        release.metadata.finalizers = Some(vec![]);
        cms.replace("f", &PostParams::default(), &release)
            .await
            .unwrap();
        assert_eq!(api_err(cms.get("f").await.unwrap_err()).code, 404);

        // dryRun stores nothing.
        let pp = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let dry = cms
            .create(
                &pp,
                &serde_json::from_value(json!({"metadata": {"name": "dry"}})).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(dry.metadata.name.as_deref(), Some("dry"));
        assert_eq!(api_err(cms.get("dry").await.unwrap_err()).code, 404);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_and_paging() {
    let s = TestServer::start().await;
    within(60, "selectors and paging", async {
        let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
        for i in 0..10 {
            let tier = if i % 2 == 0 { "even" } else { "odd" };
            let cm: ConfigMap = serde_json::from_value(json!({"metadata": {
                "name": format!("cm{i}"), "labels": {"tier": tier, "n": i.to_string()}}}))
            .unwrap();
            cms.create(&PostParams::default(), &cm).await.unwrap();
        }
        let count = |lp: ListParams| {
            let cms = cms.clone();
            async move { cms.list(&lp).await.unwrap().items.len() }
        };
        assert_eq!(count(ListParams::default().labels("tier=even")).await, 5);
        assert_eq!(count(ListParams::default().labels("tier!=even")).await, 5);
        assert_eq!(count(ListParams::default().labels("n in (1,2,3)")).await, 3);
        assert_eq!(
            count(ListParams::default().labels("n notin (1,2,3),tier")).await,
            7
        );
        assert_eq!(count(ListParams::default().labels("!tier")).await, 0);
        assert_eq!(
            count(ListParams::default().fields("metadata.name=cm3")).await,
            1
        );
        let e = api_err(
            cms.list(&ListParams::default().fields("data.k=v"))
                .await
                .unwrap_err(),
        );
        assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));

        // Paging: 3 at a time, with and without a selector, sees everything once.
        for (sel, want) in [("", 10), ("tier=odd", 5)] {
            let mut seen = Vec::new();
            let mut lp = ListParams::default().limit(3).labels(sel);
            loop {
                let page = cms.list(&lp).await.unwrap();
                assert!(page.items.len() <= 3);
                seen.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
                match page.metadata.continue_ {
                    Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
                    _ => break,
                }
            }
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), want, "selector {sel:?}");
        }
        let e = api_err(
            cms.list(&ListParams::default().limit(2).continue_token("garbage"))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 400);

        // deletecollection honours the selector.
        cms.delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("tier=odd"),
        )
        .await
        .unwrap();
        assert_eq!(count(ListParams::default()).await, 5);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subresources_binding_scale_status_log() {
    let s = TestServer::start().await;
    within(60, "subresources", async {
        let c = &s.client;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        pods.create(&PostParams::default(), &pod("p"))
            .await
            .unwrap();
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                             "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}});
        let path = "/api/v1/namespaces/default/pods/p/binding";
        let body = serde_json::to_vec(&binding).unwrap();
        let (code, _) = raw_request(c, "POST", path, Some("application/json"), body.clone()).await;
        assert_eq!(code, 201);
        let bound = pods.get("p").await.unwrap();
        assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("n1"));
        let (code, status) = raw_request(c, "POST", path, Some("application/json"), body).await;
        assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")));

        // Status updates change status only.
        let mut st = pods.get_status("p").await.unwrap();
        st.status.as_mut().unwrap().phase = Some("Running".into());
        st.spec.as_mut().unwrap().node_name = Some("elsewhere".into());
        let after = pods
            .replace_status("p", &PostParams::default(), &st)
            .await
            .unwrap();
        assert_eq!(after.status.unwrap().phase.as_deref(), Some("Running"));
        assert_eq!(after.spec.unwrap().node_name.as_deref(), Some("n1"));

        let (code, status) = raw_request(
            c,
            "GET",
            "/api/v1/namespaces/default/pods/p/log",
            None,
            vec![],
        )
        .await;
        // Bound to a node that does not exist: kube-apiserver's connection lookup fails
        // with the node's NotFound.
        assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
        assert_eq!(status["message"], "nodes \"n1\" not found");

        let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
        let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}},
                                  "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}))
        .unwrap();
        let d = deploys.create(&PostParams::default(), &d).await.unwrap();
        assert_eq!(d.metadata.generation, Some(1));
        let spec = &d.spec;
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.revision_history_limit, Some(10));
        assert_eq!(spec.progress_deadline_seconds, Some(600));
        let scale = deploys.get_scale("d").await.unwrap();
        assert_eq!(scale.spec.unwrap().replicas, Some(1));
        assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=d"));
        let mut sc = deploys.get_scale("d").await.unwrap();
        sc.spec.as_mut().unwrap().replicas = Some(4);
        deploys
            .replace_scale("d", &PostParams::default(), &sc)
            .await
            .unwrap();
        let d2 = deploys.get("d").await.unwrap();
        assert_eq!(d2.spec.replicas, Some(4));
        assert_eq!(
            d2.metadata.generation,
            Some(2),
            "spec change bumps generation"
        );
        let mut relabel = deploys.get("d").await.unwrap();
        relabel.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
        let d3 = deploys
            .replace("d", &PostParams::default(), &relabel)
            .await
            .unwrap();
        assert_eq!(
            d3.metadata.generation,
            Some(2),
            "metadata change keeps generation"
        );

        let nodes: Api<Node> = Api::all(c.clone());
        let n: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
        nodes.create(&PostParams::default(), &n).await.unwrap();
        // A status patch changes status only; the spec in the same patch is ignored.
        let patched = nodes
            .patch_status(
                "n1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"unschedulable": true},
                                     "status": {"phase": "Running"}})),
            )
            .await
            .expect("node status patch");
        assert_eq!(patched.status.unwrap().phase.as_deref(), Some("Running"));
        assert_eq!(patched.spec.and_then(|s| s.unschedulable), None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_distinct_cluster_ips_released_on_delete() {
    let s = TestServer::start().await;
    within(60, "ClusterIP allocation", async {
        let svcs: Api<Service> = Api::namespaced(s.client.clone(), "default");
        let svc = |name: &str, ty: &str| -> Service {
            serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"type": ty, "selector": {"app": name}, "ports": [{"port": 80}]}}))
            .unwrap()
        };
        let a = svcs
            .create(&PostParams::default(), &svc("a", "ClusterIP"))
            .await
            .unwrap();
        let b = svcs
            .create(&PostParams::default(), &svc("b", "NodePort"))
            .await
            .unwrap();
        let ip_a = a.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
        let bspec = b.spec.as_ref().unwrap();
        let ip_b = bspec.cluster_ip.clone().unwrap();
        assert_ne!(ip_a, ip_b);
        assert!(
            ip_a.starts_with("10.96.") && ip_b.starts_with("10.96."),
            "{ip_a} {ip_b}"
        );
        let port = &bspec.ports.as_ref().unwrap()[0];
        assert_eq!(port.protocol.as_deref(), Some("TCP"));
        let np = port.node_port.unwrap();
        assert!((30000..=32767).contains(&np));
        assert_eq!(
            a.spec.as_ref().unwrap().session_affinity.as_deref(),
            Some("None")
        );

        // Asking for a taken IP is refused.
        let mut dup = svc("c", "ClusterIP");
        dup.spec.as_mut().unwrap().cluster_ip = Some(ip_a.clone());
        let e = api_err(svcs.create(&PostParams::default(), &dup).await.unwrap_err());
        assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
        // After delete the IP is free again.
        svcs.delete("a", &DeleteParams::default()).await.unwrap();
        let c = svcs.create(&PostParams::default(), &dup).await.unwrap();
        assert_eq!(c.spec.unwrap().cluster_ip.as_deref(), Some(ip_a.as_str()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_patch_type_and_server_side_apply() {
    let s = TestServer::start().await;
    within(60, "patches", async {
        let deploys: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
        let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "d"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}},
                                  "spec": {"containers": [
                                      {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                                      {"name": "b", "image": "b:1"}]}}}}))
        .unwrap();
        deploys.create(&PostParams::default(), &d).await.unwrap();
        let pp = PatchParams::default();

        // JSON patch (RFC 6902).
        let jp: json_patch::Patch = serde_json::from_value(json!([
            {"op": "replace", "path": "/spec/replicas", "value": 2}])).unwrap();
        let out = deploys.patch("d", &pp, &Patch::<()>::Json(jp)).await.unwrap();
        assert_eq!(out.spec.replicas, Some(2));

        // Merge patch (RFC 7386) replaces lists wholesale.
        let out = deploys
            .patch("d", &pp, &Patch::Merge(json!({"metadata": {"labels": {"m": "1"}}})))
            .await
            .unwrap();
        assert_eq!(out.metadata.labels.unwrap()["m"], "1");

        // Strategic merge patch merges containers by name.
        let smp = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "b", "image": "b:2"}]}}}});
        let out = deploys.patch("d", &pp, &Patch::Strategic(smp)).await.unwrap();
        let cs = &out.spec.template.spec.as_ref().unwrap().containers;
        assert_eq!(cs.len(), 2, "strategic merge keeps the other container");
        assert_eq!(cs[1].image.as_deref(), Some("b:2"));
        assert_eq!(cs[0].env.as_ref().unwrap()[0].name, "X");

        // Server-side apply creates, then owns fields; another manager conflicts unless forced.
        let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "ssa"}, "data": {"a": "1"}});
        let mine = PatchParams::apply("mine");
        let created = cms.patch("ssa", &mine, &Patch::Apply(&applied)).await.unwrap();
        assert_eq!(created.data.as_ref().unwrap()["a"], "1");
        assert!(created.metadata.managed_fields.is_some());
        let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "ssa"}, "data": {"a": "2"}});
        let e = api_err(
            cms.patch("ssa", &PatchParams::apply("theirs"), &Patch::Apply(&theirs))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 409);
        // Regression: the handler once prefixed the message a second time
        // ("Apply failed with Apply failed with 1 conflict: ...").
        assert!(
            e.message.starts_with("Apply failed with 1 conflict: conflict with \"mine\"")
                && !e.message.contains("with Apply failed"),
            "conflict message as kube-apiserver writes it: {}",
            e.message
        );
        let forced = cms
            .patch("ssa", &PatchParams::apply("theirs").force(), &Patch::Apply(&theirs))
            .await
            .unwrap();
        assert_eq!(forced.data.unwrap()["a"], "2");

        // dryRun on a patch changes nothing.
        let dry = PatchParams {
            dry_run: true,
            ..Default::default()
        };
        let out = deploys
            .patch("d", &dry, &Patch::Merge(json!({"spec": {"replicas": 9}})))
            .await
            .unwrap();
        assert_eq!(out.spec.replicas, Some(9));
        assert_eq!(deploys.get("d").await.unwrap().spec.replicas, Some(2));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ips_are_not_reused_after_restart_and_yaml_bodies_work() {
    let s = TestServer::start().await;
    let svc = |name: &str| -> Vec<u8> {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n"
        )
        .into_bytes()
    };
    let path = "/api/v1/namespaces/default/services";
    let yaml = Some("application/yaml");
    let (code, first) = within(
        30,
        "YAML create",
        raw_request(&s.client, "POST", path, yaml, svc("a")),
    )
    .await;
    assert_eq!(code, 201, "{first}");
    let dir = within(30, "server stop", s.stop()).await;
    let s = TestServer::start_in(dir).await;
    let (code, second) = within(
        30,
        "create after restart",
        raw_request(&s.client, "POST", path, yaml, svc("b")),
    )
    .await;
    assert_eq!(code, 201, "{second}");
    assert_ne!(first["spec"]["clusterIP"], second["spec"]["clusterIP"]);
    assert_ne!(
        first["spec"]["ports"][0]["nodePort"],
        second["spec"]["ports"][0]["nodePort"]
    );
}
