//! The garbage collector (Kubernetes' garbage collector), generic over every kind the API
//! server serves:
//! - background: an object all of whose owners (by uid) are gone is deleted;
//! - foreground: an owner deleted with the `foregroundDeletion` finalizer has its dependents
//!   deleted and keeps existing until those with blockOwnerDeletion=true are gone;
//! - orphan: an owner deleted with the `orphan` finalizer has its owner reference stripped
//!   from every dependent, then goes.
//!
//! Layout, as in Kubernetes: `monitors.rs` watches every kind as metadata only and feeds
//! the dependency graph (`graph.rs`, a few strings per object); each graph change queues the
//! objects it concerns (`queue.rs`, keyed by uid); workers decide about one object at a
//! time (`attempt.rs`, `finalizers.rs`). The graph is resynced into the queue periodically,
//! so a missed wake-up costs at most one resync period. Nothing is decided before every
//! kind has been listed once, so a dependent is never judged against a half-built graph.

mod attempt;
mod finalizers;
mod graph;
mod monitors;
mod queue;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Client;
use minik8s_api::resource::ResourceInfo;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

use graph::{Graph, Uid};
use monitors::Change;
use queue::WorkQueue;

pub use graph::{FOREGROUND, ORPHAN};

/// Objects decided about at once (Kubernetes' --concurrent-gc-syncs is 20; the work is
/// API calls, so this bounds requests in flight rather than CPU).
const WORKERS: usize = 16;
/// How often every object with owners or a collector finalizer is looked at again.
const RESYNC: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum GarbageError {
    #[error("looking up owner {kind} {name} of {dependent}: {source}")]
    Owner {
        kind: &'static str,
        name: String,
        dependent: String,
        source: kube::Error,
    },
    #[error("deleting {object}: {source}")]
    Delete { object: String, source: kube::Error },
    #[error("removing owner references from {dependent}: {source}")]
    Orphan {
        dependent: String,
        source: kube::Error,
    },
    #[error("listing {kind} objects owned by {owner}: {source}")]
    Dependents {
        kind: &'static str,
        owner: String,
        source: kube::Error,
    },
    #[error("removing finalizer {finalizer} from {object}: {source}")]
    Finalizer {
        object: String,
        finalizer: &'static str,
        source: kube::Error,
    },
}

/// What the workers share.
struct Ctx {
    client: Client,
    graph: Mutex<Graph>,
    queue: Arc<WorkQueue<Uid>>,
}

impl Ctx {
    /// The graph, locked; never held across an await.
    fn graph(&self) -> MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A 404 (already gone) is an answer, not a failure. A 409 is a failure: the object
/// changed since it was judged, and is judged again after a backoff.
pub(crate) fn unless_gone<T>(r: Result<T, kube::Error>) -> Result<Option<T>, kube::Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs the collector until `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let stop = shutdown.child_token();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        graph: Mutex::new(Graph::default()),
        queue: WorkQueue::new(stop.clone()),
    });
    let (synced_tx, synced) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tasks.spawn(build(ctx.clone(), monitors::watch_all(&client), synced_tx));
    for _ in 0..WORKERS {
        tasks.spawn(work(ctx.clone(), synced.clone()));
    }
    tasks.spawn(resync(ctx, synced));
    tokio::select! {
        _ = tasks.join_next() => {}
        _ = shutdown.cancelled() => {}
    }
    // Dropping the set aborts the tasks; stopping the queue's delayed adds with them.
    stop.cancel();
}

/// Keeps the graph current from the monitors and queues what each change concerns.
async fn build(
    ctx: Arc<Ctx>,
    mut changes: impl Stream<Item = (&'static ResourceInfo, Change)> + Unpin,
    synced: watch::Sender<bool>,
) {
    let kinds = monitors::kinds().count();
    let mut listing: HashMap<(&str, &str), HashSet<Uid>> = HashMap::new();
    let mut listed: HashSet<(&str, &str)> = HashSet::new();
    while let Some((kind, change)) = changes.next().await {
        let key = (kind.group, kind.plural);
        let first_list_done = matches!(change, Change::ListDone) && listed.insert(key);
        let wake = apply(&mut ctx.graph(), &mut listing, kind, change);
        for uid in wake {
            ctx.queue.add(uid);
        }
        if first_list_done && listed.len() == kinds {
            let attention = ctx.graph().attention();
            info!(
                objects = ctx.graph().len(),
                "garbage collector graph synced"
            );
            for uid in attention {
                ctx.queue.add(uid);
            }
            let _ = synced.send(true);
        }
    }
}

/// Applies one change to the graph; returns the uids to queue.
fn apply(
    graph: &mut Graph,
    listing: &mut HashMap<(&'static str, &'static str), HashSet<Uid>>,
    kind: &'static ResourceInfo,
    change: Change,
) -> Vec<Uid> {
    let key = (kind.group, kind.plural);
    match change {
        Change::Applied(uid, entry) => graph.upsert(uid, entry),
        Change::Deleted(uid) => graph.remove(&uid),
        Change::Listing => {
            listing.insert(key, HashSet::new());
            Vec::new()
        }
        Change::Listed(uid, entry) => {
            listing.entry(key).or_default().insert(uid.clone());
            graph.upsert(uid, entry)
        }
        // What a relist no longer shows was deleted while the watch was down.
        Change::ListDone => {
            let seen = listing.remove(&key).unwrap_or_default();
            let mut wake = Vec::new();
            for uid in graph.uids_of_kind(kind) {
                if !seen.contains(&uid) {
                    wake.extend(graph.remove(&uid));
                }
            }
            wake
        }
    }
}

async fn work(ctx: Arc<Ctx>, mut synced: watch::Receiver<bool>) {
    if synced.wait_for(|s| *s).await.is_err() {
        return;
    }
    loop {
        let uid = ctx.queue.next().await;
        let span = tracing::debug_span!("garbage collector", uid = %uid);
        match attempt::attempt(&ctx, &uid).instrument(span).await {
            Ok(()) => ctx.queue.forget(&uid),
            Err(e) => {
                debug!(error = %e, "garbage collector attempt failed; retrying");
                ctx.queue.retry(uid.clone());
            }
        }
        ctx.queue.done(&uid);
    }
}

async fn resync(ctx: Arc<Ctx>, mut synced: watch::Receiver<bool>) {
    if synced.wait_for(|s| *s).await.is_err() {
        return;
    }
    loop {
        tokio::time::sleep(RESYNC).await;
        let attention = ctx.graph().attention();
        for uid in attention {
            ctx.queue.add(uid);
        }
    }
}
