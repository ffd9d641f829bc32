//! `minik8s server` and `minik8s agent`, k3s style: the control plane in one process, and a
//! node that joins it with a token.
//!
//! - [`server`]: API server, scheduler and controller-manager as tasks under one shutdown
//!   token, plus a local [`agent`] unless `--disable-agent`; prints the join command.
//! - [`agent`]: [`join`]s the cluster (CA fetched from `/cacerts`, pinned by the [`token`]),
//!   then runs the CRI runtime and the nodelet.
//!
//! As in k3s, if one component stops the whole process stops: [`supervise`] cancels the
//! others and reports the first error.

pub mod agent;
pub mod join;
pub mod server;
pub mod token;

pub use agent::{AgentArgs, AgentConfig, AgentError, Credentials};
pub use server::{ServerArgs, ServerConfig, ServerError};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Waits for every task; the first to end (for any reason) cancels `stop`, so the others
/// shut down too. Returns the first error, in task order.
pub(crate) async fn supervise<E: std::fmt::Display + Send + 'static>(
    stop: CancellationToken,
    tasks: Vec<(&'static str, JoinHandle<Result<(), E>>)>,
    panicked: fn(&'static str) -> E,
) -> Result<(), E> {
    let mut waits = Vec::new();
    for (name, task) in tasks {
        let stop = stop.clone();
        waits.push(tokio::spawn(async move {
            let result = task.await;
            if !stop.is_cancelled() {
                tracing::warn!(component = name, "component stopped; stopping the others");
                stop.cancel();
            }
            (name, result)
        }));
    }
    let mut first = Ok(());
    for wait in waits {
        let (name, result) = match wait.await {
            Ok(r) => r,
            Err(_) => continue,
        };
        let result = result.unwrap_or_else(|_| Err(panicked(name)));
        if first.is_ok() {
            first = result;
        } else if let Err(e) = result {
            tracing::warn!(component = name, error = %e, "component failed");
        }
    }
    first
}
