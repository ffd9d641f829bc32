//! Tests of server-side apply and update ownership tracking.

use super::*;
use crate::patch::fieldset::FieldPath;
use crate::patch::schema::{FieldInfo, TypeNode};
use serde_json::json;

fn config(replicas: i64, labels: Value, containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}
    })
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
                    (s("manager"), s("operation"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fields_of<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == manager)
        .map(|e| &e["fieldsV1"])
        .unwrap()
}

#[test]
fn apply_creates_with_kubernetes_managed_fields() {
    let applied = config(
        2,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let out = server_side_apply(None, &applied, "kubectl", false).unwrap();
    assert_eq!(out["spec"], applied["spec"]);
    let entry = &out["metadata"]["managedFields"][0];
    assert_eq!(entry["manager"], "kubectl");
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert!(entry["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        entry["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}
        })
    );
}

#[test]
fn reapply_removes_fields_dropped_from_the_configuration() {
    let first = config(
        2,
        json!({"app": "web", "old": "x"}),
        json!([{"name": "nginx", "image": "nginx"}, {"name": "side", "image": "busybox"}]),
    );
    let live = server_side_apply(None, &first, "kubectl", false).unwrap();
    let second = config(
        2,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx:2"}]),
    );
    let out = server_side_apply(Some(&live), &second, "kubectl", false).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers, &json!([{"name": "nginx", "image": "nginx:2"}]));
    assert_eq!(
        managers(&out),
        [("kubectl".to_string(), "Apply".to_string())]
    );
}

#[test]
fn fields_owned_by_another_manager_survive_removal_from_the_configuration() {
    let first = config(
        2,
        json!({"app": "web", "shared": "x"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let live = server_side_apply(None, &first, "kubectl", false).unwrap();
    // Another manager applies the same label value: both own it.
    let other = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"shared": "x"}}});
    let live = server_side_apply(Some(&live), &other, "other", false).unwrap();
    let second = config(
        2,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let out = server_side_apply(Some(&live), &second, "kubectl", false).unwrap();
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "shared": "x"})
    );
}

#[test]
fn apply_conflicts_with_an_updater_unless_forced() {
    let applied = config(
        2,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let live = server_side_apply(None, &applied, "kubectl", false).unwrap();
    // `kubectl scale` is an update by another manager.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    let scaled = record_update(Some(&live), &scaled, "kubectl-client-side-apply", "Update");
    assert_eq!(
        fields_of(&scaled, "kubectl-client-side-apply"),
        &json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        fields_of(&scaled, "kubectl")["f:spec"].get("f:replicas"),
        None
    );

    // Pin the updater's time so the message (which names it) is predictable.
    let mut scaled = scaled;
    let entries = scaled["metadata"]["managedFields"].as_array_mut().unwrap();
    for e in entries
        .iter_mut()
        .filter(|e| e["manager"] == "kubectl-client-side-apply")
    {
        e["time"] = json!("2026-11-22T21:00:00Z");
    }
    let again = config(
        3,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let err = server_side_apply(Some(&scaled), &again, "kubectl", false).unwrap_err();
    let ApplyError::Conflict(conflicts) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        conflicts[0].to_string(),
        r#"conflict with "kubectl-client-side-apply" using apps/v1 at 2026-11-22T21:00:00Z: .spec.replicas"#
    );
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1 at 2026-11-22T21:00:00Z: .spec.replicas"#
    );
    assert_eq!((err.status_code(), err.reason()), (409, "Conflict"));

    let forced = server_side_apply(Some(&scaled), &again, "kubectl", true).unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    assert_eq!(
        managers(&forced),
        [("kubectl".to_string(), "Apply".to_string())]
    );
}

