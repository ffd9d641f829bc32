//! A one-node cluster for end-to-end tests: a real API server (in-process, 127.0.0.1:0), a
//! CRI runtime (ours in-process, or a private containerd) and the nodelet with its server on
//! 127.0.0.1 and a free port; plus runners for `minictl` and `kubectl` as real processes.
//!
//! The test binaries are `harness = false`: the runtime re-executes the binary as each
//! container's shim, and `minictl` runs as this binary re-executed with `minictl` first
//! (the same `minictl::run` its own binary calls), so [`dispatch`] must run first in `main`.

#![allow(dead_code)]

pub mod nodelet_process;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use minik8s_runtime::cri::{Args as CriArgs, Cri};
use tokio_util::sync::CancellationToken;

pub const BUSYBOX: &str = "docker.io/library/busybox:latest";
/// How long one minictl or kubectl invocation may take before the test calls it hung.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The `main` of a one-scenario `harness = false` test binary: serves re-executions
/// ([`dispatch`]), answers `--list`, reports a skip when `skip` gives a reason, and runs
/// `scenario` on a two-thread runtime, failing with `hang` after `limit`.
pub fn run_test<F: std::future::Future<Output = ()>>(
    test: &str,
    limit: Duration,
    hang: &str,
    skip: impl FnOnce() -> Option<String>,
    scenario: impl FnOnce() -> F,
) {
    dispatch();
    if std::env::args().any(|a| a == "--list") {
        println!("{test}: test");
        return;
    }
    if let Some(why) = skip() {
        println!("test {test} ... ok (skipped: {why})");
        return;
    }
    if let Ok(filter) = std::env::var("RUST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        tokio::time::timeout(limit, scenario())
            .await
            .unwrap_or_else(|_| panic!("timed out after {limit:?}: {hang}"))
    });
    println!("test {test} ... ok");
}

/// Runs the shim, the runc monitor or minictl when this binary was re-executed as one.
pub fn dispatch() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let Some(first) = args.get(1) else { return };
    if first == "shim" {
        minik8s_runtime::shim::main(&args[2..]);
    }
    if first == minik8s_runtime::cri::monitor::ARG {
        minik8s_runtime::cri::monitor::main(&args[2..]);
    }
    if first == "minictl" {
        std::process::exit(run_minictl(&args[2..]));
    }
    if first == nodelet_process::ARG {
        std::process::exit(nodelet_process::main(&args[2..]));
    }
}

/// minictl's `main`, for the re-executed binary.
fn run_minictl(args: &[std::ffi::OsString]) -> i32 {
    let argv = std::iter::once(std::ffi::OsString::from("minictl")).chain(args.iter().cloned());
    let cli = match minictl::cli::Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return i32::from(e.use_stderr());
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(minictl::run(cli));
    rt.shutdown_background();
    match result {
        Ok(()) => 0,
        Err(minictl::error::Error::Reported) => 1,
        Err(e) => {
            eprintln!("{}", minictl::error::render(&e));
            1
        }
    }
}

/// The runtime of the test and a guard removing every sandbox, the bridge and the cgroup.
pub struct Runtime {
    pub args: CriArgs,
    pub cri: Arc<Cri>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        for s in self.cri.list_pod_sandbox(None) {
            if let Err(e) = self.cri.remove_pod_sandbox(&s.id) {
                eprintln!("cleanup: remove sandbox {}: {e}", s.id);
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.args.cni_bridge])
            .stderr(Stdio::null())
            .status();
        if let Ok(layout) = minik8s_runtime::cgroups::Layout::detect() {
            let cg = minik8s_runtime::cgroups::Cgroup::open(&layout, &self.args.cgroup_parent);
            if cg.exists() {
                let _ = cg.remove();
            }
        }
    }
}

