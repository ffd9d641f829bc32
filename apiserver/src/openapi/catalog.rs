//! The resources the OpenAPI documents describe: the API server's one resource table
//! (`minik8s_api::resource`), plus what this module knows about each subresource's operations.
//! Subresource names this module does not know are left out of the documents.

pub use minik8s_api::resource::{ResourceInfo as ServedResource, ALL_VERBS};

/// A subresource we can describe, and what its operations look like in the OpenAPI document
/// (kube-apiserver's `pkg/registry/*/storage` decide this per resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: get, replace and patch of the parent kind.
    Status,
    /// `/scale`: get, replace and patch of `autoscaling/v1` `Scale`.
    Scale,
    /// `pods/binding`: create of a `v1` `Binding`.
    Binding,
    /// `pods/eviction`: create of a `policy/v1` `Eviction`.
    Eviction,
    /// `pods/log`: get, answering plain text.
    Log,
}

impl Subresource {
    /// The subresource of a resource-table name (`status`, `scale`, ...).
    pub fn parse(name: &str) -> Option<Subresource> {
        [
            Self::Status,
            Self::Scale,
            Self::Binding,
            Self::Eviction,
            Self::Log,
        ]
        .into_iter()
        .find(|s| s.path() == name)
    }

    /// The path segment after `{name}`.
    pub fn path(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Eviction => "eviction",
            Subresource::Log => "log",
        }
    }
}

/// The subresources of `r` this module can describe.
pub fn subresources_of(r: &ServedResource) -> impl Iterator<Item = Subresource> + '_ {
    r.subresources.iter().filter_map(|s| Subresource::parse(s))
}

/// The OpenAPI v3 path of a group-version, as kube-apiserver names it in `/openapi/v3`.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The served resources.
pub fn served() -> &'static [ServedResource] {
    minik8s_api::resource::RESOURCES
}

/// The group-versions served, in first-seen order, as `(group, version)`.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in served() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}
