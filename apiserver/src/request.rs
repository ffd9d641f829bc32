//! What a request asks for: the route its path names, its query parameters, and its body
//! decoded from JSON or YAML. Parsing only; handlers act on the result.

use http::HeaderMap;
use minik8s_api::resource::{self, ResourceInfo};
use minik8s_api::selector::{FieldSelector, LabelSelector};
use serde_json::Value;

use crate::status::ApiError;

/// The largest request body accepted, as Kubernetes' 3 MiB limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`
    GroupVersion {
        group: String,
        version: String,
    },
    Resource(ResourcePath),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub info: &'static ResourceInfo,
    /// The namespace of the path (None: cluster-scoped, or all namespaces).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses an API path. Unknown groups, versions and resources are 404s.
pub fn parse_path(path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::Groups),
        ["apis", g] if resource::groups().iter().any(|(n, _)| n == g) => {
            return Ok(Route::Group(g.to_string()))
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::NoSuchResource),
    };
    if resource::in_group_version(group, version).next().is_none() {
        return Err(ApiError::NoSuchResource);
    }
    let find =
        |plural: &str| resource::find(group, version, plural).ok_or(ApiError::NoSuchResource);
    let owned = |s: &&str| s.to_string();
    let rp = match rest {
        [] => {
            return Ok(Route::GroupVersion {
                group: group.into(),
                version: version.into(),
            })
        }
        // `/api/v1/namespaces/<ns>/<plural>...` for namespaced resources; the namespace
        // object itself (and its status subresource) otherwise.
        ["namespaces", ns, plural, tail @ ..]
            if !matches!(*plural, "status" | "finalize") || !tail.is_empty() =>
        {
            let info = find(plural)?;
            if !info.namespaced {
                return Err(ApiError::NoSuchResource);
            }
            ResourcePath {
                info,
                namespace: Some(ns.to_string()),
                name: tail.first().map(owned),
                subresource: tail.get(1).map(owned),
            }
        }
        [plural, tail @ ..] => ResourcePath {
            info: find(plural)?,
            namespace: None,
            name: tail.first().map(owned),
            subresource: tail.get(1).map(owned),
        },
    };
    let too_long = match rest.first() {
        Some(&"namespaces") if rp.info.namespaced => rest.len() > 5,
        _ => rest.len() > 3,
    };
    if too_long || rp.name.as_deref() == Some("") {
        return Err(ApiError::NoSuchResource);
    }
    if let Some(sub) = &rp.subresource {
        if !rp.info.has_subresource(sub) {
            return Err(ApiError::NoSuchResource);
        }
    }
    Ok(Route::Resource(rp))
}

/// How unknown or duplicate fields in a body are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    /// Kubernetes' default: accept, and return the problems as `Warning` headers.
    #[default]
    Warn,
    Strict,
}

/// The query parameters the API understands.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub watch: bool,
    pub resource_version: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: bool,
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub limit: usize,
    pub continue_token: Option<String>,
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub force: bool,
    pub field_validation: FieldValidation,
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    /// The deprecated `orphanDependents`.
    pub orphan_dependents: Option<bool>,
    /// `includeObject` for Table responses: None, Metadata (default) or Object.
    pub include_object: Option<String>,
}

/// Go's `strconv.ParseBool`, which Kubernetes uses for boolean parameters.
pub fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" | "" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "invalid value {v:?} for boolean parameter {name}"
        ))),
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ApiError> {
    v.parse()
        .map_err(|_| ApiError::BadRequest(format!("invalid value {v:?} for parameter {name}")))
}

