//! Container lifecycle hooks, run as the kubelet runs them (kuberuntime_container.go and
//! lifecycle/handlers.go):
//!
//! - `postStart` right after the container starts. The pod's sync waits for it, so the
//!   container is reported running only once it has returned; if it fails the container is
//!   killed (event `FailedPostStartHook`) and restarts as the pod's restartPolicy says.
//! - `preStop` before a container is stopped — pod deletion, a failed liveness or startup probe,
//!   a failed postStart. It gets the grace period, and what it used is taken from the grace
//!   period SIGTERM then has (at least 2 s, the kubelet's minimum); a failure
//!   (`FailedPreStopHook`) does not stop the kill.
//!
//! Handlers: `exec` through CRI ExecSync, `httpGet` (`http_action`; any HTTP response is
//! success, as for the kubelet: only a failed request fails the hook), `sleep`. `tcpSocket`
//! is accepted by the API for compatibility but, as in Kubernetes, cannot run.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::sync::watch;

use super::http_action::HttpGet;
use super::probes;
use super::spec;
use super::worker::Worker;
use crate::cri::Cri;
use crate::Error;

/// The kubelet's minimumGracePeriodInSeconds: what a container still gets after its preStop,
/// and the least any kill but the pod's deletion gives it.
pub const MIN_GRACE_SECONDS: i64 = 2;

/// The container a hook runs for.
pub struct Target<'a> {
    pub cri: &'a mut Cri,
    pub container_id: &'a str,
    pub pod_ip: &'a str,
}

/// Runs a postStart or preStop `handler` for container `c`; the error is the kubelet's
/// message, which goes into the event. `limit` bounds an exec in the runtime (0: none).
pub async fn run(
    handler: &LifecycleHandler,
    pod: &Pod,
    c: &Container,
    t: Target<'_>,
    limit: Duration,
) -> Result<(), String> {
    let who = format!(
        "for Container {:?} in Pod \"{}_{}({})\"",
        c.name,
        spec::name(pod),
        spec::namespace(pod),
        spec::uid(pod)
    );
    if let Some(e) = &handler.exec {
        let cmd = e.command.clone().unwrap_or_default();
        let shown = format!("[{}]", cmd.join(" "));
        let joined = cmd.join(" ");
        let result = t
            .cri
            .exec_sync(t.container_id, cmd, limit.as_secs() as i64)
            .await;
        return match result {
            Ok((0, _)) => Ok(()),
            Ok((code, out)) => Err(format!(
                "Exec lifecycle hook ({shown}) {who} failed - error: command '{joined}' exited with {code}, message: {:?}",
                String::from_utf8_lossy(&out).trim_end()
            )),
            Err(e) => Err(format!(
                "Exec lifecycle hook ({shown}) {who} failed - error: {e}, message: \"\""
            )),
        };
    }
    if let Some(h) = &handler.http_get {
        let path = h.path.clone().unwrap_or_default();
        let fail = |e: String| format!("HTTP lifecycle hook ({path}) {who} failed - error: {e}");
        let host = h
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| t.pod_ip.to_string());
        if host.is_empty() {
            return Err(fail("the pod has no IP".into()));
        }
        let port = match &h.port {
            IntOrString::String(s) if s.is_empty() => 80,
            p => probes::port(c, p).map_err(fail)?,
        };
        let target = format!("/{}", path.trim_start_matches('/'));
        let get = HttpGet::for_action(h, &host, port, &target, "kube-lifecycle");
        return get.send().await.map(|_| ()).map_err(fail);
    }
    if let Some(s) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64)).await;
        return Ok(());
    }
    Err(format!(
        "Cannot run handler: invalid handler {who}: only exec, httpGet and sleep hooks run"
    ))
}

