//! Checks the documents against what kubectl 1.32 reads from them.

use serde_json::{Map, Value};

use super::*;

fn all_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                match val {
                    Value::String(s) if k == "$ref" => out.push(s),
                    other => all_refs(other, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| all_refs(i, out)),
        _ => {}
    }
}

fn operations(doc: &Value) -> Vec<(&str, &str, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (method, op) in item.as_object().expect("path item is an object") {
            if method != "parameters" {
                out.push((path.as_str(), method.as_str(), op));
            }
        }
    }
    out
}

fn gvk_matches(ext: &Value, group: &str, version: &str, kind: &str) -> bool {
    ext["group"] == group && ext["version"] == version && ext["kind"] == kind
}

#[test]
fn index_lists_every_group_version_with_its_current_hash() {
    let index = &v3_index().value;
    let paths = index["paths"].as_object().expect("index has paths");
    for gv in [
        "api/v1",
        "apis/apps/v1",
        "apis/coordination.k8s.io/v1",
        "apis/discovery.k8s.io/v1",
    ] {
        let url = paths[gv]["serverRelativeURL"]
            .as_str()
            .expect("serverRelativeURL");
        let doc = v3_document(gv).expect("document for indexed group-version");
        assert_eq!(url, format!("/openapi/v3/{gv}?hash={}", doc.hash));
        assert_eq!(doc.hash.len(), 128, "sha512 as upper-case hex");
        assert!(doc
            .hash
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
    }
    assert_eq!(paths.len(), v3_paths().count());
    assert!(v3_document("apis/batch/v1").is_none());
}

#[test]
fn documents_reparse_and_hash_is_stable() {
    for gv in v3_paths() {
        let doc = v3_document(gv).unwrap();
        let reparsed: Value = serde_json::from_slice(&doc.bytes).expect("document is valid JSON");
        assert_eq!(reparsed, doc.value);
        assert_eq!(reparsed["openapi"], "3.0.0");
        assert_eq!(
            content_hash(&serde_json::to_vec(&reparsed).unwrap()),
            doc.hash
        );
        // A second, independent generation yields the same bytes (stable hash across restarts).
        let (g, v) = gv
            .strip_prefix("apis/")
            .map_or(("", "v1"), |rest| rest.split_once('/').unwrap());
        assert_eq!(
            serde_json::to_vec(&build_v3(g, v)).unwrap(),
            doc.bytes,
            "{gv} regenerates identically"
        );
    }
}

#[test]
fn every_kind_has_a_schema_with_its_gvk_and_a_list() {
    for r in served() {
        let doc = &v3_document(&gv_path(r.group, r.version)).unwrap().value;
        let schemas = &doc["components"]["schemas"];
        let name = schema_name(r.group, r.version, r.kind);
        let schema = &schemas[&name];
        assert!(
            schema["properties"]["metadata"].is_object(),
            "{name} has metadata"
        );
        let gvks = schema["x-kubernetes-group-version-kind"]
            .as_array()
            .expect("gvk array");
        assert!(
            gvks.iter()
                .any(|g| gvk_matches(g, r.group, r.version, r.kind)),
            "{name} gvk"
        );
        let list = &schemas[format!("{name}List")];
        assert_eq!(
            list["properties"]["items"]["items"]["$ref"],
            format!("#/components/schemas/{name}")
        );
    }
}

#[test]
fn schema_names_follow_kubernetes() {
    let doc = &v3_document("api/v1").unwrap().value;
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        assert!(
            name.starts_with("io.k8s."),
            "{name} is not a Kubernetes schema name"
        );
    }
    let schemas = &doc["components"]["schemas"];
    for name in [
        "io.k8s.api.core.v1.Pod",
        "io.k8s.api.core.v1.PodSpec",
        "io.k8s.api.core.v1.Container",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
        "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "io.k8s.api.core.v1.Binding",
    ] {
        assert!(schemas[name].is_object(), "api/v1 lacks {name}");
    }
    let apps = &v3_document("apis/apps/v1").unwrap().value["components"]["schemas"];
    assert!(apps["io.k8s.api.autoscaling.v1.Scale"]["x-kubernetes-group-version-kind"].is_array());
}

#[test]
fn no_dangling_refs_in_any_document() {
    for gv in v3_paths() {
        let doc = &v3_document(gv).unwrap().value;
        let mut refs = Vec::new();
        all_refs(doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{gv}: odd ref {r}"));
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{gv}: dangling {r}"
            );
        }
    }
    let v2 = &v2_document().value;
    let mut refs = Vec::new();
    all_refs(v2, &mut refs);
    for r in refs {
        let name = r
            .strip_prefix("#/definitions/")
            .unwrap_or_else(|| panic!("v2: odd ref {r}"));
        assert!(v2["definitions"][name].is_object(), "v2: dangling {r}");
    }
}

