//! The namespace controller (Kubernetes' NamespaceController): a namespace being deleted
//! (deletionTimestamp set, phase Terminating) with the `kubernetes` finalizer in
//! `spec.finalizers` is emptied — every namespaced object deleted, pods gracefully — with
//! the NamespaceDeletion…/NamespaceContentRemaining/NamespaceFinalizersRemaining
//! conditions kept current; once nothing is left, the controller clears its finalizer
//! through the `finalize` subresource and the API server removes the namespace.

mod conditions;
mod content;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, NamespaceStatus};
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

pub use conditions::{conditions_for, Tally};

/// The finalizer the namespace controller owns in `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";
/// How soon to look again while content remains (graceful pod deletions, finalizers).
const RECHECK: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("writing the deletion conditions of namespace {namespace}: {source}")]
    Status {
        namespace: String,
        source: kube::Error,
    },
    #[error("finalizing namespace {namespace}: {source}")]
    Finalize {
        namespace: String,
        source: kube::Error,
    },
}

pub async fn run(client: Client, shutdown: CancellationToken) {
    Controller::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(shutdown.cancelled_owned())
    .run(
        reconcile,
        |_, _, _| Action::requeue(Duration::from_secs(1)),
        Arc::new(client),
    )
    .for_each(|r| async move {
        if let Err(e) = r {
            debug!(error = %e, "namespace reconcile");
        }
    })
    .await;
}

fn spec_finalizers(ns: &Namespace) -> Vec<String> {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default()
}

async fn reconcile(ns: Arc<Namespace>, client: Arc<Client>) -> Result<Action, NamespaceError> {
    let finalizers = spec_finalizers(&ns);
    if ns.metadata.deletion_timestamp.is_none() || !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let tally = content::delete_all(&client, &name).await;
    write_conditions(&client, &ns, &tally).await?;
    if !tally.is_empty() {
        debug!(namespace = %name, remaining = ?tally.remaining, "namespace content remains");
        return Ok(Action::requeue(RECHECK));
    }
    info!(namespace = %name, "namespace empty; removing its finalizer");
    let api: Api<Namespace> = Api::all((*client).clone());
    // The latest version: the conditions were just written.
    let Some(mut latest) = api
        .get_opt(&name)
        .await
        .map_err(|source| NamespaceError::Finalize {
            namespace: name.clone(),
            source,
        })?
    else {
        return Ok(Action::await_change());
    };
    let rest: Vec<String> = spec_finalizers(&latest)
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect();
    latest.spec = Some(NamespaceSpec {
        finalizers: Some(rest),
    });
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &latest)
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(source) => Err(NamespaceError::Finalize {
            namespace: name,
            source,
        }),
    }
}

/// Writes the deletion conditions when they changed (phase stays Terminating).
async fn write_conditions(
    client: &Client,
    ns: &Namespace,
    tally: &Tally,
) -> Result<(), NamespaceError> {
    let wanted = conditions_for(tally);
    let current = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if conditions::same(&current, &wanted) {
        return Ok(());
    }
    let mut updated = ns.clone();
    updated.status = Some(NamespaceStatus {
        phase: Some("Terminating".into()),
        conditions: Some(wanted),
    });
    let api: Api<Namespace> = Api::all(client.clone());
    match api
        .replace_status(&ns.name_any(), &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(()),
        // A newer version comes back as an event and is judged again.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(source) => Err(NamespaceError::Status {
            namespace: ns.name_any(),
            source,
        }),
    }
}
