//! Namespace deletion, as Kubernetes' namespace storage does it: the first DELETE only marks
//! the namespace (deletionTimestamp, `status.phase: Terminating`); the namespace controller
//! then removes its content and clears `spec.finalizers` through the `finalize` subresource,
//! and the update that leaves no finalizers of either kind removes the namespace.

use minik8s_api::resource::ResourceInfo;
use serde_json::{json, Value};

use super::delete::DeleteOptions;
use super::propagation;
use super::update::{Part, Updated};
use super::{now_rfc3339, subject, Registry, WriteOptions};
use crate::status::ApiError;
use crate::storage::KeyValue;

/// kube-apiserver's answer to a DELETE of a namespace still being emptied.
const STILL_FINALIZING: &str = "The system is ensuring all content is removed from this \
    namespace.  Upon completion, this namespace will automatically be purged by the system.";

/// Where a namespace delete stands.
pub enum NamespaceDelete {
    /// Marked Terminating; the namespace controller takes it from here.
    Pending(Value),
    /// Its `spec.finalizers` are empty: the ordinary delete (metadata finalizers) proceeds.
    Finalized(Value),
}

pub fn spec_finalizers(ns: &Value) -> Vec<String> {
    ns.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl Registry {
    /// The namespace part of a DELETE: the first one marks the namespace Terminating (and
    /// sets the garbage collector's finalizer the policy asks for); a later one while
    /// `spec.finalizers` remain is refused with 409, as kube-apiserver does.
    pub(super) async fn begin_namespace_delete(
        &self,
        info: &ResourceInfo,
        kv: &KeyValue,
        mut ns: Value,
        opts: &DeleteOptions,
    ) -> Result<NamespaceDelete, ApiError> {
        let name = super::meta_str(&ns, "name").unwrap_or("").to_string();
        let pending = !spec_finalizers(&ns).is_empty();
        if ns["metadata"].get("deletionTimestamp").is_some() {
            if pending {
                return Err(ApiError::Other {
                    code: 409,
                    reason: "Conflict",
                    message: format!(
                        "Operation cannot be fulfilled on namespaces {name:?}: {STILL_FINALIZING}"
                    ),
                });
            }
            return Ok(NamespaceDelete::Finalized(ns));
        }
        ns["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        ns["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        let finalizers = propagation::finalizers_after_delete(&ns, opts.propagation);
        propagation::set_finalizers(&mut ns, &finalizers);
        if !ns.get("status").is_some_and(Value::is_object) {
            ns["status"] = json!({});
        }
        ns["status"]["phase"] = json!("Terminating");
        let written = self.write_marked(info, kv, ns, &opts.write).await?;
        if pending {
            Ok(NamespaceDelete::Pending(written))
        } else {
            // Nothing to wait for: the retry re-reads the marked namespace and deletes it.
            Err(ApiError::conflict_modified(subject(info, &name)))
        }
    }

    /// PUT namespaces/{name}/finalize: replaces `spec.finalizers` only. Removing the last
    /// one from a Terminating namespace with no metadata finalizers deletes it.
    pub async fn finalize_namespace(
        &self,
        info: &ResourceInfo,
        name: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Updated, ApiError> {
        self.update_with(info, None, name, Part::Finalize, opts, |_| Ok(body.clone()))
            .await
    }
}
