//! `paths` of a group-version's OpenAPI v3 document: every operation of every served
//! resource and subresource, named, tagged and parameterised the way kube-apiserver's
//! endpoint installer (`k8s.io/apiserver/pkg/endpoints/installer.go`) does.

use serde_json::{json, Map, Value};

use super::catalog::{subresources_of, ServedResource, Subresource};
use super::params;
use super::schemas::{schema_name, schema_ref};

/// What one operation is about: its action (`x-kubernetes-action`), the kind in
/// `x-kubernetes-group-version-kind`, and the schema of its body and answer.
struct Op<'a> {
    res: &'a ServedResource,
    /// `get`, `list`, `post`, `put`, `patch`, `delete`, `deletecollection`, `watch`,
    /// `watchlist`, `connect`.
    action: &'static str,
    /// The verb part of the operation id (`read`, `list`, `create`, `replace`, ...).
    verb: &'static str,
    /// The operation id after `{verb}{Group}{Version}`, e.g. `NamespacedPodStatus`.
    subject: String,
    description: String,
    /// `(group, version, kind)` the operation acts on.
    gvk: (&'static str, &'static str, &'static str),
    parameters: Vec<Value>,
    request: Option<Value>,
    response: Value,
    response_types: &'static [&'static str],
}

/// What the API server answers in; it serves neither YAML nor protobuf.
const JSON: &[&str] = &["application/json"];
const STREAM: &[&str] = &["application/json;stream=watch"];
const TEXT: &[&str] = &["text/plain"];

/// `core`/`apps`/`coordination` → `Core`/`Apps`/`Coordination` + `V1`, as in operation ids.
fn group_version_id(group: &str, version: &str) -> String {
    let head = if group.is_empty() {
        "core"
    } else {
        group.split('.').next().unwrap_or(group)
    };
    format!("{}{}", capitalize(head), capitalize(version))
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The operation tag, `core_v1` or `apps_v1`.
fn tag(group: &str, version: &str) -> String {
    let head = if group.is_empty() {
        "core"
    } else {
        group.split('.').next().unwrap_or(group)
    };
    format!("{head}_{version}")
}

fn content(types: &[&str], schema: &Value) -> Value {
    let map: Map<String, Value> = types
        .iter()
        .map(|t| (t.to_string(), json!({ "schema": schema })))
        .collect();
    Value::Object(map)
}

fn operation(op: Op<'_>) -> Value {
    let (g, v, k) = op.gvk;
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({ "description": "OK", "content": content(op.response_types, &op.response) }),
    );
    match op.action {
        "post" => {
            let created =
                json!({ "description": "Created", "content": content(JSON, &op.response) });
            responses.insert("201".into(), created);
            let accepted =
                json!({ "description": "Accepted", "content": content(JSON, &op.response) });
            responses.insert("202".into(), accepted);
        }
        "put" | "patch" => {
            let created =
                json!({ "description": "Created", "content": content(JSON, &op.response) });
            responses.insert("201".into(), created);
        }
        "delete" => {
            let accepted =
                json!({ "description": "Accepted", "content": content(JSON, &op.response) });
            responses.insert("202".into(), accepted);
        }
        _ => {}
    }
    responses.insert("401".into(), json!({ "description": "Unauthorized" }));
    let mut out = json!({
        "tags": [tag(op.res.group, op.res.version)],
        "description": op.description,
        "operationId": format!("{}{}{}", op.verb, group_version_id(op.res.group, op.res.version), op.subject),
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": { "group": g, "kind": k, "version": v },
    });
    if !op.parameters.is_empty() {
        out["parameters"] = Value::Array(op.parameters);
    }
    if let Some(body) = op.request {
        out["requestBody"] = body;
    }
    out
}

fn body(schema: Value) -> Value {
    json!({ "content": { "*/*": { "schema": schema } }, "required": true })
}

/// The four patch content types kube-apiserver accepts; kubectl's client-side apply only uses
/// the v3 schema for strategic merge patches if `application/strategic-merge-patch+json` is here.
fn patch_body() -> Value {
    let patch = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch");
    let types = [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ];
    json!({ "content": content(&types, &patch), "required": true })
}

fn path_item(mut ops: Map<String, Value>, parameters: Vec<Value>) -> Value {
    ops.insert("parameters".into(), Value::Array(parameters));
    Value::Object(ops)
}