#[test]
fn applying_the_same_value_shares_ownership_without_conflict() {
    let applied = config(
        2,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let live = server_side_apply(None, &applied, "a", false).unwrap();
    let out = server_side_apply(Some(&live), &applied, "b", false).unwrap();
    assert_eq!(managers(&out).len(), 2);
    assert_eq!(fields_of(&out, "a"), fields_of(&out, "b"));
}

#[test]
fn two_appliers_merge_containers_by_name() {
    let a = config(
        1,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let live = server_side_apply(None, &a, "a", false).unwrap();
    let b = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "logger", "image": "fluentd",
            "ports": [{"containerPort": 24224}]}]}}}});
    let out = server_side_apply(Some(&live), &b, "b", false).unwrap();
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nginx", "logger"]);
    let b_fields = fields_of(&out, "b");
    assert!(
        b_fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"logger\"}"]
            ["f:ports"]["k:{\"containerPort\":24224,\"protocol\":\"TCP\"}"]
            .is_object()
    );
    // "a" re-applies without knowing about "logger": logger stays (b owns it).
    let out = server_side_apply(Some(&out), &a, "a", false).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn apply_keeps_fields_nobody_applied() {
    let mut live = config(
        1,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx",
        "imagePullPolicy": "Always"}]),
    );
    live["metadata"]["uid"] = json!("u-1");
    live["metadata"]["resourceVersion"] = json!("7");
    live["status"] = json!({"replicas": 1});
    let applied = config(
        4,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let out = server_side_apply(Some(&live), &applied, "kubectl", false).unwrap();
    assert_eq!(out["spec"]["replicas"], 4);
    assert_eq!(out["metadata"]["uid"], "u-1");
    assert_eq!(out["metadata"]["resourceVersion"], "7");
    assert_eq!(out["status"], json!({"replicas": 1}));
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
}

#[test]
fn apply_refuses_bad_configurations() {
    let no_kind = json!({"apiVersion": "v1", "metadata": {"name": "x"}});
    let err = server_side_apply(None, &no_kind, "m", false).unwrap_err();
    assert_eq!(err.status_code(), 400);
    let with_managed = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "managedFields": [{"manager": "x"}]}});
    assert_eq!(
        server_side_apply(None, &with_managed, "m", false).unwrap_err(),
        ApplyError::ManagedFieldsSet
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    assert_eq!(
        server_side_apply(None, &cm, "", false).unwrap_err(),
        ApplyError::MissingFieldManager
    );
}

#[test]
fn record_update_tracks_changed_fields_and_never_changes_data() {
    let old = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": {"a": "1", "b": "2"}});
    let created = record_update(None, &old, "kubectl-create", "Update");
    assert_eq!(created["data"], old["data"]);
    assert_eq!(
        fields_of(&created, "kubectl-create"),
        &json!({"f:data": {"f:a": {}, "f:b": {}}})
    );
    let mut edited = created.clone();
    edited["data"]["b"] = json!("3");
    edited["data"]["c"] = json!("4");
    let out = record_update(Some(&created), &edited, "kubectl-edit", "Update");
    assert_eq!(out["data"], json!({"a": "1", "b": "3", "c": "4"}));
    assert_eq!(
        fields_of(&out, "kubectl-create"),
        &json!({"f:data": {"f:a": {}}})
    );
    assert_eq!(
        fields_of(&out, "kubectl-edit"),
        &json!({"f:data": {"f:b": {}, "f:c": {}}})
    );

    // An update that changes nothing adds no entry; one that clears managedFields clears them.
    let same = record_update(Some(&out), &out, "third", "Update");
    assert_eq!(managers(&same).len(), 2);
    let mut cleared = out.clone();
    cleared["metadata"]["managedFields"] = json!([]);
    let cleared = record_update(Some(&out), &cleared, "x", "Update");
    assert!(cleared["metadata"].get("managedFields").is_none());
    assert_eq!(cleared["data"], out["data"]);
}

#[test]
fn reapplying_the_same_configuration_changes_nothing() {
    let applied = config(
        2,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let mut live = server_side_apply(None, &applied, "kubectl", false).unwrap();
    live["metadata"]["managedFields"][0]["time"] = json!("2020-01-01T00:00:00Z");
    let again = server_side_apply(Some(&live), &applied, "kubectl", false).unwrap();
    assert_eq!(again, live);
}

#[test]
fn managed_fields_are_sorted_like_kubernetes() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let created = record_update(None, &cm, "kubectl-create", "Update");
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "2"}});
    let out = server_side_apply(Some(&created), &applied, "kubectl", false).unwrap();
    assert_eq!(
        managers(&out),
        [
            ("kubectl".to_string(), "Apply".to_string()),
            ("kubectl-create".to_string(), "Update".to_string())
        ]
    );
    assert_eq!(out["data"], json!({"a": "1", "b": "2"}));
}

