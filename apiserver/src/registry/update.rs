//! Update: a read-modify-write loop (Kubernetes' GuaranteedUpdate). The caller supplies a
//! function from the current object to the desired one (a PUT body, a patched object, a
//! scaled or bound object); this file applies the strategy — what the main resource and the
//! status subresource may change, immutable metadata, defaulting, generation — validates,
//! and writes with a compare-and-swap on the revision it read.

use minik8s_api::resource::ResourceInfo;
use serde_json::{json, Value};

use super::{
    decode, encode, meta_str, resource_version_of, subject, written, Registry, WriteOptions,
    CAS_RETRIES,
};
use crate::admission;
use crate::defaults;
use crate::status::ApiError;
use crate::storage::StorageError;

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: everything but status (for kinds with a status subresource).
    Main,
    /// The status subresource: only status.
    Status,
    /// Spec and status together (pods/binding sets spec.nodeName and a condition).
    All,
    /// A namespace's `finalize` subresource: only `spec.finalizers`.
    Finalize,
}

/// Metadata an update may never change.
const IMMUTABLE_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
];

/// Merges `new` onto `old` as the kind's update strategy does.
pub fn prepare_for_update(info: &ResourceInfo, old: &Value, mut new: Value, part: Part) -> Value {
    if part == Part::Status {
        // Status updates change status only (Kubernetes' ResetObjectMetaForStatus).
        let mut merged = old.clone();
        merged["status"] = new.get("status").cloned().unwrap_or(json!({}));
        return merged;
    }
    if part == Part::Finalize {
        let mut merged = old.clone();
        match new.pointer("/spec/finalizers") {
            Some(f) if !f.is_null() => merged["spec"]["finalizers"] = f.clone(),
            _ => {
                if let Some(spec) = merged.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("finalizers");
                }
            }
        }
        return merged;
    }
    if info.kind == "Namespace" {
        // Only the finalize subresource changes spec.finalizers (namespace strategy).
        match old.pointer("/spec/finalizers") {
            Some(f) => new["spec"]["finalizers"] = f.clone(),
            None => {
                if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("finalizers");
                }
            }
        }
    }
    if info.has_status() && part == Part::Main {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    if !new.get("metadata").is_some_and(Value::is_object) {
        new["metadata"] = json!({});
    }
    for f in IMMUTABLE_META {
        match old["metadata"].get(*f) {
            Some(v) => new["metadata"][*f] = v.clone(),
            None => {
                new["metadata"].as_object_mut().expect("object").remove(*f);
            }
        }
    }
    defaults::apply(info.kind, &mut new);
    if info.kind == "Service" {
        keep_allocations(old, &mut new);
    }
    // generation counts spec changes only (metadata and status updates leave it).
    if old.get("spec") != new.get("spec") {
        let gen = old["metadata"]["generation"].as_i64().unwrap_or(0);
        new["metadata"]["generation"] = json!(gen + 1);
    }
    new
}

/// A Service update that leaves clusterIP or nodePort empty keeps the allocated ones
/// (Kubernetes fills them from the old object since 1.20).
fn keep_allocations(old: &Value, new: &mut Value) {
    for f in ["clusterIP", "clusterIPs"] {
        let empty = new["spec"]
            .get(f)
            .is_none_or(|v| v.is_null() || v == "" || v == &json!([]));
        if empty {
            if let Some(v) = old["spec"].get(f) {
                new["spec"][f] = v.clone();
            }
        }
    }
    let old_ports = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned();
    let new_ports = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut);
    if let (Some(olds), Some(news)) = (old_ports, new_ports) {
        for p in news.iter_mut() {
            if p.get("nodePort").is_some() {
                continue;
            }
            let same = olds.iter().find(|o| o.get("port") == p.get("port"));
            if let Some(np) = same.and_then(|o| o.get("nodePort")) {
                p["nodePort"] = np.clone();
            }
        }
    }
}

/// The outcome of an update: the object written, or that it was deleted because its last
/// finalizer was removed while it was being deleted.
pub enum Updated {
    Object(Value),
    Deleted(Value),
}

impl Updated {
    pub fn into_object(self) -> Value {
        match self {
            Updated::Object(v) | Updated::Deleted(v) => v,
        }
    }
}