/// All paths of one resource, keyed by URL path template.
pub fn resource_paths(res: &ServedResource) -> Vec<(String, Value)> {
    let prefix = if res.group.is_empty() {
        format!("/api/{}", res.version)
    } else {
        format!("/apis/{}/{}", res.group, res.version)
    };
    let scope = if res.namespaced {
        "namespaces/{namespace}/"
    } else {
        ""
    };
    let ns_word = if res.namespaced { "Namespaced" } else { "" };
    let collection = format!("{prefix}/{scope}{}", res.plural);
    let item = format!("{collection}/{{name}}");
    let mut scope_params = Vec::new();
    if res.namespaced {
        scope_params.push(params::path_namespace());
    }
    let item_params = || {
        let mut p = vec![params::path_name(res.kind)];
        p.extend(scope_params.clone());
        p.push(params::pretty());
        p
    };
    let mut collection_params = scope_params.clone();
    collection_params.push(params::pretty());

    let mut out = vec![
        (
            collection.clone(),
            path_item(collection_ops(res, ns_word), collection_params.clone()),
        ),
        (
            item.clone(),
            path_item(item_ops(res, ns_word), item_params()),
        ),
        (
            format!("{prefix}/watch/{scope}{}", res.plural),
            path_item(
                watch_ops(res, ns_word, "watchlist", "List"),
                collection_params,
            ),
        ),
        (
            format!("{prefix}/watch/{scope}{}/{{name}}", res.plural),
            path_item(watch_ops(res, ns_word, "watch", ""), item_params()),
        ),
    ];
    if res.namespaced {
        out.extend(all_namespaces_paths(res, &prefix));
    }
    for sub in subresources_of(res) {
        let ops = subresource_ops(res, ns_word, sub);
        out.push((
            format!("{item}/{}", sub.path()),
            path_item(ops, item_params()),
        ));
    }
    out
}

fn new_op<'a>(
    res: &'a ServedResource,
    action: &'static str,
    verb: &'static str,
    subject: String,
) -> Op<'a> {
    let kind_ref = schema_ref(&schema_name(res.group, res.version, res.kind));
    Op {
        res,
        action,
        verb,
        subject,
        description: String::new(),
        gvk: (res.group, res.version, res.kind),
        parameters: Vec::new(),
        request: None,
        response: kind_ref,
        response_types: JSON,
    }
}

fn collection_ops(res: &ServedResource, ns_word: &str) -> Map<String, Value> {
    let kind = res.kind;
    let subject = format!("{ns_word}{kind}");
    let list_ref = schema_ref(&schema_name(res.group, res.version, &format!("{kind}List")));
    let kind_ref = schema_ref(&schema_name(res.group, res.version, kind));
    let status_ref = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Status");
    let delete_ref = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions");
    let mut ops = Map::new();
    let mut list = new_op(res, "list", "list", subject.clone());
    list.description = format!("list or watch objects of kind {kind}");
    list.parameters = params::list();
    list.response = list_ref;
    ops.insert("get".into(), operation(list));
    let mut create = new_op(res, "post", "create", subject.clone());
    create.description = format!("create a {kind}");
    create.parameters = params::write();
    create.request = Some(body(kind_ref));
    ops.insert("post".into(), operation(create));
    // Only where the resource table grants it (kube's namespaces, for one, lack it).
    if res.verbs.contains(&"deletecollection") {
        let mut dc = new_op(
            res,
            "deletecollection",
            "delete",
            format!("Collection{subject}"),
        );
        dc.description = format!("delete collection of {kind}");
        dc.parameters = params::delete_collection();
        dc.request = Some(body(delete_ref));
        dc.response = status_ref;
        ops.insert("delete".into(), operation(dc));
    }
    ops
}

fn item_ops(res: &ServedResource, ns_word: &str) -> Map<String, Value> {
    let kind = res.kind;
    let subject = format!("{ns_word}{kind}");
    let kind_ref = schema_ref(&schema_name(res.group, res.version, kind));
    let mut ops = Map::new();
    let mut read = new_op(res, "get", "read", subject.clone());
    read.description = format!("read the specified {kind}");
    ops.insert("get".into(), operation(read));
    let mut replace = new_op(res, "put", "replace", subject.clone());
    replace.description = format!("replace the specified {kind}");
    replace.parameters = params::write();
    replace.request = Some(body(kind_ref.clone()));
    ops.insert("put".into(), operation(replace));
    let mut delete = new_op(res, "delete", "delete", subject.clone());
    delete.description = format!("delete a {kind}");
    delete.parameters = params::delete();
    delete.request = Some(body(schema_ref(
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    )));
    ops.insert("delete".into(), operation(delete));
    let mut patch = new_op(res, "patch", "patch", subject);
    patch.description = format!("partially update the specified {kind}");
    patch.parameters = params::patch();
    patch.request = Some(patch_body());
    ops.insert("patch".into(), operation(patch));
    ops
}

