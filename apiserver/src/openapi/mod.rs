//! OpenAPI documents as kubectl reads them: `/openapi/v3` (an index of per-group-version
//! documents), `/openapi/v3/<api/v1|apis/<group>/<version>>` (OpenAPI 3.0) and `/openapi/v2`
//! (Swagger 2.0).
//!
//! Why this matters to kubectl 1.32:
//! - `kubectl apply/create/replace` (default `--validate=strict`) asks cli-runtime's
//!   `QueryParamVerifierV3` whether the kind's PATCH operation in the v3 document has a
//!   `fieldValidation` query parameter; if so the server validates, otherwise kubectl falls back
//!   to client-side validation against `/openapi/v2` (protobuf only). The first PATCH operation
//!   whose `x-kubernetes-group-version-kind` matches decides, so every PATCH (including
//!   `/status` and `/scale`) carries `fieldValidation`.
//! - client-side `kubectl apply` computes its strategic merge patch from the v3 schemas
//!   (`x-kubernetes-group-version-kind` on the kind, patch markers on fields) when the PATCH
//!   operation accepts `application/strategic-merge-patch+json`.
//! - `kubectl explain` reads the v3 schemas.
//!
//! Documents are generated once, on first use, and kept serialized with their content hash
//! (sha512, upper-case hex, as kube-openapi's `handler3` computes it) for ETag and caching.

mod catalog;
mod markers;
#[rustfmt::skip]
mod markers_table;
mod params;
mod paths;
mod schemas;
mod v2;
mod v2_proto;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

pub use catalog::{gv_path, served, ServedResource, Subresource, ALL_VERBS};
pub use schemas::schema_name;

/// A generated document: the JSON value, its serialization and that serialization's hash.
#[derive(Debug, PartialEq, Eq)]
pub struct Document {
    pub value: Value,
    pub bytes: Vec<u8>,
    /// [`content_hash`] of `bytes`.
    pub hash: String,
}

impl Document {
    fn new(value: Value) -> Document {
        let bytes = serde_json::to_vec(&value).expect("a serde_json::Value always serializes");
        let hash = content_hash(&bytes);
        Document { value, bytes, hash }
    }

    /// The strong ETag header value, `"<hash>"`.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.hash)
    }
}

/// The content hash kube-openapi puts in `serverRelativeURL` and ETags: upper-case hex sha512.
pub fn content_hash(bytes: &[u8]) -> String {
    Sha512::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The title and version in every document's `info`.
const INFO_TITLE: &str = "Kubernetes";
const INFO_VERSION: &str = concat!("minik8s-", env!("CARGO_PKG_VERSION"));

fn v3_documents() -> &'static BTreeMap<String, Document> {
    static DOCS: OnceLock<BTreeMap<String, Document>> = OnceLock::new();
    DOCS.get_or_init(|| {
        catalog::group_versions()
            .into_iter()
            .map(|(g, v)| (gv_path(g, v), Document::new(build_v3(g, v))))
            .collect()
    })
}

/// Builds the OpenAPI 3.0 document of one group-version.
fn build_v3(group: &str, version: &str) -> Value {
    let resources: Vec<ServedResource> = served()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .copied()
        .collect();
    let mut path_map = Map::new();
    for r in &resources {
        for (path, item) in paths::resource_paths(r) {
            path_map.insert(path, item);
        }
    }
    path_map.sort_keys();
    let gvs = catalog::group_versions();
    json!({
        "openapi": "3.0.0",
        "info": { "title": INFO_TITLE, "version": INFO_VERSION },
        "paths": path_map,
        "components": {
            "schemas": schemas::components(&resources, &gvs),
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header"
                }
            }
        },
        "security": [{ "BearerToken": [] }]
    })
}

/// The `/openapi/v3` index: `{"paths": {"api/v1": {"serverRelativeURL":
/// "/openapi/v3/api/v1?hash=<HASH>"}, ...}}` (kube-openapi `handler3.OpenAPIV3Discovery`).
pub fn v3_index() -> &'static Document {
    static INDEX: OnceLock<Document> = OnceLock::new();
    INDEX.get_or_init(|| {
        let paths: Map<String, Value> = v3_documents()
            .iter()
            .map(|(gv, doc)| {
                let url = format!("/openapi/v3/{gv}?hash={}", doc.hash);
                (gv.clone(), json!({ "serverRelativeURL": url }))
            })
            .collect();
        Document::new(json!({ "paths": paths }))
    })
}

