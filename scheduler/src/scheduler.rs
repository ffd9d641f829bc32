//! The scheduler: connects, optionally waits for leadership, starts the watchers, waits for
//! their first complete lists, then runs the scheduling loop — one pod at a time against the
//! cache, bindings concurrently (at most `parallel_bindings` in flight).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::Client;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cache::Cache;
use crate::options::Config;
use crate::queue::SchedulingQueue;
use crate::schedule::Algorithm;
use crate::{binder, informer, unschedulable};
use minik8s_leader::{LeaderElector, LeaderError};

/// The name kube-scheduler answers to; pods asking for it are ours too.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// How long in-flight bindings may finish after the loop stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: KubeconfigError,
    },
    #[error("building the API client from {path}: {source}")]
    Client { path: String, source: kube::Error },
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// Counters, for logs, tests and the benchmark.
#[derive(Debug, Default)]
pub struct Stats {
    pub bound: AtomicU64,
    pub bind_failures: AtomicU64,
    pub unschedulable: AtomicU64,
    /// Microseconds the scheduling loop spent waiting for a free binding slot (the API
    /// server is the limit), waiting for a pod (the queue was empty), and scheduling.
    pub waiting_for_binding_slot_micros: AtomicU64,
    pub waiting_for_pod_micros: AtomicU64,
    pub scheduling_micros: AtomicU64,
}

impl Stats {
    pub fn bound(&self) -> u64 {
        self.bound.load(Ordering::Relaxed)
    }
}

/// State shared by the watchers, the scheduling loop and the binders while leading.
pub struct Shared {
    pub client: Client,
    pub config: Config,
    pub queue: SchedulingQueue,
    pub stats: Arc<Stats>,
    cache: Mutex<Cache>,
}

impl Shared {
    pub fn new(client: Client, config: Config, stats: Arc<Stats>) -> Shared {
        Shared {
            client,
            config,
            queue: SchedulingQueue::default(),
            stats,
            cache: Mutex::default(),
        }
    }

    /// The cache; never held across an await.
    pub fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_ours(&self, scheduler_name: &str) -> bool {
        scheduler_name == self.config.scheduler_name || scheduler_name == DEFAULT_SCHEDULER
    }
}

/// A configured scheduler, connected to its API server.
pub struct Scheduler {
    client: Client,
    config: Config,
    stats: Arc<Stats>,
}

impl Scheduler {
    pub async fn connect(config: Config) -> Result<Scheduler, SchedulerError> {
        let path = config.kubeconfig.display().to_string();
        let kubeconfig = Kubeconfig::read_from(&config.kubeconfig).map_err(|source| {
            SchedulerError::Kubeconfig {
                path: path.clone(),
                source,
            }
        })?;
        let client_config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|source| SchedulerError::Kubeconfig {
                    path: path.clone(),
                    source,
                })?;
        let client = Client::try_from(client_config)
            .map_err(|source| SchedulerError::Client { path, source })?;
        Ok(Scheduler {
            client,
            config,
            stats: Arc::default(),
        })
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Schedules until `shutdown`; with leader election, only while holding the Lease.
    /// Losing the Lease is an error (like kube-scheduler, which exits then).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), SchedulerError> {
        let Some(lease) = self.config.leader.clone() else {
            lead(self.client, self.config, self.stats, shutdown).await;
            return Ok(());
        };
        let elector = LeaderElector::new(self.client.clone(), lease);
        let (client, config, stats) = (self.client, self.config, self.stats);
        elector
            .run(shutdown, move |stop| lead(client, config, stats, stop))
            .await?;
        Ok(())
    }
}

/// Watches, waits for the caches to sync, and schedules until `stop`.
async fn lead(client: Client, config: Config, stats: Arc<Stats>, stop: CancellationToken) {
    let shared = Arc::new(Shared::new(client, config, stats));
    let (nodes_synced, mut nodes_rx) = watch::channel(false);
    let (pods_synced, mut pods_rx) = watch::channel(false);
    let mut watchers = JoinSet::new();
    watchers.spawn(informer::watch_nodes(shared.clone(), nodes_synced));
    watchers.spawn(informer::watch_pods(shared.clone(), pods_synced));
    // Nothing is scheduled before both caches hold a complete list.
    let synced = async {
        let _ = nodes_rx.wait_for(|s| *s).await;
        let _ = pods_rx.wait_for(|s| *s).await;
    };
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = synced => {}
    }
    info!(
        nodes = shared.cache().node_count(),
        pending = shared.queue.len(),
        "caches synced; scheduling"
    );
    scheduling_loop(shared, &stop).await;
    watchers.abort_all();
}

