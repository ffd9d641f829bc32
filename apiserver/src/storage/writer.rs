//! The single writer of the sled store, and its group commit.
//!
//! One thread owns all write state (the revision counter and sled's write path). Writers
//! queue requests on a channel; the thread takes everything queued, checks each request
//! against the current state as changed by the earlier requests of the same batch, writes
//! all accepted ones plus the new revision as ONE atomic sled batch, fsyncs once, then
//! updates the in-memory index, publishes the events and answers every request. While one
//! fsync runs the next batch queues up, so the flush cost is shared by every concurrent
//! writer (group commit, as in etcd's backend batching or a database's WAL).
//!
//! It is a plain thread, not a tokio task, because sled's flush blocks on fsync.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::index::{Change, Index};
use super::record::{encode_revision, encode_value, object_key, REVISION_KEY};
use super::watch_cache::WatchCache;
use super::{Event, KeyValue, Result, Revision, StorageError};

pub enum WriteOp {
    Create {
        value: Vec<u8>,
    },
    Update {
        value: Vec<u8>,
        expected: Option<Revision>,
    },
    Delete {
        expected: Option<Revision>,
    },
}

pub enum WriteOutcome {
    Put(KeyValue),
    Deleted(KeyValue, Revision),
}

pub struct WriteRequest {
    pub key: String,
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<WriteOutcome>>,
}

/// Counters shared with the store handle.
#[derive(Default)]
pub struct WriterStats {
    /// The newest committed, indexed and published revision.
    pub revision: AtomicU64,
    /// How many fsyncs the writer has issued.
    pub flushes: AtomicU64,
    /// How many writes (accepted requests) those fsyncs made durable.
    pub writes: AtomicU64,
    /// Time spent in sled's apply_batch, and in its flush (fsync), in microseconds.
    pub apply_micros: AtomicU64,
    pub flush_micros: AtomicU64,
}

pub struct Writer {
    pub db: ::sled::Db,
    pub tree: ::sled::Tree,
    pub index: Arc<Index>,
    pub cache: Arc<WatchCache>,
    pub stats: Arc<WriterStats>,
    pub revision: Revision,
    pub max_batch: usize,
    /// Set once a sled write or flush failed: sled and the index may disagree, so every
    /// later write is refused until the store is reopened (which reloads from disk).
    pub failed: Option<String>,
}

/// One accepted request, staged in the batch.
struct Staged {
    change: Change,
    event: Arc<Event>,
    outcome: WriteOutcome,
}

impl Writer {
    pub fn run(mut self, mut requests: mpsc::Receiver<WriteRequest>) {
        while let Some(first) = requests.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
        tracing::debug!(revision = self.revision, "store writer stopped");
    }

    fn commit(&mut self, requests: Vec<WriteRequest>) {
        let mut replies = Vec::with_capacity(requests.len());
        if let Some(reason) = &self.failed {
            for request in requests {
                let _ = request
                    .reply
                    .send(Err(StorageError::Backend(reason.clone())));
            }
            return;
        }
        let mut overlay: HashMap<String, Option<Arc<KeyValue>>> = HashMap::new();
        let mut decided: Vec<Result<Staged>> = Vec::with_capacity(requests.len());
        let mut revision = self.revision;
        let mut batch = ::sled::Batch::default();
        for WriteRequest { key, op, reply } in requests {
            replies.push(reply);
            let current = match overlay.get(&key) {
                Some(staged) => staged.clone(),
                None => self.index.lookup(&key),
            };
            let result = decide(&key, op, current, revision + 1);
            if let Ok(staged) = &result {
                revision += 1;
                match &staged.change.1 {
                    Some(kv) => batch.insert(object_key(&key), encode_value(kv)),
                    None => batch.remove(object_key(&key)),
                }
                overlay.insert(key, staged.change.1.clone());
            }
            decided.push(result);
        }
        let accepted = revision - self.revision;
        if accepted > 0 {
            batch.insert(REVISION_KEY, &encode_revision(revision));
            if let Err(e) = self.make_durable(batch) {
                let reason = format!("writing revision {revision}: {e}");
                tracing::error!(%reason, "store write failed; refusing further writes");
                self.failed = Some(reason.clone());
                for reply in replies {
                    let _ = reply.send(Err(StorageError::Backend(reason.clone())));
                }
                return;
            }
            self.stats.writes.fetch_add(accepted, Ordering::Relaxed);
        }
        self.publish(replies, decided, revision);
    }

