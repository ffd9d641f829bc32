//! Graceful termination of a pod whose deletionTimestamp is set: its containers stop within
//! the grace period (each after its preStop hook), its sandbox goes, then the final delete
//! through the API.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};

use super::worker::Worker;
use super::{lifecycle, spec};
use crate::cri::types as cri;
use crate::Error;

impl Worker {
    /// Graceful termination: stop containers within the grace period, tear down the sandbox,
    /// then the final delete (grace 0, uid precondition) so the object goes away.
    pub(super) async fn terminate(&mut self, pod: &Pod) -> Result<(), Error> {
        let pod_ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or(pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        let containers = self.cri.containers(Some(&self.uid)).await?;
        let mut stops = Vec::new();
        for c in containers {
            if c.state != cri::ContainerState::ContainerRunning as i32 {
                continue;
            }
            let name = c
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
            self.event(
                pod,
                Some(&name),
                false,
                "Killing",
                format!("Stopping container {name}"),
            );
            let spec = lifecycle::container_spec(pod, &name);
            let this = &*self;
            let pod_ip = &pod_ip;
            stops.push(async move { this.kill(pod, spec, &c.id, grace, pod_ip).await });
        }
        for r in futures::future::join_all(stops).await {
            r?;
        }
        for s in self.cri.sandboxes(Some(&self.uid)).await? {
            self.cri.stop_sandbox(&s.id).await?;
            self.cri.remove_sandbox(&s.id).await?;
        }
        let _ = std::fs::remove_dir_all(spec::pod_dir(&self.ctx.config, pod));
        let _ = std::fs::remove_dir_all(spec::log_dir(&self.ctx.config, pod));
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), spec::namespace(pod));
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(spec::name(pod), &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(Error::api(format!("delete pod {}", spec::name(pod)), e)),
        }
    }
}
