//! The minik8s scheduler: binds pending pods to the best feasible node.
//!
//! Watchers ([`informer`]) keep a [`cache::Cache`] of nodes and placed pods and feed pending
//! pods to a [`queue::SchedulingQueue`]; the scheduling loop ([`scheduler`]) pops a pod, runs
//! the filter and score [`plugins`] over the cache ([`schedule::Algorithm`]), assumes the pod
//! on the chosen node and hands the binding to a bounded pool of concurrent [`binder`]s. With
//! `--leader-elect` it acts only while holding a Lease (`minik8s-leader`).

pub mod binder;
pub mod cache;
pub mod informer;
pub mod node_info;
pub mod options;
pub mod plugins;
pub mod pod_info;
pub mod queue;
pub mod schedule;
pub mod scheduler;
pub mod unschedulable;

pub use options::{Args, Config};
pub use scheduler::{Scheduler, SchedulerError, Stats};

use tokio_util::sync::CancellationToken;

/// Runs the scheduler until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), SchedulerError> {
    Scheduler::connect(config).await?.run(shutdown).await
}