/// Starts our CRI runtime in-process with its own socket, root, cgroup parent, bridge and
/// /24 (`tag` keeps two test binaries running at once apart).
pub async fn start_runtime(dir: &Path, tag: u8) -> Runtime {
    let n = std::process::id() as usize;
    let mut args = CriArgs::new(dir.join("cri.sock"), dir.join("root"));
    args.cgroup_parent = format!("minik8s-e2e-test-{n}");
    args.cni_network = format!("e2e-test-{n}");
    args.cni_bridge = format!("mk8e{:x}", n % 0xfffff);
    args.pod_cidr = format!("10.{tag}.{}.0/24", 1 + n % 250);
    let images = dir.join("images");
    args.images_dir = Some(images.clone());
    let a = args.clone();
    let cri = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&images).unwrap();
        minik8s_runtime::image::testimage::build_busybox_oci_tar(
            &images.join("busybox.tar"),
            BUSYBOX,
        )
        .expect("build the busybox tarball");
        let store = minik8s_runtime::cri::images::open_store(&a).expect("image store");
        Cri::open(a, store).expect("open cri")
    })
    .await
    .unwrap();
    let cri = Arc::new(cri);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let socket = args.socket.clone();
    let server = cri.clone();
    tokio::spawn(async move {
        minik8s_runtime::cri::serve(server, &socket, async {
            let _ = rx.await;
        })
        .await
        .expect("serve CRI");
    });
    for _ in 0..400 {
        if minik8s_runtime::cri::accepting(&args.socket) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Runtime {
        args,
        cri,
        stop: Some(tx),
    }
}

/// The API server and the nodelet (the runtime is the caller's).
pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub shutdown: CancellationToken,
    pub api: Option<minik8s_apiserver::Running>,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    pub token: String,
    pub node: String,
    pub config: minik8s_nodelet::Config,
    /// The runtime's cleanup guard: dropped after the nodelet is stopped and before the
    /// temp dir it lives in is removed, on every path.
    pub runtime: Option<Box<dyn std::any::Any + Send>>,
    nodelet: Option<(
        CancellationToken,
        tokio::task::JoinHandle<Result<(), minik8s_nodelet::Error>>,
    )>,
    /// The nodelet when it runs as a child process ([`Cluster::start_nodelet_process`]).
    nodelet_process: Option<nodelet_process::NodeletProcess>,
    /// How many nodelet processes were started (each logs to its own file).
    nodelet_runs: usize,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.nodelet {
            stop.cancel();
        }
        drop(self.nodelet_process.take());
        drop(self.runtime.take());
        self.shutdown.cancel();
    }
}

impl Cluster {
    /// The API server and our runtime (its tag as for [`start_runtime`]) in a temp dir named
    /// from `prefix`; returns the runtime's socket, for [`Cluster::start_nodelet`].
    pub async fn with_runtime(prefix: &str, tag: u8) -> (Cluster, PathBuf) {
        let tmp = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        let mut c = Cluster::start_api(tmp).await;
        let runtime = start_runtime(c.tmp.path(), tag).await;
        let socket = runtime.args.socket.clone();
        c.runtime = Some(Box::new(runtime));
        (c, socket)
    }

    /// Starts the API server; the nodelet waits for [`Cluster::start_nodelet`].
    pub async fn start_api(tmp: tempfile::TempDir) -> Cluster {
        let shutdown = CancellationToken::new();
        let cfg =
            minik8s_apiserver::Config::new(tmp.path().join("api"), "127.0.0.1:0".parse().unwrap());
        let api = minik8s_apiserver::start(cfg, shutdown.clone())
            .await
            .expect("API server starts");
        let kc = kube::config::Kubeconfig::read_from(&api.kubeconfig).unwrap();
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        cfg.default_retry = false;
        let client = kube::Client::try_from(cfg).unwrap();
        let node = format!("logs-node-{}", std::process::id());
        let config = minik8s_nodelet::Config::new(
            api.kubeconfig.clone(),
            &node,
            PathBuf::new(),
            tmp.path().join("nodelet"),
        );
        Cluster {
            kubeconfig: api.kubeconfig.clone(),
            token: api.token.clone(),
            api: Some(api),
            tmp,
            shutdown,
            client,
            node,
            config,
            runtime: None,
            nodelet: None,
            nodelet_process: None,
            nodelet_runs: 0,
        }
    }

