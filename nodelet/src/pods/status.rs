//! The pod status the nodelet reports, computed from what CRI says (kubelet's
//! generateAPIPodStatus/getPhase).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};
use serde_json::{json, Value};

use crate::cri::types as cri;

/// What the worker saw of one container name: the newest instance and the one before.
#[derive(Default, Clone, Debug)]
pub struct Observed {
    pub latest: Option<cri::ContainerStatus>,
    pub previous: Option<cri::ContainerStatus>,
}

impl Observed {
    pub fn state(&self) -> Option<i32> {
        self.latest.as_ref().map(|s| s.state)
    }

    pub fn running(&self) -> bool {
        self.state() == Some(cri::ContainerState::ContainerRunning as i32)
    }

    pub fn exited(&self) -> bool {
        self.state() == Some(cri::ContainerState::ContainerExited as i32)
    }

    pub fn restart_count(&self) -> u32 {
        self.latest
            .as_ref()
            .and_then(|s| s.metadata.as_ref())
            .map_or(0, |m| m.attempt)
    }
}

/// Inputs of the status computation besides the pod.
pub struct View<'a> {
    pub observed: &'a HashMap<String, Observed>,
    /// Why a container is waiting (CrashLoopBackOff, ErrImageNeverPull, ...).
    pub waiting: &'a HashMap<String, (String, String)>,
    pub ready: &'a HashMap<String, bool>,
    /// Startup probe passed, for containers that have one.
    pub started: &'a HashMap<String, bool>,
    pub runtime: &'a str,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
    pub init_done: bool,
    /// An init container failed and the policy forbids restarting it.
    pub init_failed: bool,
}

fn ts(ns: i64) -> Value {
    if ns <= 0 {
        return Value::Null;
    }
    let t = chrono::DateTime::from_timestamp(ns / 1_000_000_000, (ns % 1_000_000_000) as u32)
        .unwrap_or_default();
    json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn terminated(s: &cri::ContainerStatus, runtime: &str) -> Value {
    let reason = if !s.reason.is_empty() {
        s.reason.clone()
    } else if s.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    let mut t = json!({"exitCode": s.exit_code, "reason": reason,
        "startedAt": ts(s.started_at), "finishedAt": ts(s.finished_at),
        "containerID": format!("{runtime}://{}", s.id)});
    if !s.message.is_empty() {
        t["message"] = json!(s.message);
    }
    json!({ "terminated": t })
}

fn container_status(
    c: &Container,
    old: Option<&ContainerStatus>,
    v: &View,
    default_wait: &str,
) -> Value {
    let o = v.observed.get(&c.name).cloned().unwrap_or_default();
    let waiting = v.waiting.get(&c.name);
    let mut st = json!({"name": c.name, "image": c.image.clone().unwrap_or_default(),
        "imageID": "", "restartCount": o.restart_count(), "ready": false, "started": false,
        "lastState": {}});
    let wait = |(r, m): &(String, String)| {
        let mut w = json!({"reason": r});
        if !m.is_empty() {
            w["message"] = json!(m);
        }
        json!({ "waiting": w })
    };
    match &o.latest {
        Some(s) => {
            st["containerID"] = json!(format!("{}://{}", v.runtime, s.id));
            st["imageID"] = json!(s.image_ref);
            if o.running() {
                st["state"] = json!({"running": {"startedAt": ts(s.started_at)}});
                // Started only once the startup probe, if any, has succeeded (kubelet's
                // prober manager UpdatePodStatus).
                let started =
                    c.startup_probe.is_none() || v.started.get(&c.name).copied().unwrap_or(false);
                st["started"] = json!(started);
                st["ready"] = json!(v.ready.get(&c.name).copied().unwrap_or(false));
            } else if o.exited() {
                match waiting {
                    // Waiting to be restarted: the last run moves to lastState.
                    Some(w) => {
                        st["state"] = wait(w);
                        st["lastState"] = terminated(s, v.runtime);
                    }
                    None => st["state"] = terminated(s, v.runtime),
                }
            } else {
                st["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
            }
            if st["lastState"] == json!({}) {
                if let Some(p) = &o.previous {
                    st["lastState"] = terminated(p, v.runtime);
                }
            }
        }
        None => {
            let w = waiting
                .cloned()
                .unwrap_or((default_wait.into(), String::new()));
            st["state"] = wait(&w);
            // No instance in the runtime (removed behind the nodelet's back, or the sandbox
            // was recreated): the count and the last termination carry over from the status
            // last written, as the kubelet's convertToAPIContainerStatuses defaults them.
            if let Some(old) = old {
                st["restartCount"] = json!(old.restart_count);
                let ended = old.state.as_ref().filter(|s| s.terminated.is_some());
                if let Some(last) = ended.or(old.last_state.as_ref()) {
                    st["lastState"] = json!(last);
                }
            }
        }
    }
    st
}

/// The status the nodelet last wrote for container `name` (an init container when `init`).
pub fn reported<'a>(pod: &'a Pod, name: &str, init: bool) -> Option<&'a ContainerStatus> {
    let st = pod.status.as_ref()?;
    let list = if init {
        st.init_container_statuses.as_ref()
    } else {
        st.container_statuses.as_ref()
    };
    list?.iter().find(|c| c.name == name)
}

