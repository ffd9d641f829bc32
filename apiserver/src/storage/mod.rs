//! The store behind the API server.
//!
//! The store keeps opaque values (JSON-encoded objects) under string keys laid out as
//! Kubernetes lays out etcd: `/registry/<resource>/<namespace>/<name>` (cluster-scoped:
//! `/registry/<resource>/<name>`). Every write takes the next value of one global revision;
//! that revision is what the API calls `resourceVersion`. The store does not know about
//! objects: the registry layer sets `metadata.resourceVersion` from `mod_revision` when it
//! decodes a value, as Kubernetes' etcd3 store does.
//!
//! A write returns only once it is durable (fsync'd); concurrent writers share one flush.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

pub mod etcd;
mod index;
mod record;
pub mod sled;
mod watch_cache;
mod writer;

pub use self::etcd::EtcdStorage;
pub use self::sled::{SledOptions, SledStorage};

/// A global store revision. Revision 0 is "before any write"; the first write gets 1.
pub type Revision = u64;

/// One stored value with the revisions that created and last modified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created this key (survives updates, reset by delete+create).
    pub create_revision: Revision,
    /// Revision of the last write to this key: the object's resourceVersion.
    pub mod_revision: Revision,
}

/// A change seen by a watch, in revision order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A key was created (`prev` is None) or updated (`prev` is its previous value).
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// A key was deleted at `revision`; `prev` is the value it had.
    Delete { prev: KeyValue, revision: Revision },
}

impl Event {
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }
}

/// One page of a list: the items in key order, the revision the list was read at, and
/// whether more items follow after the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub items: Vec<KeyValue>,
    pub revision: Revision,
    pub more: bool,
}

/// What a list reads: every key under `prefix`, strictly after `start_after` when given,
/// at most `limit` of them when non-zero.
#[derive(Debug, Clone, Default)]
pub struct ListOptions<'a> {
    pub prefix: &'a str,
    pub start_after: Option<&'a str>,
    pub limit: usize,
}

pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, StorageError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("key {key} not found")]
    NotFound { key: String },
    /// The precondition on `mod_revision` failed: someone else wrote the key first.
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    /// A watch asked for a revision older than what the store still keeps.
    #[error("revision {requested} has been compacted; oldest available is {oldest}")]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    /// A watcher fell too far behind and was dropped; it must relist.
    #[error("watch fell behind and was closed")]
    WatchLagged,
    #[error("storage backend failed: {0}")]
    Backend(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The store contract. Implementations: sled (embedded, default); etcd later.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Lists keys under a prefix at the current revision.
    async fn list(&self, options: ListOptions<'_>) -> Result<ListPage>;

    /// Creates `key`; fails with AlreadyExists if it is present. Returns the new KeyValue.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue>;

    /// Replaces `key`'s value if its mod_revision equals `expected` (any revision when None).
    /// NotFound if absent, Conflict on a mismatch. Returns the new KeyValue.
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> Result<KeyValue>;

    /// Deletes `key` if its mod_revision equals `expected` (any when None); returns the
    /// deleted value and the revision of the delete.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)>;

    /// Streams every change under `prefix` with a revision strictly greater than `after`.
    /// Compacted if `after` is older than the retained history allows.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream>;

    /// The newest revision written.
    fn current_revision(&self) -> Revision;

    /// Drops history at and below `revision`; later watches from there get Compacted.
    async fn compact(&self, revision: Revision) -> Result<()>;
}
