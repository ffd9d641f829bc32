//! One worker per pod: a task that syncs its pod whenever the pod object changes or the relist
//! period passes, so two syncs of one pod never run at once.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::{self, Decision};
use super::status::{self, Observed, View};
use super::volumes::{self, Sources};
use super::{admission, events, lifecycle, probes, restart_count, spec};
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

pub struct Worker {
    pub(super) ctx: Arc<Ctx>,
    pub(super) cri: Cri,
    pub(super) uid: String,
    /// The CrashLoopBackOff wait set at each container's last restart.
    backoff: HashMap<String, Duration>,
    waiting: HashMap<String, (String, String)>,
    probes: probes::Probes,
    last_status: Option<Value>,
    /// Set when admission rejected the pod: nothing of it ever runs.
    rejection: Option<admission::Rejection>,
    /// When the configMap and secret volumes were last projected.
    projected_at: Option<Instant>,
    /// The pod as the API shows it, for what must notice its deletion mid-sync (a postStart
    /// hook that hangs).
    pub(super) updates: Option<watch::Receiver<Pod>>,
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
            projected_at: None,
            updates: None,
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
        self.updates = Some(pod.clone());
        let mut tick = tokio::time::interval(self.ctx.config.relist);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = pod.changed() => if changed.is_err() { return },
                _ = tick.tick() => {}
            }
            let current = pod.borrow_and_update().clone();
            // Boxed: a sync's state (every CRI and API call it may await) is ~28 KiB (heaptrack:
            // 2.8 MB for 100 pods), and inline it made every worker that size for the pod's
            // whole life, though a worker spends nearly all of it waiting here between syncs.
            let result = tokio::select! {
                _ = cancel.cancelled() => return,
                r = Box::pin(self.sync(&current)) => r,
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
            self.refresh_volumes(pod).await;
            self.probe(&run, &observed).await;
        } else {
            init.done = pod_init_done(pod);
        }
        let view = View {
            observed: &observed,
            waiting: &self.waiting,
            ready: &self.probes.ready,
            started: &self.probes.started,
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
                Some(s) => return self.start_created(run, c, &s.id).await,
                None => return self.start(run, c, fresh_attempt(run, c, true)).await,
            }
        }
        init.done = true;
        let mut started = false;
        for c in &spec.containers {
            let o = observed.get(&c.name).cloned().unwrap_or_default();
            started |= match &o.latest {
                None => self.start(run, c, fresh_attempt(run, c, false)).await?,
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
                Some(s) if !o.running() => self.start_created(run, c, &s.id).await?,
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
        let ns = |t: i64| UNIX_EPOCH + Duration::from_nanos(t.max(0) as u64);
        let ran = ns(last.finished_at)
            .duration_since(ns(last.started_at))
            .unwrap_or_default();
        let since_exit = SystemTime::now()
            .duration_since(ns(last.finished_at))
            .unwrap_or_default();
        let next = match backoff::decide(self.backoff.get(&c.name).copied(), ran, since_exit) {
            Decision::Restart { next } => next,
            Decision::Wait { delay } => {
                self.back_off(run.pod, c, delay);
                return Ok(false);
            }
        };
        let started = self.start(run, c, attempt).await?;
        if started {
            self.backoff.insert(c.name.clone(), next);
        }
        Ok(started)
    }

    /// Marks a container as waiting in CrashLoopBackOff, with a BackOff event on entering it.
    fn back_off(&mut self, pod: &Pod, c: &Container, delay: Duration) {
        let msg = format!(
            "back-off {}s restarting failed container={} pod={}_{}({})",
            delay.as_secs(),
            c.name,
            spec::name(pod),
            spec::namespace(pod),
            self.uid
        );
        let first = self
            .waiting
            .get(&c.name)
            .is_none_or(|(r, _)| r != "CrashLoopBackOff");
        if first {
            self.event(pod, Some(&c.name), true, "BackOff", msg.clone());
        }
        self.waiting
            .insert(c.name.clone(), ("CrashLoopBackOff".into(), msg));
    }

    /// Re-projects the configMap and secret volumes every `volume_resync`, as the kubelet
    /// re-runs their SetUp on its periodic pod sync, so running containers see updates.
    /// A container start projects them too, so this waits a full period after one.
    async fn refresh_volumes(&mut self, pod: &Pod) {
        let resync = self.ctx.config.volume_resync;
        if self.projected_at.is_some_and(|t| t.elapsed() < resync) {
            return;
        }
        self.projected_at = Some(Instant::now());
        let src = Sources {
            client: &self.ctx.client,
            namespace: spec::namespace(pod),
        };
        match volumes::refresh(&self.ctx.config, pod, &src).await {
            Ok(changed) if !changed.is_empty() => {
                tracing::info!(pod = %spec::name(pod), volumes = ?changed, "volume files updated");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(pod = %spec::name(pod), error = %e, "refresh volumes"),
        }
    }

    pub(super) fn event(
        &self,
        pod: &Pod,
        c: Option<&str>,
        warning: bool,
        reason: &str,
        msg: String,
    ) {
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
    pub(super) fn fail(&mut self, pod: &Pod, c: &Container, reason: &str, msg: String) -> bool {
        self.event(pod, Some(&c.name), true, "Failed", format!("Error: {msg}"));
        self.waiting.insert(c.name.clone(), (reason.into(), msg));
        false
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
        self.projected_at = Some(Instant::now());
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
        self.start_created(run, c, &id).await
    }

    /// Starts a created container, then runs its postStart hook.
    async fn start_created(
        &mut self,
        run: &RunCtx<'_>,
        c: &Container,
        id: &str,
    ) -> Result<bool, Error> {
        let pod = run.pod;
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
        // Started either way: a failed hook killed it, and the next observation says so.
        self.post_start(pod, c, id, run.pod_ip).await;
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
            let id = format!("{}://{}", self.ctx.runtime, s.id);
            let reported = status::reported(run.pod, &c.name, false);
            if reported
                .is_some_and(|r| r.container_id.as_ref() == Some(&id) && r.started == Some(true))
            {
                self.probes.mark_started(&c.name);
            }
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
                let grace = lifecycle::grace_period(run.pod, out.kill_grace);
                let kill = self.kill(run.pod, Some(c), &s.id, grace, run.pod_ip);
                if let Err(e) = kill.await {
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
}

/// What a sync needs to start containers in the pod's sandbox.
struct RunCtx<'a> {
    pod: &'a Pod,
    sandbox_id: &'a str,
    sandbox_config: &'a cri::PodSandboxConfig,
    pod_ip: &'a str,
}

/// The attempt number of a container with no instance in the sandbox.
fn fresh_attempt(run: &RunCtx<'_>, c: &Container, init: bool) -> u32 {
    let old = status::reported(run.pod, &c.name, init);
    let logs = PathBuf::from(&run.sandbox_config.log_directory).join(&c.name);
    restart_count::fresh_attempt(old, &restart_count::log_names(&logs))
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
