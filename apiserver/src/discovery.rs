//! Discovery: the legacy documents (`/api`, `/api/v1`, `/apis`, `/apis/<g>`,
//! `/apis/<g>/<v>`) and the aggregated `apidiscovery.k8s.io/v2` documents kubectl 1.32
//! asks for first (one request for `/api`, one for `/apis`, instead of one per group).
//! All are built from the resource table.

use http::HeaderMap;
use minik8s_api::resource::{self, ResourceInfo};
use serde_json::{json, Value};

/// The media type of aggregated discovery responses.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client asked for aggregated discovery (v2) in its Accept header.
pub fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.replace(' ', "");
            t.contains("g=apidiscovery.k8s.io")
                && t.contains("v=v2")
                && !t.contains("v=v2beta1")
                && t.contains("as=APIGroupDiscoveryList")
        })
}

/// The verbs of a subresource, as Kubernetes lists them.
fn subresource_verbs(sub: &str) -> &'static [&'static str] {
    match sub {
        "binding" | "eviction" => &["create"],
        "log" => &["get"],
        "finalize" => &["update"],
        _ => &["get", "patch", "update"],
    }
}

/// The group, version and kind a subresource returns.
fn subresource_kind(info: &ResourceInfo, sub: &str) -> (&'static str, &'static str, &'static str) {
    match sub {
        "scale" => ("autoscaling", "v1", "Scale"),
        "binding" => ("", "v1", "Binding"),
        "eviction" => ("policy", "v1", "Eviction"),
        _ => (info.group, info.version, info.kind),
    }
}

pub fn core_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                           "serverAddress": server_address}]})
}

fn group_entry(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

pub fn group_list() -> Value {
    let groups: Vec<Value> = resource::groups()
        .into_iter()
        .map(|(g, v)| group_entry(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(name: &str) -> Option<Value> {
    let (g, v) = resource::groups().into_iter().find(|(g, _)| *g == name)?;
    let mut entry = group_entry(g, v);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

/// `APIResourceList` of one group-version, subresources listed as `<plural>/<sub>`.
pub fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in resource::in_group_version(group, version) {
        let mut entry = json!({"name": r.plural, "singularName": r.singular,
            "namespaced": r.namespaced, "kind": r.kind, "verbs": r.verbs});
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in r.subresources {
            let (g, v, k) = subresource_kind(r, sub);
            let mut e = json!({"name": format!("{}/{sub}", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": k, "verbs": subresource_verbs(sub)});
            if g != r.group || v != r.version {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            resources.push(e);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
           "resources": resources})
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let subs: Vec<Value> = r
        .subresources
        .iter()
        .map(|sub| {
            let (g, v, k) = subresource_kind(r, sub);
            json!({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": k},
                   "verbs": subresource_verbs(sub)})
        })
        .collect();
    let mut e = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    if !subs.is_empty() {
        e["subresources"] = json!(subs);
    }
    e
}

fn aggregated_group(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = resource::in_group_version(group, version)
        .map(aggregated_resource)
        .collect();
    json!({"metadata": {"name": group},
           "versions": [{"version": version, "resources": resources, "freshness": "Current"}]})
}

/// Aggregated discovery for `/api` (core = true) or `/apis`.
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group("", "v1")]
    } else {
        resource::groups()
            .into_iter()
            .map(|(g, v)| aggregated_group(g, v))
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
           "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resource_list_has_short_names_categories_and_subresources() {
        let l = resource_list("", "v1");
        let rs = l["resources"].as_array().unwrap();
        let pods = rs.iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert!(rs
            .iter()
            .any(|r| r["name"] == "pods/binding" && r["verbs"] == json!(["create"])));
        let apps = resource_list("apps", "v1");
        let scale = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
    }

    #[test]
    fn aggregated_accept_header_is_recognised() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::ACCEPT,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
                .parse()
                .unwrap(),
        );
        assert!(wants_aggregated(&h));
        let agg = aggregated(false);
        assert!(agg["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["metadata"]["name"] == "apps"));
    }
}