fn watch_ops(
    res: &ServedResource,
    ns_word: &str,
    action: &'static str,
    suffix: &str,
) -> Map<String, Value> {
    let kind = res.kind;
    let mut watch = new_op(res, action, "watch", format!("{ns_word}{kind}{suffix}"));
    watch.description = if action == "watch" {
        format!("watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter.")
    } else {
        format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead.")
    };
    watch.parameters = params::list();
    watch.response = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent");
    watch.response_types = STREAM;
    let mut ops = Map::new();
    ops.insert("get".into(), operation(watch));
    ops
}

/// `/api/v1/pods` and `/api/v1/watch/pods`: list and watch across all namespaces.
fn all_namespaces_paths(res: &ServedResource, prefix: &str) -> Vec<(String, Value)> {
    let kind = res.kind;
    let mut list = new_op(res, "list", "list", format!("{kind}ForAllNamespaces"));
    list.description = format!("list or watch objects of kind {kind}");
    list.parameters = params::list();
    list.response = schema_ref(&schema_name(res.group, res.version, &format!("{kind}List")));
    let mut watch = new_op(
        res,
        "watchlist",
        "watch",
        format!("{kind}ListForAllNamespaces"),
    );
    watch.description = format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead.");
    watch.parameters = params::list();
    watch.response = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent");
    watch.response_types = STREAM;
    let single = |op: Op<'_>| {
        let mut m = Map::new();
        m.insert("get".into(), operation(op));
        path_item(m, vec![params::pretty()])
    };
    vec![
        (format!("{prefix}/{}", res.plural), single(list)),
        (format!("{prefix}/watch/{}", res.plural), single(watch)),
    ]
}

fn subresource_ops(res: &ServedResource, ns_word: &str, sub: Subresource) -> Map<String, Value> {
    let kind = res.kind;
    let mut ops = Map::new();
    let (gvk, word) = match sub {
        Subresource::Status => ((res.group, res.version, kind), "Status"),
        Subresource::Scale => (("autoscaling", "v1", "Scale"), "Scale"),
        Subresource::Binding => (("", "v1", "Binding"), "Binding"),
        Subresource::Eviction => (("policy", "v1", "Eviction"), "Eviction"),
        Subresource::Log => ((res.group, res.version, kind), "Log"),
    };
    let subject = format!("{ns_word}{kind}{word}");
    let target = schema_ref(&schema_name(gvk.0, gvk.1, gvk.2));
    let what = format!("{} of the specified {kind}", sub.path());
    match sub {
        Subresource::Status | Subresource::Scale => {
            let mut read = new_op(res, "get", "read", subject.clone());
            read.description = format!("read {what}");
            read.gvk = gvk;
            read.response = target.clone();
            ops.insert("get".into(), operation(read));
            let mut replace = new_op(res, "put", "replace", subject.clone());
            replace.description = format!("replace {what}");
            replace.gvk = gvk;
            replace.parameters = params::write();
            replace.request = Some(body(target.clone()));
            replace.response = target.clone();
            ops.insert("put".into(), operation(replace));
            let mut patch = new_op(res, "patch", "patch", subject);
            patch.description = format!("partially update {what}");
            patch.gvk = gvk;
            patch.parameters = params::patch();
            patch.request = Some(patch_body());
            patch.response = target;
            ops.insert("patch".into(), operation(patch));
        }
        Subresource::Binding | Subresource::Eviction => {
            let mut create = new_op(res, "post", "create", subject);
            create.description = format!("create {} of a {kind}", sub.path());
            create.gvk = gvk;
            create.parameters = params::write();
            create.request = Some(body(target.clone()));
            create.response = target;
            ops.insert("post".into(), operation(create));
        }
        Subresource::Log => {
            let mut read = new_op(res, "get", "read", subject);
            read.description = format!("read log of the specified {kind}");
            read.parameters = params::log();
            read.response = json!({ "type": "string" });
            read.response_types = TEXT;
            ops.insert("get".into(), operation(read));
        }
    }
    ops
}
