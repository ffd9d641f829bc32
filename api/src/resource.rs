//! The resource table: every kind the API server serves, with its group, version,
//! plural, short names, categories, scope and subresources. Discovery, routing, storage
//! keys and clients all read this one table.

/// The verbs of a full read-write resource, in the order Kubernetes' discovery lists them.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One served resource (e.g. `pods` in core/v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core (legacy) group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    /// Subresources served under `<plural>/<name>/<sub>`.
    pub subresources: &'static [&'static str],
}

impl ResourceInfo {
    /// `v1` for the core group, `<group>/<version>` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The URL prefix of this resource's group-version: `/api/v1` or `/apis/<g>/<v>`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The kind of this resource's list type (`PodList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// Whether objects of this kind carry a `status` that only the status subresource
    /// may change (Kubernetes' status strategies reset it on main-resource updates).
    pub fn has_status(&self) -> bool {
        self.has_subresource("status")
    }

    /// The storage key prefix of all objects of this resource, as Kubernetes lays out
    /// etcd: `/registry/<plural>/`.
    pub fn key_prefix(&self) -> String {
        format!("/registry/{}/", self.plural)
    }

    /// The storage key prefix of this resource's objects in one namespace (or of all
    /// objects when `namespace` is None or the resource is cluster-scoped).
    pub fn key_prefix_in(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{}/", self.plural, ns),
            _ => self.key_prefix(),
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{}", self.key_prefix_in(namespace), name)
    }
}

// One positional row per resource keeps the table below readable as a table.
#[allow(clippy::too_many_arguments)]
const fn res(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    namespaced: bool,
    subresources: &'static [&'static str],
) -> ResourceInfo {
    ResourceInfo {
        group,
        version,
        kind,
        plural,
        singular,
        short_names,
        categories,
        namespaced,
        verbs: ALL_VERBS,
        subresources,
    }
}

/// Every served resource. Short names and categories are Kubernetes' own.
pub static RESOURCES: &[ResourceInfo] = &[
    res(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        &["ns"],
        &[],
        false,
        &["status", "finalize"],
    ),
    res(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        &["po"],
        &["all"],
        true,
        &["status", "binding", "eviction", "log"],
    ),
    res(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        &["no"],
        &[],
        false,
        &["status"],
    ),
    res(
        "",
        "v1",
        "Service",
        "services",
        "service",
        &["svc"],
        &["all"],
        true,
        &[],
    ),
    res(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        &["ep"],
        &[],
        true,
        &[],
    ),
    res(
        "",
        "v1",
        "Event",
        "events",
        "event",
        &["ev"],
        &[],
        true,
        &[],
    ),
    res(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        &["cm"],
        &[],
        true,
        &[],
    ),
    res("", "v1", "Secret", "secrets", "secret", &[], &[], true, &[]),
    res(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        &["sa"],
        &[],
        true,
        &[],
    ),
    res(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        &["deploy"],
        &["all"],
        true,
        &["status", "scale"],
    ),
    res(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        &["rs"],
        &["all"],
        true,
        &["status", "scale"],
    ),
    res(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        &[],
        &[],
        true,
        &[],
    ),
    res(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        &[],
        &[],
        true,
        &[],
    ),
];

/// The groups served besides core, each with its one (preferred) version.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.iter().any(|(g, _)| *g == r.group) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The resources of one group-version.
pub fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// Finds a resource by group, version and plural name.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource by group and kind (any served version).
pub fn find_kind(group: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

/// Finds a resource by a name a user types: plural, singular, short name or kind,
/// case-insensitively (`po`, `pod`, `pods`, `Pod`, `deploy`).
pub fn find_by_name(name: &str) -> Option<&'static ResourceInfo> {
    let name = name.to_ascii_lowercase();
    RESOURCES.iter().find(|r| {
        r.plural == name
            || r.singular == name
            || r.kind.eq_ignore_ascii_case(&name)
            || r.short_names.contains(&name.as_str())
    })
}

/// Splits an `apiVersion` into group and version (`apps/v1` → (`apps`, `v1`), `v1` → (``, `v1`)).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_short_name_kind_and_plural() {
        assert_eq!(find_by_name("po").unwrap().plural, "pods");
        assert_eq!(find_by_name("Deployment").unwrap().plural, "deployments");
        assert_eq!(find_by_name("svc").unwrap().kind, "Service");
        assert_eq!(find_by_name("rs").unwrap().group, "apps");
        assert!(find_by_name("nothing").is_none());
    }

    #[test]
    fn keys_follow_the_kubernetes_layout() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(pods.key(Some("default"), "a"), "/registry/pods/default/a");
        assert_eq!(pods.key_prefix_in(None), "/registry/pods/");
        let nodes = find("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(Some("ignored"), "n1"), "/registry/nodes/n1");
        let deploy = find_kind("apps", "Deployment").unwrap();
        assert_eq!(deploy.api_version(), "apps/v1");
        assert_eq!(deploy.group_version_path(), "/apis/apps/v1");
    }

    #[test]
    fn groups_are_listed_once() {
        let g = groups();
        assert_eq!(g.iter().filter(|(n, _)| *n == "apps").count(), 1);
        assert!(g.contains(&("coordination.k8s.io", "v1")));
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
        assert_eq!(split_api_version("v1"), ("", "v1"));
    }
}
