//! `components.schemas` of a group-version's document, generated from k8s-openapi's JSON
//! Schemas (which already carry the Kubernetes names, `io.k8s.api.core.v1.Pod`), with the
//! extensions kube-apiserver adds: `x-kubernetes-group-version-kind` on top-level kinds and
//! the patch/list markers.

use k8s_openapi::api::{
    apps, autoscaling, batch, coordination, core, discovery, events, networking, policy, rbac,
    scheduling, storage,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{json, Map, Value};

use super::catalog::ServedResource;
use super::markers;

/// Where OpenAPI v3 documents keep their schemas; every `$ref` points below it.
pub const V3_REF_PREFIX: &str = "#/components/schemas/";

/// The schema name of a kind, e.g. `io.k8s.api.apps.v1.Deployment`.
pub fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let package = match group {
        "" => "core",
        g => g.split('.').next().unwrap_or(g),
    };
    format!("io.k8s.api.{package}.{version}.{kind}")
}

/// `{"$ref": "#/components/schemas/<name>"}`.
pub fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{V3_REF_PREFIX}{name}") })
}

/// Registers the k8s-openapi type of a served kind; `false` for a kind we have no type for.
fn register_kind(gen: &mut SchemaGenerator, group: &str, version: &str, kind: &str) -> bool {
    match (group, version, kind) {
        ("", "v1", "Namespace") => gen.subschema_for::<core::v1::Namespace>(),
        ("", "v1", "Pod") => gen.subschema_for::<core::v1::Pod>(),
        ("", "v1", "Node") => gen.subschema_for::<core::v1::Node>(),
        ("", "v1", "Service") => gen.subschema_for::<core::v1::Service>(),
        ("", "v1", "Endpoints") => gen.subschema_for::<core::v1::Endpoints>(),
        ("", "v1", "Event") => gen.subschema_for::<core::v1::Event>(),
        ("", "v1", "ConfigMap") => gen.subschema_for::<core::v1::ConfigMap>(),
        ("", "v1", "Secret") => gen.subschema_for::<core::v1::Secret>(),
        ("", "v1", "ServiceAccount") => gen.subschema_for::<core::v1::ServiceAccount>(),
        ("", "v1", "Binding") => gen.subschema_for::<core::v1::Binding>(),
        ("apps", "v1", "Deployment") => gen.subschema_for::<apps::v1::Deployment>(),
        ("apps", "v1", "ReplicaSet") => gen.subschema_for::<apps::v1::ReplicaSet>(),
        ("autoscaling", "v1", "Scale") => gen.subschema_for::<autoscaling::v1::Scale>(),
        ("coordination.k8s.io", "v1", "Lease") => gen.subschema_for::<coordination::v1::Lease>(),
        ("discovery.k8s.io", "v1", "EndpointSlice") => {
            gen.subschema_for::<discovery::v1::EndpointSlice>()
        }
        ("events.k8s.io", "v1", "Event") => gen.subschema_for::<events::v1::Event>(),
        ("policy", "v1", "Eviction") => gen.subschema_for::<policy::v1::Eviction>(),
        _ => return register_more(gen, group, kind),
    };
    true
}

/// Kinds the server does not serve today but a growing resource table may add, so that their
/// documents get real schemas too.
fn register_more(gen: &mut SchemaGenerator, group: &str, kind: &str) -> bool {
    match (group, kind) {
        ("", "PersistentVolume") => gen.subschema_for::<core::v1::PersistentVolume>(),
        ("", "PersistentVolumeClaim") => gen.subschema_for::<core::v1::PersistentVolumeClaim>(),
        ("", "ReplicationController") => gen.subschema_for::<core::v1::ReplicationController>(),
        ("", "PodTemplate") => gen.subschema_for::<core::v1::PodTemplate>(),
        ("", "ResourceQuota") => gen.subschema_for::<core::v1::ResourceQuota>(),
        ("", "LimitRange") => gen.subschema_for::<core::v1::LimitRange>(),
        ("apps", "DaemonSet") => gen.subschema_for::<apps::v1::DaemonSet>(),
        ("apps", "StatefulSet") => gen.subschema_for::<apps::v1::StatefulSet>(),
        ("apps", "ControllerRevision") => gen.subschema_for::<apps::v1::ControllerRevision>(),
        ("batch", "Job") => gen.subschema_for::<batch::v1::Job>(),
        ("batch", "CronJob") => gen.subschema_for::<batch::v1::CronJob>(),
        ("policy", "PodDisruptionBudget") => gen.subschema_for::<policy::v1::PodDisruptionBudget>(),
        ("networking.k8s.io", "Ingress") => gen.subschema_for::<networking::v1::Ingress>(),
        ("networking.k8s.io", "IngressClass") => {
            gen.subschema_for::<networking::v1::IngressClass>()
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            gen.subschema_for::<networking::v1::NetworkPolicy>()
        }
        ("rbac.authorization.k8s.io", "Role") => gen.subschema_for::<rbac::v1::Role>(),
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            gen.subschema_for::<rbac::v1::RoleBinding>()
        }
        ("rbac.authorization.k8s.io", "ClusterRole") => {
            gen.subschema_for::<rbac::v1::ClusterRole>()
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            gen.subschema_for::<rbac::v1::ClusterRoleBinding>()
        }
        ("storage.k8s.io", "StorageClass") => gen.subschema_for::<storage::v1::StorageClass>(),
        ("scheduling.k8s.io", "PriorityClass") => {
            gen.subschema_for::<scheduling::v1::PriorityClass>()
        }
        _ => return false,
    };
    true
}

