//! Liveness, readiness and startup probes (exec through ExecSync, httpGet to the pod IP over
//! HTTP or HTTPS with the action's headers (`http_action`), tcpSocket, grpc (`grpc_probe`))
//! with their timing fields, as the kubelet's prober runs them.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::http_action::HttpGet;
use crate::cri::Cri;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

#[derive(Default)]
struct State {
    last: Option<Instant>,
    successes: i32,
    failures: i32,
    ok: bool,
}

/// Probe results of one pod's containers.
#[derive(Default)]
pub struct Probes {
    /// Readiness per container name.
    pub ready: HashMap<String, bool>,
    /// Whether each container's startup probe has succeeded (containers without one are
    /// started once running, and have no entry).
    pub started: HashMap<String, bool>,
    state: HashMap<(String, Kind), State>,
}

/// The running container a probe targets.
pub struct Target<'a> {
    pub cri: &'a mut Cri,
    pub container_id: &'a str,
    pub pod_ip: &'a str,
    /// Start time of the container (ns since the epoch).
    pub started_at: i64,
}

#[derive(Default)]
pub struct Outcome {
    pub failures: Vec<(&'static str, String)>,
    /// Liveness or startup failed failureThreshold times: restart the container.
    pub kill: bool,
    /// That probe's terminationGracePeriodSeconds, which replaces the pod's for the kill.
    pub kill_grace: Option<i64>,
}

impl Probes {
    /// Forgets a container's results (a new instance starts unready).
    pub fn reset(&mut self, name: &str) {
        self.ready.remove(name);
        self.started.remove(name);
        self.state.retain(|(n, _), _| n != name);
    }

    /// Takes a container's startup probe as passed: a restarted nodelet adopting a container
    /// its status already reported started does not probe its startup again (the kubelet's
    /// prober stops the startup probe once the status says started).
    pub fn mark_started(&mut self, name: &str) {
        let st = self
            .state
            .entry((name.to_string(), Kind::Startup))
            .or_default();
        st.ok = true;
        self.started.insert(name.to_string(), true);
    }

    pub async fn run(&mut self, c: &Container, mut t: Target<'_>) -> Outcome {
        let mut out = Outcome::default();
        let started = match &c.startup_probe {
            Some(p) => self.step(c, Kind::Startup, p, &mut t, &mut out).await,
            None => true,
        };
        if c.startup_probe.is_some() {
            self.started.insert(c.name.clone(), started);
        }
        if !started {
            self.ready.insert(c.name.clone(), false);
            return out;
        }
        if let Some(p) = &c.liveness_probe {
            self.step(c, Kind::Liveness, p, &mut t, &mut out).await;
        }
        let ready = match &c.readiness_probe {
            Some(p) => self.step(c, Kind::Readiness, p, &mut t, &mut out).await,
            None => true,
        };
        self.ready.insert(c.name.clone(), ready && !out.kill);
        out
    }

    /// Runs one probe if due; returns its current verdict.
    async fn step(
        &mut self,
        c: &Container,
        kind: Kind,
        p: &Probe,
        t: &mut Target<'_>,
        out: &mut Outcome,
    ) -> bool {
        let key = (c.name.clone(), kind);
        let st = self.state.entry(key).or_default();
        // Liveness and startup count as passing until proven otherwise; readiness does not.
        let default_ok = kind != Kind::Readiness;
        let since_start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(Duration::from_nanos(t.started_at.max(0) as u64));
        let initial = Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        let period = Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64);
        if since_start < initial {
            return st.ok || (default_ok && st.failures == 0);
        }
        if kind == Kind::Startup && st.ok {
            return true;
        }
        if st.last.is_some_and(|l| l.elapsed() < period) {
            return st.ok || (default_ok && st.failures == 0);
        }
        st.last = Some(Instant::now());
        let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
        let result = execute(c, p, t, timeout).await;
        let st = self
            .state
            .get_mut(&(c.name.clone(), kind))
            .expect("state inserted");
        match result {
            Ok(()) => {
                st.failures = 0;
                st.successes += 1;
                if st.successes >= p.success_threshold.unwrap_or(1).max(1) {
                    st.ok = true;
                }
            }
            Err(msg) => {
                st.successes = 0;
                st.failures += 1;
                out.failures.push((kind.name(), msg));
                if st.failures >= p.failure_threshold.unwrap_or(3).max(1) {
                    st.ok = false;
                    if kind != Kind::Readiness {
                        out.kill = true;
                        out.kill_grace = p.termination_grace_period_seconds;
                    }
                }
            }
        }
        st.ok || (default_ok && !out.kill)
    }
}

async fn execute(
    c: &Container,
    p: &Probe,
    t: &mut Target<'_>,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(e) = &p.exec {
        let cmd = e.command.clone().unwrap_or_default();
        return match t
            .cri
            .exec_sync(t.container_id, cmd, timeout.as_secs() as i64)
            .await
        {
            Ok((0, _)) => Ok(()),
            Ok((code, out)) => Err(format!(
                "exit code {code}: {}",
                String::from_utf8_lossy(&out).trim()
            )),
            Err(e) => Err(e.to_string()),
        };
    }
    network_probe(c, p, t.pod_ip, timeout).await
}

/// The probes that go over the network to the pod: httpGet, tcpSocket, grpc.
async fn network_probe(
    c: &Container,
    p: &Probe,
    pod_ip: &str,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(h) = &p.http_get {
        let host = h.host.clone().unwrap_or_else(|| pod_ip.to_string());
        let port = port(c, &h.port)?;
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        let get = HttpGet::for_action(h, &host, port, &path, "kube-probe");
        let code = tokio::time::timeout(timeout, get.send())
            .await
            .map_err(|_| format!("Get {}: timeout", get.url()))??;
        // The kubelet's rule: 200 ≤ status < 400 succeeds.
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        };
    }
    if let Some(s) = &p.tcp_socket {
        let host = s.host.clone().unwrap_or_else(|| pod_ip.to_string());
        let port = port(c, &s.port)?;
        let fut = tokio::net::TcpStream::connect((host.as_str(), port));
        return match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Err(format!("dial tcp {host}:{port}: timeout")),
        };
    }
    if let Some(g) = &p.grpc {
        let port = u16::try_from(g.port).map_err(|_| format!("bad port {}", g.port))?;
        let service = g.service.as_deref().unwrap_or("");
        return super::grpc_probe::check(pod_ip, port, service, timeout).await;
    }
    Err("probe has no handler".into())
}

/// A port number (also written as a string) or the name of one of the container's ports.
pub(super) fn port(c: &Container, p: &IntOrString) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("bad port {n}")),
        IntOrString::String(name) => name.parse::<u16>().or_else(|_| {
            c.ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(name))
                .and_then(|cp| u16::try_from(cp.container_port).ok())
                .ok_or_else(|| format!("no port named {name:?}"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(json: serde_json::Value) -> Probe {
        serde_json::from_value(json).unwrap()
    }

    #[tokio::test]
    async fn a_grpc_probe_checks_the_pods_health_service() {
        let (port, _stop) = super::super::grpc_probe::test_server(true).await;
        let c = Container::default();
        let t = Duration::from_secs(2);
        let serving = probe(serde_json::json!({"grpc": {"port": port}}));
        assert_eq!(network_probe(&c, &serving, "127.0.0.1", t).await, Ok(()));
        let down = probe(serde_json::json!({"grpc": {"port": port, "service": "down"}}));
        assert_eq!(
            network_probe(&c, &down, "127.0.0.1", t).await,
            Err("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
    }
}
