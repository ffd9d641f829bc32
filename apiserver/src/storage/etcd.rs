//! The etcd backend: the same contract on a real etcd v3 cluster, for several API servers.
//!
//! It follows Kubernetes' etcd3 store (`staging/src/k8s.io/apiserver/pkg/storage/etcd3`):
//! revisions are etcd's, a create is a transaction guarded by `mod_revision == 0`, an update
//! or delete one guarded by the expected `mod_revision` whose else-branch reads the key to
//! tell NotFound from Conflict, and a watch starts at `after + 1` with previous values so
//! deletes can report what they removed. A watch below etcd's compaction answers Compacted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, PutOptions, ResponseHeader,
    Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions, WatchStream,
};
use futures::stream;

use super::{
    Event, EventStream, KeyValue, ListOptions, ListPage, Result, Revision, Storage, StorageError,
};

/// The etcd-backed store. Cheap to clone (one shared gRPC channel).
#[derive(Clone)]
pub struct EtcdStorage {
    client: Client,
    /// The newest revision seen in any response header: what `current_revision` answers
    /// without a round trip (etcd itself only knows it per response).
    revision: Arc<AtomicU64>,
}

fn backend(context: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("etcd {context}: {e}"))
}

/// etcd's ErrCompacted text (`mvcc: required revision has been compacted`).
const COMPACTED: &str = "required revision has been compacted";

/// How long a watch from a compacted revision waits for etcd's cancellation.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest response accepted: a list of every pod in a big cluster in one page.
const MAX_RESPONSE_BYTES: usize = 512 << 20;

impl EtcdStorage {
    /// Connects to etcd at `endpoints` (e.g. `http://127.0.0.1:2379`) and reads the current
    /// revision.
    pub async fn connect<E: AsRef<str>>(endpoints: &[E]) -> Result<EtcdStorage> {
        let client = Client::connect(endpoints, None)
            .await
            .map_err(|e| backend("connect", e))?;
        let store = EtcdStorage {
            client,
            revision: Arc::new(AtomicU64::new(0)),
        };
        let mut kv = store.client.kv_client();
        let resp = kv
            .get("\0", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| backend("reading the revision", e))?;
        store.observe(resp.header());
        Ok(store)
    }

    fn observe(&self, header: Option<&ResponseHeader>) -> Revision {
        let revision = header.map_or(0, |h| h.revision().max(0) as u64);
        self.revision.fetch_max(revision, Ordering::AcqRel);
        revision
    }

    async fn txn(&self, what: &str, txn: Txn) -> Result<TxnResponse> {
        let resp = self
            .client
            .kv_client()
            .txn(txn)
            .await
            .map_err(|e| backend(what, e))?;
        self.observe(resp.header());
        Ok(resp)
    }

    /// Whether `revision` is below etcd's compaction: a read at it fails (etcd's
    /// ErrCompacted), which tells the watch to expect its cancellation.
    async fn is_compacted(&self, revision: Revision) -> Result<bool> {
        let probe = GetOptions::new()
            .with_revision(revision as i64)
            .with_count_only();
        match self.client.kv_client().get("\0", Some(probe)).await {
            Ok(_) => Ok(false),
            Err(e) if e.to_string().contains(COMPACTED) => Ok(true),
            // A future revision: the watch waits for it, as Kubernetes' does.
            Err(e) if e.to_string().contains("future revision") => Ok(false),
            Err(e) => Err(backend("watch", e)),
        }
    }

    /// The guard of an update or delete: the expected revision, or just existence.
    fn guard(key: &str, expected: Option<Revision>) -> Compare {
        match expected {
            Some(rev) => Compare::mod_revision(key, CompareOp::Equal, rev as i64),
            None => Compare::create_revision(key, CompareOp::Greater, 0),
        }
    }

