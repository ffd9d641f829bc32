//! The dependency graph (Kubernetes' GraphBuilder `uidToNode`): every object of every
//! served kind, by uid, with its owner references, and per owner uid the objects naming it.
//! Only what the collector decides on is kept — kind, namespace, name, resourceVersion,
//! owners, finalizers, whether it is being deleted — a couple of hundred bytes an object
//! instead of its metadata, so 10,000 pods and their events cost a few MiB.
//!
//! The graph is written by one task (the monitors' events) and read by the workers; each
//! change says which objects must be looked at again, as the GraphBuilder's
//! processGraphChanges does.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use minik8s_api::resource::{self, ResourceInfo};

/// An object's uid; shared between the graph's maps and the work queue.
pub type Uid = Arc<str>;

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// How many uids of deleted objects are remembered, so the dependents of an owner whose
/// deletion was watched need no live lookup (Kubernetes' absentOwnerCache). Uids are never
/// reused, so a remembered one is absent for good.
const ABSENT_CAPACITY: usize = 4096;

/// One owner reference, resolved against the resource table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: Uid,
    pub name: String,
    /// The served kind the reference names; None when this API server does not serve it.
    pub kind: Option<&'static ResourceInfo>,
    pub block: bool,
}

/// What the collector keeps of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub kind: &'static ResourceInfo,
    pub namespace: Option<Arc<str>>,
    pub name: String,
    pub resource_version: String,
    pub owners: Vec<Owner>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Entry {
    /// The entry for an object of `kind` as its metadata shows it; None without a uid.
    pub fn from_meta(kind: &'static ResourceInfo, meta: &ObjectMeta) -> Option<(Uid, Entry)> {
        let uid: Uid = meta.uid.as_deref()?.into();
        let owners = meta
            .owner_references
            .iter()
            .flatten()
            .map(|r| {
                let (group, _) = resource::split_api_version(&r.api_version);
                Owner {
                    uid: r.uid.as_str().into(),
                    name: r.name.clone(),
                    kind: resource::find_kind(group, &r.kind),
                    block: r.block_owner_deletion == Some(true),
                }
            })
            .collect();
        let entry = Entry {
            kind,
            namespace: meta.namespace.as_deref().map(Into::into),
            name: meta.name.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            owners,
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        };
        Some((uid, entry))
    }

    /// The garbage-collector finalizer of an object being deleted, if it carries one.
    pub fn gc_finalizer(&self) -> Option<&'static str> {
        if !self.deleting {
            return None;
        }
        [FOREGROUND, ORPHAN]
            .into_iter()
            .find(|f| self.finalizers.iter().any(|x| x == f))
    }

    /// Being deleted in the foreground: waiting for its blocking dependents.
    pub fn deleting_dependents(&self) -> bool {
        self.gc_finalizer() == Some(FOREGROUND)
    }

    pub fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Whether the collector has anything to decide about it: owners to check, or a
    /// finalizer of its own to finish.
    fn wants_attention(&self) -> bool {
        !self.owners.is_empty() || self.gc_finalizer().is_some()
    }

    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind.kind, self.name),
            None => format!("{} {}", self.kind.kind, self.name),
        }
    }
}

/// One dependent of an item, as the item's processing needs it.
#[derive(Debug, Clone)]
pub struct Dependent {
    pub uid: Uid,
    pub entry: Entry,
    /// Whether its reference to the item has blockOwnerDeletion=true.
    pub blocks: bool,
}

/// An object with its dependents, copied out of the graph for one attempt.
#[derive(Debug, Clone)]
pub struct Item {
    pub uid: Uid,
    pub entry: Entry,
    pub dependents: Vec<Dependent>,
}

/// What the graph knows of the object an owner reference names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// It exists and is not waiting for its dependents.
    Solid,
    /// It exists and is being deleted in the foreground.
    Waiting,
    /// It is gone.
    Dangling,
    /// A kind this API server does not serve, or a namespaced owner named by a
    /// cluster-scoped object: never judged, as Kubernetes leaves such references alone.
    Unresolvable,
    /// Not in the graph: the caller must look it up live (the cache may lag a create).
    Unknown,
}

/// Uids of deleted objects, oldest forgotten first.
#[derive(Default)]
struct Absent {
    order: VecDeque<Uid>,
    set: HashSet<Uid>,
}

