//! `describe deployment` and `describe replicaset`.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::format::Out;
use super::{controlled_by, events, header, pod, Related};

/// The annotation the deployment controller stamps revisions with.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// `app=web,tier in (a,b)` from a LabelSelector, as kubectl prints selectors.
pub fn selector_text(sel: Option<&LabelSelector>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let vals = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({vals})", e.key),
            "NotIn" => format!("{} notin ({vals})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            op => format!("{} {op} ({vals})", e.key),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn rs_line(rs: &ReplicaSet) -> String {
    let st = rs.status.clone().unwrap_or_default();
    let spec = &rs.spec;
    format!(
        "{} ({}/{} replicas created)",
        rs.metadata.name.as_deref().unwrap_or(""),
        st.replicas,
        spec.replicas.unwrap_or(1)
    )
}

pub fn describe_deployment(d: &Deployment, rel: &Related) -> String {
    let mut out = Out::default();
    header(&mut out, &d.metadata, true);
    let spec = d.spec.clone();
    let st = d.status.clone().unwrap_or_default();
    out.line(
        0,
        format!("Selector:\t{}", selector_text(Some(&spec.selector))),
    );
    let desired = spec.replicas.unwrap_or(1);
    out.line(
        0,
        format!(
            "Replicas:\t{desired} desired | {} updated | {} total | {} available | {} unavailable",
            st.updated_replicas.unwrap_or(0),
            st.replicas.unwrap_or(0),
            st.available_replicas.unwrap_or(0),
            st.unavailable_replicas.unwrap_or(0)
        ),
    );
    let strategy = spec.strategy.clone().unwrap_or_default();
    let stype = strategy
        .type_
        .clone()
        .unwrap_or_else(|| "RollingUpdate".into());
    out.line(0, format!("StrategyType:\t{stype}"));
    out.line(
        0,
        format!("MinReadySeconds:\t{}", spec.min_ready_seconds.unwrap_or(0)),
    );
    if stype == "RollingUpdate" {
        let ru = strategy.rolling_update.unwrap_or_default();
        let show = |v: Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>| match v {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i)) => {
                i.to_string()
            }
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => s,
            None => "25%".into(),
        };
        out.line(
            0,
            format!(
                "RollingUpdateStrategy:\t{} max unavailable, {} max surge",
                show(ru.max_unavailable),
                show(ru.max_surge)
            ),
        );
    }
    pod::template(&mut out, &spec.template);
    let conditions = st.conditions.clone().unwrap_or_default();
    conditions_section(
        &mut out,
        conditions
            .into_iter()
            .map(|c| (c.type_, c.status, c.reason)),
    );
    let mut owned: Vec<&ReplicaSet> = rel.replica_sets.iter().collect();
    owned.sort_by_key(|rs| std::cmp::Reverse(revision(rs)));
    let (new, old) = match owned.split_first() {
        Some((n, rest)) => (Some(*n), rest.to_vec()),
        None => (None, Vec::new()),
    };
    let old: Vec<String> = old
        .into_iter()
        .filter(|rs| rs.spec.replicas.unwrap_or(0) > 0)
        .map(rs_line)
        .collect();
    // kubectl shows the replica set lines once the controller has made one.
    if let Some(new) = new {
        let old = if old.is_empty() {
            "<none>".to_string()
        } else {
            old.join(", ")
        };
        out.line(0, format!("OldReplicaSets:\t{old}"));
        out.line(0, format!("NewReplicaSet:\t{}", rs_line(new)));
    }
    events::section(&mut out, &rel.events);
    out.finish()
}

pub fn describe_replicaset(rs: &ReplicaSet, rel: &Related) -> String {
    let mut out = Out::default();
    let spec = rs.spec.clone();
    let st = rs.status.clone().unwrap_or_default();
    out.line(
        0,
        format!("Name:\t{}", rs.metadata.name.as_deref().unwrap_or("")),
    );
    out.line(
        0,
        format!(
            "Namespace:\t{}",
            rs.metadata.namespace.as_deref().unwrap_or("")
        ),
    );
    out.line(
        0,
        format!("Selector:\t{}", selector_text(Some(&spec.selector))),
    );
    out.map(0, "Labels", rs.metadata.labels.as_ref());
    out.annotations(0, rs.metadata.annotations.as_ref());
    controlled_by(&mut out, &rs.metadata);
    out.line(
        0,
        format!(
            "Replicas:\t{} current / {} desired",
            st.replicas,
            spec.replicas.unwrap_or(1)
        ),
    );
    let count = |phase: &str| {
        rel.pods
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .unwrap_or("Pending")
                    == phase
            })
            .count()
    };
    out.line(
        0,
        format!(
            "Pods Status:\t{} Running / {} Waiting / {} Succeeded / {} Failed",
            count("Running"),
            count("Pending"),
            count("Succeeded"),
            count("Failed")
        ),
    );
    if let Some(t) = &spec.template {
        pod::template(&mut out, t);
    }
    let conditions = st.conditions.clone().unwrap_or_default();
    conditions_section(
        &mut out,
        conditions
            .into_iter()
            .map(|c| (c.type_, c.status, c.reason)),
    );
    events::section(&mut out, &rel.events);
    out.finish()
}

/// The `Conditions:` table kubectl prints for workloads (type, status, reason), if any.
fn conditions_section(
    out: &mut Out,
    rows: impl Iterator<Item = (Option<String>, Option<String>, Option<String>)>,
) {
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        return;
    }
    out.line(0, "Conditions:");
    out.line(1, "Type\tStatus\tReason");
    out.line(1, "----\t------\t------");
    let cell = |v: Option<String>| v.unwrap_or_default();
    for (type_, status, reason) in rows {
        out.line(
            1,
            format!("{}\t{}\t{}", cell(type_), cell(status), cell(reason)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_replicas_line_and_new_rs() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "busybox"}]}}},
            "status": {"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2, "unavailableReplicas": 1}
        }))
        .unwrap();
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "annotations": {REVISION: "2"}},
            "spec": {"replicas": 3, "selector": {}}, "status": {"replicas": 3}
        }))
        .unwrap();
        let rel = Related {
            replica_sets: vec![rs],
            ..Default::default()
        };
        let text = describe_deployment(&d, &rel);
        assert!(text.contains("Selector:               app=web\n"), "{text}");
        assert!(
            text.contains("3 desired | 3 updated | 3 total | 2 available | 1 unavailable"),
            "{text}"
        );
        assert!(
            text.contains("RollingUpdateStrategy:  25% max unavailable, 25% max surge"),
            "{text}"
        );
        assert!(
            text.contains("NewReplicaSet:     web-abc (3/3 replicas created)"),
            "{text}"
        );
        assert!(
            text.contains(
                "Pod Template:\n  Labels:  app=web\n  Containers:\n   web:\n    Image:  "
            ),
            "{text}"
        );
    }
}
