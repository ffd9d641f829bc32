//! Cell formatting shared by the printers, following kube-apiserver's
//! `pkg/printers/internalversion/printers.go` and apimachinery's `duration.HumanDuration`,
//! `labels.FormatLabels` and `metav1.FormatLabelSelector`.

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use minik8s_api::duration::human_duration;

/// Parses an RFC 3339 timestamp (`metav1.Time` or `MicroTime`).
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str().filter(|s| !s.is_empty())?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `translateTimestampSince`: the age of a timestamp at `now`, "<unknown>" when unset.
pub fn since(now: DateTime<Utc>, v: &Value) -> String {
    match parse_time(v) {
        Some(t) => human_duration((now - t).num_seconds()),
        None => "<unknown>".into(),
    }
}

/// A string field, or "" when absent (Go's zero value).
pub fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// An integer field, or 0 when absent.
pub fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The number of entries of a map or list field (0 when absent).
pub fn count(v: &Value) -> i64 {
    match v {
        Value::Object(m) => m.len() as i64,
        Value::Array(a) => a.len() as i64,
        _ => 0,
    }
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, or "<none>".
pub fn format_labels(v: &Value) -> String {
    let s = labels_string(v);
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

fn labels_string(v: &Value) -> String {
    let mut pairs: Vec<(String, String)> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by key, `k=v`, `k!=v`,
/// `k in (a,b)`, `k notin (a,b)`, `k`, `!k`; `None` for an operator it does not know.
pub fn selector_string(sel: &Value) -> Option<String> {
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in sel["matchLabels"].as_object().into_iter().flatten() {
        reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
    }
    for expr in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = text(&expr["key"]);
        let mut values: Vec<String> = expr["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        values.sort();
        let joined = values.join(",");
        let s = match expr["operator"].as_str()? {
            "In" => format!("{key} in ({joined})"),
            "NotIn" => format!("{key} notin ({joined})"),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        };
        reqs.push((key, s));
    }
    // kube sorts requirements by key only; the sort is stable for equal keys.
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        reqs.into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `metav1.FormatLabelSelector`: the selector string, "<none>" when empty, "<error>" when bad.
pub fn format_label_selector(sel: &Value) -> String {
    match selector_string(sel) {
        None => "<error>".into(),
        Some(s) if s.is_empty() => "<none>".into(),
        Some(s) => s,
    }
}

/// `layoutContainerCells`: container names and images, comma-separated.
pub fn container_cells(containers: &Value) -> (String, String) {
    let list = containers.as_array().map(Vec::as_slice).unwrap_or_default();
    let names = list
        .iter()
        .map(|c| text(&c["name"]))
        .collect::<Vec<_>>()
        .join(",");
    let images = list
        .iter()
        .map(|c| text(&c["image"]))
        .collect::<Vec<_>>()
        .join(",");
    (names, images)
}

/// `listWithMoreString`: at most `max` entries, then " + N more...", "<unset>" when empty.
pub fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let ret = list.join(",");
    if count > max {
        return format!("{ret} + {} more...", count - max);
    }
    if ret.is_empty() {
        "<unset>".into()
    } else {
        ret
    }
}
