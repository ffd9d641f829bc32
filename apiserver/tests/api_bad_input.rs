//! A table of bad requests: each must get the right Status code and reason, store
//! nothing (the store's global revision does not move), and leave the server serving.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::{raw_request, within, TestServer};

struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    code: u16,
    reason: &'static str,
}

fn j(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn pod(name: &str, spec: serde_json::Value) -> Vec<u8> {
    j(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}))
}

fn good_spec() -> serde_json::Value {
    json!({"containers": [{"name": "c", "image": "busybox"}]})
}

const PODS: &str = "/api/v1/namespaces/default/pods";
const JSON: Option<&str> = Some("application/json");

fn cases() -> Vec<Case> {
    let c = |what, method, path, content_type, body, code, reason| Case {
        what,
        method,
        path,
        content_type,
        body,
        code,
        reason,
    };
    let huge = {
        let mut v =
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"a":""#
                .to_vec();
        v.extend(std::iter::repeat_n(b'x', 3 * 1024 * 1024 + 10));
        v.extend(br#""}}"#);
        v
    };
    vec![
        c(
            "malformed JSON",
            "POST",
            PODS,
            JSON,
            b"{\"metadata\":".to_vec(),
            400,
            "BadRequest",
        ),
        c(
            "malformed YAML",
            "POST",
            PODS,
            Some("application/yaml"),
            b"a: [b\n".to_vec(),
            400,
            "BadRequest",
        ),
        c("empty body", "POST", PODS, JSON, vec![], 400, "BadRequest"),
        c(
            "array body",
            "POST",
            PODS,
            JSON,
            b"[]".to_vec(),
            400,
            "BadRequest",
        ),
        c(
            "text/plain body",
            "POST",
            PODS,
            Some("text/plain"),
            pod("tp", good_spec()),
            415,
            "UnsupportedMediaType",
        ),
        c(
            "body over 3 MiB",
            "POST",
            "/api/v1/namespaces/default/configmaps",
            JSON,
            huge,
            413,
            "RequestEntityTooLarge",
        ),
        c(
            "kind mismatch",
            "POST",
            PODS,
            JSON,
            j(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "km"}})),
            400,
            "BadRequest",
        ),
        c(
            "apiVersion mismatch",
            "POST",
            PODS,
            JSON,
            j(json!({"apiVersion": "apps/v1", "kind": "Pod", "metadata": {"name": "av"}})),
            400,
            "BadRequest",
        ),
        c(
            "namespace mismatch",
            "POST",
            PODS,
            JSON,
            j(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nm", "namespace": "kube-system"},
                   "spec": good_spec()}),
            ),
            400,
            "BadRequest",
        ),
        c(
            "invalid DNS-1123 name",
            "POST",
            PODS,
            JSON,
            pod("Bad_Name", good_spec()),
            422,
            "Invalid",
        ),
        c(
            "name with a slash",
            "POST",
            "/api/v1/namespaces/default/configmaps",
            JSON,
            j(json!({"metadata": {"name": "a/b"}})),
            422,
            "Invalid",
        ),
        c(
            "no name or generateName",
            "POST",
            PODS,
            JSON,
            j(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": good_spec()})),
            422,
            "Invalid",
        ),
        c(
            "empty containers",
            "POST",
            PODS,
            JSON,
            pod("ec", json!({"containers": []})),
            422,
            "Invalid",
        ),
        c(
            "duplicate container names",
            "POST",
            PODS,
            JSON,
            pod(
                "dc",
                json!({"containers": [{"name": "c", "image": "a"}, {"name": "c", "image": "b"}]}),
            ),
            422,
            "Invalid",
        ),
        c(
            "container port out of range",
            "POST",
            PODS,
            JSON,
            pod(
                "bp",
                json!({"containers": [{"name": "c", "image": "a", "ports": [{"containerPort": 70000}]}]}),
            ),
            422,
            "Invalid",
        ),
        c(
            "deployment selector not matching template",
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            JSON,
            j(
                json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "a"}},
                   "template": {"metadata": {"labels": {"app": "b"}}, "spec": good_spec()}}}),
            ),
            422,
            "Invalid",
        ),
        c(
            "service port 0",
            "POST",
            "/api/v1/namespaces/default/services",
            JSON,
            j(json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 0}]}})),
            422,
            "Invalid",
        ),
        c(
            "missing namespace",
            "POST",
            "/api/v1/namespaces/nope/pods",
            JSON,
            pod("mn", good_spec()),
            404,
            "NotFound",
        ),
        c(
            "unknown resource",
            "GET",
            "/api/v1/widgets",
            None,
            vec![],
            404,
            "NotFound",
        ),
        c(
            "unknown group",
            "GET",
            "/apis/nope.example.com/v1/things",
            None,
            vec![],
            404,
            "NotFound",
        ),
        c(
            "unknown object",
            "GET",
            "/api/v1/namespaces/default/pods/ghost",
            None,
            vec![],
            404,
            "NotFound",
        ),
        c(
            "PUT on a collection",
            "PUT",
            PODS,
            JSON,
            pod("pc", good_spec()),
            405,
            "MethodNotAllowed",
        ),
        c(
            "unknown field, strict",
            "POST",
            "/api/v1/namespaces/default/pods?fieldValidation=Strict",
            JSON,
            pod(
                "uf",
                json!({"containers": [{"name": "c", "image": "a", "imagee": "b"}]}),
            ),
            400,
            "BadRequest",
        ),
        c(
            "duplicate field, strict",
            "POST",
            "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
            JSON,
            br#"{"metadata":{"name":"df","name":"dg"}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        c(
            "bad label selector",
            "GET",
            "/api/v1/namespaces/default/pods?labelSelector=a%20in%20b",
            None,
            vec![],
            400,
            "BadRequest",
        ),
        c(
            "unsupported field selector",
            "GET",
            "/api/v1/namespaces/default/pods?fieldSelector=spec.foo%3Dx",
            None,
            vec![],
            400,
            "BadRequest",
        ),
        c(
            "bad boolean",
            "GET",
            "/api/v1/namespaces/default/pods?watch=maybe",
            None,
            vec![],
            400,
            "BadRequest",
        ),
        c(
            "bad dryRun",
            "POST",
            "/api/v1/namespaces/default/pods?dryRun=Some",
            JSON,
            pod("dr", good_spec()),
            400,
            "BadRequest",
        ),
        c(
            "garbage continue token",
            "GET",
            "/api/v1/namespaces/default/pods?limit=1&continue=zzz",
            None,
            vec![],
            400,
            "BadRequest",
        ),
        c(
            "patch with plain JSON content type",
            "PATCH",
            "/api/v1/namespaces/default/configmaps/keep",
            JSON,
            j(json!({"data": {"a": "b"}})),
            415,
            "UnsupportedMediaType",
        ),
        c(
            "malformed JSON patch",
            "PATCH",
            "/api/v1/namespaces/default/configmaps/keep",
            Some("application/json-patch+json"),
            b"{\"op\":1}".to_vec(),
            400,
            "BadRequest",
        ),
        c(
            "failing JSON patch test",
            "PATCH",
            "/api/v1/namespaces/default/configmaps/keep",
            Some("application/json-patch+json"),
            j(
                json!([{"op": "test", "path": "/data/k", "value": "other"}, {"op": "remove", "path": "/data"}]),
            ),
            422,
            "Invalid",
        ),
        c(
            "apply without fieldManager",
            "PATCH",
            "/api/v1/namespaces/default/configmaps/keep",
            Some("application/apply-patch+yaml"),
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\n".to_vec(),
            422,
            "Invalid",
        ),
        c(
            "stale resourceVersion",
            "PUT",
            "/api/v1/namespaces/default/configmaps/keep",
            JSON,
            j(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep", "resourceVersion": "1"},
                   "data": {"k": "changed"}}),
            ),
            409,
            "Conflict",
        ),
        c(
            "garbage resourceVersion",
            "PUT",
            "/api/v1/namespaces/default/configmaps/keep",
            JSON,
            j(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep", "resourceVersion": "abc"}}),
            ),
            400,
            "BadRequest",
        ),
        c(
            "name differs from URL",
            "PUT",
            "/api/v1/namespaces/default/configmaps/keep",
            JSON,
            j(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}})),
            400,
            "BadRequest",
        ),
        c(
            "duplicate create",
            "POST",
            "/api/v1/namespaces/default/configmaps",
            JSON,
            j(json!({"metadata": {"name": "keep"}})),
            409,
            "AlreadyExists",
        ),
        c(
            "delete a system namespace",
            "DELETE",
            "/api/v1/namespaces/kube-system",
            None,
            vec![],
            403,
            "Forbidden",
        ),
        c(
            "bad watch resourceVersion",
            "GET",
            "/api/v1/namespaces/default/pods?watch=1&resourceVersion=abc",
            None,
            vec![],
            400,
            "BadRequest",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_status_errors_and_store_nothing() {
    let s = TestServer::start().await;
    let c = s.client.clone();
    within(120, "a bad request hung the server", async {
        let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
        let keep: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "keep"}, "data": {"k": "v"}}))
                .unwrap();
        cms.create(&PostParams::default(), &keep).await.unwrap();
        let revision = || async {
            let (code, list) = raw_request(&c, "GET", "/api/v1/namespaces", None, vec![]).await;
            assert_eq!(code, 200);
            list["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let table = cases();
        assert!(table.len() >= 25);
        for case in table {
            let before = revision().await;
            let (code, status) =
                raw_request(&c, case.method, case.path, case.content_type, case.body).await;
            assert_eq!(
                (code, status["reason"].as_str().unwrap_or("")),
                (case.code, case.reason),
                "{}: {status}",
                case.what
            );
            assert_eq!(status["kind"], "Status", "{}", case.what);
            assert_eq!(status["code"], case.code, "{}", case.what);
            assert_eq!(revision().await, before, "{} stored something", case.what);
        }
        assert_eq!(cms.get("keep").await.unwrap().data.unwrap()["k"], "v");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_are_401() {
    let s = TestServer::start().await;
    within(30, "unauthenticated request", async {
        let kc = kube::config::Kubeconfig::read_from(s.kubeconfig()).unwrap();
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        cfg.auth_info.token = Some("not-the-token".to_string().into());
        let bad = kube::Client::try_from(cfg).unwrap();
        let (code, status) = raw_request(&bad, "GET", "/api/v1/namespaces", None, vec![]).await;
        assert_eq!(
            (code, status["reason"].as_str()),
            (401, Some("Unauthorized"))
        );
        // Health and version stay public.
        let (code, version) = raw_request(&bad, "GET", "/version", None, vec![]).await;
        assert_eq!(code, 200);
        assert_eq!(version["major"], "1");
        assert!(version["minor"].as_str().unwrap().parse::<u32>().unwrap() >= 29);
        // The node token is accepted too.
        let node = std::fs::read_to_string(s.dir.path().join("node-token")).unwrap();
        let kc = kube::config::Kubeconfig::read_from(s.kubeconfig()).unwrap();
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        cfg.auth_info.token = Some(node.trim().to_string().into());
        let nodec = kube::Client::try_from(cfg).unwrap();
        let (code, _) = raw_request(&nodec, "GET", "/api/v1/namespaces", None, vec![]).await;
        assert_eq!(code, 200);
    })
    .await;
}