#[test]
fn every_operation_has_action_gvk_and_writes_take_field_validation() {
    for gv in v3_paths() {
        let doc = &v3_document(gv).unwrap().value;
        for (path, method, op) in operations(doc) {
            assert!(
                op["x-kubernetes-action"].is_string(),
                "{method} {path} action"
            );
            assert!(
                op["x-kubernetes-group-version-kind"]["kind"].is_string(),
                "{method} {path} gvk"
            );
            assert!(op["operationId"].is_string(), "{method} {path} operationId");
            if matches!(method, "post" | "put" | "patch") {
                let params = op["parameters"]
                    .as_array()
                    .expect("write operations have parameters");
                let fv = params.iter().find(|p| p["name"] == "fieldValidation");
                assert_eq!(
                    fv.map(|p| &p["in"]),
                    Some(&Value::from("query")),
                    "{method} {path}"
                );
                assert!(
                    op["requestBody"]["content"].is_object(),
                    "{method} {path} body"
                );
            }
        }
    }
}

/// cli-runtime `supportsQueryParamV3`: the first PATCH operation tagged with the kind must
/// list `fieldValidation` in query; and kubectl apply's `gvkSupportsPatchOpenAPIV3`: that PATCH
/// must accept strategic merge patches.
#[test]
fn kubectl_finds_field_validation_and_strategic_merge_for_every_kind() {
    for r in served() {
        let doc = &v3_document(&gv_path(r.group, r.version)).unwrap().value;
        let patches: Vec<_> = operations(doc)
            .into_iter()
            .filter(|(_, m, op)| {
                *m == "patch"
                    && gvk_matches(
                        &op["x-kubernetes-group-version-kind"],
                        r.group,
                        r.version,
                        r.kind,
                    )
            })
            .collect();
        assert!(!patches.is_empty(), "{} has a PATCH operation", r.kind);
        for (path, _, op) in patches {
            let params = op["parameters"].as_array().unwrap();
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"),
                "{path}"
            );
            assert!(
                op["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object()
            );
        }
    }
}

#[test]
fn operation_ids_and_paths_match_kube_apiserver() {
    let doc = &v3_document("api/v1").unwrap().value;
    let id = |path: &str, method: &str| {
        doc["paths"][path][method]["operationId"]
            .as_str()
            .map(str::to_owned)
    };
    assert_eq!(
        id("/api/v1/namespaces/{namespace}/pods", "get").as_deref(),
        Some("listCoreV1NamespacedPod")
    );
    assert_eq!(
        id("/api/v1/namespaces/{namespace}/pods", "delete").as_deref(),
        Some("deleteCoreV1CollectionNamespacedPod")
    );
    assert_eq!(
        id("/api/v1/namespaces/{namespace}/pods/{name}", "patch").as_deref(),
        Some("patchCoreV1NamespacedPod")
    );
    assert_eq!(
        id("/api/v1/namespaces/{namespace}/pods/{name}/status", "put").as_deref(),
        Some("replaceCoreV1NamespacedPodStatus")
    );
    assert_eq!(
        id("/api/v1/namespaces/{namespace}/pods/{name}/binding", "post").as_deref(),
        Some("createCoreV1NamespacedPodBinding")
    );
    assert_eq!(
        id("/api/v1/namespaces/{namespace}/pods/{name}/log", "get").as_deref(),
        Some("readCoreV1NamespacedPodLog")
    );
    assert_eq!(
        id("/api/v1/pods", "get").as_deref(),
        Some("listCoreV1PodForAllNamespaces")
    );
    assert_eq!(
        id("/api/v1/watch/pods", "get").as_deref(),
        Some("watchCoreV1PodListForAllNamespaces")
    );
    assert_eq!(
        id("/api/v1/nodes/{name}", "get").as_deref(),
        Some("readCoreV1Node")
    );
    assert_eq!(
        id("/api/v1/namespaces/{name}/status", "patch").as_deref(),
        Some("patchCoreV1NamespaceStatus")
    );
    let apps = &v3_document("apis/apps/v1").unwrap().value;
    let scale =
        &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"];
    assert_eq!(scale["operationId"], "patchAppsV1NamespacedDeploymentScale");
    assert!(gvk_matches(
        &scale["x-kubernetes-group-version-kind"],
        "autoscaling",
        "v1",
        "Scale"
    ));
    let lease = &v3_document("apis/coordination.k8s.io/v1").unwrap().value;
    let lease_list =
        &lease["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"]["get"];
    assert_eq!(
        lease_list["operationId"],
        "listCoordinationV1NamespacedLease"
    );
    assert_eq!(lease_list["tags"][0], "coordination_v1");
}