    /// Turns a failed guarded transaction (whose else-branch read the key) into an error.
    fn precondition_failed(
        key: &str,
        expected: Option<Revision>,
        resp: &TxnResponse,
    ) -> StorageError {
        let current = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        });
        match (current, expected) {
            (Some(actual), Some(expected)) => StorageError::Conflict {
                key: key.to_owned(),
                expected,
                actual: actual as u64,
            },
            _ => StorageError::NotFound {
                key: key.to_owned(),
            },
        }
    }
}

fn convert(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: kv
            .key_str()
            .map_err(|e| backend("decoding a key", e))?
            .to_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision().max(0) as u64,
        mod_revision: kv.mod_revision().max(0) as u64,
    })
}

/// The first key after every key starting with `prefix` (etcd's `GetPrefixRangeEnd`);
/// "\0" (with from-key semantics) when there is none.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[async_trait]
impl Storage for EtcdStorage {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .client
            .kv_client()
            .get(key, None)
            .await
            .map_err(|e| backend("get", e))?;
        self.observe(resp.header());
        resp.kvs().first().map(convert).transpose()
    }

    async fn list(&self, options: ListOptions<'_>) -> Result<ListPage> {
        // etcd rejects an empty key; "\0" is the smallest real one.
        let start = match options.start_after {
            Some(after) if after >= options.prefix => format!("{after}\0"),
            _ if options.prefix.is_empty() => "\0".to_owned(),
            _ => options.prefix.to_owned(),
        };
        let mut get = GetOptions::new().with_range(prefix_end(options.prefix));
        if options.limit > 0 {
            get = get.with_limit(options.limit as i64);
        }
        let resp = self
            .client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .get(start, Some(get))
            .await
            .map_err(|e| backend("list", e))?;
        let revision = self.observe(resp.header());
        Ok(ListPage {
            items: resp.kvs().iter().map(convert).collect::<Result<_>>()?,
            revision,
            more: resp.more(),
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.clone(), None)]);
        let resp = self.txn("create", txn).await?;
        if !resp.succeeded() {
            return Err(StorageError::AlreadyExists {
                key: key.to_owned(),
            });
        }
        let revision = resp.header().map_or(0, |h| h.revision() as u64);
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> Result<KeyValue> {
        let txn = Txn::new()
            .when([Self::guard(key, expected)])
            .and_then([TxnOp::put(
                key,
                value.clone(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn("update", txn).await?;
        if !resp.succeeded() {
            return Err(Self::precondition_failed(key, expected, &resp));
        }
        let revision = resp.header().map_or(0, |h| h.revision() as u64);
        let create_revision = resp
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Put(put) => put.prev_key().map(|kv| kv.create_revision() as u64),
                _ => None,
            })
            .unwrap_or(revision);
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision: revision,
        })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        let txn = Txn::new()
            .when([Self::guard(key, expected)])
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn("delete", txn).await?;
        if !resp.succeeded() {
            return Err(Self::precondition_failed(key, expected, &resp));
        }
        let revision = resp.header().map_or(0, |h| h.revision() as u64);
        let prev = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(del) => del.prev_kvs().first().map(convert),
            _ => None,
        });
        match prev {
            Some(prev) => Ok((prev?, revision)),
            // The guard saw the key, so the delete removed it: etcd always returns it.
            None => Err(backend(
                "delete",
                format!("no previous value returned for {key}"),
            )),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream> {
        let key = if prefix.is_empty() { "\0" } else { prefix };
        let options = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_start_revision(after as i64 + 1)
            .with_prev_key();
        let mut client = self.client.clone();
        let mut stream = client
            .watch(key, Some(options))
            .await
            .map_err(|e| backend("watch", e))?;
        // etcd answers the creation first and, for a compacted start revision, cancels
        // the watch in a second message carrying the compaction revision.
        let compacted = self.is_compacted(after + 1).await?;
        let mut created = next_message(&mut stream).await?;
        if compacted && !created.canceled() {
            // Bounded: should etcd not cancel, the compaction found by the probe stands.
            match tokio::time::timeout(CANCEL_WAIT, next_message(&mut stream)).await {
                Ok(message) => created = message?,
                Err(_) => {
                    return Err(StorageError::Compacted {
                        requested: after,
                        oldest: after + 1,
                    })
                }
            }
        }
        if created.compact_revision() > 0 {
            return Err(StorageError::Compacted {
                requested: after,
                oldest: created.compact_revision() as u64 - 1,
            });
        }
        if created.canceled() {
            return Err(backend("watch", created.cancel_reason()));
        }
        let mut watcher = EtcdWatcher {
            stream,
            pending: VecDeque::new(),
            after,
            ended: false,
            revision: self.revision.clone(),
        };
        watcher.take(&created);
        Ok(Box::pin(stream::unfold(watcher, |mut w| async move {
            let item = w.next().await?;
            Some((item, w))
        })))
    }

    fn current_revision(&self) -> Revision {
        self.revision.load(Ordering::Acquire)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let revision = revision.min(self.current_revision());
        if revision == 0 {
            return Ok(());
        }
        match self.client.kv_client().compact(revision as i64, None).await {
            Ok(resp) => {
                self.observe(resp.header());
                Ok(())
            }
            // Compacting again below an earlier compaction is a no-op for us.
            Err(e) if e.to_string().contains(COMPACTED) => Ok(()),
            Err(e) => Err(backend("compact", e)),
        }
    }
}

