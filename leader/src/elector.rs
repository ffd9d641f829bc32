//! Leader election on a `coordination.k8s.io/v1` Lease, after client-go's `leaderelection`:
//! several replicas race to hold the Lease; only the holder acts, renewing it every retry
//! period. A candidate takes a Lease over once it has seen the same holder and renew time
//! unchanged for the lease duration — measured on its own clock, from when it observed the
//! record, so clock skew between machines does not matter. A leader that cannot renew within
//! the renew deadline, or finds another holder, stops acting. On shutdown it releases the
//! Lease so a standby takes over at once.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info, warn};

/// Which Lease to contend for, as whom, and how fast.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per candidate (hostname plus a random suffix).
    pub identity: String,
    /// How long a non-leader waits after the last observed renewal before taking over.
    pub lease_duration: Duration,
    /// How long the leader keeps retrying a failed renewal before giving up leadership.
    pub renew_deadline: Duration,
    /// Wait between acquisition attempts and between renewals.
    pub retry_period: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lost lease {namespace}/{name}: {why}")]
    Lost {
        namespace: String,
        name: String,
        why: &'static str,
    },
}

/// Outcome of one acquire-or-renew attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the Lease now.
    Held,
    /// Someone else holds a Lease that has not expired.
    HeldByOther,
    /// The API call failed or raced with another writer; try again.
    Failed,
}

/// Whether a Lease record still belongs to another live holder: it names a holder other than
/// `me`, and fewer than its duration has passed since we first observed this record.
pub fn held_by_other(spec: &LeaseSpec, me: &str, observed_at: Instant, now: Instant) -> bool {
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == me {
        return false;
    }
    let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
    observed_at + duration > now
}

/// A candidate for one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// (holder, renew time) of the last record seen, and when it was first seen.
    observed: Option<(Option<String>, Option<String>)>,
    observed_at: Instant,
}

fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn record_of(spec: &LeaseSpec) -> (Option<String>, Option<String>) {
    (
        spec.holder_identity.clone(),
        spec.renew_time.as_ref().map(|t| t.0.to_string()),
    )
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaseConfig) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            observed_at: Instant::now(),
        }
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    fn observe(&mut self, spec: &LeaseSpec) {
        let record = record_of(spec);
        if self.observed.as_ref() != Some(&record) {
            self.observed = Some(record);
            self.observed_at = Instant::now();
        }
    }

    fn our_spec(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let now = micro_now();
        let me = &self.config.identity;
        let was_ours = previous.and_then(|p| p.holder_identity.as_ref()) == Some(me);
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(me.clone()),
            lease_duration_seconds: Some(self.config.lease_duration.as_secs().max(1) as i32),
            acquire_time: match (was_ours, previous) {
                (true, Some(p)) => p.acquire_time.clone(),
                _ => Some(now.clone()),
            },
            renew_time: Some(now),
            lease_transitions: Some(match previous {
                Some(p)
                    if !was_ours && p.holder_identity.as_deref().is_some_and(|h| !h.is_empty()) =>
                {
                    transitions + 1
                }
                _ => transitions,
            }),
            ..Default::default()
        }
    }

    /// One attempt to take or keep the Lease (client-go's `tryAcquireOrRenew`).
    pub async fn try_acquire_or_renew(&mut self) -> Attempt {
        let name = self.config.name.clone();
        let existing = match self.api.get_opt(&name).await {
            Ok(existing) => existing,
            Err(e) => {
                debug!(lease = %name, error = %e, "reading the lease failed");
                return Attempt::Failed;
            }
        };
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(self.our_spec(None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created.spec.unwrap_or_default());
                    Attempt::Held
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Attempt::HeldByOther,
                Err(e) => {
                    debug!(lease = %name, error = %e, "creating the lease failed");
                    Attempt::Failed
                }
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        self.observe(&spec);
        if held_by_other(
            &spec,
            &self.config.identity,
            self.observed_at,
            Instant::now(),
        ) {
            return Attempt::HeldByOther;
        }
        lease.spec = Some(self.our_spec(Some(&spec)));
        // The update carries the resourceVersion read above: if another candidate wrote in
        // between, it fails with 409 and we did not take the Lease.
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(&updated.spec.unwrap_or_default());
                Attempt::Held
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Attempt::HeldByOther,
            Err(e) => {
                debug!(lease = %name, error = %e, "updating the lease failed");
                Attempt::Failed
            }
        }
    }

    /// Gives the Lease up if we hold it (client-go's `ReleaseOnCancel`): empty holder, a
    /// one-second duration, so a standby takes over on its next try.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(micro_now());
        lease.spec = Some(spec);
        if let Err(e) = self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            warn!(lease = %self.config.name, error = %e, "releasing the lease failed");
        }
    }

    fn jittered(&self, period: Duration) -> Duration {
        // client-go's JitterFactor 1.2 for acquisition retries.
        period.mul_f64(1.0 + rand::thread_rng().gen_range(0.0..1.2))
    }

    /// Waits to become leader, then runs `lead` until shutdown or lost leadership. `lead` gets
    /// a token cancelled when it must stop acting. Returns `Ok` on shutdown (after releasing
    /// the Lease) and an error when leadership was lost.
    pub async fn run<F, Fut>(
        mut self,
        shutdown: CancellationToken,
        lead: F,
    ) -> Result<(), LeaderError>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        loop {
            if self.try_acquire_or_renew().await == Attempt::Held {
                break;
            }
            let wait = self.jittered(self.config.retry_period);
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
        info!(lease = %self.config.name, identity = %self.config.identity, "became leader");
        let leading = shutdown.child_token();
        // Aborted if this future is dropped, so a leader that dies never leaves a headless
        // worker acting without the Lease.
        let mut task = AbortOnDropHandle::new(tokio::spawn(lead(leading.clone())));
        let result = self.renew_until_lost(&shutdown, &mut task).await;
        leading.cancel();
        if !task.is_finished() {
            let _ = task.await;
        }
        match result {
            Ok(()) => {
                self.release().await;
                Ok(())
            }
            Err(why) => {
                warn!(lease = %self.config.name, why, "lost leadership");
                Err(LeaderError::Lost {
                    namespace: self.config.namespace.clone(),
                    name: self.config.name.clone(),
                    why,
                })
            }
        }
    }

    async fn renew_until_lost(
        &mut self,
        shutdown: &CancellationToken,
        task: &mut AbortOnDropHandle<()>,
    ) -> Result<(), &'static str> {
        let mut last_renew = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = &mut *task => return Ok(()),
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
            let left = self
                .config
                .renew_deadline
                .saturating_sub(last_renew.elapsed());
            let attempt = tokio::time::timeout(left, self.try_acquire_or_renew())
                .await
                .unwrap_or(Attempt::Failed);
            match attempt {
                Attempt::Held => last_renew = Instant::now(),
                Attempt::HeldByOther => return Err("another candidate holds the lease"),
                Attempt::Failed if last_renew.elapsed() >= self.config.renew_deadline => {
                    return Err("not renewed within the renew deadline")
                }
                Attempt::Failed => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: (!holder.is_empty()).then(|| holder.to_string()),
            lease_duration_seconds: Some(seconds),
            ..Default::default()
        }
    }

    #[test]
    fn held_by_other_table() {
        let seen = Instant::now();
        let cases = [
            ("no holder", spec("", 15), 0, false),
            ("we hold it", spec("me", 15), 0, false),
            ("other, fresh", spec("other", 15), 5, true),
            ("other, just before expiry", spec("other", 15), 14, true),
            ("other, expired", spec("other", 15), 15, false),
            ("other, released (1 s)", spec("other", 1), 2, false),
        ];
        for (name, s, elapsed, want) in cases {
            let now = seen + Duration::from_secs(elapsed);
            assert_eq!(held_by_other(&s, "me", seen, now), want, "{name}");
        }
    }
}