/// The phase as kubelet's getPhase decides it.
fn phase(pod: &Pod, v: &View) -> &'static str {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    if v.init_failed {
        return "Failed";
    }
    if !v.init_done {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut failed) = (0, 0, 0, 0);
    for c in spec.map(|s| s.containers.as_slice()).unwrap_or(&[]) {
        let o = v.observed.get(&c.name).cloned().unwrap_or_default();
        if o.running() {
            running += 1;
        } else if o.exited() {
            stopped += 1;
            if o.latest.as_ref().is_some_and(|s| s.exit_code != 0) {
                failed += 1;
            }
        } else if o.restart_count() > 0 {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        return "Pending";
    }
    match policy {
        "Always" => "Running",
        "OnFailure" if failed > 0 => "Running",
        "Never" if failed > 0 => "Failed",
        _ => "Succeeded",
    }
}

/// The whole status; `old` supplies startTime and unchanged conditions' transition times.
pub fn compute(pod: &Pod, v: &View) -> Value {
    let spec = pod.spec.as_ref();
    let old = pod.status.clone().unwrap_or_default();
    let old_phase = old.phase.as_deref().unwrap_or("Pending");
    // Succeeded and Failed are terminal: a pod never leaves them.
    let phase = match old_phase {
        "Succeeded" | "Failed" => old_phase,
        _ => phase(pod, v),
    };
    let init: Vec<Value> = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .map(|c| container_status(c, reported(pod, &c.name, true), v, "PodInitializing"))
        .collect();
    let wait = if v.init_done {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let containers: Vec<Value> = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[])
        .iter()
        .map(|c| container_status(c, reported(pod, &c.name, false), v, wait))
        .collect();
    let all_ready = !containers.is_empty() && containers.iter().all(|c| c["ready"] == json!(true));
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let old_conds = old.conditions.unwrap_or_default();
    let cond = |t: &str, ok: bool, reason: &str| {
        let status = if ok { "True" } else { "False" };
        let since = old_conds
            .iter()
            .find(|c| c.type_ == t && c.status == status)
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| json!(t))
            .unwrap_or_else(|| json!(now));
        let mut c = json!({"type": t, "status": status, "lastProbeTime": null,
            "lastTransitionTime": since});
        if !ok && !reason.is_empty() {
            c["reason"] = json!(reason);
        }
        c
    };
    let done = matches!(phase, "Succeeded" | "Failed");
    let ready_reason = if done {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let start_time = old
        .start_time
        .map(|t| json!(t))
        .unwrap_or_else(|| json!(now));
    let mut status = json!({
        "phase": phase,
        "conditions": [
            cond("PodScheduled", true, ""),
            cond("Initialized", v.init_done, "ContainersNotInitialized"),
            cond("ContainersReady", all_ready && !done, ready_reason),
            cond("Ready", all_ready && !done, ready_reason),
        ],
        "hostIP": v.host_ip,
        "hostIPs": [{"ip": v.host_ip}],
        "startTime": start_time,
        "containerStatuses": containers,
        "qosClass": qos(pod),
    });
    if !init.is_empty() {
        status["initContainerStatuses"] = json!(init);
    }
    if !v.pod_ip.is_empty() {
        status["podIP"] = json!(v.pod_ip);
        status["podIPs"] = json!([{"ip": v.pod_ip}]);
    }
    status
}

