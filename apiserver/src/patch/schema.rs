//! The slice of the Kubernetes type schema that strategic merge patch and server-side apply need:
//! which lists merge by key (and on which key), which lists are sets of primitives, and the
//! struct types on the way to them.
//!
//! The entries come from the `patchStrategy`/`patchMergeKey` and `+listType`/`+listMapKey`
//! tags of k8s.io/api core/v1, apps/v1 and apimachinery's ObjectMeta. A field missing from the
//! table is "untyped": objects under it merge field by field and lists under it are atomic
//! (replaced whole), which is what Kubernetes does for lists without a patch strategy.

/// A key field of an associative list, with the value the API server defaults it to (server-side
/// apply identifies `ports` items by `containerPort` *and* `protocol`, `protocol` defaulting to TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyField {
    pub name: &'static str,
    pub default: Option<&'static str>,
}

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// No strategy: the list is replaced whole.
    Atomic,
    /// `patchStrategy:"merge"` on a list of primitives / `+listType=set`: union of values.
    Set,
    /// `patchStrategy:"merge" patchMergeKey:...` / `+listType=map`: items merge by key.
    Keyed {
        /// The strategic-merge-patch merge key (a single field, per `patchMergeKey`).
        smp_key: &'static str,
        /// The server-side-apply keys (`+listMapKey`, possibly several).
        keys: &'static [KeyField],
    },
}

/// A position in the schema: the named type of the value there, if we know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeNode(Option<&'static str>);

/// What the schema says about one field of a struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldInfo {
    /// Type of the field's value, or of the list's items for list fields.
    pub node: TypeNode,
    pub list: ListKind,
    /// `+structType=atomic`: owned and replaced as one value by server-side apply.
    pub atomic_struct: bool,
}

const fn key(name: &'static str) -> KeyField {
    KeyField {
        name,
        default: None,
    }
}

const NAME: &[KeyField] = &[key("name")];
const TYPE: &[KeyField] = &[key("type")];
const IP: &[KeyField] = &[key("ip")];
const UID: &[KeyField] = &[key("uid")];
const PROTOCOL_TCP: KeyField = KeyField {
    name: "protocol",
    default: Some("TCP"),
};
const CONTAINER_PORT: &[KeyField] = &[key("containerPort"), PROTOCOL_TCP];
const SERVICE_PORT: &[KeyField] = &[key("port"), PROTOCOL_TCP];
const TOPOLOGY: &[KeyField] = &[key("topologyKey"), key("whenUnsatisfiable")];
const MOUNT_PATH: &[KeyField] = &[key("mountPath")];
const DEVICE_PATH: &[KeyField] = &[key("devicePath")];

const fn keyed(smp_key: &'static str, keys: &'static [KeyField]) -> ListKind {
    ListKind::Keyed { smp_key, keys }
}

/// (parent type, field, field type or item type, list kind).
const TABLE: &[(&str, &str, Option<&str>, ListKind)] = &[
    ("ObjectMeta", "finalizers", None, ListKind::Set),
    ("ObjectMeta", "ownerReferences", None, keyed("uid", UID)),
    // Pods and pod templates.
    ("Pod", "spec", Some("PodSpec"), ListKind::Atomic),
    ("Pod", "status", Some("PodStatus"), ListKind::Atomic),
    (
        "PodTemplateSpec",
        "metadata",
        Some("ObjectMeta"),
        ListKind::Atomic,
    ),
    ("PodTemplateSpec", "spec", Some("PodSpec"), ListKind::Atomic),
    (
        "PodSpec",
        "containers",
        Some("Container"),
        keyed("name", NAME),
    ),
    (
        "PodSpec",
        "initContainers",
        Some("Container"),
        keyed("name", NAME),
    ),
    (
        "PodSpec",
        "ephemeralContainers",
        Some("Container"),
        keyed("name", NAME),
    ),
    ("PodSpec", "volumes", None, keyed("name", NAME)),
    ("PodSpec", "imagePullSecrets", None, keyed("name", NAME)),
    ("PodSpec", "hostAliases", None, keyed("ip", IP)),
    (
        "PodSpec",
        "topologySpreadConstraints",
        None,
        keyed("topologyKey", TOPOLOGY),
    ),
    ("PodSpec", "schedulingGates", None, keyed("name", NAME)),
    ("PodSpec", "resourceClaims", None, keyed("name", NAME)),
    (
        "Container",
        "ports",
        None,
        keyed("containerPort", CONTAINER_PORT),
    ),
    ("Container", "env", None, keyed("name", NAME)),
    (
        "Container",
        "volumeMounts",
        None,
        keyed("mountPath", MOUNT_PATH),
    ),
    (
        "Container",
        "volumeDevices",
        None,
        keyed("devicePath", DEVICE_PATH),
    ),
    (
        "Container",
        "resources",
        Some("ResourceRequirements"),
        ListKind::Atomic,
    ),
    ("ResourceRequirements", "claims", None, keyed("name", NAME)),
    ("PodStatus", "conditions", None, keyed("type", TYPE)),
    ("PodStatus", "podIPs", None, keyed("ip", IP)),
    ("PodStatus", "hostIPs", None, keyed("ip", IP)),
    (
        "PodStatus",
        "resourceClaimStatuses",
        None,
        keyed("name", NAME),
    ),
    // apps/v1 Deployment and ReplicaSet share the shape that matters here.
    ("Workload", "spec", Some("WorkloadSpec"), ListKind::Atomic),
    (
        "Workload",
        "status",
        Some("WorkloadStatus"),
        ListKind::Atomic,
    ),
    (
        "WorkloadSpec",
        "template",
        Some("PodTemplateSpec"),
        ListKind::Atomic,
    ),
    (
        "WorkloadSpec",
        "selector",
        Some("LabelSelector"),
        ListKind::Atomic,
    ),
    ("WorkloadStatus", "conditions", None, keyed("type", TYPE)),
    // Services.
    ("Service", "spec", Some("ServiceSpec"), ListKind::Atomic),
    ("Service", "status", Some("ServiceStatus"), ListKind::Atomic),
    ("ServiceSpec", "ports", None, keyed("port", SERVICE_PORT)),
    ("ServiceStatus", "conditions", None, keyed("type", TYPE)),
    // Nodes and namespaces.
    ("Node", "spec", Some("NodeSpec"), ListKind::Atomic),
    ("Node", "status", Some("NodeStatus"), ListKind::Atomic),
    ("NodeSpec", "podCIDRs", None, ListKind::Set),
    ("NodeStatus", "conditions", None, keyed("type", TYPE)),
    ("NodeStatus", "addresses", None, keyed("type", TYPE)),
    (
        "Namespace",
        "status",
        Some("NamespaceStatus"),
        ListKind::Atomic,
    ),
    ("NamespaceStatus", "conditions", None, keyed("type", TYPE)),
    ("ServiceAccount", "secrets", None, keyed("name", NAME)),
];

