//! Filter: required pod anti-affinity on `kubernetes.io/hostname` (part of kube-scheduler's
//! `InterPodAffinity`), both ways: the pod may not join a node running a pod its own terms
//! exclude, nor a node running a pod whose terms exclude it.
//!
//! Only the hostname topology is evaluated here (one node = one topology domain); terms with
//! other topology keys are not enforced by this filter.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::Reason;
use crate::node_info::NodeInfo;
use crate::pod_info::{AntiAffinityTerm, PodInfo};

pub const HOSTNAME: &str = "kubernetes.io/hostname";
pub const POD_RULES: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_RULES: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

fn requirement_matches(req: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let label = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => label.is_some_and(|l| values.contains(l)),
        "NotIn" => label.is_none_or(|l| !values.contains(l)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        _ => false,
    }
}

/// metav1 label selector semantics: `matchLabels` and `matchExpressions` ANDed; an empty
/// selector matches everything.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|r| requirement_matches(r, labels))
}

fn term_excludes(term: &AntiAffinityTerm, other: &PodInfo) -> bool {
    term.topology_key == HOSTNAME
        && term.namespaces.contains(&other.key.namespace)
        && term
            .selector
            .as_ref()
            .is_some_and(|s| selector_matches(s, &other.labels))
}

pub fn fits(pod: &PodInfo, node: &NodeInfo) -> Result<(), Reason> {
    if pod.anti_affinity.is_empty() && node.anti_affinity_pods == 0 {
        return Ok(());
    }
    // A node without the topology label is outside every hostname domain.
    let labelled = node
        .facts
        .as_ref()
        .is_some_and(|f| f.labels.contains_key(HOSTNAME));
    if !labelled {
        return Ok(());
    }
    let others = || node.pods.iter().filter(|o| o.key != pod.key);
    if pod
        .anti_affinity
        .iter()
        .any(|t| others().any(|o| term_excludes(t, o)))
    {
        return Err(Reason::Borrowed(POD_RULES));
    }
    if others().any(|o| o.anti_affinity.iter().any(|t| term_excludes(t, pod))) {
        return Err(Reason::Borrowed(EXISTING_RULES));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::fixture::node;
    use crate::pod_info::fixture::pod;

    fn avoid(app: &str, topology: &str) -> AntiAffinityTerm {
        AntiAffinityTerm {
            selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
                match_expressions: None,
            }),
            namespaces: vec!["default".into()],
            topology_key: topology.into(),
        }
    }

    fn with_terms(mut p: PodInfo, terms: Vec<AntiAffinityTerm>) -> PodInfo {
        p.anti_affinity = terms;
        p
    }

    #[test]
    fn table() {
        let host = |n: &str| node(n).label(HOSTNAME, n);
        let web = || pod("web-1").label("app", "web");
        let cases: Vec<(&str, PodInfo, NodeInfo, Result<(), &str>)> = vec![
            (
                "no terms",
                web(),
                host("n").with_pod(pod("web-0").label("app", "web")),
                Ok(()),
            ),
            (
                "own term excludes a pod there",
                with_terms(web(), vec![avoid("web", HOSTNAME)]),
                host("n").with_pod(pod("web-0").label("app", "web")),
                Err(POD_RULES),
            ),
            (
                "own term, no matching pod",
                with_terms(web(), vec![avoid("web", HOSTNAME)]),
                host("n").with_pod(pod("db-0").label("app", "db")),
                Ok(()),
            ),
            (
                "existing pod's term excludes the pod",
                web(),
                host("n").with_pod(with_terms(pod("db-0"), vec![avoid("web", HOSTNAME)])),
                Err(EXISTING_RULES),
            ),
            (
                "other namespace is not excluded",
                with_terms(web(), vec![avoid("web", HOSTNAME)]),
                host("n").with_pod({
                    let mut p = pod("web-0").label("app", "web");
                    p.key.namespace = "other".into();
                    p
                }),
                Ok(()),
            ),
            (
                "node without hostname label",
                with_terms(web(), vec![avoid("web", HOSTNAME)]),
                node("n").with_pod(pod("web-0").label("app", "web")),
                Ok(()),
            ),
            (
                "zone topology is not enforced here",
                with_terms(web(), vec![avoid("web", "topology.kubernetes.io/zone")]),
                host("n").with_pod(pod("web-0").label("app", "web")),
                Ok(()),
            ),
        ];
        for (name, p, n, want) in cases {
            assert_eq!(
                fits(&p, &n).map_err(|r| r.into_owned()),
                want.map_err(String::from),
                "{name}"
            );
        }
    }

    #[test]
    fn existing_terms_are_counted_as_pods_come_and_go() {
        let guard = with_terms(pod("db-0"), vec![avoid("web", HOSTNAME)]);
        let guard_key = guard.key.clone();
        let mut n = node("n").label(HOSTNAME, "n").with_pod(guard);
        let web = pod("web-1").label("app", "web");
        assert_eq!(fits(&web, &n), Err(Reason::Borrowed(EXISTING_RULES)));
        n.remove_pod(&guard_key).expect("the guard was there");
        assert_eq!(n.anti_affinity_pods, 0);
        assert_eq!(fits(&web, &n), Ok(()));
    }

    #[test]
    fn selector_table() {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let expr = |op: &str, values: &[&str]| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: op.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
        };
        let cases = [
            ("empty selector matches all", LabelSelector::default(), true),
            ("In", expr("In", &["web", "api"]), true),
            ("NotIn", expr("NotIn", &["web"]), false),
            ("Exists", expr("Exists", &[]), true),
            ("DoesNotExist", expr("DoesNotExist", &[]), false),
        ];
        for (name, s, want) in cases {
            assert_eq!(selector_matches(&s, &labels), want, "{name}");
        }
    }
}
