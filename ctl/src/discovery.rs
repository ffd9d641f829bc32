//! What the server serves, from its discovery documents (`/api/v1`, `/apis/<group>/<version>`),
//! with the short names, singular names, categories and subresources kubectl resolves
//! arguments with (`po`, `pod`, `pods`, `Pod`, `deployments.apps`, `all`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::discovery::ApiResource;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("the server doesn't have a resource type \"{name}\"")]
    UnknownResource { name: String },
    #[error("no matches for kind \"{kind}\" in version \"{api_version}\"")]
    UnknownKind { kind: String, api_version: String },
}

/// One resource as discovery describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    pub categories: Vec<String>,
    pub subresources: Vec<String>,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// `pod`, `deployment.apps`: how kubectl names the type in `-o name` and `get all`.
    pub fn type_name(&self) -> String {
        let kind = self.kind.to_lowercase();
        if self.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.group)
        }
    }

    /// `pods`, `deployments.apps`: the resource in messages like `pods "x" not found`.
    pub fn plural_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s == name)
    }

    fn matches(&self, name: &str) -> bool {
        let lower = name.to_lowercase();
        self.plural == lower
            || self.singular == lower
            || self.kind.to_lowercase() == lower
            || self.short_names.contains(&lower)
    }
}

/// kubectl's fallback for `all` when the server lists no categories
/// (`legacyUserResources` in the restmapper's category expander).
const LEGACY_ALL: &[(&str, &str)] = &[
    ("", "pods"),
    ("", "replicationcontrollers"),
    ("", "services"),
    ("apps", "statefulsets"),
    ("autoscaling", "horizontalpodautoscalers"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("apps", "daemonsets"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
];

#[derive(Debug, Clone, Default)]
pub struct ResourceIndex {
    pub resources: Vec<ResourceInfo>,
}

impl ResourceIndex {
    /// Reads the core group, then every group's preferred version.
    pub async fn load(client: &kube::Client) -> Result<Self, kube::Error> {
        let mut index = ResourceIndex::default();
        let core = client.list_core_api_versions().await?;
        for v in &core.versions {
            let list = client.list_core_api_resources(v).await?;
            index.add_list("", v, list);
        }
        let groups = client.list_api_groups().await?;
        for g in groups.groups {
            let gv = g
                .preferred_version
                .clone()
                .or_else(|| g.versions.first().cloned());
            let Some(gv) = gv else { continue };
            let list = client.list_api_group_resources(&gv.group_version).await?;
            index.add_list(&g.name, &gv.version, list);
        }
        Ok(index)
    }

    pub fn add_list(&mut self, group: &str, version: &str, list: APIResourceList) {
        for r in &list.resources {
            if let Some((parent, sub)) = r.name.split_once('/') {
                if let Some(p) = self
                    .resources
                    .iter_mut()
                    .find(|x| x.group == group && x.plural == parent)
                {
                    p.subresources.push(sub.to_string());
                }
                continue;
            }
            self.resources.push(ResourceInfo {
                group: group.to_string(),
                version: version.to_string(),
                kind: r.kind.clone(),
                plural: r.name.clone(),
                singular: if r.singular_name.is_empty() {
                    r.kind.to_lowercase()
                } else {
                    r.singular_name.clone()
                },
                short_names: r.short_names.clone().unwrap_or_default(),
                namespaced: r.namespaced,
                verbs: r.verbs.clone(),
                categories: r.categories.clone().unwrap_or_default(),
                subresources: Vec::new(),
            });
        }
    }

    /// Resolves `pods`, `pod`, `po`, `Pod`, `deployments.apps`, `deploy.apps`.
    pub fn resolve(&self, name: &str) -> Result<&ResourceInfo, ResolveError> {
        let unknown = || ResolveError::UnknownResource {
            name: name.to_string(),
        };
        if let Some(r) = self.resources.iter().find(|r| r.matches(name)) {
            return Ok(r);
        }
        let (res, group) = name.split_once('.').ok_or_else(unknown)?;
        // `deployments.v1.apps` names a version too.
        let (version, group) = match group.split_once('.') {
            Some((v, g))
                if v.starts_with('v') && v[1..].starts_with(|c: char| c.is_ascii_digit()) =>
            {
                (Some(v), g)
            }
            _ => (None, group),
        };
        self.resources
            .iter()
            .find(|r| r.group == group && version.is_none_or(|v| r.version == v) && r.matches(res))
            .ok_or_else(unknown)
    }

    /// The resource for a manifest's apiVersion and kind.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Result<&ResourceInfo, ResolveError> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .ok_or_else(|| ResolveError::UnknownKind {
                kind: kind.to_string(),
                api_version: api_version.to_string(),
            })
    }

    /// The members of a category such as `all`, in discovery order.
    pub fn category(&self, name: &str) -> Vec<&ResourceInfo> {
        let members: Vec<&ResourceInfo> = self
            .resources
            .iter()
            .filter(|r| r.categories.iter().any(|c| c == name))
            .collect();
        if !members.is_empty() || name != "all" {
            return members;
        }
        LEGACY_ALL
            .iter()
            .filter_map(|(g, p)| {
                self.resources
                    .iter()
                    .find(|r| r.group == *g && r.plural == *p)
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;

    fn res(name: &str, kind: &str, short: &[&str], namespaced: bool, cats: &[&str]) -> APIResource {
        APIResource {
            name: name.into(),
            kind: kind.into(),
            singular_name: kind.to_lowercase(),
            short_names: Some(short.iter().map(|s| s.to_string()).collect()),
            namespaced,
            verbs: vec!["get".into(), "list".into()],
            categories: Some(cats.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    pub(crate) fn sample_index() -> ResourceIndex {
        let mut idx = ResourceIndex::default();
        idx.add_list(
            "",
            "v1",
            APIResourceList {
                group_version: "v1".into(),
                resources: vec![
                    res("pods", "Pod", &["po"], true, &["all"]),
                    res("pods/log", "Pod", &[], true, &[]),
                    res("pods/eviction", "Eviction", &[], true, &[]),
                    res("services", "Service", &["svc"], true, &["all"]),
                    res("nodes", "Node", &["no"], false, &[]),
                    res("configmaps", "ConfigMap", &["cm"], true, &[]),
                ],
            },
        );
        idx.add_list(
            "apps",
            "v1",
            APIResourceList {
                group_version: "apps/v1".into(),
                resources: vec![
                    res("deployments", "Deployment", &["deploy"], true, &["all"]),
                    res("deployments/scale", "Scale", &[], true, &[]),
                    res("replicasets", "ReplicaSet", &["rs"], true, &["all"]),
                ],
            },
        );
        idx
    }

    #[test]
    fn resolves_every_spelling() {
        let idx = sample_index();
        for n in ["pods", "pod", "po", "Pod", "PODS"] {
            assert_eq!(idx.resolve(n).unwrap().plural, "pods", "{n}");
        }
        for n in [
            "deploy",
            "deployments.apps",
            "deployment.apps",
            "deployments.v1.apps",
        ] {
            assert_eq!(idx.resolve(n).unwrap().kind, "Deployment", "{n}");
        }
        let err = idx.resolve("widgets").unwrap_err().to_string();
        assert_eq!(err, "the server doesn't have a resource type \"widgets\"");
    }

    #[test]
    fn subresources_attach_to_parent() {
        let idx = sample_index();
        let pods = idx.resolve("pods").unwrap();
        assert!(pods.has_subresource("eviction") && pods.has_subresource("log"));
        assert!(idx.resolve("deploy").unwrap().has_subresource("scale"));
    }

    #[test]
    fn by_kind_and_names() {
        let idx = sample_index();
        let d = idx.by_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(d.type_name(), "deployment.apps");
        assert_eq!(d.plural_name(), "deployments.apps");
        let err = idx.by_kind("v1", "Widget").unwrap_err().to_string();
        assert_eq!(err, "no matches for kind \"Widget\" in version \"v1\"");
    }

    #[test]
    fn all_category() {
        let idx = sample_index();
        let names: Vec<_> = idx
            .category("all")
            .iter()
            .map(|r| r.plural.clone())
            .collect();
        assert_eq!(names, ["pods", "services", "deployments", "replicasets"]);
    }
}
