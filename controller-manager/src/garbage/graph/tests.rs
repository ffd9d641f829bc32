//! Which objects each graph change wakes, and what the graph says of owners.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use minik8s_api::resource::find_kind;

use super::*;

/// Builder for the metadata of a watched object.
struct Obj(ObjectMeta, &'static ResourceInfo);

fn obj(kind: &str, name: &str) -> Obj {
    let (group, kind) = match kind {
        "Deployment" | "ReplicaSet" => ("apps", kind),
        k => ("", k),
    };
    Obj(
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        find_kind(group, kind).expect("a served kind"),
    )
}

impl Obj {
    fn owned_by(mut self, kind: &str, name: &str, block: bool) -> Obj {
        let api_version = match kind {
            "Deployment" | "ReplicaSet" => "apps/v1",
            _ => "v1",
        };
        self.0
            .owner_references
            .get_or_insert_with(Vec::new)
            .push(OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: name.into(),
                uid: format!("uid-{name}"),
                block_owner_deletion: Some(block),
                controller: None,
            });
        self
    }

    fn deleting(mut self, finalizer: &str) -> Obj {
        self.0.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        self.0.finalizers = Some(vec![finalizer.into()]);
        self
    }

    fn entry(&self) -> (Uid, Entry) {
        Entry::from_meta(self.1, &self.0).expect("has a uid")
    }
}

fn put(g: &mut Graph, o: &Obj) -> Vec<String> {
    let (uid, e) = o.entry();
    names(g.upsert(uid, e))
}

fn names(uids: Vec<Uid>) -> Vec<String> {
    let mut out: Vec<String> = uids.iter().map(|u| u.replace("uid-", "")).collect();
    out.sort();
    out
}

fn owner_of(o: &Obj) -> Owner {
    o.entry().1.owners[0].clone()
}

#[test]
fn a_new_dependent_is_attempted_and_an_unowned_object_is_not() {
    let mut g = Graph::default();
    assert!(put(&mut g, &obj("ConfigMap", "owner")).is_empty());
    let dep = obj("Secret", "dep").owned_by("ConfigMap", "owner", false);
    assert_eq!(put(&mut g, &dep), ["dep"]);
    // An update that changes neither owners nor deletion wakes nothing.
    let mut again = dep;
    again.0.resource_version = Some("2".into());
    assert!(put(&mut g, &again).is_empty());
    assert_eq!(g.item("uid-dep").unwrap().entry.resource_version, "2");
}

#[test]
fn deleting_an_owner_wakes_its_dependents_of_any_kind_and_marks_it_absent() {
    let mut g = Graph::default();
    let deploy = obj("Deployment", "d");
    put(&mut g, &deploy);
    let cm = obj("ConfigMap", "cm").owned_by("Deployment", "d", false);
    let sec = obj("Secret", "s").owned_by("Deployment", "d", true);
    put(&mut g, &cm);
    put(&mut g, &sec);
    assert_eq!(
        g.owner_state(&owner_of(&cm), Some("default")),
        OwnerState::Solid
    );
    assert_eq!(names(g.remove("uid-d")), ["cm", "s"]);
    assert_eq!(
        g.owner_state(&owner_of(&cm), Some("default")),
        OwnerState::Dangling
    );
}

#[test]
fn an_owner_entering_foreground_deletion_wakes_itself_and_its_dependents() {
    let mut g = Graph::default();
    put(&mut g, &obj("ConfigMap", "o"));
    let dep = obj("Secret", "s").owned_by("ConfigMap", "o", true);
    put(&mut g, &dep);
    assert_eq!(
        put(&mut g, &obj("ConfigMap", "o").deleting(FOREGROUND)),
        ["o", "s"]
    );
    assert_eq!(
        g.owner_state(&owner_of(&dep), Some("default")),
        OwnerState::Waiting
    );
    let item = g.item("uid-o").unwrap();
    assert_eq!(item.dependents.len(), 1);
    assert!(item.dependents[0].blocks);
    // The blocking dependent's deletion brings the waiting owner back.
    assert_eq!(names(g.remove("uid-s")), ["o"]);
    assert!(g.item("uid-o").unwrap().dependents.is_empty());
}