    fn make_durable(&self, batch: ::sled::Batch) -> std::result::Result<(), ::sled::Error> {
        let started = std::time::Instant::now();
        self.tree.apply_batch(batch)?;
        let applied = std::time::Instant::now();
        self.db.flush()?;
        let micros = |d: std::time::Duration| d.as_micros() as u64;
        let stats = &self.stats;
        stats
            .apply_micros
            .fetch_add(micros(applied - started), Ordering::Relaxed);
        stats
            .flush_micros
            .fetch_add(micros(applied.elapsed()), Ordering::Relaxed);
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// After the fsync: index, watch cache, then the answers, so a writer that got its
    /// answer can read its own write and a watch from its revision finds it.
    fn publish(
        &mut self,
        replies: Vec<oneshot::Sender<Result<WriteOutcome>>>,
        decided: Vec<Result<Staged>>,
        revision: Revision,
    ) {
        let mut changes = Vec::new();
        let mut events = Vec::new();
        let mut answers = Vec::with_capacity(decided.len());
        for result in decided {
            answers.push(result.map(|staged| {
                changes.push(staged.change);
                events.push(staged.event);
                staged.outcome
            }));
        }
        if !changes.is_empty() {
            self.index.apply(changes, revision);
            self.cache.publish(events);
            self.revision = revision;
            self.stats.revision.store(revision, Ordering::Release);
        }
        for (reply, answer) in replies.into_iter().zip(answers) {
            // The caller may have gone away (its future dropped): the write stands anyway,
            // as a write to etcd does once sent.
            let _ = reply.send(answer);
        }
    }
}

/// Checks one request against the key's current value and builds its result at `revision`.
fn decide(
    key: &str,
    op: WriteOp,
    current: Option<Arc<KeyValue>>,
    revision: Revision,
) -> Result<Staged> {
    let check = |expected: Option<Revision>, current: &KeyValue| match expected {
        Some(expected) if expected != current.mod_revision => Err(StorageError::Conflict {
            key: key.to_owned(),
            expected,
            actual: current.mod_revision,
        }),
        _ => Ok(()),
    };
    let not_found = || StorageError::NotFound {
        key: key.to_owned(),
    };
    match op {
        WriteOp::Create { value } => {
            if current.is_some() {
                return Err(StorageError::AlreadyExists {
                    key: key.to_owned(),
                });
            }
            Ok(put(key, value, revision, revision, None))
        }
        WriteOp::Update { value, expected } => {
            let current = current.ok_or_else(not_found)?;
            check(expected, &current)?;
            Ok(put(
                key,
                value,
                current.create_revision,
                revision,
                Some(current),
            ))
        }
        WriteOp::Delete { expected } => {
            let current = current.ok_or_else(not_found)?;
            check(expected, &current)?;
            let prev = KeyValue::clone(&current);
            Ok(Staged {
                change: (key.to_owned(), None),
                event: Arc::new(Event::Delete {
                    prev: prev.clone(),
                    revision,
                }),
                outcome: WriteOutcome::Deleted(prev, revision),
            })
        }
    }
}

fn put(
    key: &str,
    value: Vec<u8>,
    create_revision: Revision,
    mod_revision: Revision,
    prev: Option<Arc<KeyValue>>,
) -> Staged {
    let kv = KeyValue {
        key: key.to_owned(),
        value,
        create_revision,
        mod_revision,
    };
    Staged {
        change: (key.to_owned(), Some(Arc::new(kv.clone()))),
        event: Arc::new(Event::Put {
            kv: kv.clone(),
            prev: prev.map(|p| KeyValue::clone(&p)),
        }),
        outcome: WriteOutcome::Put(kv),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn writer(dir: &std::path::Path) -> Writer {
        let db = ::sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .open()
            .unwrap();
        let tree = db.open_tree("t").unwrap();
        Writer {
            db,
            tree,
            index: Arc::new(Index::new(BTreeMap::new(), 0)),
            cache: Arc::new(WatchCache::new(0, 100, 16)),
            stats: Arc::new(WriterStats::default()),
            revision: 0,
            max_batch: 100,
            failed: None,
        }
    }

    fn request(key: &str, op: WriteOp) -> (WriteRequest, oneshot::Receiver<Result<WriteOutcome>>) {
        let (reply, answer) = oneshot::channel();
        let key = key.to_owned();
        (WriteRequest { key, op, reply }, answer)
    }

    #[test]
    fn later_requests_of_a_batch_see_earlier_ones_under_one_flush() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        let value = || b"v".to_vec();
        let ops = vec![
            request("/a", WriteOp::Create { value: value() }),
            request("/a", WriteOp::Create { value: value() }),
            request(
                "/a",
                WriteOp::Update {
                    value: value(),
                    expected: Some(1),
                },
            ),
            request(
                "/a",
                WriteOp::Update {
                    value: value(),
                    expected: Some(1),
                },
            ),
            request("/a", WriteOp::Delete { expected: Some(2) }),
            request(
                "/a",
                WriteOp::Update {
                    value: value(),
                    expected: None,
                },
            ),
            request("/a", WriteOp::Create { value: value() }),
        ];
        let (requests, mut answers): (Vec<_>, Vec<_>) = ops.into_iter().unzip();
        w.commit(requests);
        let mut got = Vec::new();
        for answer in &mut answers {
            got.push(match answer.try_recv().expect("answered") {
                Ok(WriteOutcome::Put(kv)) => {
                    format!("put {}/{}", kv.create_revision, kv.mod_revision)
                }
                Ok(WriteOutcome::Deleted(prev, rev)) => {
                    format!("deleted {} at {rev}", prev.mod_revision)
                }
                Err(StorageError::AlreadyExists { .. }) => "exists".into(),
                Err(StorageError::Conflict {
                    expected, actual, ..
                }) => format!("conflict {expected}!={actual}"),
                Err(StorageError::NotFound { .. }) => "not found".into(),
                Err(e) => format!("{e}"),
            });
        }
        assert_eq!(
            got,
            [
                "put 1/1",
                "exists",
                "put 1/2",
                "conflict 1!=2",
                "deleted 2 at 3",
                "not found",
                "put 4/4"
            ]
        );
        assert_eq!(w.stats.flushes.load(Ordering::Relaxed), 1);
        assert_eq!(w.stats.writes.load(Ordering::Relaxed), 4);
        assert_eq!(w.stats.revision.load(Ordering::Relaxed), 4);
        assert_eq!(w.index.lookup("/a").unwrap().create_revision, 4);
        assert_eq!(
            w.tree.get(REVISION_KEY).unwrap().as_deref(),
            Some(&encode_revision(4)[..])
        );
    }

    #[test]
    fn a_batch_of_only_failures_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        let (req, mut answer) = request("/missing", WriteOp::Delete { expected: None });
        w.commit(vec![req]);
        assert!(matches!(
            answer.try_recv().unwrap(),
            Err(StorageError::NotFound { .. })
        ));
        assert_eq!(w.stats.flushes.load(Ordering::Relaxed), 0);
        assert_eq!(w.revision, 0);
    }
}
