//! The control plane on the host, bound to the cluster bridge's address: API server,
//! scheduler and controller-manager, each a `minik8s …` process.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::launch::{self, Launch};
use super::state::{ClusterState, Proc, API_PORT};
use super::ClusterError;

/// The API server, with the cluster's toleration seconds as its DefaultTolerationSeconds
/// admission defaults (kube-apiserver's --default-not-ready-toleration-seconds and
/// --default-unreachable-toleration-seconds), then waits until it accepts connections.
pub fn start_apiserver(state: &ClusterState) -> Result<Proc, ClusterError> {
    let secs = state.default_toleration_seconds.to_string();
    let log = state.logs_dir().join("apiserver.log");
    let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let proc = launch::spawn(Launch {
        component: "apiserver",
        args: vec![
            "apiserver".into(),
            "--data-dir".into(),
            state.apiserver_dir().into(),
            "--bind".into(),
            format!("{}:{API_PORT}", state.api_ip()).into(),
            "--default-not-ready-toleration-seconds".into(),
            secs.clone().into(),
            "--default-unreachable-toleration-seconds".into(),
            secs.into(),
        ],
        netns: None,
        log,
    })?;
    wait_serving(state, &proc, log_start)?;
    Ok(proc)
}

/// Ready when this process logged "apiserver ready" (past `log_start`: a restarted server's
/// old kubeconfig and log lines do not count) and the port accepts connections.
fn wait_serving(state: &ClusterState, proc: &Proc, log_start: u64) -> Result<(), ClusterError> {
    let log = state.logs_dir().join("apiserver.log");
    let logged_ready = || {
        std::fs::read(&log).is_ok_and(|b| {
            let new = b.get(log_start as usize..).unwrap_or_default();
            String::from_utf8_lossy(new).contains("apiserver ready")
        })
    };
    let addr = SocketAddr::from((state.api_ip(), API_PORT));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if !launch::alive(proc) {
            return Err(ClusterError::Exited {
                component: "apiserver".into(),
                log: state.logs_dir().join("apiserver.log"),
            });
        }
        if logged_ready()
            && state.kubeconfig().is_file()
            && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(ClusterError::Timeout {
        what: format!("the API server on {addr}"),
        log: state.logs_dir().join("apiserver.log"),
    })
}

pub fn start_scheduler(state: &ClusterState) -> Result<Proc, ClusterError> {
    launch::spawn(Launch {
        component: "scheduler",
        args: vec![
            "scheduler".into(),
            "--kubeconfig".into(),
            state.kubeconfig().into(),
        ],
        netns: None,
        log: state.logs_dir().join("scheduler.log"),
    })
}

/// The controller-manager with the cluster's node-monitor grace period, allocating pod
/// CIDRs from the cluster's own 10.X.0.0/17.
pub fn start_controller_manager(state: &ClusterState) -> Result<Proc, ClusterError> {
    launch::spawn(Launch {
        component: "controller-manager",
        args: vec![
            "controller-manager".into(),
            "--kubeconfig".into(),
            state.kubeconfig().into(),
            "--node-monitor-grace-period".into(),
            state.node_monitor_grace_period.clone().into(),
            "--cluster-cidr".into(),
            state.cluster_cidr().into(),
        ],
        netns: None,
        log: state.logs_dir().join("controller-manager.log"),
    })
}

/// Starts the whole control plane and records it.
pub fn start(state: &mut ClusterState) -> Result<(), ClusterError> {
    let api = start_apiserver(state)?;
    state.control_plane.push(api);
    state.save()?;
    let sched = start_scheduler(state)?;
    state.control_plane.push(sched);
    let cm = start_controller_manager(state)?;
    state.control_plane.push(cm);
    state.save()
}

/// Kills the API server outright (SIGKILL, as a crash) and starts it again on the same data
/// dir and address; clients' watches must resume against the new process.
pub fn restart_apiserver(state: &mut ClusterState) -> Result<(), ClusterError> {
    if let Some(old) = state
        .control_plane
        .iter()
        .find(|p| p.component == "apiserver")
    {
        launch::kill(old);
    }
    state.control_plane.retain(|p| p.component != "apiserver");
    let proc = start_apiserver(state)?;
    state.control_plane.insert(0, proc);
    state.save()
}

/// Stops the control plane, API server last (clients first, so none logs a lost server).
pub fn stop(state: &ClusterState) {
    for proc in state.control_plane.iter().rev() {
        launch::stop(proc, Duration::from_secs(5));
    }
}