/// The QoS class (Guaranteed / Burstable / BestEffort) as Kubernetes derives it.
fn qos(pod: &Pod) -> &'static str {
    let cs = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[]);
    let mut any = false;
    let mut guaranteed = true;
    for c in cs {
        let r = c.resources.clone().unwrap_or_default();
        let req = r.requests.unwrap_or_default();
        let lim = r.limits.unwrap_or_default();
        any |= !req.is_empty() || !lim.is_empty();
        for k in ["cpu", "memory"] {
            match lim.get(k) {
                Some(l) => guaranteed &= req.get(k).is_none_or(|q| q == l),
                None => guaranteed = false,
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        _ => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(startup_probe: bool, old: Value) -> Pod {
        let mut c = json!({"name": "c", "image": "busybox"});
        if startup_probe {
            c["startupProbe"] = json!({"exec": {"command": ["true"]}});
        }
        serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [c]}, "status": old}))
        .unwrap()
    }

    fn running() -> Observed {
        let s = cri::ContainerStatus {
            id: "abc".into(),
            state: cri::ContainerState::ContainerRunning as i32,
            started_at: 1_700_000_000_000_000_000,
            metadata: Some(cri::ContainerMetadata {
                name: "c".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        Observed {
            latest: Some(s),
            previous: None,
        }
    }

    /// The status of container `c` of `pod`, given what CRI and the prober saw.
    fn status_of(pod: &Pod, observed: Option<Observed>, started: &[(&str, bool)]) -> Value {
        let observed: HashMap<String, Observed> =
            observed.into_iter().map(|o| ("c".to_string(), o)).collect();
        let started = started.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let (waiting, ready) = (HashMap::new(), HashMap::new());
        let v = View {
            observed: &observed,
            waiting: &waiting,
            ready: &ready,
            started: &started,
            runtime: "minik8s",
            pod_ip: "",
            host_ip: "127.0.0.1",
            init_done: true,
            init_failed: false,
        };
        compute(pod, &v)["containerStatuses"][0].clone()
    }

    #[test]
    fn started_waits_for_the_startup_probe() {
        let cases = [
            (
                "no startup probe: started once running",
                false,
                vec![],
                true,
            ),
            ("startup probe not run yet", true, vec![], false),
            (
                "startup probe still failing",
                true,
                vec![("c", false)],
                false,
            ),
            ("startup probe succeeded", true, vec![("c", true)], true),
        ];
        for (what, probe, started, want) in cases {
            let st = status_of(&pod(probe, json!({})), Some(running()), &started);
            assert_eq!(st["started"], json!(want), "{what}");
        }
        let st = status_of(&pod(false, json!({})), None, &[]);
        assert_eq!(st["started"], json!(false), "not running: not started");
    }

    #[test]
    fn restart_count_carries_over_while_no_instance_exists() {
        let old = json!({"containerStatuses": [{"name": "c", "image": "busybox", "imageID": "",
            "ready": true, "restartCount": 4, "containerID": "minik8s://gone",
            "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]});
        let st = status_of(&pod(false, old), None, &[]);
        assert_eq!(st["restartCount"], json!(4));
        assert_eq!(st["lastState"]["terminated"]["exitCode"], json!(1));
        assert_eq!(st["state"]["waiting"]["reason"], json!("ContainerCreating"));
        let st = status_of(&pod(false, json!({})), None, &[]);
        assert_eq!(st["restartCount"], json!(0), "a new pod starts at 0");
    }
}
