//! Filter and score: node affinity (kube-scheduler's `NodeAffinity`).
//!
//! Required affinity: `nodeSelectorTerms` are ORed, the expressions and fields inside one term
//! are ANDed, and an empty term (or an empty list of terms) matches no node. Operators:
//! `In`, `NotIn` (also true when the label is absent), `Exists`, `DoesNotExist`, and `Gt`/`Lt`
//! comparing the label and the single value as integers. `matchFields` supports
//! `metadata.name` with `In`/`NotIn`, the only field Kubernetes allows there.
//! Preferred affinity scores a node with the summed weights of the terms it matches.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};

use super::node_selector::MISMATCH;
use super::Reason;
use crate::pod_info::PodInfo;

fn label_requirement(req: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let label = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => label.is_some_and(|l| values.contains(l)),
        "NotIn" => label.is_none_or(|l| !values.contains(l)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        "Gt" | "Lt" => {
            let (Some(label), [value]) = (label, values) else {
                return false;
            };
            let (Ok(label), Ok(value)) = (label.parse::<i64>(), value.parse::<i64>()) else {
                return false;
            };
            if req.operator == "Gt" {
                label > value
            } else {
                label < value
            }
        }
        _ => false,
    }
}

fn field_requirement(req: &NodeSelectorRequirement, node_name: &str) -> bool {
    if req.key != "metadata.name" {
        return false;
    }
    let values = req.values.as_deref().unwrap_or_default();
    let listed = values.iter().any(|v| v == node_name);
    match req.operator.as_str() {
        "In" => listed,
        "NotIn" => !listed,
        _ => false,
    }
}

pub fn term_matches(
    term: &NodeSelectorTerm,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| label_requirement(r, labels))
        && fields.iter().all(|r| field_requirement(r, name))
}

pub fn selector_matches(
    selector: &NodeSelector,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector
        .node_selector_terms
        .iter()
        .any(|t| term_matches(t, name, labels))
}

pub fn fits(pod: &PodInfo, name: &str, labels: &BTreeMap<String, String>) -> Result<(), Reason> {
    match &pod.required_node_affinity {
        Some(selector) if !selector_matches(selector, name, labels) => {
            Err(Reason::Borrowed(MISMATCH))
        }
        _ => Ok(()),
    }
}

/// Raw score: summed weights of the preferred terms the node matches.
pub fn preferred_weight(pod: &PodInfo, name: &str, labels: &BTreeMap<String, String>) -> i64 {
    pod.preferred_node_affinity
        .iter()
        .filter(|t| term_matches(&t.preference, name, labels))
        .map(|t| i64::from(t.weight))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_info::fixture::pod;
    use k8s_openapi::api::core::v1::PreferredSchedulingTerm;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn term(exprs: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(exprs),
            match_fields: None,
        }
    }

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("zone".to_string(), "a".to_string()),
            ("cores".to_string(), "8".to_string()),
        ])
    }

    #[test]
    fn requirement_table() {
        let cases = [
            ("In hit", req("zone", "In", &["a", "b"]), true),
            ("In miss", req("zone", "In", &["b"]), false),
            ("In absent label", req("disk", "In", &["ssd"]), false),
            ("NotIn hit", req("zone", "NotIn", &["a"]), false),
            ("NotIn miss", req("zone", "NotIn", &["b"]), true),
            ("NotIn absent label", req("disk", "NotIn", &["ssd"]), true),
            ("Exists", req("zone", "Exists", &[]), true),
            ("Exists absent", req("disk", "Exists", &[]), false),
            ("DoesNotExist", req("disk", "DoesNotExist", &[]), true),
            (
                "DoesNotExist present",
                req("zone", "DoesNotExist", &[]),
                false,
            ),
            ("Gt true", req("cores", "Gt", &["4"]), true),
            ("Gt equal", req("cores", "Gt", &["8"]), false),
            ("Lt true", req("cores", "Lt", &["16"]), true),
            ("Lt false", req("cores", "Lt", &["2"]), false),
            ("Gt non-integer label", req("zone", "Gt", &["1"]), false),
            ("Gt two values", req("cores", "Gt", &["1", "2"]), false),
            ("unknown operator", req("zone", "Like", &["a"]), false),
        ];
        for (name, r, want) in cases {
            assert_eq!(label_requirement(&r, &labels()), want, "{name}");
        }
    }

    #[test]
    fn terms_or_expressions_and() {
        let selector = |terms: Vec<NodeSelectorTerm>| NodeSelector {
            node_selector_terms: terms,
        };
        let by_name = |op: &str, names: &[&str]| NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.name", op, names)]),
        };
        let cases = [
            ("no terms match nothing", selector(vec![]), false),
            (
                "empty term matches nothing",
                selector(vec![term(vec![])]),
                false,
            ),
            (
                "expressions are ANDed",
                selector(vec![term(vec![
                    req("zone", "In", &["a"]),
                    req("cores", "Gt", &["10"]),
                ])]),
                false,
            ),
            (
                "terms are ORed",
                selector(vec![
                    term(vec![req("zone", "In", &["b"])]),
                    term(vec![req("cores", "Gt", &["4"])]),
                ]),
                true,
            ),
            (
                "matchFields name In",
                selector(vec![by_name("In", &["n1"])]),
                true,
            ),
            (
                "matchFields name NotIn",
                selector(vec![by_name("NotIn", &["n1"])]),
                false,
            ),
            (
                "matchFields other field",
                selector(vec![NodeSelectorTerm {
                    match_expressions: None,
                    match_fields: Some(vec![req("spec.podCIDR", "In", &["x"])]),
                }]),
                false,
            ),
        ];
        for (name, s, want) in cases {
            assert_eq!(selector_matches(&s, "n1", &labels()), want, "{name}");
            let mut p = pod("p");
            p.required_node_affinity = Some(s);
            assert_eq!(fits(&p, "n1", &labels()).is_ok(), want, "{name} (filter)");
        }
    }

    #[test]
    fn preferred_weights_sum() {
        let mut p = pod("p");
        p.preferred_node_affinity = vec![
            PreferredSchedulingTerm {
                weight: 10,
                preference: term(vec![req("zone", "In", &["a"])]),
            },
            PreferredSchedulingTerm {
                weight: 5,
                preference: term(vec![req("cores", "Exists", &[])]),
            },
            PreferredSchedulingTerm {
                weight: 100,
                preference: term(vec![req("zone", "In", &["z"])]),
            },
        ];
        assert_eq!(preferred_weight(&p, "n1", &labels()), 15);
        assert_eq!(preferred_weight(&pod("q"), "n1", &labels()), 0);
    }
}