/// Where the scheduling loop spends its time, logged every [`LoopTiming::EVERY`] attempts
/// at debug level: waiting for a binding slot means the API server is the limit, waiting for
/// a pod means the queue ran dry, the rest is the algorithm itself.
#[derive(Debug, Default)]
struct LoopTiming {
    attempts: u64,
    waiting_for_binding_slot: Duration,
    waiting_for_pod: Duration,
    scheduling: Duration,
}

impl LoopTiming {
    const EVERY: u64 = 1000;

    fn record(&mut self, slot: Duration, pod: Duration, scheduling: Duration) {
        self.attempts += 1;
        self.waiting_for_binding_slot += slot;
        self.waiting_for_pod += pod;
        self.scheduling += scheduling;
        if self.attempts.is_multiple_of(Self::EVERY) {
            debug!(
                attempts = self.attempts,
                waiting_for_binding_slot = ?self.waiting_for_binding_slot,
                waiting_for_pod = ?self.waiting_for_pod,
                scheduling = ?self.scheduling,
                "scheduling loop time"
            );
            *self = LoopTiming {
                attempts: self.attempts,
                ..Default::default()
            };
        }
    }
}

async fn scheduling_loop(shared: Arc<Shared>, stop: &CancellationToken) {
    let permits = Arc::new(Semaphore::new(shared.config.parallel_bindings));
    let mut algorithm = Algorithm::new(
        shared.config.strategy,
        shared.config.percentage_of_nodes_to_score,
    );
    let mut in_flight = JoinSet::new();
    let mut timing = LoopTiming::default();
    loop {
        let t0 = Instant::now();
        let permit = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let t1 = Instant::now();
        let attempt = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            p = shared.queue.pop() => p,
        };
        let (pod, cycle) = (attempt.pod, attempt.cycle);
        let t2 = Instant::now();
        while in_flight.try_join_next().is_some() {}
        let outcome = {
            let mut cache = shared.cache();
            if cache.is_placed(&pod.key) {
                None
            } else {
                let result = algorithm.schedule(&cache, &pod);
                if let Ok(node) = &result {
                    cache.assume(pod.clone(), node);
                }
                Some(result)
            }
        };
        let task_shared = shared.clone();
        match outcome {
            None => shared.queue.done(&pod.key),
            Some(Ok(node)) => {
                in_flight.spawn(async move {
                    binder::bind(task_shared, pod, node, cycle).await;
                    drop(permit);
                });
            }
            Some(Err(fit)) => {
                // A node or pod event since `pop` (even while the cache was read) is
                // caught by the cycle: the pod is retried at once, not after its backoff.
                shared.queue.failed(&pod.key, cycle);
                shared.stats.unschedulable.fetch_add(1, Ordering::Relaxed);
                let message = fit.message();
                info!(pod = %pod.key, %message, "unschedulable");
                in_flight.spawn(async move {
                    unschedulable::report(&task_shared, &pod, &message).await;
                    drop(permit);
                });
            }
        }
        let scheduling = t2.elapsed();
        let stats = &shared.stats;
        let micros = |d: Duration| d.as_micros() as u64;
        stats
            .waiting_for_binding_slot_micros
            .fetch_add(micros(t1 - t0), Ordering::Relaxed);
        stats
            .waiting_for_pod_micros
            .fetch_add(micros(t2 - t1), Ordering::Relaxed);
        stats
            .scheduling_micros
            .fetch_add(micros(scheduling), Ordering::Relaxed);
        timing.record(t1 - t0, t2 - t1, scheduling);
    }
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("bindings still in flight at stop were abandoned");
        in_flight.abort_all();
    }
}