impl Absent {
    fn insert(&mut self, uid: Uid) {
        if self.set.insert(uid.clone()) {
            self.order.push_back(uid);
        }
        while self.order.len() > ABSENT_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

#[derive(Default)]
pub struct Graph {
    entries: HashMap<Uid, Entry>,
    /// Owner uid → uids of the objects whose owner references name it (owners need not be
    /// in `entries`: their dependents may be seen first).
    dependents: HashMap<Uid, HashSet<Uid>>,
    absent: Absent,
    namespaces: HashSet<Arc<str>>,
}

impl Graph {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// One allocation per namespace name, not one per object.
    fn intern(&mut self, ns: Option<Arc<str>>) -> Option<Arc<str>> {
        let ns = ns?;
        if let Some(known) = self.namespaces.get(&ns) {
            return Some(known.clone());
        }
        self.namespaces.insert(ns.clone());
        Some(ns)
    }

    fn link(&mut self, uid: &Uid, owners: &[Owner]) {
        for o in owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(uid.clone());
        }
    }

    fn unlink(&mut self, uid: &Uid, owners: &[Owner]) {
        for o in owners {
            if let Some(set) = self.dependents.get_mut(&o.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&o.uid);
                }
            }
        }
    }

    fn dependents_of(&self, uid: &str) -> impl Iterator<Item = &Uid> {
        self.dependents.get(uid).into_iter().flatten()
    }

    /// Those of `owners` waiting in the foreground (a change of their dependent may unblock
    /// them).
    fn waiting_among<'a>(&'a self, owners: &'a [Owner]) -> impl Iterator<Item = Uid> + 'a {
        owners
            .iter()
            .filter(|o| {
                self.entries
                    .get(&o.uid)
                    .is_some_and(Entry::deleting_dependents)
            })
            .map(|o| o.uid.clone())
    }

    /// Records an object as observed; returns the uids to attempt because of the change.
    pub fn upsert(&mut self, uid: Uid, mut entry: Entry) -> Vec<Uid> {
        entry.namespace = self.intern(entry.namespace.take());
        let old = self.entries.get(&uid).cloned();
        let owners_changed = old.as_ref().is_none_or(|o| o.owners != entry.owners);
        let deletion_changed = old.as_ref().is_none_or(|o| {
            (o.deleting, o.gc_finalizer()) != (entry.deleting, entry.gc_finalizer())
        });
        let mut wake = Vec::new();
        if owners_changed {
            if let Some(old) = &old {
                self.unlink(&uid, &old.owners);
                // A dropped or no-longer-blocking reference may be what an owner waits on.
                wake.extend(self.waiting_among(&old.owners));
            }
            self.link(&uid, &entry.owners);
        }
        if (owners_changed || deletion_changed) && entry.wants_attention() {
            wake.push(uid.clone());
        }
        // An owner entering foreground deletion: its dependents are deleted now
        // (GraphBuilder's startsWaitingForDependentsDeleted).
        if deletion_changed && entry.deleting_dependents() {
            wake.extend(self.dependents_of(&uid).cloned());
        }
        self.entries.insert(uid, entry);
        wake
    }

    /// Records an object's deletion; returns the uids to attempt: its dependents (their
    /// owner is gone) and its owners waiting for it in the foreground.
    pub fn remove(&mut self, uid: &str) -> Vec<Uid> {
        let Some((uid, old)) = self.entries.remove_entry(uid) else {
            return Vec::new();
        };
        self.unlink(&uid, &old.owners);
        let mut wake: Vec<Uid> = self.waiting_among(&old.owners).collect();
        wake.extend(self.dependents_of(&uid).cloned());
        self.absent.insert(uid);
        wake
    }

    /// The uids of every object of `kind` (to find those a relist no longer shows).
    pub fn uids_of_kind(&self, kind: &ResourceInfo) -> Vec<Uid> {
        self.entries
            .iter()
            .filter(|(_, e)| *e.kind == *kind)
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// Every object the collector may have to act on (the periodic resync).
    pub fn attention(&self) -> Vec<Uid> {
        self.entries
            .iter()
            .filter(|(_, e)| e.wants_attention())
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// A copy of an object and its dependents; None once it is gone.
    pub fn item(&self, uid: &str) -> Option<Item> {
        let (uid, entry) = self.entries.get_key_value(uid)?;
        let dependents = self
            .dependents_of(uid)
            .filter_map(|d| {
                let e = self.entries.get(d)?;
                let blocks = e.owners.iter().any(|o| o.uid == *uid && o.block);
                Some(Dependent {
                    uid: d.clone(),
                    entry: e.clone(),
                    blocks,
                })
            })
            .collect();
        Some(Item {
            uid: uid.clone(),
            entry: entry.clone(),
            dependents,
        })
    }

    /// What the graph says of `owner`, named by an object in namespace `ns` (None:
    /// cluster-scoped). A namespaced owner is looked for in the dependent's namespace only.
    pub fn owner_state(&self, owner: &Owner, ns: Option<&str>) -> OwnerState {
        let Some(kind) = owner.kind else {
            return OwnerState::Unresolvable;
        };
        if kind.namespaced && ns.is_none() {
            return OwnerState::Unresolvable;
        }
        let expected_ns = if kind.namespaced { ns } else { None };
        if let Some(e) = self.entries.get(&owner.uid) {
            let same =
                *e.kind == *kind && e.name == owner.name && e.namespace.as_deref() == expected_ns;
            if same {
                return match e.deleting_dependents() {
                    true => OwnerState::Waiting,
                    false => OwnerState::Solid,
                };
            }
        }
        if self.absent.set.contains(&owner.uid) {
            return OwnerState::Dangling;
        }
        OwnerState::Unknown
    }
}

#[cfg(test)]
mod tests;