/// Kinds whose patch behaviour we know. Kubernetes refuses strategic merge patch for kinds
/// without Go types (custom resources) with 415; the caller does the same for kinds not here.
pub const KNOWN_KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "ReplicaSet",
    "Service",
    "Endpoints",
    "Node",
    "Namespace",
    "ConfigMap",
    "Secret",
    "Event",
    "ServiceAccount",
    "Lease",
    "EndpointSlice",
    "Binding",
    "Scale",
];

impl FieldInfo {
    /// The info for a value of type `node` that is not itself a list field.
    pub fn object(node: TypeNode) -> FieldInfo {
        FieldInfo {
            node,
            list: ListKind::Atomic,
            atomic_struct: false,
        }
    }
}

impl TypeNode {
    /// The root type of a kind; `None` when the kind is unknown.
    pub fn root(kind: &str) -> Option<TypeNode> {
        if !KNOWN_KINDS.contains(&kind) {
            return None;
        }
        let name = match kind {
            "Deployment" | "ReplicaSet" => "Workload",
            "Pod" => "Pod",
            "Service" => "Service",
            "Node" => "Node",
            "Namespace" => "Namespace",
            "ServiceAccount" => "ServiceAccount",
            _ => "Object",
        };
        Some(TypeNode(Some(name)))
    }

    /// A node with no schema below it: maps merge, lists are atomic.
    pub fn untyped() -> TypeNode {
        TypeNode(None)
    }

    /// Whether this node is the root object of a kind (has `metadata`).
    fn is_root(self) -> bool {
        matches!(
            self.0,
            Some(
                "Workload" | "Pod" | "Service" | "Node" | "Namespace" | "ServiceAccount" | "Object"
            )
        )
    }

    /// What the schema says about `field` of this type.
    pub fn field(self, field: &str) -> FieldInfo {
        let untyped = FieldInfo {
            node: TypeNode(None),
            list: ListKind::Atomic,
            atomic_struct: false,
        };
        let Some(ty) = self.0 else { return untyped };
        if field == "metadata" && self.is_root() {
            return FieldInfo {
                node: TypeNode(Some("ObjectMeta")),
                ..untyped
            };
        }
        TABLE
            .iter()
            .find(|(parent, name, _, _)| *parent == ty && *name == field)
            .map(|(_, _, node, list)| FieldInfo {
                node: TypeNode(*node),
                list: *list,
                // LabelSelector is `+structType=atomic` in apimachinery.
                atomic_struct: *node == Some("LabelSelector"),
            })
            .unwrap_or(untyped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_template_reuses_pod_spec_rules() {
        let root = TypeNode::root("Deployment").unwrap();
        let spec = root.field("spec").node;
        let pod_spec = spec.field("template").node.field("spec").node;
        let containers = pod_spec.field("containers");
        assert_eq!(containers.list, keyed("name", NAME));
        let ports = containers.node.field("ports");
        assert!(matches!(
            ports.list,
            ListKind::Keyed {
                smp_key: "containerPort",
                ..
            }
        ));
    }

    #[test]
    fn metadata_finalizers_are_a_set_for_every_kind() {
        for kind in KNOWN_KINDS {
            let meta = TypeNode::root(kind).unwrap().field("metadata").node;
            assert_eq!(meta.field("finalizers").list, ListKind::Set, "{kind}");
        }
    }

    #[test]
    fn unknown_fields_are_untyped_and_atomic() {
        let pod_spec = TypeNode::root("Pod").unwrap().field("spec").node;
        let tolerations = pod_spec.field("tolerations");
        assert_eq!(tolerations.list, ListKind::Atomic);
        assert_eq!(tolerations.node, TypeNode::untyped());
        assert!(TypeNode::root("Widget").is_none());
    }
}
