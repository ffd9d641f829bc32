//! Sets of field paths in Kubernetes' `FieldsV1` format, as stored in `metadata.managedFields`:
//! `f:<field>` for a struct or map field, `k:{"name":"x"}` for the item of an associative list
//! with that key, `v:<json>` for a member of a set, `i:<n>` for a positional item, and `.` for
//! "this node itself" when a node is both owned and has owned children.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::schema::{FieldInfo, ListKind, TypeNode};

/// A set of field paths (a trie keyed by `FieldsV1` path elements).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

/// One path: a sequence of `FieldsV1` path elements (`f:spec`, `k:{"name":"a"}`, ...).
pub type FieldPath = Vec<String>;

impl FieldSet {
    /// Parses a `fieldsV1` object; unknown shapes are ignored rather than refused.
    pub fn from_fields_v1(value: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Value::Object(map) = value {
            for (k, v) in map {
                if k == "." {
                    set.member = true;
                } else {
                    let mut child = FieldSet::from_fields_v1(v);
                    if child.children.is_empty() {
                        child.member = true;
                    }
                    set.children.insert(k.clone(), child);
                }
            }
        }
        set
    }

    /// Renders the set as a `fieldsV1` object.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (k, child) in &self.children {
            if !child.is_empty() {
                map.insert(k.clone(), child.to_fields_v1());
            }
        }
        Value::Object(map)
    }

    /// The subtree at `element` below this node, created empty if absent.
    pub(crate) fn child_mut(&mut self, element: &str) -> &mut FieldSet {
        self.children.entry(element.to_string()).or_default()
    }

    /// Marks this node itself as a member.
    pub(crate) fn mark(&mut self) {
        self.member = true;
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds `path` as a member.
    pub fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for element in path {
            node = node.children.entry(element.clone()).or_default();
        }
        node.member = true;
    }

    fn node(&self, path: &[String]) -> Option<&FieldSet> {
        let mut node = self;
        for element in path {
            node = node.children.get(element)?;
        }
        Some(node)
    }

    /// Whether `path` itself is a member.
    pub fn contains(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// Whether `path` or anything below it is a member.
    pub fn contains_under(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }

    /// The member that is `path` or an ancestor of it, if any (an owned atomic value covers
    /// everything inside it).
    pub fn covering(&self, path: &[String]) -> Option<FieldPath> {
        let mut node = self;
        for (depth, element) in path.iter().enumerate() {
            node = node.children.get(element)?;
            if node.member {
                return Some(path[..=depth].to_vec());
            }
        }
        None
    }

    /// Removes `path` as a member (its descendants stay).
    pub fn remove(&mut self, path: &[String]) {
        fn go(node: &mut FieldSet, path: &[String]) {
            match path.split_first() {
                None => node.member = false,
                Some((first, rest)) => {
                    if let Some(child) = node.children.get_mut(first) {
                        go(child, rest);
                        if child.is_empty() {
                            node.children.remove(first);
                        }
                    }
                }
            }
        }
        go(self, path)
    }

    /// Every member path, depth first.
    pub fn members(&self) -> Vec<FieldPath> {
        fn go(node: &FieldSet, prefix: &mut FieldPath, out: &mut Vec<FieldPath>) {
            if node.member {
                out.push(prefix.clone());
            }
            for (k, child) in &node.children {
                prefix.push(k.clone());
                go(child, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        go(self, &mut Vec::new(), &mut out);
        out
    }

    /// Adds every member of `other`.
    pub fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, child) in &other.children {
            self.children
                .entry(k.clone())
                .or_default()
                .union_with(child);
        }
    }

    /// Removes every member of `other`.
    pub fn subtract(&mut self, other: &FieldSet) {
        for path in other.members() {
            self.remove(&path);
        }
    }

    /// The member paths of a value of schema type `node`: leaves, atomic values, empty
    /// objects, associative list items (with their fields) and set members.
    pub fn of_value(value: &Value, node: TypeNode) -> FieldSet {
        let mut set = FieldSet::default();
        add_value(&mut set, value, FieldInfo::object(node));
        set.member = false;
        set
    }
}

/// Adds the members of `value`, found at `set`'s position, to `set`.
pub(crate) fn add_value(set: &mut FieldSet, value: &Value, info: FieldInfo) {
    match value {
        Value::Object(map) if !map.is_empty() && !info.atomic_struct => {
            for (k, v) in map {
                let child = set.children.entry(field_element(k)).or_default();
                add_value(child, v, info.node.field(k));
            }
        }
        Value::Array(items) if !items.is_empty() => match list_elements(items, info) {
            Some(elements) => {
                for (element, item) in elements.into_iter().zip(items) {
                    let child = set.children.entry(element).or_default();
                    child.member = true;
                    if matches!(info.list, ListKind::Keyed { .. }) {
                        add_value(child, item, FieldInfo::object(info.node));
                    }
                }
            }
            None => set.member = true,
        },
        _ => set.member = true,
    }
}

pub(crate) fn field_element(name: &str) -> String {
    format!("f:{name}")
}

/// The path elements of a list's items, or `None` when the list is atomic (or its items cannot
/// be identified, in which case the whole list is treated as one value).
pub(crate) fn list_elements(items: &[Value], info: FieldInfo) -> Option<Vec<String>> {
    let elements: Option<Vec<String>> = match info.list {
        ListKind::Atomic => None,
        ListKind::Set => items
            .iter()
            .map(|v| (!v.is_object() && !v.is_array()).then(|| format!("v:{v}")))
            .collect(),
        ListKind::Keyed { keys, .. } => items
            .iter()
            .map(|item| item_key(item, keys).map(|k| format!("k:{k}")))
            .collect(),
    };
    // Duplicate keys make items unaddressable; fall back to atomic rather than lose one.
    let elements = elements?;
    let mut sorted = elements.clone();
    sorted.sort();
    sorted.dedup();
    (sorted.len() == elements.len()).then_some(elements)
}

/// The key of an associative list item as compact JSON with fields sorted by name, as
/// structured-merge-diff writes it (`{"containerPort":80,"protocol":"TCP"}`); key fields the
/// server defaults are filled in.
pub(crate) fn item_key(item: &Value, keys: &[super::schema::KeyField]) -> Option<String> {
    let map = item.as_object()?;
    let mut fields: Vec<(&str, Value)> = Vec::with_capacity(keys.len());
    for key in keys {
        let value = match (map.get(key.name), key.default) {
            (Some(v), _) if !v.is_null() => v.clone(),
            (_, Some(default)) => Value::from(default),
            _ => return None,
        };
        fields.push((key.name, value));
    }
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
        .collect();
    Some(format!("{{{}}}", body.join(",")))
}

/// A path as Kubernetes prints it in conflict messages: `.spec.containers[name="nginx"].image`.
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(field) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(key) = element.strip_prefix("k:") {
            let parts: Vec<String> = match serde_json::from_str::<Map<String, Value>>(key) {
                Ok(map) => map.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                Err(_) => vec![key.to_string()],
            };
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(index) = element.strip_prefix("i:") {
            out.push_str(&format!("[{index}]"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment_node() -> TypeNode {
        TypeNode::root("Deployment").unwrap()
    }

    #[test]
    fn fieldsv1_round_trips_with_dot_for_owned_items() {
        let v = json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}});
        let set = FieldSet::from_fields_v1(&v);
        assert_eq!(set.to_fields_v1(), v);
        assert!(set.contains(&["f:spec".into(), "f:replicas".into()]));
        assert!(!set.contains(&["f:spec".into()]));
    }

    #[test]
    fn value_fieldset_keys_items_and_fills_defaulted_key_fields() {
        let obj = json!({"spec": {"replicas": 2, "selector": {"matchLabels": {"app": "a"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx",
                "ports": [{"containerPort": 80}]}]}}}});
        let set = FieldSet::of_value(&obj, deployment_node());
        let expected = json!({"f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {},
                "f:name": {}, "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                    ".": {}, "f:containerPort": {}}}}}}}}});
        assert_eq!(set.to_fields_v1(), expected);
    }

    #[test]
    fn finalizers_are_set_members() {
        let obj = json!({"metadata": {"finalizers": ["a", "b"]}});
        let set = FieldSet::of_value(&obj, TypeNode::root("ConfigMap").unwrap());
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}, "v:\"b\"": {}}}})
        );
    }

    #[test]
    fn display_path_matches_kubernetes() {
        let path: Vec<String> = [
            "f:spec",
            "f:containers",
            "k:{\"name\":\"nginx\"}",
            "f:image",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            display_path(&path),
            ".spec.containers[name=\"nginx\"].image"
        );
    }

    #[test]
    fn remove_and_subtract_prune_empty_branches() {
        let mut a = FieldSet::default();
        a.insert(&["f:a".into(), "f:b".into()]);
        a.insert(&["f:c".into()]);
        let mut b = FieldSet::default();
        b.insert(&["f:a".into(), "f:b".into()]);
        a.subtract(&b);
        assert_eq!(a.to_fields_v1(), json!({"f:c": {}}));
        assert!(a.covering(&["f:c".into(), "f:d".into()]).is_some());
    }
}
