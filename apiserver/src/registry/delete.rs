//! Delete: preconditions, graceful deletion of pods bound to nodes, finalizers (the
//! garbage collector's per propagation policy, see `propagation.rs`), namespaces (see
//! `namespace.rs`), and the release of a Service's ClusterIP and NodePorts.

use chrono::{Duration, SecondsFormat, Utc};
use minik8s_api::resource::{self, ResourceInfo};
use serde_json::{json, Value};

use super::create::Taken;
use super::namespace::NamespaceDelete;
use super::propagation::{self, Propagation};
use super::{decode, encode, meta_str, subject, written, Registry, WriteOptions, CAS_RETRIES};
use crate::status::ApiError;
use crate::storage::KeyValue;

/// The parts of `DeleteOptions` (body or query) that delete honours.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    /// `propagationPolicy` (or the deprecated `orphanDependents`); None: the kind's default.
    pub propagation: Option<Propagation>,
    pub write: WriteOptions,
}

/// What a delete did.
pub enum Deleted {
    /// The object is gone; this is its last state.
    Gone(Value),
    /// The object is marked for deletion (finalizers or a grace period remain).
    Pending(Value),
}

/// Namespaces Kubernetes refuses to delete.
const UNDELETABLE_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// The grace period a pod delete uses (Kubernetes' pod strategy CheckGracefulDelete):
/// pods never bound to a node, or already finished, go at once.
fn pod_grace(pod: &Value, requested: Option<i64>) -> i64 {
    let bound = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !bound || phase == "Succeeded" || phase == "Failed" {
        return 0;
    }
    let spec_grace = pod
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    requested.unwrap_or(spec_grace).max(0)
}

impl Registry {
    pub async fn delete(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        if info.kind == "Namespace" && UNDELETABLE_NAMESPACES.contains(&name) {
            return Err(ApiError::Forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        for _ in 0..CAS_RETRIES {
            let kv = self.get_kv(info, ns, name).await?;
            let mut obj = decode(&kv)?;
            self.check_preconditions(info, name, &obj, &kv, opts)?;
            if info.kind == "Namespace" {
                match self.begin_namespace_delete(info, &kv, obj, opts).await {
                    Err(ApiError::Conflict { .. }) => continue,
                    Ok(NamespaceDelete::Pending(o)) => return Ok(Deleted::Pending(o)),
                    Ok(NamespaceDelete::Finalized(o)) => obj = o,
                    Err(e) => return Err(e),
                }
            }
            let grace = if info.kind == "Pod" {
                pod_grace(&obj, opts.grace_period_seconds)
            } else {
                0
            };
            let finalizers = propagation::finalizers_after_delete(&obj, opts.propagation);
            if grace > 0 || !finalizers.is_empty() {
                match self
                    .mark_deleting(info, &kv, obj, grace, &finalizers, &opts.write)
                    .await
                {
                    Err(ApiError::Conflict { .. }) => continue,
                    other => return other.map(Deleted::Pending),
                }
            }
            match self.finish_delete(info, &kv, &obj, &opts.write).await {
                Err(ApiError::Conflict { .. }) if opts.precondition_resource_version.is_none() => {
                    continue
                }
                other => return other.map(Deleted::Gone),
            }
        }
        Err(ApiError::conflict_modified(subject(info, name)))
    }

    fn check_preconditions(
        &self,
        info: &ResourceInfo,
        name: &str,
        obj: &Value,
        kv: &KeyValue,
        opts: &DeleteOptions,
    ) -> Result<(), ApiError> {
        let conflict = |message: String| ApiError::Conflict {
            subject: subject(info, name),
            message,
        };
        if let Some(uid) = &opts.precondition_uid {
            let actual = meta_str(obj, "uid").unwrap_or("");
            if uid != actual {
                return Err(conflict(format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                )));
            }
        }
        if let Some(rv) = &opts.precondition_resource_version {
            if *rv != kv.mod_revision.to_string() {
                return Err(conflict(format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, \
                     ResourceVersion in object meta: {}",
                    kv.mod_revision
                )));
            }
        }
        Ok(())
    }

    /// Sets deletionTimestamp (now + grace), deletionGracePeriodSeconds and the finalizers
    /// the propagation policy asks for. A later delete may only shorten a pending grace
    /// period, as in Kubernetes; one that changes nothing writes nothing.
    async fn mark_deleting(
        &self,
        info: &ResourceInfo,
        kv: &KeyValue,
        mut obj: Value,
        grace: i64,
        finalizers: &[String],
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let refinalize = propagation::finalizers_differ(&obj, finalizers);
        propagation::set_finalizers(&mut obj, finalizers);
        let meta = &mut obj["metadata"];
        let current = meta["deletionGracePeriodSeconds"].as_i64();
        let marked = meta.get("deletionTimestamp").is_some() && current.is_some_and(|c| c <= grace);
        if marked && !refinalize {
            return Ok(obj);
        }
        if !marked {
            let at = Utc::now() + Duration::seconds(grace);
            meta["deletionTimestamp"] = json!(at.to_rfc3339_opts(SecondsFormat::Secs, true));
            meta["deletionGracePeriodSeconds"] = json!(grace);
        }
        self.write_marked(info, kv, obj, opts).await
    }

    /// Writes an object a delete changed (compare-and-swap on the revision read).
    pub(super) async fn write_marked(
        &self,
        info: &ResourceInfo,
        kv: &KeyValue,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if opts.dry_run {
            return Ok(obj);
        }
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        match self
            .store
            .update(&kv.key, encode(&obj), Some(kv.mod_revision))
            .await
        {
            Ok(kv) => Ok(written(obj, &kv)),
            Err(e) => Err(ApiError::from_storage(e, subject(info, &name))),
        }
    }

    /// Removes the object from the store (compare-and-swap on the revision read) and gives
    /// back what it held. Returns its last state with the delete's revision.
    pub(super) async fn finish_delete(
        &self,
        info: &ResourceInfo,
        kv: &KeyValue,
        obj: &Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        if opts.dry_run {
            return Ok(obj.clone());
        }
        let (prev, rev) = self
            .store
            .delete(&kv.key, Some(kv.mod_revision))
            .await
            .map_err(|e| ApiError::from_storage(e, subject(info, &name)))?;
        if info.kind == "Service" {
            self.release(&Taken::of_service(&decode(&prev)?)).await;
        }
        let mut last = obj.clone();
        super::set_resource_version(&mut last, rev);
        Ok(last)
    }

    /// Creates the namespaces Kubernetes always has, if missing.
    pub async fn ensure_system_namespaces(&self) -> Result<(), ApiError> {
        let namespaces = resource::find("", "v1", "namespaces").expect("in table");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            match self
                .create(namespaces, None, obj, &WriteOptions::default())
                .await
            {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bound_running_pods_are_deleted_gracefully() {
        let unbound = json!({"spec": {"terminationGracePeriodSeconds": 30}});
        assert_eq!(pod_grace(&unbound, None), 0);
        let bound = json!({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 20},
            "status": {"phase": "Running"}});
        assert_eq!(pod_grace(&bound, None), 20);
        assert_eq!(pod_grace(&bound, Some(0)), 0);
        assert_eq!(pod_grace(&bound, Some(5)), 5);
        let done = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}});
        assert_eq!(pod_grace(&done, None), 0);
    }
}