impl Worker {
    /// Runs the container's postStart hook, if any, after it started; on failure records
    /// `FailedPostStartHook` and kills the container (the next observation sees it exited).
    pub(super) async fn post_start(&mut self, pod: &Pod, c: &Container, id: &str, pod_ip: &str) {
        let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
            return;
        };
        let target = Target {
            cri: &mut self.cri,
            container_id: id,
            pod_ip,
        };
        // The hook has no time limit, as in Kubernetes; the pod's deletion ends a hook that
        // hangs (the kubelet cancels the sync of a pod it is to kill).
        let deleted = deletion(self.updates.clone());
        let result = tokio::select! {
            r = run(handler, pod, c, target, Duration::ZERO) => r,
            _ = deleted => {
                tracing::info!(pod = %spec::name(pod), container = %c.name,
                    "postStart hook abandoned: the pod is being deleted");
                return;
            }
        };
        let Err(msg) = result else {
            return;
        };
        tracing::warn!(pod = %spec::name(pod), container = %c.name, error = %msg, "postStart hook failed");
        self.event(pod, Some(&c.name), true, "FailedPostStartHook", msg);
        let grace = grace_period(pod, None);
        if let Err(e) = self.kill(pod, Some(c), id, grace, pod_ip).await {
            tracing::warn!(error = %e, "kill container after its postStart hook failed");
        }
    }

    /// Stops a container as the kubelet's killContainer does: its preStop hook first, given
    /// the grace period, then StopContainer with the rest of it (at least
    /// [`MIN_GRACE_SECONDS`] once a hook ran). `c` is the container's spec, if the pod still
    /// has one of that name.
    pub(super) async fn kill(
        &self,
        pod: &Pod,
        c: Option<&Container>,
        id: &str,
        grace: i64,
        pod_ip: &str,
    ) -> Result<(), Error> {
        // A clone: kills of one pod's containers run at once.
        let mut cri = self.cri.clone();
        let mut grace = grace;
        let pre_stop = c.and_then(|c| Some((c, c.lifecycle.as_ref()?.pre_stop.as_ref()?)));
        if let Some((c, handler)) = pre_stop.filter(|_| grace > 0) {
            let began = Instant::now();
            let limit = Duration::from_secs(grace as u64);
            let target = Target {
                cri: &mut cri,
                container_id: id,
                pod_ip,
            };
            match tokio::time::timeout(limit, run(handler, pod, c, target, limit)).await {
                Ok(Ok(())) => {}
                Ok(Err(msg)) => {
                    tracing::warn!(pod = %spec::name(pod), container = %c.name, error = %msg, "preStop hook failed");
                    self.event(pod, Some(&c.name), true, "FailedPreStopHook", msg);
                }
                Err(_) => {
                    tracing::info!(pod = %spec::name(pod), container = %c.name, "preStop hook not completed in the grace period");
                }
            }
            // Whole seconds used, rounded up as the kubelet counts them.
            let used = began.elapsed().as_secs_f64().ceil() as i64;
            grace = (grace - used).max(MIN_GRACE_SECONDS);
        }
        cri.stop_container(id, grace).await
    }
}

/// Resolves once the pod has a deletionTimestamp; never without a receiver or once the
/// worker's sender is gone (the worker is being stopped then anyway).
async fn deletion(updates: Option<watch::Receiver<Pod>>) {
    let Some(mut updates) = updates else {
        return std::future::pending().await;
    };
    loop {
        if updates
            .borrow_and_update()
            .metadata
            .deletion_timestamp
            .is_some()
        {
            return;
        }
        if updates.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// The grace period a container is stopped with when the pod is not being deleted (a failed
/// probe or hook), as the kubelet's killContainer sets it without an override: the failing
/// probe's own terminationGracePeriodSeconds, else the pod's (30 s by default), and never
/// under [`MIN_GRACE_SECONDS`].
pub fn grace_period(pod: &Pod, probe: Option<i64>) -> i64 {
    probe
        .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
        .unwrap_or(30)
        .max(MIN_GRACE_SECONDS)
}

/// The spec of the pod's container (or restartable init container) named `name`.
pub fn container_spec<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(grace: Option<i64>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"terminationGracePeriodSeconds": grace, "containers": []},
        }))
        .unwrap()
    }

    #[test]
    fn a_kill_outside_deletion_takes_the_probes_grace_else_the_pods_and_at_least_2_s() {
        assert_eq!(grace_period(&pod(None), None), 30);
        assert_eq!(grace_period(&pod(Some(10)), None), 10);
        assert_eq!(grace_period(&pod(Some(10)), Some(4)), 4, "the probe's own");
        assert_eq!(grace_period(&pod(Some(1)), None), MIN_GRACE_SECONDS);
        assert_eq!(grace_period(&pod(Some(10)), Some(0)), MIN_GRACE_SECONDS);
    }
}