impl Query {
    /// The decoded `key=value` pairs of a query string.
    pub fn raw_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
        serde_urlencoded_pairs(raw.unwrap_or("")).map_err(ApiError::BadRequest)
    }

    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let pairs = Self::raw_pairs(raw)?;
        let mut q = Query::default();
        for (k, v) in &pairs {
            match k.as_str() {
                "watch" => q.watch = parse_bool(k, v)?,
                "resourceVersion" => q.resource_version = Some(v.clone()).filter(|v| !v.is_empty()),
                "timeoutSeconds" => q.timeout_seconds = Some(parse_num(k, v)?),
                "allowWatchBookmarks" => q.allow_watch_bookmarks = parse_bool(k, v)?,
                "sendInitialEvents" => q.send_initial_events = parse_bool(k, v)?,
                "labelSelector" => {
                    q.label_selector = LabelSelector::parse(v).map_err(|e| {
                        ApiError::BadRequest(format!("unable to parse labelSelector: {e}"))
                    })?
                }
                "fieldSelector" => {
                    q.field_selector = FieldSelector::parse(v).map_err(|e| {
                        ApiError::BadRequest(format!("unable to parse fieldSelector: {e}"))
                    })?
                }
                "limit" => q.limit = parse_num(k, v)?,
                "continue" => q.continue_token = Some(v.clone()).filter(|v| !v.is_empty()),
                "dryRun" => {
                    if v != "All" {
                        return Err(ApiError::BadRequest(format!(
                            "unsupported dryRun value {v:?}: only \"All\" is supported"
                        )));
                    }
                    q.dry_run = true;
                }
                "fieldManager" => q.field_manager = Some(v.clone()),
                "force" => q.force = parse_bool(k, v)?,
                "fieldValidation" => {
                    q.field_validation = match v.as_str() {
                        "Ignore" => FieldValidation::Ignore,
                        "Warn" | "" => FieldValidation::Warn,
                        "Strict" => FieldValidation::Strict,
                        _ => {
                            return Err(ApiError::BadRequest(format!(
                                "fieldValidation must be one of Ignore, Warn or Strict, not {v:?}"
                            )))
                        }
                    }
                }
                "gracePeriodSeconds" => q.grace_period_seconds = Some(parse_num(k, v)?),
                "propagationPolicy" => q.propagation_policy = Some(v.clone()),
                "orphanDependents" => q.orphan_dependents = Some(parse_bool(k, v)?),
                "includeObject" => q.include_object = Some(v.clone()),
                _ => {}
            }
        }
        Ok(q)
    }
}

/// `application/x-www-form-urlencoded` decoding of a query string.
fn serde_urlencoded_pairs(raw: &str) -> Result<Vec<(String, String)>, String> {
    let uri = format!("/?{raw}")
        .parse::<http::Uri>()
        .map_err(|e| e.to_string())?;
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| format!("malformed query string: {e}"))
}

/// The media type of a request, without parameters, lowercased.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Kubernetes' protobuf media type (decoded for the kinds kubectl's typed clients send).
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

fn is_yaml(ct: &str) -> bool {
    matches!(ct, "application/yaml" | "application/x-yaml" | "text/yaml")
}

/// Decodes an object body (create, update): JSON or YAML, and an object.
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    let value = if ct.is_empty() || ct == "application/json" {
        decode_json(body)?
    } else if is_yaml(&ct) {
        decode_yaml(body)?
    } else if ct == PROTOBUF {
        crate::protobuf::decode(body).map_err(|e| match e {
            crate::protobuf::ProtobufError::UnknownField { .. }
            | crate::protobuf::ProtobufError::UnknownKind(_) => ApiError::Other {
                code: 415,
                reason: "UnsupportedMediaType",
                message: e.to_string(),
            },
            other => ApiError::BadRequest(other.to_string()),
        })?
    } else {
        return Err(ApiError::UnsupportedMediaType {
            accepted: "application/json, application/yaml, application/vnd.kubernetes.protobuf"
                .into(),
        });
    };
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON or YAML object".into(),
        ));
    }
    Ok(value)
}

pub fn decode_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding JSON body: {e}")))
}

pub fn decode_yaml(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    serde_yaml::from_slice::<Value>(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding YAML body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse_path(path).unwrap() {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths_name_resources_objects_and_subresources() {
        let r = res("/api/v1/namespaces/default/pods/p1/status");
        assert_eq!(r.info.plural, "pods");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("p1"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = res("/api/v1/namespaces/default");
        assert_eq!(
            (r.info.plural, r.name.as_deref()),
            ("namespaces", Some("default"))
        );
        let r = res("/api/v1/namespaces/kube-system/status");
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = res("/apis/apps/v1/deployments");
        assert_eq!((r.info.kind, r.namespace), ("Deployment", None));
        assert_eq!(
            parse_path("/apis/apps/v1").unwrap(),
            Route::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        for bad in [
            "/api/v2",
            "/apis/nope/v1",
            "/api/v1/widgets",
            "/api/v1/namespaces/default/pods/p/nosuch",
            "/api/v1/namespaces/default/nodes",
            "/api/v1/namespaces/a/pods/b/status/x",
        ] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_booleans_accept_go_spellings() {
        for t in ["true", "True", "1"] {
            assert!(Query::parse(Some(&format!("watch={t}"))).unwrap().watch);
        }
        for f in ["false", "False", "0"] {
            assert!(!Query::parse(Some(&format!("watch={f}"))).unwrap().watch);
        }
        assert!(Query::parse(Some("watch=maybe")).is_err());
        let q = Query::parse(Some("labelSelector=app%3Dweb&limit=5&dryRun=All")).unwrap();
        assert_eq!(q.label_selector.to_string(), "app=web");
        assert_eq!(q.limit, 5);
        assert!(q.dry_run);
    }
}
