//! Label selectors (`a=b,c!=d,e in (f,g),!h`) and field selectors, parsed once and matched
//! against objects; used by the API server for list/watch and by clients to build queries.
//!
//! The grammar is Kubernetes' (`k8s.io/apimachinery/pkg/labels` and `.../fields`):
//! requirements joined by commas, all of which must hold.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    #[error("invalid label key {0:?}")]
    Key(String),
    #[error("invalid field selector {0:?}: expected key=value, key==value or key!=value")]
    Field(String),
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<LabelRequirement>,
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn check_key(key: &str) -> Result<String, SelectorError> {
    let valid = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_string())
    } else {
        Err(SelectorError::Key(key.to_string()))
    }
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, SelectorError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError::Requirement(whole.to_string()))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn parse_requirement(term: &str) -> Result<LabelRequirement, SelectorError> {
    let t = term.trim();
    if let Some(key) = t.strip_prefix('!') {
        return Ok(LabelRequirement::DoesNotExist(check_key(key.trim())?));
    }
    if let Some((k, v)) = t.split_once("!=") {
        return Ok(LabelRequirement::NotEquals(
            check_key(k.trim())?,
            v.trim().into(),
        ));
    }
    if let Some((k, v)) = t.split_once("==") {
        return Ok(LabelRequirement::Equals(
            check_key(k.trim())?,
            v.trim().into(),
        ));
    }
    if let Some((k, v)) = t.split_once('=') {
        return Ok(LabelRequirement::Equals(
            check_key(k.trim())?,
            v.trim().into(),
        ));
    }
    let mut words = t.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    let rest = words.next().unwrap_or_default().trim_start();
    if rest.is_empty() {
        return Ok(LabelRequirement::Exists(check_key(key)?));
    }
    if let Some(set) = rest.strip_prefix("notin") {
        return Ok(LabelRequirement::NotIn(check_key(key)?, parse_set(set, t)?));
    }
    if let Some(set) = rest.strip_prefix("in") {
        return Ok(LabelRequirement::In(check_key(key)?, parse_set(set, t)?));
    }
    Err(SelectorError::Requirement(t.to_string()))
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        let requirements = split_top_level(s)
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<_, _>>()?;
        Ok(Self { requirements })
    }

    /// A selector requiring every label of `map` (what `matchLabels` means).
    pub fn from_map(map: &BTreeMap<String, String>) -> Self {
        let requirements = map
            .iter()
            .map(|(k, v)| LabelRequirement::Equals(k.clone(), v.clone()))
            .collect();
        Self { requirements }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Matches against a label lookup.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            // Kubernetes: `!=` also matches objects without the label.
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// Matches against the `metadata.labels` of a JSON object.
    pub fn matches_object(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        self.matches_with(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }

    pub fn matches_map(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }
}

impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r {
                LabelRequirement::Equals(k, v) => format!("{k}={v}"),
                LabelRequirement::NotEquals(k, v) => format!("{k}!={v}"),
                LabelRequirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                LabelRequirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                LabelRequirement::Exists(k) => k.clone(),
                LabelRequirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A `metav1.LabelSelector` value (`matchLabels` + `matchExpressions`) as JSON, turned
/// into a selector. Returns None for a malformed one.
pub fn from_label_selector_json(sel: &Value) -> Option<LabelSelector> {
    let mut requirements = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            requirements.push(LabelRequirement::Equals(k.clone(), v.as_str()?.to_string()));
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key")?.as_str()?.to_string();
        let values: Vec<String> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        requirements.push(match e.get("operator")?.as_str()? {
            "In" => LabelRequirement::In(key, values),
            "NotIn" => LabelRequirement::NotIn(key, values),
            "Exists" => LabelRequirement::Exists(key),
            "DoesNotExist" => LabelRequirement::DoesNotExist(key),
            _ => return None,
        });
    }
    Some(LabelSelector { requirements })
}

/// One field requirement: `field=value` or `field!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub negated: bool,
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut requirements = Vec::new();
        for term in s.split(',') {
            let (field, value, negated) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, false)
            } else {
                return Err(SelectorError::Field(term.to_string()));
            };
            requirements.push(FieldRequirement {
                field: field.trim().to_string(),
                value: value.trim().to_string(),
                negated,
            });
        }
        Ok(Self { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Fails with UnsupportedField for a field the kind does not index, as the API server
    /// answers 400 `field label not supported`.
    pub fn check_supported(&self, kind: &str) -> Result<(), SelectorError> {
        for r in &self.requirements {
            if !supported_fields(kind).contains(&r.field.as_str()) {
                return Err(SelectorError::UnsupportedField(r.field.clone()));
            }
        }
        Ok(())
    }

    /// Matches an object of `kind`; fields an object lacks compare as the empty string.
    pub fn matches_object(&self, kind: &str, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field_value(kind, obj, &r.field).unwrap_or_default();
            (actual == r.value) != r.negated
        })
    }
}

/// The fields each kind supports in field selectors (Kubernetes' per-kind field label
/// conversion functions); every kind supports metadata.name and metadata.namespace.
pub fn supported_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Node" => &["metadata.name", "spec.unschedulable"],
        "Namespace" => &["metadata.name", "status.phase"],
        "Secret" => &["metadata.name", "metadata.namespace", "type"],
        "ReplicaSet" => &["metadata.name", "metadata.namespace", "status.replicas"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

/// The string value of a selectable field of an object, or None when it is absent.
pub fn field_value(kind: &str, obj: &Value, field: &str) -> Option<String> {
    let path = match (kind, field) {
        ("Event", "source") => "/source/component".to_string(),
        _ => format!("/{}", field.replace('.', "/")),
    };
    match obj.pointer(&path)? {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_operators_match_as_kubernetes() {
        let o = obj(json!({"app": "web", "tier": "fe"}));
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web, db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier in (fe,be),!missing", true),
            ("", true),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches_object(&o), want, "selector {sel:?}");
        }
    }

    #[test]
    fn malformed_label_selectors_are_errors() {
        for bad in ["app in web", "a b c", "=x", "in (a)x"] {
            assert!(
                LabelSelector::parse(bad).is_err(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn label_selector_json_and_display_round_trip() {
        let sel = json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}]});
        let s = from_label_selector_json(&sel).unwrap();
        assert_eq!(s.to_string(), "app=web,tier in (fe)");
        assert_eq!(LabelSelector::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn field_selectors_match_and_check_support() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let s = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed").unwrap();
        assert!(s.matches_object("Pod", &pod));
        assert!(s.check_supported("Pod").is_ok());
        let unbound = FieldSelector::parse("spec.nodeName=").unwrap();
        assert!(!unbound.matches_object("Pod", &pod));
        assert!(unbound.matches_object("Pod", &json!({"metadata": {"name": "q"}})));
        let bad = FieldSelector::parse("spec.foo=x").unwrap();
        assert_eq!(
            bad.check_supported("Pod"),
            Err(SelectorError::UnsupportedField("spec.foo".into()))
        );
        assert!(FieldSelector::parse("nonsense").is_err());
        let ev =
            json!({"involvedObject": {"name": "p", "kind": "Pod"}, "source": {"component": "k"}});
        let s = FieldSelector::parse("involvedObject.name=p,source=k").unwrap();
        assert!(s.matches_object("Event", &ev));
    }
}
