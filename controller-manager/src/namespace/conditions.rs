//! The status conditions the namespace controller reports while emptying a namespace,
//! with kube-controller-manager's types, reasons and message formats
//! (pkg/controller/namespace/deletion/status_condition_utils.go).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::NamespaceCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What one pass over a namespace's content found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Objects still present, by `<plural>.<group>`.
    pub remaining: BTreeMap<String, usize>,
    /// Objects still present that carry finalizers, by finalizer name.
    pub finalizers: BTreeMap<String, usize>,
    /// Deletions or lists that failed, as messages.
    pub failures: Vec<String>,
}

impl Tally {
    pub fn is_empty(&self) -> bool {
        self.remaining.is_empty() && self.failures.is_empty()
    }
}

fn condition(type_: &str, failed: bool, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: if failed { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
    }
}

/// The five deletion conditions for `tally`. Discovery and group-version parsing cannot
/// fail here (the resource table is compiled in), so those two always report success.
pub fn conditions_for(tally: &Tally) -> Vec<NamespaceCondition> {
    let content = if tally.failures.is_empty() {
        condition(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        )
    } else {
        condition(
            "NamespaceDeletionContentFailure",
            true,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                tally.failures.len(),
                tally.failures.join(", ")
            ),
        )
    };
    let remaining = if tally.remaining.is_empty() {
        condition(
            "NamespaceContentRemaining",
            false,
            "ContentRemoved",
            "All content successfully removed".into(),
        )
    } else {
        let parts: Vec<String> = tally
            .remaining
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        condition(
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", parts.join(", ")),
        )
    };
    let finalizers = if tally.finalizers.is_empty() {
        condition(
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        )
    } else {
        let parts: Vec<String> = tally
            .finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        condition(
            "NamespaceFinalizersRemaining",
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                parts.join(", ")
            ),
        )
    };
    vec![
        condition(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
        condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        content,
        remaining,
        finalizers,
    ]
}

/// Whether two condition lists say the same (ignoring transition times), so an unchanged
/// pass writes nothing.
pub fn same(a: &[NamespaceCondition], b: &[NamespaceCondition]) -> bool {
    let key = |c: &NamespaceCondition| (c.type_.clone(), c.status.clone(), c.message.clone());
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| key(x) == key(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_content_and_finalizers_are_reported_as_kubernetes_words_them() {
        let tally = Tally {
            remaining: BTreeMap::from([("pods.".into(), 2), ("replicasets.apps".into(), 1)]),
            finalizers: BTreeMap::from([("foregroundDeletion".into(), 1)]),
            failures: vec![],
        };
        let c = conditions_for(&tally);
        let by = |t: &str| c.iter().find(|x| x.type_ == t).unwrap().clone();
        let rem = by("NamespaceContentRemaining");
        assert_eq!(rem.status, "True");
        assert_eq!(
            rem.message.as_deref(),
            Some("Some resources are remaining: pods. has 2 resource instances, replicasets.apps has 1 resource instances")
        );
        let fin = by("NamespaceFinalizersRemaining");
        assert_eq!(fin.reason.as_deref(), Some("SomeFinalizersRemain"));
        assert_eq!(by("NamespaceDeletionContentFailure").status, "False");
        let done = conditions_for(&Tally::default());
        assert!(done.iter().all(|x| x.status == "False"), "{done:?}");
        assert!(!same(&c, &done));
        assert!(same(&done, &conditions_for(&Tally::default())));
    }
}
