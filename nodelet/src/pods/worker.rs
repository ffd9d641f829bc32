//! One worker per pod: a task that syncs its pod whenever the pod object changes or the relist
//! period passes, so two syncs of one pod never run at once.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::status::{self, Observed, View};
use super::volumes::{self, Sources};
use super::{admission, events, probes, spec};
use crate::cri::{types as cri, Cri};
use crate::{Config, Error};

/// What every worker shares.
pub struct Ctx {
    pub client: kube::Client,
    pub config: Config,
    /// The runtime's name, the scheme of container ids (`minik8s://<id>`).
    pub runtime: String,
    /// The Services whose variables containers start with.
    pub services: super::service_env::Services,
}

/// CrashLoopBackOff: 10 s doubling to 5 min, reset after 10 min of running (kubelet).
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);

pub struct Worker {
    ctx: Arc<Ctx>,
    cri: Cri,
    uid: String,
    /// Delay to wait after the last exit before the next restart, per container.
    backoff: HashMap<String, Duration>,
    waiting: HashMap<String, (String, String)>,
    probes: probes::Probes,
    last_status: Option<Value>,
    /// Set when admission rejected the pod: nothing of it ever runs.
    rejection: Option<admission::Rejection>,
}

impl Worker {
    pub fn new(ctx: Arc<Ctx>, cri: Cri, uid: String) -> Worker {
        Worker {
            ctx,
            cri,
            uid,
            backoff: HashMap::new(),
            waiting: HashMap::new(),
            probes: probes::Probes::default(),
            last_status: None,
            rejection: None,
        }
    }

    /// A worker for a pod admission rejected.
    pub fn rejected(mut self, rejection: Option<admission::Rejection>) -> Worker {
        self.rejection = rejection;
        self
    }

