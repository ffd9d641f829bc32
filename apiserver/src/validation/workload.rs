//! apps/v1 Deployment and ReplicaSet validation (`pkg/apis/apps/validation`).

use serde_json::{Map, Value};

use super::meta::validate_labels;
use super::names::{label_value, percent, qualified_name};
use super::pod::validate_pod_spec;
use super::{array_at, FieldCause, Path};

/// `ValidateDeploymentSpec`, in Kubernetes' order: replicas, selector, template, strategy,
/// minReadySeconds, revisionHistoryLimit, progressDeadlineSeconds.
pub(crate) fn validate_deployment(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let path = Path::root("spec");
    non_negative(spec, "replicas", &path, causes);
    validate_selector_and_template(spec, &path, causes);
    validate_strategy(spec, &path.child("strategy"), causes);
    for field in [
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    ] {
        non_negative(spec, field, &path, causes);
    }
    let min_ready = spec
        .get("minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(deadline) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        if deadline <= min_ready {
            let at = path.child("progressDeadlineSeconds");
            let detail = "must be greater than minReadySeconds";
            causes.push(FieldCause::invalid(&at, deadline, detail));
        }
    }
}

/// `ValidateReplicaSetSpec`: replicas, minReadySeconds, selector, template.
pub(crate) fn validate_replica_set(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let path = Path::root("spec");
    non_negative(spec, "replicas", &path, causes);
    non_negative(spec, "minReadySeconds", &path, causes);
    validate_selector_and_template(spec, &path, causes);
}

/// autoscaling/v1 Scale (`ValidateScale`): replicas are not negative.
pub(crate) fn validate_scale(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    non_negative(spec, "replicas", &Path::root("spec"), causes);
}

/// The selector (required, valid, not empty) and `ValidatePodTemplateSpecForReplicaSet`.
fn validate_selector_and_template(spec: &Value, path: &Path, causes: &mut Vec<FieldCause>) {
    let template = spec.get("template").unwrap_or(&Value::Null);
    let template_labels = template.pointer("/metadata/labels");
    let selector = spec.get("selector").filter(|s| !s.is_null());
    let at = path.child("selector");
    let mut selector_usable = true;
    match selector {
        None => causes.push(FieldCause::required(&at, "")),
        Some(selector) => {
            let before = causes.len();
            validate_label_selector(selector, &at, causes);
            selector_usable = causes.len() == before;
            let empty = array_at(selector, "matchExpressions").is_empty()
                && selector
                    .get("matchLabels")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty);
            if empty {
                let detail = "empty selector is invalid for deployment";
                causes.push(FieldCause::invalid_raw(
                    &at,
                    &go_label_selector(selector),
                    detail,
                ));
                // An empty selector selects everything, so the template always matches.
                selector_usable = false;
            }
        }
    }
    // A missing selector selects nothing (`LabelSelectorAsSelector(nil)`), so Kubernetes also
    // reports the template as not matching.
    let matches = selector.is_some_and(|s| selector_matches(s, template_labels));
    if selector_usable && !matches {
        let labels_path = path.child("template").child("metadata").child("labels");
        let detail = "`selector` does not match template `labels`";
        causes.push(FieldCause::invalid_raw(
            &labels_path,
            &go_string_map(template_labels),
            detail,
        ));
    }
    let template_path = path.child("template");
    validate_labels(
        template_labels,
        &template_path.child("metadata").child("labels"),
        causes,
    );
    let pod_spec = template.get("spec").unwrap_or(&Value::Null);
    validate_pod_spec(pod_spec, &template_path.child("spec"), &["Always"], causes);
    if pod_spec
        .get("activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        let at = template_path.child("spec").child("activeDeadlineSeconds");
        let detail = "activeDeadlineSeconds in ReplicaSet is not Supported";
        causes.push(FieldCause::forbidden(&at, detail));
    }
}

fn non_negative(obj: &Value, field: &str, path: &Path, causes: &mut Vec<FieldCause>) {
    if let Some(n) = obj.get(field).and_then(Value::as_i64).filter(|n| *n < 0) {
        causes.push(FieldCause::invalid(
            &path.child(field),
            n,
            "must be greater than or equal to 0",
        ));
    }
}

/// `ValidateLabelSelector`.
pub(crate) fn validate_label_selector(selector: &Value, path: &Path, causes: &mut Vec<FieldCause>) {
    validate_labels(
        selector.get("matchLabels"),
        &path.child("matchLabels"),
        causes,
    );
    for (i, req) in array_at(selector, "matchExpressions").iter().enumerate() {
        let at = path.child("matchExpressions").index(i);
        let operator = req.get("operator").and_then(Value::as_str).unwrap_or("");
        let values = array_at(req, "values");
        match operator {
            "In" | "NotIn" if values.is_empty() => {
                let detail = "must be specified when `operator` is 'In' or 'NotIn'";
                causes.push(FieldCause::required(&at.child("values"), detail));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                let detail = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'";
                causes.push(FieldCause::forbidden(&at.child("values"), detail));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => {
                let detail = "not a valid selector operator";
                causes.push(FieldCause::invalid(&at.child("operator"), other, detail));
            }
        }
        let key = req.get("key").and_then(Value::as_str).unwrap_or("");
        for msg in qualified_name(key) {
            causes.push(FieldCause::invalid(&at.child("key"), key, &msg));
        }
        for (j, value) in values.iter().enumerate() {
            let value = value.as_str().unwrap_or("");
            for msg in label_value(value) {
                causes.push(FieldCause::invalid(
                    &at.child("values").index(j),
                    value,
                    &msg,
                ));
            }
        }
    }
}

/// Whether a LabelSelector selects an object with `labels`.
pub(crate) fn selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    labels_ok
        && array_at(selector, "matchExpressions").iter().all(|req| {
            let key = req.get("key").and_then(Value::as_str).unwrap_or("");
            let values = array_at(req, "values");
            let has = |v: &str| values.iter().any(|x| x.as_str() == Some(v));
            match (req.get("operator").and_then(Value::as_str), label(key)) {
                (Some("In"), Some(v)) => has(v),
                (Some("NotIn"), Some(v)) => !has(v),
                (Some("NotIn"), None)
                | (Some("DoesNotExist"), None)
                | (Some("Exists"), Some(_)) => true,
                _ => false,
            }
        })
}

