//! The embedded store: sled on disk, an in-memory index for reads, a watch cache for
//! watches, and one writer thread that group-commits every write.
//!
//! ```text
//!  create/update/delete ──mpsc──► writer thread ── one sled batch + one fsync per group
//!                                      │ after the fsync
//!                                      ├─► index (get, list)
//!                                      ├─► watch cache (ring + broadcast ─► watch streams)
//!                                      └─► oneshot answers
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::index::Index;
use super::record::{decode_object, decode_revision, OBJECT_TAG, REVISION_KEY};
use super::watch_cache::WatchCache;
use super::writer::{WriteOp, WriteOutcome, WriteRequest, Writer, WriterStats};
use super::{
    EventStream, KeyValue, ListOptions, ListPage, Result, Revision, Storage, StorageError,
};

/// The sled tree holding objects and the revision counter.
const TREE: &str = "minik8s.store.v1";

/// Tunables of the sled store; `Default` suits the API server.
#[derive(Debug, Clone)]
pub struct SledOptions {
    /// Events kept in memory for watches to resume from (Kubernetes' watch cache keeps a
    /// comparable window; older resourceVersions answer Compacted / 410 Gone).
    pub watch_cache_events: usize,
    /// Group commits a watcher may fall behind before it is dropped with WatchLagged.
    pub watch_lag_batches: usize,
    /// Most writes committed under one fsync.
    pub max_batch: usize,
    /// Writes that may wait for the writer before `create`/`update`/`delete` callers wait
    /// to enqueue (backpressure).
    pub queue_depth: usize,
    /// sled's page cache size in bytes.
    pub cache_capacity_bytes: u64,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            watch_cache_events: 100_000,
            watch_lag_batches: 4096,
            max_batch: 1024,
            queue_depth: 8192,
            cache_capacity_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The sled-backed store. Cheap to clone; the last clone dropped closes the database.
#[derive(Clone)]
pub struct SledStorage {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    index: Arc<Index>,
    cache: Arc<WatchCache>,
    stats: Arc<WriterStats>,
    /// Taken on drop so the writer sees the channel close and exits.
    requests: Option<mpsc::Sender<WriteRequest>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.requests.take();
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Joining the writer (which owns the sled handles) and then waiting for sled's lock
        // makes close synchronous, so the same directory can be reopened at once.
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!(dir = %self.dir.display(), "store writer thread panicked");
            }
        }
        wait_for_lock_release(&self.dir);
    }
}