    /// Starts the nodelet on `socket`, serving on 127.0.0.1 and a free port; returns the
    /// port its Node reports once registered.
    pub async fn start_nodelet(&mut self, socket: &Path) -> u16 {
        self.config.runtime_endpoint = socket.to_path_buf();
        // Loopback only: tests reach nothing but what they made.
        self.config.node_ip = std::net::Ipv4Addr::LOCALHOST;
        self.config.port = 0;
        self.config.status_update = Duration::from_secs(2);
        let stop = CancellationToken::new();
        let task = tokio::spawn(minik8s_nodelet::run(self.config.clone(), stop.clone()));
        self.nodelet = Some((stop, task));
        let nodes: Api<Node> = Api::all(self.client.clone());
        for _ in 0..300 {
            let port = nodes
                .get_opt(&self.node)
                .await
                .unwrap()
                .and_then(|n| Some(n.status?.daemon_endpoints?.kubelet_endpoint?.port));
            if let Some(p) = port.filter(|p| *p != 0) {
                return p as u16;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("node {} never reported its kubelet port", self.node);
    }

    /// Stops the nodelet and checks it ended cleanly.
    pub async fn stop_nodelet(&mut self) {
        if let Some((stop, task)) = self.nodelet.take() {
            stop.cancel();
            task.await.unwrap().expect("nodelet ran cleanly");
        }
        if let Some(p) = self.nodelet_process.take() {
            p.stop().await;
        }
    }

    /// Starts the nodelet as a child process on `socket`, serving on 127.0.0.1 and a port
    /// free now; returns once its Node reports that port (it has registered).
    pub async fn start_nodelet_process(&mut self, socket: &Path) -> u16 {
        self.config.runtime_endpoint = socket.to_path_buf();
        self.config.node_ip = std::net::Ipv4Addr::LOCALHOST;
        self.config.port = nodelet_process::free_port();
        self.nodelet_runs += 1;
        let log = self
            .tmp
            .path()
            .join(format!("nodelet-{}.log", self.nodelet_runs));
        let p = nodelet_process::NodeletProcess::spawn(&self.config, &log);
        let port = p.port;
        self.nodelet_process = Some(p);
        let nodes: Api<Node> = Api::all(self.client.clone());
        for _ in 0..600 {
            let reported = nodes
                .get_opt(&self.node)
                .await
                .unwrap()
                .and_then(|n| Some(n.status?.daemon_endpoints?.kubelet_endpoint?.port));
            if reported == Some(i32::from(port)) {
                return port;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let tail = self.nodelet_process.as_ref().map(|p| p.log_tail());
        let tail = tail.unwrap_or_default();
        panic!("the nodelet process never reported port {port}; its log:\n{tail}");
    }

    /// SIGKILLs the nodelet process.
    pub fn kill_nodelet_process(&mut self) {
        if let Some(p) = self.nodelet_process.take() {
            p.kill9();
        }
    }

    pub async fn stop(mut self) {
        self.stop_nodelet().await;
        drop(self.runtime.take());
        self.shutdown.cancel();
        if let Some(api) = self.api.take() {
            let _ = api.handle.await;
        }
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// A kube client for the nodelet's server (its self-signed certificate is not
    /// verified, as the API server does not), with `token` or none.
    pub fn nodelet_client(&self, port: u16, token: Option<&str>) -> kube::Client {
        let mut cfg = kube::Config::new(format!("https://127.0.0.1:{port}").parse().unwrap());
        cfg.accept_invalid_certs = true;
        cfg.default_retry = false;
        if let Some(t) = token {
            cfg.auth_info.token = Some(t.to_string().into());
        }
        kube::Client::try_from(cfg).unwrap()
    }

    fn minictl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.arg("minictl")
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env_remove("KUBECONFIG");
        cmd
    }

    /// Runs `minictl ARGS` to completion.
    pub async fn minictl(&self, args: &[&str]) -> Out {
        run(self.minictl_cmd(args), format!("minictl {args:?}")).await
    }

    /// Starts `minictl ARGS` with its stdout read line by line.
    pub fn minictl_follow(&self, args: &[&str]) -> Follower {
        Follower::spawn(self.minictl_cmd(args), format!("minictl {args:?}"))
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.tmp.path().join("kubectl-cache"))
            .args(args)
            .env_remove("KUBECONFIG");
        cmd
    }

    pub async fn kubectl(&self, args: &[&str]) -> Out {
        run(self.kubectl_cmd(args), format!("kubectl {args:?}")).await
    }

    pub fn kubectl_follow(&self, args: &[&str]) -> Follower {
        Follower::spawn(self.kubectl_cmd(args), format!("kubectl {args:?}"))
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

async fn run(mut cmd: Command, what: String) -> Out {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: spawn: {e}"));
    let pid = child.id();
    let wait = tokio::task::spawn_blocking(move || child.wait_with_output());
    match tokio::time::timeout(COMMAND_TIMEOUT, wait).await {
        Ok(out) => {
            let out = out.unwrap().unwrap();
            Out {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        Err(_) => {
            // SAFETY: kill(2) on the child this test spawned and has not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{what} hung for {COMMAND_TIMEOUT:?}");
        }
    }
}

/// A running command whose stdout lines arrive on a channel; killed when dropped.
pub struct Follower {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    what: String,
}

impl Follower {
    fn spawn(mut cmd: Command, what: String) -> Follower {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: spawn: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines, what }
    }

    /// Waits for a line equal to `want`; panics on timeout or end of output.
    pub async fn expect_line(&self, want: &str, secs: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        while std::time::Instant::now() < deadline {
            match self.lines.try_recv() {
                Ok(l) if l == want => return,
                Ok(l) => seen.push(l),
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    panic!("{}: output ended before {want:?}; saw {seen:?}", self.what)
                }
            }
        }
        panic!("{}: no line {want:?} in {secs}s; saw {seen:?}", self.what);
    }

    /// Waits for the command to exit by itself; its exit code.
    pub async fn wait_exit(&mut self, secs: u64) -> i32 {
        for _ in 0..secs * 20 {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} still running after {secs}s", self.what);
    }

    /// Whether the command is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that the default namespace has an Event with each of these reasons.
pub async fn assert_events(client: &kube::Client, want: &[&str]) {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let reasons: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for want in want {
        assert!(
            reasons.iter().any(|r| r == want),
            "event {want} missing: {reasons:?}"
        );
    }
}

/// A pod whose container outgrows its 24Mi memory limit (`tail` buffers 64 MiB without a
/// newline), so the kernel OOM-kills it: Kubernetes' reason `OOMKilled`.
pub fn oom_pod(node: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "oom"},
        "spec": {
            "nodeName": node, "restartPolicy": "Never",
            "containers": [{
                "name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "head -c 64m /dev/zero | tail"],
                "resources": {"limits": {"memory": "24Mi"}},
            }],
        }
    }))
    .unwrap()
}

/// Polls the pod until `ok` holds; panics with `what` and the last state otherwise.
pub async fn wait_pod(
    api: &Api<Pod>,
    name: &str,
    secs: u64,
    what: &str,
    ok: impl Fn(&Pod) -> bool,
) -> Pod {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let p = api.get_opt(name).await.unwrap();
        if let Some(p) = &p {
            if ok(p) {
                return p.clone();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pod {name}: {what} not reached in {secs}s; pod {:?}",
            p.and_then(|p| p.status)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The status of the pod's container `name`.
pub fn cstatus(p: &Pod, name: &str) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
        .cloned()
}

/// Whether every container of the pod runs.
pub fn all_running(p: &Pod) -> bool {
    let n = p.spec.as_ref().map_or(0, |s| s.containers.len());
    let st = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    st.is_some_and(|cs| {
        cs.len() == n
            && cs
                .iter()
                .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
    })
}