async fn next_message(stream: &mut WatchStream) -> Result<etcd_client::WatchResponse> {
    stream
        .message()
        .await
        .map_err(|e| backend("watch", e))?
        .ok_or_else(|| backend("watch", "stream closed while starting"))
}

struct EtcdWatcher {
    stream: WatchStream,
    pending: VecDeque<Result<Event>>,
    after: Revision,
    ended: bool,
    revision: Arc<AtomicU64>,
}

impl EtcdWatcher {
    fn take(&mut self, resp: &etcd_client::WatchResponse) {
        if let Some(h) = resp.header() {
            self.revision
                .fetch_max(h.revision().max(0) as u64, Ordering::AcqRel);
        }
        for event in resp.events() {
            let converted = convert_event(event);
            if converted.as_ref().is_ok_and(|e| e.revision() <= self.after) {
                continue;
            }
            self.pending.push_back(converted);
        }
        if resp.canceled() {
            let reason = if resp.compact_revision() > 0 {
                StorageError::Compacted {
                    requested: self.after,
                    oldest: resp.compact_revision() as u64 - 1,
                }
            } else {
                backend("watch canceled", resp.cancel_reason())
            };
            self.pending.push_back(Err(reason));
            self.ended = true;
        }
    }

    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                if let Ok(event) = &item {
                    self.after = event.revision();
                }
                return Some(item);
            }
            if self.ended {
                return None;
            }
            match self.stream.message().await {
                Ok(Some(resp)) => self.take(&resp),
                Ok(None) => return None,
                Err(e) => {
                    self.ended = true;
                    return Some(Err(backend("watch", e)));
                }
            }
        }
    }
}

fn convert_event(event: &etcd_client::Event) -> Result<Event> {
    let kv = event
        .kv()
        .ok_or_else(|| backend("watch", "event without a key"))?;
    match event.event_type() {
        EventType::Put => Ok(Event::Put {
            kv: convert(kv)?,
            // version 1 is a creation: any prev_kv belongs to an earlier life of the key.
            prev: match event.prev_kv() {
                Some(prev) if kv.version() > 1 => Some(convert(prev)?),
                _ => None,
            },
        }),
        // As Kubernetes' etcd3 watcher, a delete without its previous value is an error:
        // the object it removed cannot be reported.
        EventType::Delete => Ok(Event::Delete {
            prev: convert(
                event
                    .prev_kv()
                    .ok_or_else(|| backend("watch", "delete event without its previous value"))?,
            )?,
            revision: kv.mod_revision().max(0) as u64,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0");
        assert_eq!(prefix_end(""), b"\0");
    }
}
