//! Field-level differences between two objects, as field sets: what an update added or
//! modified, and what it removed. Associative lists are compared item by item on their keys,
//! sets value by value, everything else as whole values.

use serde_json::Value;

use super::fieldset::{add_value, field_element, list_elements, FieldSet};
use super::schema::{FieldInfo, ListKind, TypeNode};

/// The fields that differ between `old` and `new`: (added or modified, removed).
pub(crate) fn diff(old: &Value, new: &Value, node: TypeNode) -> (FieldSet, FieldSet) {
    let (mut changed, mut removed) = (FieldSet::default(), FieldSet::default());
    diff_into(
        &mut changed,
        &mut removed,
        Some(old),
        Some(new),
        FieldInfo::object(node),
    );
    removed.subtract(&changed);
    (changed, removed)
}

fn diff_into(
    changed: &mut FieldSet,
    removed: &mut FieldSet,
    old: Option<&Value>,
    new: Option<&Value>,
    info: FieldInfo,
) {
    match (old, new) {
        (Some(o), Some(n)) if o == n => {}
        (None, None) => {}
        (Some(o), None) => add_value(removed, o, info),
        (None, Some(n)) => add_value(changed, n, info),
        (Some(Value::Object(o)), Some(Value::Object(n)))
            if !info.atomic_struct && !o.is_empty() && !n.is_empty() =>
        {
            for key in o.keys().chain(n.keys().filter(|k| !o.contains_key(*k))) {
                let element = field_element(key);
                diff_into(
                    changed.child_mut(&element),
                    removed.child_mut(&element),
                    o.get(key),
                    n.get(key),
                    info.node.field(key),
                );
            }
        }
        (Some(Value::Array(o)), Some(Value::Array(n))) if info.list != ListKind::Atomic => {
            match (list_elements(o, info), list_elements(n, info)) {
                (Some(old_ids), Some(new_ids)) => {
                    diff_lists(changed, removed, (o, &old_ids), (n, &new_ids), info)
                }
                _ => changed.mark(),
            }
        }
        (Some(o), Some(n)) => {
            add_value(removed, o, info);
            add_value(changed, n, info);
        }
    }
}

fn diff_lists(
    changed: &mut FieldSet,
    removed: &mut FieldSet,
    (old, old_ids): (&[Value], &[String]),
    (new, new_ids): (&[Value], &[String]),
    info: FieldInfo,
) {
    // Keyed lookups keep long lists linear.
    let old_index: std::collections::HashMap<&str, usize> = old_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let new_index: std::collections::HashSet<&str> = new_ids.iter().map(String::as_str).collect();
    let item_info = FieldInfo::object(info.node);
    let keyed = matches!(info.list, ListKind::Keyed { .. });
    for (id, item) in new_ids.iter().zip(new) {
        let before = old_index.get(id.as_str()).map(|&i| &old[i]);
        let child = changed.child_mut(id);
        match before {
            Some(before) if keyed => diff_into(
                child,
                removed.child_mut(id),
                Some(before),
                Some(item),
                item_info,
            ),
            Some(_) => {}
            None => {
                child.mark();
                if keyed {
                    add_value(child, item, item_info);
                }
            }
        }
    }
    for (id, item) in old_ids.iter().zip(old) {
        if !new_index.contains(id.as_str()) {
            let child = removed.child_mut(id);
            child.mark();
            if keyed {
                add_value(child, item, item_info);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keyed_items_and_leaves_are_reported_separately() {
        let node = TypeNode::root("Pod").unwrap();
        let old = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]},
            "metadata": {"labels": {"x": "1"}}});
        let new = json!({"spec": {"containers": [{"name": "a", "image": "2"}, {"name": "c", "image": "1"}]},
            "metadata": {"labels": {"x": "1"}}});
        let (changed, removed) = diff(&old, &new, node);
        assert_eq!(
            changed.to_fields_v1(),
            json!({"f:spec": {"f:containers": {
                "k:{\"name\":\"a\"}": {"f:image": {}},
                "k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
        assert_eq!(
            removed.to_fields_v1(),
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"b\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
    }

    #[test]
    fn a_changed_scalar_is_changed_not_removed() {
        let node = TypeNode::root("ConfigMap").unwrap();
        let (changed, removed) = diff(
            &json!({"data": {"a": "1"}}),
            &json!({"data": {"a": "2"}}),
            node,
        );
        assert_eq!(changed.to_fields_v1(), json!({"f:data": {"f:a": {}}}));
        assert!(removed.is_empty());
    }
}