/// The schema of a served kind k8s-openapi has no type for (a custom resource, say): an
/// object with the standard type and object metadata whose other fields are kept as sent.
fn opaque_kind_schema(kind: &str) -> Value {
    json!({
        "description": format!("{kind} (no schema published: fields are not validated by the schema)."),
        "type": "object",
        "properties": {
            "apiVersion": { "type": "string" },
            "kind": { "type": "string" },
            "metadata": {
                "allOf": [schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")],
                "description": "Standard object's metadata."
            }
        },
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// The meta types every document's operations refer to.
fn register_meta(gen: &mut SchemaGenerator) {
    gen.subschema_for::<meta::DeleteOptions>();
    gen.subschema_for::<meta::Status>();
    gen.subschema_for::<meta::Patch>();
    gen.subschema_for::<meta::ListMeta>();
    gen.subschema_for::<meta::WatchEvent<core::v1::Pod>>();
}

/// The `...List` schema kube-apiserver publishes for a kind (k8s-openapi has one generic
/// `List<T>` without a schema, so we write it the way kube does).
fn list_schema(group: &str, version: &str, kind: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object.",
                "type": "string"
            },
            "items": {
                "description": format!("List of {kind} objects."),
                "type": "array",
                "items": schema_ref(&schema_name(group, version, kind))
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents.",
                "type": "string"
            },
            "metadata": {
                "allOf": [schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")],
                "description": "Standard list metadata."
            }
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [gvk(group, version, &format!("{kind}List"))]
    })
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

fn add_gvk(schemas: &mut Map<String, Value>, name: &str, gvks: Vec<Value>) {
    if let Some(obj) = schemas.get_mut(name).and_then(Value::as_object_mut) {
        obj.insert("x-kubernetes-group-version-kind".into(), Value::Array(gvks));
    }
}

/// kube publishes `Quantity` as `{"type": "string"}` and `IntOrString` as
/// `{"type": "string", "format": "int-or-string"}`; k8s-openapi writes them CRD-style
/// (`x-kubernetes-int-or-string` without a type), which kubectl explain shows as `<>`.
fn publish_string_scalars(schemas: &mut Map<String, Value>) {
    let scalars = [
        ("io.k8s.apimachinery.pkg.api.resource.Quantity", None),
        (
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            Some("int-or-string"),
        ),
    ];
    for (name, format) in scalars {
        if let Some(obj) = schemas.get_mut(name).and_then(Value::as_object_mut) {
            obj.remove("x-kubernetes-int-or-string");
            obj.insert("type".into(), Value::from("string"));
            if let Some(f) = format {
                obj.insert("format".into(), Value::from(f));
            }
        }
    }
}

/// The extra kinds a resource's subresources use, as `(group, version, kind)`.
pub fn subresource_kinds(r: &ServedResource) -> Vec<(&'static str, &'static str, &'static str)> {
    use super::catalog::Subresource::*;
    super::catalog::subresources_of(r)
        .filter_map(|s| match s {
            Scale => Some(("autoscaling", "v1", "Scale")),
            Binding => Some(("", "v1", "Binding")),
            Eviction => Some(("policy", "v1", "Eviction")),
            Status | Log => None,
        })
        .collect()
}

/// All schemas a document describing `resources` needs, sorted by name: the kinds, their
/// lists, the kinds of their subresources, the meta types, and everything they reference.
/// `group_versions` lists the group-versions whose `DeleteOptions`/`WatchEvent` kube tags.
pub fn components(
    resources: &[ServedResource],
    group_versions: &[(&str, &str)],
) -> Map<String, Value> {
    let mut gen = SchemaGenerator::new(SchemaSettings::openapi3());
    let mut kinds = Vec::new();
    let mut opaque = Vec::new();
    for r in resources {
        if !register_kind(&mut gen, r.group, r.version, r.kind) {
            opaque.push((r.group, r.version, r.kind));
        }
        kinds.push((r.group, r.version, r.kind, true));
        for (g, v, k) in subresource_kinds(r) {
            if register_kind(&mut gen, g, v, k)
                && !kinds.iter().any(|x| (x.0, x.1, x.2) == (g, v, k))
            {
                kinds.push((g, v, k, false));
            }
        }
    }
    register_meta(&mut gen);
    gen.subschema_for::<meta::ObjectMeta>();
    let mut schemas = gen.take_definitions(true);
    for (g, v, k) in opaque {
        schemas.insert(schema_name(g, v, k), opaque_kind_schema(k));
    }
    for &(g, v, k, has_list) in &kinds {
        add_gvk(&mut schemas, &schema_name(g, v, k), vec![gvk(g, v, k)]);
        if has_list {
            schemas.insert(schema_name(g, v, &format!("{k}List")), list_schema(g, v, k));
        }
    }
    // kube tags the shared option/event types with every group-version that serves them.
    for (name, kind) in [
        ("DeleteOptions", "DeleteOptions"),
        ("WatchEvent", "WatchEvent"),
    ] {
        let gvks = group_versions
            .iter()
            .map(|(g, v)| gvk(g, v, kind))
            .collect();
        add_gvk(
            &mut schemas,
            &format!("io.k8s.apimachinery.pkg.apis.meta.v1.{name}"),
            gvks,
        );
    }
    add_gvk(
        &mut schemas,
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        vec![gvk("", "v1", "Status")],
    );
    markers::apply(&mut schemas);
    publish_string_scalars(&mut schemas);
    schemas.sort_keys();
    schemas
}