/// The v3 document of `gv_path` (`api/v1`, `apis/apps/v1`, ...; a leading `/` is ignored),
/// or `None` for a group-version we do not serve.
pub fn v3_document(gv_path: &str) -> Option<&'static Document> {
    v3_documents().get(gv_path.trim_start_matches('/'))
}

/// The group-version paths that have a v3 document.
pub fn v3_paths() -> impl Iterator<Item = &'static str> {
    v3_documents().keys().map(String::as_str)
}

/// The Swagger 2.0 `/openapi/v2` document (JSON) of everything served.
pub fn v2_document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(|| Document::new(v2::build(INFO_TITLE, INFO_VERSION)))
}

/// The Content-Type of a protobuf `/openapi/v2` answer. kubectl asks for
/// `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, but Go's
/// `mime.ParseMediaType` rejects the `@`, so kube-openapi answers with this dotted form.
pub const V2_PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Whether `GET /openapi/v2` should be answered in protobuf: the first media type of `Accept`
/// that we can serve is one of the two `proto-openapi.spec.v2` forms (JSON or `*/*` first, or
/// no Accept, means JSON).
pub fn wants_v2_protobuf(accept: Option<&str>) -> bool {
    for media in accept.unwrap_or_default().split(',') {
        let ty = media.split(';').next().unwrap_or_default().trim();
        if ty.starts_with("application/com.github.proto-openapi.spec.v2") {
            return true;
        }
        if ty == "application/json" || ty == "*/*" || ty == "application/*" {
            return false;
        }
    }
    false
}

/// The `/openapi/v2` document encoded as gnostic's protobuf `openapi_v2.Document`, the only
/// form kubectl decodes; serve it when [`wants_v2_protobuf`], with Content-Type
/// [`V2_PROTOBUF_CONTENT_TYPE`], else serve [`v2_document`] as `application/json`. Its ETag is
/// `"<hash>"`.
pub fn v2_document_protobuf() -> &'static (Vec<u8>, String) {
    static DOC: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    DOC.get_or_init(|| {
        let bytes = v2_proto::encode(&v2_document().value);
        let hash = content_hash(&bytes);
        (bytes, hash)
    })
}

/// Builds every document now instead of on the first request (about 0.1 s in a release
/// build, more in debug); call it once at startup, e.g. `tokio::task::spawn_blocking(warm_up)`.
pub fn warm_up() {
    let _ = v3_index();
    let _ = v2_document_protobuf();
}

/// How to answer `GET /openapi/v3/<gv>` (kube-openapi `handler3.HandleGroupVersion`).
#[derive(Debug, PartialEq, Eq)]
pub enum V3Answer {
    /// 404: no such group-version.
    NotFound,
    /// 301 to this location: the `hash` query parameter names an older document.
    Redirect(String),
    /// 304 with this ETag: `If-None-Match` names the current document.
    NotModified { etag: String },
    /// 200 with the document. `immutable`: the request named the current hash, so answer with
    /// `Cache-Control: public, immutable`, `Expires` one year ahead and `Vary: Accept`.
    Ok {
        document: &'static Document,
        immutable: bool,
    },
}

/// Decides the answer to `GET /openapi/v3/<gv_path>?hash=<hash>` with `If-None-Match`.
/// Serve `Ok` bodies as `application/json` with `ETag: document.etag()`.
pub fn v3_answer(gv_path: &str, hash: Option<&str>, if_none_match: Option<&str>) -> V3Answer {
    let Some(document) = v3_document(gv_path) else {
        return V3Answer::NotFound;
    };
    if let Some(h) = hash.filter(|h| !h.is_empty()) {
        if h != document.hash {
            let gv = gv_path.trim_start_matches('/');
            return V3Answer::Redirect(format!("/openapi/v3/{gv}?hash={}", document.hash));
        }
    }
    if etag_matches(if_none_match, &document.hash) {
        return V3Answer::NotModified {
            etag: document.etag(),
        };
    }
    V3Answer::Ok {
        document,
        immutable: hash.is_some_and(|h| !h.is_empty()),
    }
}

/// Whether an `If-None-Match` header value names `hash` (quoted, weak or `*`).
pub fn etag_matches(if_none_match: Option<&str>, hash: &str) -> bool {
    let Some(header) = if_none_match else {
        return false;
    };
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == hash)
}

#[cfg(test)]
mod tests;