#[test]
fn owning_a_list_item_does_not_claim_its_fields() {
    let a = config(
        1,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let live = server_side_apply(None, &a, "a", false).unwrap();
    // "b" only says the container exists (owns the item and its key).
    let b = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "nginx"}]}}}});
    let live = server_side_apply(Some(&live), &b, "b", false).unwrap();
    let a2 = config(
        1,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx:2"}]),
    );
    let out = server_side_apply(Some(&live), &a2, "a", false).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
    // ...but changing a value "b" owns is a conflict naming the keyed path.
    let b2 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "httpd"}]}}}});
    let err = server_side_apply(Some(&out), &b2, "b", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "a": .spec.template.spec.containers[name="nginx"].image"#
    );
}

#[test]
fn several_conflicts_are_listed_per_manager() {
    let a = config(
        1,
        json!({"app": "web", "team": "x"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let live = server_side_apply(None, &a, "a", false).unwrap();
    let b = config(
        2,
        json!({"app": "web", "team": "y"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let err = server_side_apply(Some(&live), &b, "b", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .metadata.labels.team\n- .spec.replicas"
    );
    let ApplyError::Conflict(list) = err else {
        unreachable!()
    };
    assert_eq!(list[0].cause_message(), "conflict with \"a\"");
    assert_eq!(list[1].field, ".spec.replicas");
}

/// A tiny deterministic generator (64-bit LCG), so the property test needs no extra crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.next(from.len() as u64) as usize]
    }
}

/// A random Deployment drawing names and values from small pools, so that two of them
/// overlap in keys and sometimes differ in values.
fn random_deployment(rng: &mut Lcg) -> Value {
    let mut labels = serde_json::Map::new();
    for _ in 0..rng.next(4) {
        labels.insert(
            rng.pick(&["a", "b", "c", "d"]).into(),
            rng.pick(&["1", "2"]).into(),
        );
    }
    let mut containers: Vec<Value> = Vec::new();
    for _ in 0..1 + rng.next(3) {
        let name = rng.pick(&["web", "log", "proxy"]);
        if containers.iter().any(|c| c["name"] == name) {
            continue;
        }
        let mut env: Vec<Value> = Vec::new();
        for _ in 0..rng.next(3) {
            let var = rng.pick(&["X", "Y", "Z"]);
            if !env.iter().any(|e| e["name"] == var) {
                env.push(json!({"name": var, "value": rng.pick(&["p", "q"])}));
            }
        }
        let mut c = json!({"name": name, "image": rng.pick(&["i1", "i2"])});
        if !env.is_empty() {
            c["env"] = Value::Array(env);
        }
        if rng.next(2) == 0 {
            c["ports"] = json!([{"containerPort": 80 + rng.next(2)}]);
        }
        containers.push(c);
    }
    let mut d = config(
        1 + rng.next(3) as i64,
        Value::Object(labels),
        Value::Array(containers),
    );
    if rng.next(2) == 0 {
        d["spec"].as_object_mut().unwrap().shift_remove("replicas");
    }
    d
}

fn node() -> TypeNode {
    TypeNode::root("Deployment").unwrap()
}

fn owned_by(obj: &Value, manager: &str) -> FieldSet {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["manager"] == manager))
        .map(|e| FieldSet::from_fields_v1(&e["fieldsV1"]))
        .unwrap_or_default()
}

#[test]
fn apply_never_loses_or_corrupts_fields_of_other_managers() {
    let mut rng = Lcg(42);
    let mut conflicts = 0;
    for round in 0..200 {
        let (a, b, c) = (
            random_deployment(&mut rng),
            random_deployment(&mut rng),
            random_deployment(&mut rng),
        );
        let live = record_update(None, &a, "other", "Update");
        // Forced: applied fields take their applied values, everything else stays as it was.
        let out = server_side_apply(Some(&live), &b, "me", true).unwrap();
        let applied = FieldSet::of_value(&super::tracked(&b), node());
        // Item paths (`k:`) stand for the item's existence; their fields are checked one by one.
        let leaf = |p: &FieldPath| !p.last().is_some_and(|e| e.starts_with("k:"));
        for path in FieldSet::of_value(&super::tracked(&a), node())
            .members()
            .into_iter()
            .filter(leaf)
        {
            let expected = if applied.contains(&path) {
                value_at(&b, &path, FieldInfo::object(node()))
            } else {
                value_at(&a, &path, FieldInfo::object(node()))
            };
            let got = value_at(&out, &path, FieldInfo::object(node()));
            if !applied.contains_under(&path) {
                assert_eq!(
                    got, expected,
                    "round {round}: {path:?}\nA={a}\nB={b}\nout={out}"
                );
            }
        }
        for path in applied.members().into_iter().filter(leaf) {
            // An applied `{}` merges into the live map rather than emptying it.
            if value_at(&b, &path, FieldInfo::object(node())) == Some(&json!({})) {
                continue;
            }
            let got = value_at(&out, &path, FieldInfo::object(node()));
            assert_eq!(
                got,
                value_at(&b, &path, FieldInfo::object(node())),
                "round {round}: {path:?}"
            );
        }
        // Unforced re-apply of another configuration: either a conflict, or every field
        // "other" still owns keeps its value.
        match server_side_apply(Some(&out), &c, "me", false) {
            Err(ApplyError::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("round {round}: {e}"),
            Ok(next) => {
                for path in owned_by(&out, "other").members().into_iter().filter(leaf) {
                    let before = value_at(&out, &path, FieldInfo::object(node()));
                    let after = value_at(&next, &path, FieldInfo::object(node()));
                    assert_eq!(
                        after, before,
                        "round {round}: {path:?}\nout={out}\nC={c}\nnext={next}"
                    );
                }
            }
        }
    }
    // The pools are small, so both outcomes must have happened.
    assert!(conflicts > 0 && conflicts < 200, "conflicts: {conflicts}");
}

#[test]
fn strategic_merge_patch_keeps_every_field_the_patch_does_not_mention() {
    let mut rng = Lcg(7);
    for round in 0..200 {
        let (live, patch) = (random_deployment(&mut rng), random_deployment(&mut rng));
        let out = crate::patch::apply_strategic_merge_patch(&live, &patch, "Deployment").unwrap();
        let mentioned = FieldSet::of_value(&patch, node());
        let info = FieldInfo::object(node());
        for path in FieldSet::of_value(&live, node()).members() {
            if mentioned.contains_under(&path) || mentioned.covering(&path).is_some() {
                continue;
            }
            assert_eq!(
                value_at(&out, &path, info),
                value_at(&live, &path, info),
                "round {round}: {path:?}"
            );
        }
        for path in mentioned.members() {
            let patched = value_at(&patch, &path, info);
            if patched.is_some_and(|v| !v.is_object()) {
                assert_eq!(
                    value_at(&out, &path, info),
                    patched,
                    "round {round}: {path:?}"
                );
            }
        }
    }
}

#[test]
fn an_update_with_null_managed_fields_keeps_ownership() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let created = record_update(None, &cm, "creator", "Update");
    let mut edited = created.clone();
    edited["metadata"]["managedFields"] = Value::Null;
    edited["data"]["b"] = json!("2");
    let out = record_update(Some(&created), &edited, "editor", "Update");
    assert_eq!(managers(&out).len(), 2, "{out}");
    assert_eq!(fields_of(&out, "creator"), &json!({"f:data": {"f:a": {}}}));
}

#[test]
fn the_appliers_own_update_entry_is_another_manager() {
    let applied = config(
        2,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let live = server_side_apply(None, &applied, "kubectl", false).unwrap();
    // `kubectl scale` records an Update by "kubectl".
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(4);
    let scaled = record_update(Some(&live), &scaled, "kubectl", "Update");
    let err = server_side_apply(Some(&scaled), &applied, "kubectl", false).unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"conflict with "kubectl" using apps/v1"#),
        "{err}"
    );
    let forced = server_side_apply(Some(&scaled), &applied, "kubectl", true).unwrap();
    assert_eq!(forced["spec"]["replicas"], 2);
}

#[test]
fn apply_refuses_fields_outside_the_schema_whatever_the_validation_mode() {
    let mut applied = config(
        1,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx", "imagePullPolicyy": "Always"}]),
    );
    applied["spec"]["replicaz"] = json!(3);
    let err = server_side_apply(None, &applied, "kubectl", false).unwrap_err();
    assert_eq!(err.status_code(), 400);
    assert_eq!(
        err.to_string(),
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): errors:\n  \
         .spec.template.spec.containers[0].imagePullPolicyy: field not declared in schema\n  \
         .spec.replicaz: field not declared in schema"
    );
    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "datta": {}});
    let err = server_side_apply(None, &cm, "kubectl", false).unwrap_err();
    assert_eq!(err.to_string(), "failed to create typed patch object (/c; /v1, Kind=ConfigMap): .datta: field not declared in schema");
}
