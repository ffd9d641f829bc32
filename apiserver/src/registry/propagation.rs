//! Deletion propagation: which garbage-collector finalizer a delete leaves on the object
//! (Kubernetes' `deletionFinalizersForGarbageCollection`, `shouldOrphanDependents` and
//! `shouldDeleteDependents` in apiserver/pkg/registry/generic/registry/store.go).
//!
//! `Foreground` adds `foregroundDeletion`: the owner stays, with a deletionTimestamp, until
//! the garbage collector has deleted its dependents. `Orphan` adds `orphan`: the garbage
//! collector strips the owner reference from every dependent. `Background` (the default for
//! every kind served here, apps/v1 included) adds neither and removes both, so a later delete
//! can change its mind. The deprecated `orphanDependents` overrides `propagationPolicy`.

use serde_json::{json, Value};

use crate::status::{ApiError, Cause};

pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
pub const ORPHAN_FINALIZER: &str = "orphan";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    /// Parses `propagationPolicy` as DeleteOptions validation does (a 422 naming the field).
    pub fn parse(v: &str) -> Result<Self, ApiError> {
        match v {
            "Orphan" => Ok(Propagation::Orphan),
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            _ => Err(invalid(
                "FieldValueNotSupported",
                "propagationPolicy",
                format!(
                    "Unsupported value: {v:?}: supported values: \"Foreground\", \
                     \"Background\", \"Orphan\""
                ),
            )),
        }
    }
}

fn invalid(reason: &str, field: &str, message: String) -> ApiError {
    ApiError::Invalid {
        group: "meta.k8s.io".into(),
        subject_kind: "DeleteOptions".into(),
        name: String::new(),
        causes: vec![Cause {
            reason: reason.into(),
            message,
            field: field.into(),
        }],
    }
}

/// The requested policy, from `propagationPolicy` and the deprecated `orphanDependents`;
/// setting both is invalid, as in Kubernetes' ValidateDeleteOptions.
pub fn requested(
    policy: Option<&str>,
    orphan_dependents: Option<bool>,
) -> Result<Option<Propagation>, ApiError> {
    let policy = policy.map(Propagation::parse).transpose()?;
    match (policy, orphan_dependents) {
        (Some(_), Some(_)) => Err(invalid(
            "FieldValueInvalid",
            "propagationPolicy",
            "Invalid value: \"\": orphanDependents and deletionPropagation cannot be both set"
                .into(),
        )),
        (Some(p), None) => Ok(Some(p)),
        (None, Some(true)) => Ok(Some(Propagation::Orphan)),
        (None, Some(false)) => Ok(Some(Propagation::Background)),
        (None, None) => Ok(None),
    }
}

fn finalizer_names(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The finalizers an object keeps after a delete with `requested`: without an explicit
/// policy, a garbage-collector finalizer already present stands (a repeated delete does not
/// undo a foreground delete); with one, it replaces whichever was there.
pub fn finalizers_after_delete(obj: &Value, requested: Option<Propagation>) -> Vec<String> {
    let current = finalizer_names(obj);
    let from_object = current.iter().find_map(|f| match f.as_str() {
        ORPHAN_FINALIZER => Some(Propagation::Orphan),
        FOREGROUND_FINALIZER => Some(Propagation::Foreground),
        _ => None,
    });
    let policy = requested.or(from_object).unwrap_or(Propagation::Background);
    let mut out: Vec<String> = current
        .into_iter()
        .filter(|f| f != ORPHAN_FINALIZER && f != FOREGROUND_FINALIZER)
        .collect();
    match policy {
        Propagation::Orphan => out.push(ORPHAN_FINALIZER.into()),
        Propagation::Foreground => out.push(FOREGROUND_FINALIZER.into()),
        Propagation::Background => {}
    }
    out
}

/// Writes `finalizers` into `obj` (absent when empty, as Kubernetes serializes it).
pub fn set_finalizers(obj: &mut Value, finalizers: &[String]) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if finalizers.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), json!(finalizers));
    }
}

/// Whether `obj`'s finalizers differ from `finalizers`.
pub fn finalizers_differ(obj: &Value, finalizers: &[String]) -> bool {
    finalizer_names(obj) != finalizers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(finalizers: &[&str]) -> Value {
        json!({"metadata": {"name": "x", "finalizers": finalizers}})
    }

    #[test]
    fn explicit_policy_replaces_the_gc_finalizer_and_keeps_others() {
        let obj = with(&["example.com/keep", "orphan"]);
        assert_eq!(
            finalizers_after_delete(&obj, Some(Propagation::Foreground)),
            vec!["example.com/keep", "foregroundDeletion"]
        );
        assert_eq!(
            finalizers_after_delete(&obj, Some(Propagation::Background)),
            vec!["example.com/keep"]
        );
        assert_eq!(
            finalizers_after_delete(&with(&[]), Some(Propagation::Orphan)),
            vec!["orphan"]
        );
    }

    #[test]
    fn without_a_policy_the_existing_gc_finalizer_stands_and_default_is_background() {
        assert_eq!(
            finalizers_after_delete(&with(&["foregroundDeletion"]), None),
            vec!["foregroundDeletion"]
        );
        assert!(finalizers_after_delete(&json!({"metadata": {}}), None).is_empty());
    }

    #[test]
    fn orphan_dependents_maps_to_orphan_and_conflicts_with_a_policy() {
        assert_eq!(
            requested(None, Some(true)).unwrap(),
            Some(Propagation::Orphan)
        );
        assert_eq!(
            requested(None, Some(false)).unwrap(),
            Some(Propagation::Background)
        );
        assert!(matches!(
            requested(Some("Orphan"), Some(true)),
            Err(ApiError::Invalid { .. })
        ));
        let err = requested(Some("Sideways"), None).unwrap_err().to_string();
        assert!(err.contains("Unsupported value: \"Sideways\""), "{err}");
    }
}