    /// Syncs on every pod change and every relist period until cancelled or the pod is gone.
    pub async fn run(
        mut self,
        mut pod: watch::Receiver<Pod>,
        cancel: CancellationToken,
        done: mpsc::UnboundedSender<String>,
    ) {
        let mut tick = tokio::time::interval(self.ctx.config.relist);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = pod.changed() => if changed.is_err() { return },
                _ = tick.tick() => {}
            }
            let current = pod.borrow_and_update().clone();
            let result = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.sync(&current) => r,
            };
            match result {
                Ok(true) => {
                    let _ = done.send(self.uid.clone());
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(pod = %spec::name(&current), error = %e, "sync pod"),
            }
        }
    }

    /// One sync; true when the pod is finished with (deleted).
    async fn sync(&mut self, pod: &Pod) -> Result<bool, Error> {
        if pod.metadata.deletion_timestamp.is_some() {
            self.terminate(pod).await?;
            return Ok(true);
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let terminal = matches!(phase, Some("Succeeded" | "Failed"));
        if let Some(r) = &self.rejection {
            if !terminal {
                admission::reject(&self.ctx.client, &self.ctx.config.node_name, pod, r).await?;
            }
            return Ok(false);
        }
        let sandboxes = self.cri.sandboxes(Some(&self.uid)).await?;
        let ready = sandboxes
            .iter()
            .filter(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
            .max_by_key(|s| s.created_at);
        let (sandbox_id, attempt) = match ready {
            Some(s) => (s.id.clone(), s.metadata.as_ref().map_or(0, |m| m.attempt)),
            None if terminal => return Ok(false),
            None => self.new_sandbox(pod, &sandboxes).await?,
        };
        let sandbox_config = spec::sandbox_config(&self.ctx.config, pod, attempt);
        let net = self.cri.sandbox_status(&sandbox_id).await?.network;
        let pod_ip = net.map(|n| n.ip).unwrap_or_default();
        let mut observed = self.observe(&sandbox_id).await?;
        let mut init = InitState::default();
        if !terminal {
            let run = RunCtx {
                pod,
                sandbox_id: &sandbox_id,
                sandbox_config: &sandbox_config,
                pod_ip: &pod_ip,
            };
            let started = self.advance(&run, &observed, &mut init).await?;
            if started {
                observed = self.observe(&sandbox_id).await?;
            }
            self.probe(&run, &observed).await;
        } else {
            init.done = pod_init_done(pod);
        }
        let view = View {
            observed: &observed,
            waiting: &self.waiting,
            ready: &self.probes.ready,
            runtime: &self.ctx.runtime,
            pod_ip: &pod_ip,
            host_ip: &self.ctx.config.node_ip.to_string(),
            init_done: init.done,
            init_failed: init.failed,
        };
        let status = status::compute(pod, &view);
        self.write_status(pod, status).await?;
        Ok(false)
    }

    async fn new_sandbox(
        &mut self,
        pod: &Pod,
        old: &[cri::PodSandbox],
    ) -> Result<(String, u32), Error> {
        // A dead sandbox is replaced, with its containers (kubelet: SandboxChanged).
        let attempt = old
            .iter()
            .filter_map(|s| s.metadata.as_ref().map(|m| m.attempt + 1))
            .max()
            .unwrap_or(0);
        for s in old {
            self.cri.stop_sandbox(&s.id).await?;
            self.cri.remove_sandbox(&s.id).await?;
        }
        let config = spec::sandbox_config(&self.ctx.config, pod, attempt);
        let dir = PathBuf::from(&config.log_directory);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create pod log dir", &dir, e))?;
        let id = self.cri.run_sandbox(config).await?;
        tracing::info!(pod = %spec::name(pod), sandbox = %id, "sandbox running");
        Ok((id, attempt))
    }

    /// The newest and previous instance of each container name in the sandbox; older exited
    /// instances are removed (the kubelet keeps one dead instance per container).
    async fn observe(&mut self, sandbox_id: &str) -> Result<HashMap<String, Observed>, Error> {
        let mut all = self.cri.containers(Some(&self.uid)).await?;
        all.retain(|c| c.pod_sandbox_id == sandbox_id);
        let mut by_name: BTreeMap<String, Vec<cri::Container>> = BTreeMap::new();
        for c in all {
            let name = c
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
            by_name.entry(name).or_default().push(c);
        }
        let mut out = HashMap::new();
        for (name, mut list) in by_name {
            list.sort_by_key(|c| std::cmp::Reverse(c.metadata.as_ref().map_or(0, |m| m.attempt)));
            for old in list.iter().skip(2) {
                if old.state == cri::ContainerState::ContainerExited as i32 {
                    let _ = self.cri.remove_container(&old.id).await;
                }
            }
            let mut o = Observed::default();
            if let Some(c) = list.first() {
                o.latest = Some(self.cri.container_status(&c.id).await?);
            }
            if let Some(c) = list.get(1) {
                o.previous = self.cri.container_status(&c.id).await.ok();
            }
            out.insert(name, o);
        }
        Ok(out)
    }

    /// Starts what should run next: init containers in order, then the containers.
    /// Returns whether anything was started.
    async fn advance(
        &mut self,
        run: &RunCtx<'_>,
        observed: &HashMap<String, Observed>,
        init: &mut InitState,
    ) -> Result<bool, Error> {
        let spec = run.pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        for c in spec.init_containers.iter().flatten() {
            let o = observed.get(&c.name).cloned().unwrap_or_default();
            match &o.latest {
                Some(s) if o.exited() && s.exit_code == 0 => continue,
                Some(s) if o.exited() => {
                    if policy == "Never" {
                        init.failed = true;
                        return Ok(false);
                    }
                    return self.restart(run, c, s, o.restart_count() + 1).await;
                }
                Some(s) if o.running() => {
                    let _ = s;
                    return Ok(false);
                }
                Some(s) => return self.start_created(run.pod, c, &s.id).await,
                None => return self.start(run, c, 0).await,
            }
        }
        init.done = true;
        let mut started = false;
        for c in &spec.containers {
            let o = observed.get(&c.name).cloned().unwrap_or_default();
            started |= match &o.latest {
                None => self.start(run, c, 0).await?,
                Some(s) if o.exited() => {
                    let again = match policy.as_str() {
                        "Never" => false,
                        "OnFailure" => s.exit_code != 0,
                        _ => true,
                    };
                    if again {
                        self.restart(run, c, s, o.restart_count() + 1).await?
                    } else {
                        self.waiting.remove(&c.name);
                        false
                    }
                }
                Some(s) if !o.running() => self.start_created(run.pod, c, &s.id).await?,
                Some(_) => {
                    self.waiting.remove(&c.name);
                    false
                }
            };
        }
        Ok(started)
    }

    /// Restarts an exited container unless it is in back-off.
    async fn restart(
        &mut self,
        run: &RunCtx<'_>,
        c: &Container,
        last: &cri::ContainerStatus,
        attempt: u32,
    ) -> Result<bool, Error> {
        let ran = Duration::from_nanos((last.finished_at - last.started_at).max(0) as u64);
        if ran >= BACKOFF_RESET {
            self.backoff.remove(&c.name);
        }
        if let Some(delay) = self.backoff.get(&c.name).copied() {
            let finished = UNIX_EPOCH + Duration::from_nanos(last.finished_at.max(0) as u64);
            if SystemTime::now() < finished + delay {
                let msg = format!(
                    "back-off {}s restarting failed container={} pod={}_{}({})",
                    delay.as_secs(),
                    c.name,
                    spec::name(run.pod),
                    spec::namespace(run.pod),
                    self.uid
                );
                let first = self
                    .waiting
                    .get(&c.name)
                    .is_none_or(|(r, _)| r != "CrashLoopBackOff");
                if first {
                    self.event(run.pod, Some(&c.name), true, "BackOff", msg.clone());
                }
                self.waiting
                    .insert(c.name.clone(), ("CrashLoopBackOff".into(), msg));
                return Ok(false);
            }
        }
        let next = self
            .backoff
            .get(&c.name)
            .map_or(BACKOFF_START, |d| (*d * 2).min(BACKOFF_MAX));
        let started = self.start(run, c, attempt).await?;
        if started {
            self.backoff.insert(c.name.clone(), next);
        }
        Ok(started)
    }

    fn event(&self, pod: &Pod, c: Option<&str>, warning: bool, reason: &str, msg: String) {
        events::record(
            &self.ctx.client,
            &self.ctx.config.node_name,
            pod,
            c,
            warning,
            reason,
            msg,
        );
    }

    /// Marks a container as waiting with a reason and records a Failed event.
    fn fail(&mut self, pod: &Pod, c: &Container, reason: &str, msg: String) -> bool {
        self.event(pod, Some(&c.name), true, "Failed", format!("Error: {msg}"));
        self.waiting.insert(c.name.clone(), (reason.into(), msg));
        false
    }

    /// Pulls per imagePullPolicy; the image ref, or None with the container left waiting.
    async fn ensure_image(&mut self, pod: &Pod, c: &Container) -> Result<Option<String>, Error> {
        let image = c.image.clone().unwrap_or_default();
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            let tagged = image.rsplit('/').next().is_some_and(|l| l.contains(':'));
            if !tagged || image.ends_with(":latest") {
                "Always".into()
            } else {
                "IfNotPresent".into()
            }
        });
        let present = self.cri.image_id(&image).await?;
        if let (Some(id), false) = (&present, policy == "Always") {
            return Ok(Some(id.clone()));
        }
        if policy == "Never" {
            let msg = format!("Container image {image:?} is not present with pull policy of Never");
            self.fail(pod, c, "ErrImageNeverPull", msg);
            return Ok(None);
        }
        self.event(
            pod,
            Some(&c.name),
            false,
            "Pulling",
            format!("Pulling image {image:?}"),
        );
        let began = std::time::Instant::now();
        match self.cri.pull_image(&image).await {
            Ok(r) => {
                let msg = format!(
                    "Successfully pulled image {image:?} in {:?}",
                    began.elapsed()
                );
                self.event(pod, Some(&c.name), false, "Pulled", msg);
                Ok(Some(r))
            }
            Err(e) => {
                self.fail(pod, c, "ErrImagePull", e.to_string());
                Ok(None)
            }
        }
    }

    /// Creates and starts a container instance.
    async fn start(
        &mut self,
        run: &RunCtx<'_>,
        c: &Container,
        attempt: u32,
    ) -> Result<bool, Error> {
        let pod = run.pod;
        if self.ensure_image(pod, c).await?.is_none() {
            return Ok(false);
        }
        let src = Sources {
            client: &self.ctx.client,
            namespace: spec::namespace(pod),
        };
        let resolved = async {
            let host = volumes::prepare(&self.ctx.config, pod, &src).await?;
            let services = self.ctx.services.env_for(pod).await?;
            let env = volumes::env(pod, c, run.pod_ip, &src, services).await?;
            Ok::<_, Error>(spec::Resolved {
                env,
                mounts: volumes::mounts(pod, c, &host),
            })
        }
        .await;
        let resolved = match resolved {
            Ok(r) => r,
            Err(e) => return Ok(self.fail(pod, c, "CreateContainerConfigError", e.to_string())),
        };
        let log_dir = PathBuf::from(&run.sandbox_config.log_directory).join(&c.name);
        std::fs::create_dir_all(&log_dir).map_err(|e| Error::io("create log dir", &log_dir, e))?;
        let config = spec::container_config(pod, c, attempt, resolved);
        let id = match self
            .cri
            .create_container(run.sandbox_id, config, run.sandbox_config.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => return Ok(self.fail(pod, c, "CreateContainerError", e.to_string())),
        };
        self.event(
            pod,
            Some(&c.name),
            false,
            "Created",
            format!("Created container {}", c.name),
        );
        self.start_created(pod, c, &id).await
    }

    async fn start_created(&mut self, pod: &Pod, c: &Container, id: &str) -> Result<bool, Error> {
        if let Err(e) = self.cri.start_container(id).await {
            return Ok(self.fail(pod, c, "RunContainerError", e.to_string()));
        }
        self.waiting.remove(&c.name);
        self.probes.reset(&c.name);
        self.event(
            pod,
            Some(&c.name),
            false,
            "Started",
            format!("Started container {}", c.name),
        );
        Ok(true)
    }

    /// Runs due probes; a failed liveness probe stops the container so it restarts.
    async fn probe(&mut self, run: &RunCtx<'_>, observed: &HashMap<String, Observed>) {
        let spec = run.pod.spec.clone().unwrap_or_default();
        for c in &spec.containers {
            let o = observed.get(&c.name).cloned().unwrap_or_default();
            let running = o.running();
            let Some(s) = o.latest.filter(|_| running) else {
                self.probes.reset(&c.name);
                continue;
            };
            let target = probes::Target {
                cri: &mut self.cri,
                container_id: &s.id,
                pod_ip: run.pod_ip,
                started_at: s.started_at,
            };
            let out = self.probes.run(c, target).await;
            for (kind, msg) in out.failures {
                self.event(
                    run.pod,
                    Some(&c.name),
                    true,
                    "Unhealthy",
                    format!("{kind} probe failed: {msg}"),
                );
            }
            if out.kill {
                let msg = format!(
                    "Container {} failed liveness probe, will be restarted",
                    c.name
                );
                self.event(run.pod, Some(&c.name), false, "Killing", msg);
                let grace = spec.termination_grace_period_seconds.unwrap_or(30);
                if let Err(e) = self.cri.stop_container(&s.id, grace).await {
                    tracing::warn!(error = %e, "stop unhealthy container");
                }
            }
        }
    }

    async fn write_status(&mut self, pod: &Pod, status: Value) -> Result<(), Error> {
        if self.last_status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), spec::namespace(pod));
        let patch = json!({ "status": status });
        api.patch_status(
            spec::name(pod),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| Error::api(format!("update pod {} status", spec::name(pod)), e))?;
        self.last_status = Some(status);
        Ok(())
    }

    /// Graceful termination: stop containers within the grace period, tear down the sandbox,
    /// then the final delete (grace 0, uid precondition) so the object goes away.
    async fn terminate(&mut self, pod: &Pod) -> Result<(), Error> {
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
            let mut cri = self.cri.clone();
            stops.push(async move { cri.stop_container(&c.id, grace).await });
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

/// What a sync needs to start containers in the pod's sandbox.
struct RunCtx<'a> {
    pod: &'a Pod,
    sandbox_id: &'a str,
    sandbox_config: &'a cri::PodSandboxConfig,
    pod_ip: &'a str,
}

#[derive(Default)]
struct InitState {
    done: bool,
    failed: bool,
}

fn pod_init_done(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Initialized" && c.status == "True")
        })
}