/// Follows a property the way apimachinery's `PatchMetaFromOpenAPIV3` does (allOf[0], then
/// `$ref`), returning the property schema (which carries the markers) and the resolved schema.
fn field<'a>(schemas: &'a Value, schema: &'a Value, key: &str) -> (&'a Value, &'a Value) {
    let prop = &schema["properties"][key];
    assert!(prop.is_object(), "no field {key}");
    let mut target = prop;
    if target["type"] == "array" {
        target = &target["items"];
    }
    if let Some(first) = target["allOf"].get(0) {
        target = first;
    }
    if let Some(r) = target["$ref"].as_str() {
        target = &schemas[r.strip_prefix("#/components/schemas/").unwrap()];
    }
    (prop, target)
}

#[test]
fn strategic_merge_keys_reach_kubectl_apply() {
    let doc = &v3_document("apis/apps/v1").unwrap().value;
    let schemas = &doc["components"]["schemas"];
    let deploy = &schemas["io.k8s.api.apps.v1.Deployment"];
    let (_, spec) = field(schemas, deploy, "spec");
    let (strategy, _) = field(schemas, spec, "strategy");
    assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
    let (_, template) = field(schemas, spec, "template");
    let (_, pod_spec) = field(schemas, template, "spec");
    let (containers, container) = field(schemas, pod_spec, "containers");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(
        containers["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
    let (ports, _) = field(schemas, container, "ports");
    assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
    let (env, _) = field(schemas, container, "env");
    assert_eq!(env["x-kubernetes-patch-merge-key"], "name");
    let (volumes, _) = field(schemas, pod_spec, "volumes");
    assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
    let (_, meta) = field(schemas, deploy, "metadata");
    let (finalizers, _) = field(schemas, meta, "finalizers");
    assert_eq!(finalizers["x-kubernetes-list-type"], "set");
    let (_, selector) = field(schemas, spec, "selector");
    assert_eq!(selector["x-kubernetes-map-type"], "atomic");
    let core = &v3_document("api/v1").unwrap().value["components"]["schemas"];
    let (_, svc_spec) = field(core, &core["io.k8s.api.core.v1.Service"], "spec");
    let (svc_ports, _) = field(core, svc_spec, "ports");
    assert_eq!(
        svc_ports["x-kubernetes-list-map-keys"],
        serde_json::json!(["port", "protocol"])
    );
}

#[test]
fn v3_answer_redirects_stale_hashes_and_honours_if_none_match() {
    let doc = v3_document("api/v1").unwrap();
    assert_eq!(v3_answer("apis/nope/v1", None, None), V3Answer::NotFound);
    assert_eq!(
        v3_answer("api/v1", Some("OLD"), None),
        V3Answer::Redirect(format!("/openapi/v3/api/v1?hash={}", doc.hash))
    );
    assert_eq!(
        v3_answer("api/v1", Some(&doc.hash), None),
        V3Answer::Ok {
            document: doc,
            immutable: true
        }
    );
    assert_eq!(
        v3_answer("/api/v1", None, None),
        V3Answer::Ok {
            document: doc,
            immutable: false
        }
    );
    let etag = doc.etag();
    assert_eq!(
        v3_answer("api/v1", None, Some(&etag)),
        V3Answer::NotModified { etag: etag.clone() }
    );
    assert_eq!(
        v3_answer("api/v1", None, Some(&format!("W/{etag}, \"x\""))),
        V3Answer::NotModified { etag }
    );
    assert!(!etag_matches(Some("\"other\""), &doc.hash));
}

#[test]
fn v2_document_is_swagger_with_definitions_and_body_parameters() {
    let v2 = &v2_document().value;
    assert_eq!(v2["swagger"], "2.0");
    assert!(
        v2["definitions"]["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"].is_array()
    );
    assert!(v2["definitions"]["io.k8s.api.apps.v1.Deployment"].is_object());
    let patch = &v2["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    let consumes = patch["consumes"].as_array().unwrap();
    assert!(consumes.contains(&Value::from("application/strategic-merge-patch+json")));
    let params = patch["parameters"].as_array().unwrap();
    assert_eq!(params[0]["in"], "body");
    let fv = params
        .iter()
        .find(|p| p["name"] == "fieldValidation")
        .unwrap();
    assert_eq!(fv["type"], "string");
    assert!(fv.get("schema").is_none());
}

#[test]
fn v2_protobuf_is_chosen_by_accept_order() {
    let kubectl = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    assert!(wants_v2_protobuf(Some(kubectl)));
    assert!(wants_v2_protobuf(Some(
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    )));
    assert!(!wants_v2_protobuf(Some("application/json, */*")));
    assert!(!wants_v2_protobuf(Some(&format!(
        "application/json,{kubectl}"
    ))));
    assert!(!wants_v2_protobuf(None));
    assert!(
        !V2_PROTOBUF_CONTENT_TYPE.contains('@'),
        "Go's mime parser rejects '@'"
    );
    let (bytes, hash) = v2_document_protobuf();
    assert_eq!(&content_hash(bytes), hash);
    assert_eq!(
        bytes[..5],
        [0x0a, 3, b'2', b'.', b'0'],
        "Document.swagger = \"2.0\" comes first"
    );
}

#[test]
fn v2_properties_reference_definitions_directly() {
    let v2 = &v2_document().value;
    let spec = &v2["definitions"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"];
    assert_eq!(spec["$ref"], "#/definitions/io.k8s.api.core.v1.PodSpec");
    assert!(spec.get("allOf").is_none());
    assert!(spec["description"].is_string());
}

#[test]
fn every_schema_has_a_type_like_kubes() {
    for gv in v3_paths() {
        let schemas = &v3_document(gv).unwrap().value["components"]["schemas"];
        for (name, s) in schemas.as_object().unwrap() {
            assert!(s["type"].is_string(), "{gv}: {name} has no type");
        }
    }
    let core = &v3_document("api/v1").unwrap().value["components"]["schemas"];
    assert_eq!(
        core["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"],
        "int-or-string"
    );
    assert_eq!(
        core["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"],
        "string"
    );
}

/// A resource the way kube-apiserver serves namespaces (no deletecollection) and pods with
/// an eviction subresource, to check that paths and schemas follow the table.
fn kube_like(
    kind: &'static str,
    plural: &'static str,
    verbs: &'static [&'static str],
) -> ServedResource {
    ServedResource {
        group: "",
        version: "v1",
        kind,
        plural,
        singular: "",
        short_names: &[],
        categories: &[],
        namespaced: kind != "Namespace",
        verbs,
        subresources: &["status", "eviction", "unknown-sub"],
    }
}

#[test]
fn paths_and_schemas_follow_the_resource_table() {
    let ns = kube_like(
        "Namespace",
        "namespaces",
        &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
    );
    let paths: Map<String, Value> = paths::resource_paths(&ns).into_iter().collect();
    assert!(
        paths["/api/v1/namespaces"]["delete"].is_null(),
        "no deletecollection without the verb"
    );
    assert!(paths["/api/v1/namespaces/{name}/status"]["patch"].is_object());
    assert!(paths.keys().all(|p| !p.contains("unknown-sub")));
    let pod = kube_like("Pod", "pods", ALL_VERBS);
    let paths: Map<String, Value> = paths::resource_paths(&pod).into_iter().collect();
    assert!(paths["/api/v1/namespaces/{namespace}/pods"]["delete"].is_object());
    let eviction = &paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"];
    assert_eq!(eviction["operationId"], "createCoreV1NamespacedPodEviction");
    assert_eq!(
        eviction["x-kubernetes-group-version-kind"]["group"],
        "policy"
    );
    let schemas = schemas::components(&[pod], &[("", "v1")]);
    assert!(schemas["io.k8s.api.policy.v1.Eviction"]["x-kubernetes-group-version-kind"].is_array());
}

#[test]
fn warm_up_builds_what_the_handlers_serve() {
    warm_up();
    assert!(v3_document("api/v1").is_some());
    assert!(!v2_document_protobuf().0.is_empty());
}

#[test]
fn kinds_without_a_k8s_openapi_type_get_an_opaque_schema_and_no_dangling_refs() {
    let widget = ServedResource {
        group: "example.com",
        version: "v1",
        kind: "Widget",
        plural: "widgets",
        singular: "widget",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &["status"],
    };
    let job = ServedResource {
        group: "batch",
        kind: "Job",
        plural: "jobs",
        ..widget
    };
    let schemas = schemas::components(&[widget, job], &[("example.com", "v1"), ("batch", "v1")]);
    let name = schema_name("example.com", "v1", "Widget");
    assert_eq!(schemas[&name]["x-kubernetes-preserve-unknown-fields"], true);
    assert!(schemas[&name]["x-kubernetes-group-version-kind"].is_array());
    assert!(schemas["io.k8s.api.batch.v1.Job"]["properties"]["spec"].is_object());
    let doc = Value::Object(schemas.clone());
    let mut refs = Vec::new();
    all_refs(&doc, &mut refs);
    for r in refs {
        let target = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(schemas.contains_key(target), "dangling {r}");
    }
    let paths: Map<String, Value> = paths::resource_paths(&widget).into_iter().collect();
    let mut refs = Vec::new();
    let paths = Value::Object(paths);
    all_refs(&paths, &mut refs);
    assert!(refs
        .iter()
        .all(|r| schemas.contains_key(r.trim_start_matches("#/components/schemas/"))));
}