#[test]
fn an_orphaning_owner_wakes_only_itself() {
    let mut g = Graph::default();
    put(&mut g, &obj("ConfigMap", "o"));
    put(&mut g, &obj("Secret", "s").owned_by("ConfigMap", "o", true));
    assert_eq!(put(&mut g, &obj("ConfigMap", "o").deleting(ORPHAN)), ["o"]);
    assert_eq!(g.item("uid-o").unwrap().entry.gc_finalizer(), Some(ORPHAN));
}

#[test]
fn dropping_a_reference_to_a_waiting_owner_wakes_that_owner() {
    let mut g = Graph::default();
    put(&mut g, &obj("ConfigMap", "o"));
    put(&mut g, &obj("ConfigMap", "keep"));
    let both = obj("Secret", "s")
        .owned_by("ConfigMap", "o", true)
        .owned_by("ConfigMap", "keep", false);
    put(&mut g, &both);
    put(&mut g, &obj("ConfigMap", "o").deleting(FOREGROUND));
    let stripped = obj("Secret", "s").owned_by("ConfigMap", "keep", false);
    assert_eq!(put(&mut g, &stripped), ["o", "s"]);
    assert!(g.item("uid-o").unwrap().dependents.is_empty());
}

#[test]
fn owners_the_graph_cannot_vouch_for() {
    let mut g = Graph::default();
    let dep = obj("Secret", "s").owned_by("ConfigMap", "new", false);
    put(&mut g, &dep);
    // Not seen yet: only a live read can tell.
    assert_eq!(
        g.owner_state(&owner_of(&dep), Some("default")),
        OwnerState::Unknown
    );
    // A namespaced owner is looked for in the dependent's namespace only.
    put(&mut g, &obj("ConfigMap", "new"));
    assert_eq!(
        g.owner_state(&owner_of(&dep), Some("other")),
        OwnerState::Unknown
    );
    // A cluster-scoped dependent cannot name a namespaced owner.
    assert_eq!(
        g.owner_state(&owner_of(&dep), None),
        OwnerState::Unresolvable
    );
    // Nor can a kind this API server does not serve be judged.
    let custom = Owner {
        kind: None,
        ..owner_of(&dep)
    };
    assert_eq!(
        g.owner_state(&custom, Some("default")),
        OwnerState::Unresolvable
    );
}

/// A relist (after the watch lost its place) shows what is left; what it no longer shows
/// was deleted meanwhile, and its dependents are woken.
#[test]
fn a_relisted_kind_drops_what_it_no_longer_lists() {
    use crate::garbage::{apply, monitors::Change};
    let mut g = Graph::default();
    let mut listing = HashMap::new();
    put(&mut g, &obj("ConfigMap", "a"));
    put(&mut g, &obj("ConfigMap", "b"));
    put(
        &mut g,
        &obj("Secret", "s").owned_by("ConfigMap", "b", false),
    );
    assert_eq!(names(g.attention()), ["s"]);
    let cm = find_kind("", "ConfigMap").unwrap();
    assert!(apply(&mut g, &mut listing, cm, Change::Listing).is_empty());
    let (uid, e) = obj("ConfigMap", "a").entry();
    assert!(apply(&mut g, &mut listing, cm, Change::Listed(uid, e)).is_empty());
    let woken = apply(&mut g, &mut listing, cm, Change::ListDone);
    assert_eq!(names(woken), ["s"]);
    assert!(g.item("uid-b").is_none());
    assert!(g.item("uid-a").is_some());
    assert_eq!(
        g.owner_state(
            &owner_of(&obj("Secret", "s").owned_by("ConfigMap", "b", false)),
            Some("default")
        ),
        OwnerState::Dangling
    );
}