/// `spec.strategy` (`ValidateDeploymentStrategy`, `ValidateRollingUpdateDeployment`).
fn validate_strategy(spec: &Value, path: &Path, causes: &mut Vec<FieldCause>) {
    let Some(strategy) = spec.get("strategy").filter(|s| !s.is_null()) else {
        return;
    };
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match strategy.get("type").and_then(Value::as_str) {
        Some("Recreate") => {
            if rolling.is_some() {
                let detail = "may not be specified when strategy `type` is 'Recreate'";
                causes.push(FieldCause::forbidden(&path.child("rollingUpdate"), detail));
            }
        }
        // Absent means RollingUpdate (defaulted); its parameters are defaulted too.
        Some("RollingUpdate") | None => {
            if let Some(rolling) = rolling {
                validate_rolling_update(rolling, &path.child("rollingUpdate"), causes);
            }
        }
        Some(other) => {
            let rendered = format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}}",
                Value::from(other)
            );
            let body = format!(
                "Unsupported value: {rendered}: supported values: \"Recreate\", \"RollingUpdate\""
            );
            causes.push(FieldCause::not_supported_raw(path, body));
        }
    }
}

fn validate_rolling_update(rolling: &Value, at: &Path, causes: &mut Vec<FieldCause>) {
    let unavailable = rolling.get("maxUnavailable");
    let surge = rolling.get("maxSurge");
    for (field, value) in [("maxUnavailable", unavailable), ("maxSurge", surge)] {
        if let Some(value) = value {
            validate_int_or_percent(value, &at.child(field), causes);
        }
    }
    // Absent values are defaulted to 25%, which is never 0.
    let zero = |v: Option<&Value>| v.is_some_and(|v| int_or_percent_value(v) == Some(0));
    if zero(unavailable) && zero(surge) {
        let rendered = go_int_or_string(unavailable.unwrap_or(&Value::Null));
        let detail = "may not be 0 when `maxSurge` is 0";
        causes.push(FieldCause::invalid_raw(
            &at.child("maxUnavailable"),
            &rendered,
            detail,
        ));
    }
    if let Some(Value::String(s)) = unavailable {
        if percent(s).is_empty() && int_or_percent_value(&Value::from(s.as_str())) > Some(100) {
            let rendered = go_int_or_string(&Value::from(s.as_str()));
            let detail = "must not be greater than 100%";
            causes.push(FieldCause::invalid_raw(
                &at.child("maxUnavailable"),
                &rendered,
                detail,
            ));
        }
    }
}

/// `ValidatePositiveIntOrPercent`.
fn validate_int_or_percent(value: &Value, path: &Path, causes: &mut Vec<FieldCause>) {
    match value {
        Value::String(s) => {
            for msg in percent(s) {
                causes.push(FieldCause::invalid_raw(
                    path,
                    &go_int_or_string(value),
                    &msg,
                ));
            }
        }
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(-1);
            if n < 0 {
                causes.push(FieldCause::invalid(
                    path,
                    n,
                    "must be greater than or equal to 0",
                ));
            }
        }
        _ => {
            let detail = "must be an integer or percentage (e.g '5%')";
            causes.push(FieldCause::invalid_raw(
                path,
                &go_int_or_string(value),
                detail,
            ));
        }
    }
}

/// `getIntOrPercentValue`: the number of an int, or of a valid percent string.
fn int_or_percent_value(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if percent(s).is_empty() => s.trim_end_matches('%').parse().ok(),
        _ => None,
    }
}

/// An `intstr.IntOrString` as Go's `%#v` prints it, which is how Kubernetes reports one.
fn go_int_or_string(value: &Value) -> String {
    match value {
        Value::String(s) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            Value::from(s.as_str())
        ),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or(0)
        ),
    }
}

/// A `map[string]string` as Go's `%#v` prints it: `map[string]string{"app":"web"}`.
fn go_string_map(map: Option<&Value>) -> String {
    let Some(Value::Object(map)) = map else {
        return "map[string]string(nil)".to_string();
    };
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let body: Vec<String> = entries
        .iter()
        .map(|(k, v)| {
            format!(
                "{}:{}",
                Value::from(k.as_str()),
                Value::from(v.as_str().unwrap_or(""))
            )
        })
        .collect();
    format!("map[string]string{{{}}}", body.join(", "))
}

/// A LabelSelector as Go's `%#v` prints it (only the empty form is ever reported).
fn go_label_selector(selector: &Value) -> String {
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}",
        go_string_map(selector.get("matchLabels"))
    )
}