/// How long a close waits for sled's last I/O job; generous, since it only runs long when
/// an fsync is slow on a busy disk.
const LOCK_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits until sled's exclusive lock on `<dir>/db` is free. Dropping the last sled handle
/// does not release it at once: I/O jobs on sled's thread pool hold its config, and with
/// it the locked file, until they finish (sled's own tests block on the lock for this).
fn wait_for_lock_release(dir: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(dir.join("db")) else {
        return;
    };
    let deadline = std::time::Instant::now() + LOCK_RELEASE_WAIT;
    loop {
        // SAFETY: flock(2) on a descriptor we own; our probe lock goes when `file` closes.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return;
        }
        if std::time::Instant::now() > deadline {
            tracing::warn!(dir = %dir.display(), "sled still holds its lock after close");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

fn backend(context: impl std::fmt::Display, e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("{context}: {e}"))
}

impl SledStorage {
    /// Opens (or creates) the store in `dir` with default options.
    pub fn open(dir: &Path) -> Result<SledStorage> {
        Self::open_with(dir, SledOptions::default())
    }

    /// Opens (or creates) the store in `dir`. Loads every key into the index; the watch
    /// cache starts empty at the stored revision.
    pub fn open_with(dir: &Path, options: SledOptions) -> Result<SledStorage> {
        let db = ::sled::Config::new()
            .path(dir)
            .mode(::sled::Mode::HighThroughput)
            .cache_capacity(options.cache_capacity_bytes)
            // The writer fsyncs every batch itself; a background flusher would only add
            // unsynchronised fsyncs.
            .flush_every_ms(None)
            .open()
            .map_err(|e| backend(format_args!("opening sled store {}", dir.display()), e))?;
        let tree = db
            .open_tree(TREE)
            .map_err(|e| backend(format_args!("opening tree {TREE}"), e))?;
        let (map, revision) = load(&tree)?;
        tracing::info!(dir = %dir.display(), keys = map.len(), revision, "opened sled store");

        let index = Arc::new(Index::new(map, revision));
        let cache = Arc::new(WatchCache::new(
            revision,
            options.watch_cache_events,
            options.watch_lag_batches,
        ));
        let stats = Arc::new(WriterStats::default());
        stats.revision.store(revision, Ordering::Release);
        let (tx, rx) = mpsc::channel(options.queue_depth.max(1));
        let writer = Writer {
            db,
            tree,
            index: index.clone(),
            cache: cache.clone(),
            stats: stats.clone(),
            revision,
            max_batch: options.max_batch.max(1),
            failed: None,
        };
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| backend("starting the store writer thread", e))?;
        Ok(SledStorage {
            shared: Arc::new(Shared {
                dir: dir.to_owned(),
                index,
                cache,
                stats,
                requests: Some(tx),
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// How many fsyncs the store has issued since it was opened.
    pub fn flush_count(&self) -> u64 {
        self.shared.stats.flushes.load(Ordering::Relaxed)
    }

    /// How many writes were made durable since the store was opened.
    pub fn write_count(&self) -> u64 {
        self.shared.stats.writes.load(Ordering::Relaxed)
    }

    /// Total time the writer spent applying batches to sled and flushing them (fsync),
    /// in microseconds: what a group commit costs, for benchmarks and metrics.
    pub fn commit_micros(&self) -> (u64, u64) {
        let stats = &self.shared.stats;
        (
            stats.apply_micros.load(Ordering::Relaxed),
            stats.flush_micros.load(Ordering::Relaxed),
        )
    }

    /// The lowest revision a watch may currently start after.
    pub fn oldest_watchable_revision(&self) -> Revision {
        self.shared.cache.oldest()
    }

    /// Number of keys currently stored.
    pub fn len(&self) -> usize {
        self.shared.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shared.index.is_empty()
    }

    async fn write(&self, key: &str, op: WriteOp) -> Result<WriteOutcome> {
        let closed = || StorageError::Backend("the store writer has stopped".into());
        let requests = self.shared.requests.as_ref().ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            key: key.to_owned(),
            op,
            reply,
        };
        requests.send(request).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// Reads the revision and every object from the tree.
fn load(tree: &::sled::Tree) -> Result<(BTreeMap<String, Arc<KeyValue>>, Revision)> {
    let mut revision = match tree
        .get(REVISION_KEY)
        .map_err(|e| backend("reading the store revision", e))?
    {
        Some(raw) => decode_revision(&raw).map_err(|e| backend("decoding the revision", e))?,
        None => 0,
    };
    let mut map = BTreeMap::new();
    for entry in tree.scan_prefix([OBJECT_TAG]) {
        let (raw_key, raw_value) = entry.map_err(|e| backend("loading stored objects", e))?;
        let kv = decode_object(&raw_key, &raw_value).map_err(|e| backend("loading objects", e))?;
        // The counter is written in the same atomic batch as the objects, so this can only
        // trigger on a damaged store; never hand out a revision an object already has.
        revision = revision.max(kv.mod_revision);
        map.insert(kv.key.clone(), Arc::new(kv));
    }
    Ok((map, revision))
}

#[async_trait]
impl Storage for SledStorage {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.shared.index.lookup(key).map(|kv| KeyValue::clone(&kv)))
    }

    async fn list(&self, options: ListOptions<'_>) -> Result<ListPage> {
        Ok(self.shared.index.list(&options))
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        match self.write(key, WriteOp::Create { value }).await? {
            WriteOutcome::Put(kv) => Ok(kv),
            WriteOutcome::Deleted(..) => Err(unexpected(key)),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> Result<KeyValue> {
        match self.write(key, WriteOp::Update { value, expected }).await? {
            WriteOutcome::Put(kv) => Ok(kv),
            WriteOutcome::Deleted(..) => Err(unexpected(key)),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        match self.write(key, WriteOp::Delete { expected }).await? {
            WriteOutcome::Deleted(prev, revision) => Ok((prev, revision)),
            WriteOutcome::Put(_) => Err(unexpected(key)),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream> {
        self.shared.cache.watch(prefix, after)
    }

    fn current_revision(&self) -> Revision {
        self.shared.stats.revision.load(Ordering::Acquire)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.shared.cache.compact(revision);
        Ok(())
    }
}

fn unexpected(key: &str) -> StorageError {
    StorageError::Backend(format!(
        "store writer answered {key} with the wrong kind of result"
    ))
}