impl Registry {
    /// Read-modify-write of one object. `mutate` maps the current object to the desired
    /// one; if the desired object carries a resourceVersion different from the current
    /// one, the update fails with 409 (an explicit precondition), otherwise lost races
    /// are retried.
    pub async fn update_with<F>(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        part: Part,
        opts: &WriteOptions,
        mut mutate: F,
    ) -> Result<Updated, ApiError>
    where
        F: FnMut(&Value) -> Result<Value, ApiError>,
    {
        for _ in 0..CAS_RETRIES {
            let kv = self.get_kv(info, ns, name).await?;
            let old = decode(&kv)?;
            let mut desired = mutate(&old)?;
            admission::check_type(info, &mut desired)?;
            if let Some(body_name) = meta_str(&desired, "name").filter(|n| !n.is_empty()) {
                if body_name != name {
                    return Err(ApiError::BadRequest(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({name})"
                    )));
                }
            }
            let explicit = resource_version_of(&desired)?;
            if explicit.is_some_and(|rv| rv != kv.mod_revision) {
                return Err(ApiError::conflict_modified(subject(info, name)));
            }
            let new = prepare_for_update(info, &old, desired, part);
            if part == Part::All {
                // pods/binding changes spec.nodeName, which pod updates may not.
                admission::validate_create(info, &new)?;
            } else {
                admission::validate_update(info, &old, &new)?;
            }
            if should_delete_on_update(&old, &new) {
                return self
                    .finish_delete(info, &kv, &new, opts)
                    .await
                    .map(Updated::Deleted);
            }
            if opts.dry_run || new == old {
                return Ok(Updated::Object(new));
            }
            match self
                .store
                .update(&kv.key, encode(&new), Some(kv.mod_revision))
                .await
            {
                Ok(kv) => return Ok(Updated::Object(written(new, &kv))),
                // A stale explicit resourceVersion fails the check above on the next pass.
                Err(StorageError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_storage(e, subject(info, name))),
            }
        }
        Err(ApiError::conflict_modified(subject(info, name)))
    }

    /// Replaces an object with a PUT body.
    pub async fn update(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        body: Value,
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Updated, ApiError> {
        self.update_with(info, ns, name, part, opts, |_| Ok(body.clone()))
            .await
    }
}

/// Kubernetes deletes an object on update when it is being deleted, its grace period is
/// over (0) and its last finalizer was just removed; a namespace also needs its
/// `spec.finalizers` empty (ShouldDeleteNamespaceDuringUpdate).
fn should_delete_on_update(old: &Value, new: &Value) -> bool {
    let meta = &new["metadata"];
    let spec_finalizers = new
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let namespace = new.get("kind").and_then(Value::as_str) == Some("Namespace");
    !(namespace && spec_finalizers)
        && meta.get("deletionTimestamp").is_some()
        && meta["finalizers"].as_array().is_none_or(Vec::is_empty)
        && old["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0)
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_updates_keep_status_and_bump_generation_on_spec_change() {
        let info = minik8s_api::resource::find("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d", "uid": "u", "generation": 1},
            "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let new = json!({"metadata": {"name": "d", "uid": "other", "labels": {"a": "b"}},
            "spec": {"replicas": 3}, "status": {"replicas": 9}});
        let out = prepare_for_update(info, &old, new, Part::Main);
        assert_eq!(out["metadata"]["uid"], "u");
        assert_eq!(out["metadata"]["generation"], 2);
        assert_eq!(out["status"]["replicas"], 1);
        assert_eq!(out["metadata"]["labels"]["a"], "b");
        let relabel = json!({"metadata": {"name": "d", "labels": {"x": "y"}},
            "spec": out["spec"].clone()});
        let out2 = prepare_for_update(info, &out, relabel, Part::Main);
        assert_eq!(out2["metadata"]["generation"], 2, "metadata-only change");
        let status = json!({"metadata": {"labels": {}}, "spec": {"replicas": 7},
            "status": {"replicas": 3}});
        let out3 = prepare_for_update(info, &out2, status, Part::Status);
        assert_eq!(out3["spec"]["replicas"], 3);
        assert_eq!(out3["status"]["replicas"], 3);
        assert_eq!(out3["metadata"]["labels"]["x"], "y");
    }
}
