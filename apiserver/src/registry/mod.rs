//! The generic registry: object semantics on top of the store, for every kind.
//!
//! Like Kubernetes' `genericregistry.Store`, it encodes and decodes objects (setting
//! `metadata.resourceVersion` from the store's `mod_revision`), runs the per-kind strategy
//! (defaulting, status handling, generation), admission and validation, and turns
//! compare-and-swap failures into 409s. Create lives in `create.rs`, delete in `delete.rs`,
//! list in `list.rs`.

mod create;
mod delete;
pub mod list;
mod namespace;
pub mod propagation;
pub mod update;

use std::sync::Arc;

use minik8s_api::resource::ResourceInfo;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::defaults::DefaultsConfig;
use crate::ipalloc::Allocator;
use crate::status::{ApiError, Subject};
use crate::storage::{KeyValue, Storage};

pub use delete::{DeleteOptions, Deleted};
pub use list::{decode_continue, ListResult};

/// The options every write takes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
}

pub struct Registry {
    pub store: Arc<dyn Storage>,
    pub defaults: DefaultsConfig,
    pub alloc: Mutex<Allocator>,
}

/// How many times a read-modify-write retries after losing a compare-and-swap race
/// it did not ask for (Kubernetes' GuaranteedUpdate loops the same way).
const CAS_RETRIES: usize = 16;

/// Decodes a stored object and sets its resourceVersion from the store revision.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::Internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    set_resource_version(&mut obj, kv.mod_revision);
    Ok(obj)
}

pub fn set_resource_version(obj: &mut Value, rev: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
    }
}

/// Encodes an object for the store; the resourceVersion is the store's, never stored.
/// Serialized in place, skipping the field, rather than from a copy without it: every write
/// goes through here, and copying a whole object was a visible share of a write's cost.
pub fn encode(obj: &Value) -> Vec<u8> {
    serde_json::to_vec(&WithoutResourceVersion(obj)).expect("a JSON value always encodes")
}

/// The object just written as `kv`: what `decode(kv)` would return, without parsing back the
/// bytes that `encode(&obj)` produced.
pub fn written(mut obj: Value, kv: &KeyValue) -> Value {
    set_resource_version(&mut obj, kv.mod_revision);
    obj
}

/// Serializes an object as it is stored: `metadata.resourceVersion` left out.
struct WithoutResourceVersion<'a>(&'a Value);

/// An object map with the named key left out.
struct MapWithout<'a> {
    map: &'a serde_json::Map<String, Value>,
    skip: &'static str,
}

impl serde::Serialize for MapWithout<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let entries = self.map.iter().filter(|(k, _)| k.as_str() != self.skip);
        let mut out = s.serialize_map(None)?;
        for (k, v) in entries {
            out.serialize_entry(k, v)?;
        }
        out.end()
    }
}

impl serde::Serialize for WithoutResourceVersion<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(top) = self.0 else {
            return self.0.serialize(s);
        };
        let mut out = s.serialize_map(Some(top.len()))?;
        for (k, v) in top {
            match v {
                Value::Object(meta) if k == "metadata" => out.serialize_entry(
                    k,
                    &MapWithout {
                        map: meta,
                        skip: "resourceVersion",
                    },
                )?,
                _ => out.serialize_entry(k, v)?,
            }
        }
        out.end()
    }
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// The resourceVersion an object carries, parsed. Garbage is a 400, as in Kubernetes.
pub fn resource_version_of(obj: &Value) -> Result<Option<u64>, ApiError> {
    match meta_str(obj, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(rv) => rv.parse().map(Some).map_err(|_| {
            ApiError::BadRequest(format!(
                "invalid resourceVersion {rv:?}: expected an integer"
            ))
        }),
    }
}

pub fn subject(info: &ResourceInfo, name: &str) -> Subject {
    Subject::new(info.group, info.plural, name)
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Registry {
    pub fn new(store: Arc<dyn Storage>, defaults: DefaultsConfig, alloc: Allocator) -> Self {
        Self {
            store,
            defaults,
            alloc: Mutex::new(alloc),
        }
    }

    fn namespace_for<'a>(info: &ResourceInfo, ns: Option<&'a str>) -> Option<&'a str> {
        if info.namespaced {
            ns
        } else {
            None
        }
    }

    /// Reads one stored object (raw) or 404.
    pub async fn get_kv(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> Result<KeyValue, ApiError> {
        let key = info.key(Self::namespace_for(info, ns), name);
        self.store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_storage(e, subject(info, name)))?
            .ok_or_else(|| ApiError::NotFound(subject(info, name)))
    }

    pub async fn get(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        decode(&self.get_kv(info, ns, name).await?)
    }

    /// Fills the allocator from the Services already stored, so a restart never hands
    /// out a ClusterIP or NodePort twice.
    pub async fn load_allocations(&self) -> Result<(), ApiError> {
        let services = minik8s_api::resource::find("", "v1", "services").expect("in table");
        let page = self
            .store
            .list(crate::storage::ListOptions {
                prefix: &services.key_prefix(),
                start_after: None,
                limit: 0,
            })
            .await
            .map_err(|e| ApiError::from_storage(e, subject(services, "")))?;
        let mut alloc = self.alloc.lock().await;
        for kv in &page.items {
            let svc = decode(kv)?;
            for ip in service_ips(&svc) {
                if let Err(e) = alloc.take_ip(&ip) {
                    tracing::warn!(service = %kv.key, error = %e, "stored ClusterIP not reserved");
                }
            }
            for port in service_node_ports(&svc) {
                let _ = alloc.take_port(port);
            }
        }
        Ok(())
    }
}

/// The ClusterIPs a Service holds (none for headless or ExternalName).
pub fn service_ips(svc: &Value) -> Vec<String> {
    let mut ips: Vec<String> = svc
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if let Some(ip) = svc.pointer("/spec/clusterIP").and_then(Value::as_str) {
        if !ips.iter().any(|i| i == ip) {
            ips.push(ip.into());
        }
    }
    ips.retain(|ip| !ip.is_empty() && ip != "None");
    ips
}

pub fn service_node_ports(svc: &Value) -> Vec<u16> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p.get("nodePort")?.as_u64())
                .filter_map(|p| u16::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encode_leaves_out_only_the_resource_version() {
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "resourceVersion": "42", "labels": {"resourceVersion": "kept"}},
            "spec": {"resourceVersion": "not metadata, kept"},
        });
        let stored: Value = serde_json::from_slice(&encode(&obj)).expect("valid JSON");
        let mut want = obj.clone();
        want["metadata"]
            .as_object_mut()
            .expect("metadata")
            .shift_remove("resourceVersion");
        assert_eq!(stored, want);
        let non_object = json!(["a", 1]);
        assert_eq!(
            encode(&non_object),
            serde_json::to_vec(&non_object).unwrap()
        );
    }

    #[test]
    fn written_is_what_decoding_the_stored_bytes_gives() {
        let obj = json!({"metadata": {"name": "web", "resourceVersion": "7"}, "data": {"k": 1.5}});
        let kv = KeyValue {
            key: "/configmaps/default/web".into(),
            value: encode(&obj),
            create_revision: 3,
            mod_revision: 8,
        };
        assert_eq!(written(obj, &kv), decode(&kv).expect("decodes"));
    }
}
