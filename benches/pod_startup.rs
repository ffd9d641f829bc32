//! Pod startup latency on one node (issue #6's benchmark): N pods (default 100, `PODS=`)
//! created at once with `spec.nodeName` set and the image present; for each, the time from
//! its create request to `phase: Running` seen by a watch. p50 and p99, and the nodelet's RSS
//! with all N running: at once, and 10 s later (the steady state). The peer in the same run is
//! the same nodelet driving containerd's CRI (where installed) instead of `minik8s runtime`.
//!
//! Every component is the real release binary in its own process (API server, runtime,
//! nodelet), so RSS is the nodelet's alone. Run: `cargo bench --bench pod_startup`.
//! Writes target/bench/pod_startup.json.

#[path = "../tests/cri_support/containerd.rs"]
mod containerd;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_minik8s");
const BUSYBOX: &str = "docker.io/library/busybox:latest";

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], log: &Path) -> anyhow::Result<Proc> {
    let out = std::fs::File::create(log)?;
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting minik8s {}", args[0]))?;
    Ok(Proc(child))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A process's memory from /proc/<pid>/status, in KiB.
#[derive(Clone, Copy, Default)]
struct Memory {
    rss: u64,
    hwm: u64,
    /// Private anonymous pages: heap and stacks.
    anon: u64,
    /// File pages: the binary's text and data, libraries.
    file: u64,
}

fn memory_kib(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.saturating_sub(1).min(sorted.len() - 1)]
}

struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    all_running_s: f64,
    /// The nodelet with the node registered and no pods.
    idle: Memory,
    /// The nodelet the moment every pod is running (the burst's garbage included).
    loaded: Memory,
    /// The same pods, running for SETTLE more seconds: the steady state.
    settled: Memory,
}

/// How long the pods run before the steady-state reading.
const SETTLE: Duration = Duration::from_secs(10);

/// The CRI runtime under test: ours as a process, or a private containerd.
enum Runtime {
    Minik8s {
        proc: Proc,
        socket: PathBuf,
        bridge: String,
        cgroup: String,
    },
    Containerd(containerd::Containerd),
}

impl Runtime {
    fn socket(&self) -> PathBuf {
        match self {
            Runtime::Minik8s { socket, .. } => socket.clone(),
            Runtime::Containerd(c) => c.socket.clone(),
        }
    }
}

fn start_minik8s_runtime(dir: &Path, images: &Path) -> anyhow::Result<Runtime> {
    let n = std::process::id();
    let socket = dir.join("runtime.sock");
    let bridge = format!("mk8b{:x}", n % 0xfffff);
    let cgroup = format!("minik8s-bench-{n}");
    let proc = spawn(
        &[
            "runtime",
            "--socket",
            socket.to_str().unwrap(),
            "--root",
            dir.join("root").to_str().unwrap(),
            "--images-dir",
            images.to_str().unwrap(),
            "--cgroup-parent",
            &cgroup,
            "--cni-network",
            &format!("bench-{n}"),
            "--cni-bridge",
            &bridge,
            "--pod-cidr",
            &format!("10.90.{}.0/24", 1 + n % 250),
        ],
        &dir.join("runtime.log"),
    )?;
    wait_for(&socket, Duration::from_secs(30), "the runtime's socket")?;
    Ok(Runtime::Minik8s {
        proc,
        socket,
        bridge,
        cgroup,
    })
}

fn wait_for(path: &Path, limit: Duration, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        if Instant::now() > deadline {
            bail!("{what} ({}) did not appear in {limit:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Removes every sandbox left on the runtime, then stops it and sweeps its bridge and cgroup.
async fn stop_runtime(rt: Runtime) {
    if let Ok(mut cri) = minik8s_nodelet::cri::Cri::connect(&rt.socket()).await {
        for s in cri.sandboxes(None).await.unwrap_or_default() {
            let _ = cri.stop_sandbox(&s.id).await;
            let _ = cri.remove_sandbox(&s.id).await;
        }
    }
    if let Runtime::Minik8s {
        proc,
        bridge,
        cgroup,
        ..
    } = rt
    {
        drop(proc);
        let _ = Command::new("ip")
            .args(["link", "del", &bridge])
            .stderr(Stdio::null())
            .status();
        if let Ok(layout) = minik8s_runtime::cgroups::Layout::detect() {
            let cg = minik8s_runtime::cgroups::Cgroup::open(&layout, &cgroup);
            if cg.exists() {
                let _ = cg.remove();
            }
        }
    }
}

fn pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node, "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]}],
        }
    }))
    .expect("a valid pod")
}

async fn node_ready(nodes: &Api<Node>, name: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let ready = nodes.get_opt(name).await?.is_some_and(|n| {
            n.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("node {name} not Ready within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates `count` pods at once in `ns` and times each from its create to Running.
async fn time_pods(
    client: &kube::Client,
    ns: &str,
    node: &str,
    count: usize,
) -> anyhow::Result<Vec<f64>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let rv = pods
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version;
    let mut watch = pods
        .watch(&WatchParams::default(), &rv.unwrap_or_default())
        .await?
        .boxed();
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let creates = futures::future::join_all((0..count).map(|i| {
        let pods = pods.clone();
        let name = format!("p{i}");
        async move {
            let at = Instant::now();
            pods.create(&PostParams::default(), &pod(&name, node))
                .await
                .map(|_| (name, at))
        }
    }));
    for r in creates.await {
        let (name, at) = r?;
        sent.insert(name, at);
    }
    let mut latencies = Vec::with_capacity(count);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while latencies.len() < count {
        let ev = tokio::time::timeout_at(deadline, watch.next())
            .await
            .context("pods not all Running within 300s")?
            .context("the pod watch ended")??;
        if let WatchEvent::Modified(p) = ev {
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            let name = p.metadata.name.unwrap_or_default();
            if let (true, Some(at)) = (running, sent.remove(&name)) {
                latencies.push(at.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    Ok(latencies)
}

/// One runtime's round: a nodelet process on it, N pods timed, then everything removed.
async fn round(
    client: &kube::Client,
    kubeconfig: &Path,
    dir: &Path,
    rt: Runtime,
    label: &str,
    count: usize,
) -> anyhow::Result<Figures> {
    let node = format!("bench-{label}-{}", std::process::id());
    let endpoint = format!("unix://{}", rt.socket().display());
    let port = free_port().to_string();
    let nodelet = spawn(
        &[
            "nodelet",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--node-name",
            &node,
            "--runtime-endpoint",
            &endpoint,
            "--node-ip",
            "127.0.0.1",
            "--root-dir",
            dir.join(format!("nodelet-{label}")).to_str().unwrap(),
            "--port",
            &port,
        ],
        &dir.join(format!("nodelet-{label}.log")),
    )?;
    let result = async {
        let nodes: Api<Node> = Api::all(client.clone());
        node_ready(&nodes, &node, Duration::from_secs(60)).await?;
        let idle = memory_kib(nodelet.0.id());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": node}}))?;
        namespaces.create(&PostParams::default(), &ns).await?;
        let start = Instant::now();
        let mut lat = time_pods(client, &node, &node, count).await?;
        let all_running_s = start.elapsed().as_secs_f64();
        let loaded = memory_kib(nodelet.0.id());
        tokio::time::sleep(SETTLE).await;
        let settled = memory_kib(nodelet.0.id());
        lat.sort_by(f64::total_cmp);
        Ok::<_, anyhow::Error>(Figures {
            p50_ms: percentile(&lat, 50.0),
            p99_ms: percentile(&lat, 99.0),
            all_running_s,
            idle,
            loaded,
            settled,
        })
    }
    .await;
    remove_pods(client, &node).await;
    drop(nodelet);
    stop_runtime(rt).await;
    result
}

/// Deletes the round's pods and waits (bounded) until the nodelet has stopped them.
async fn remove_pods(client: &kube::Client, ns: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let _ = pods
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        match pods.list(&ListParams::default()).await {
            Ok(l) if l.items.is_empty() => return,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    eprintln!("warning: pods in {ns} still present after 120s; removing sandboxes directly");
}

fn print(label: &str, f: &Figures, count: usize) {
    println!(
        "{label:>10}: {count} pods  p50 {:>7.1} ms  p99 {:>7.1} ms  all Running in {:.2} s  nodelet RSS {:.1} MiB (peak {:.1}; anon {:.1}, file {:.1}; idle {:.1}; {}s later {:.1}: anon {:.1}, file {:.1})",
        f.p50_ms,
        f.p99_ms,
        f.all_running_s,
        mib(f.loaded.rss),
        mib(f.loaded.hwm),
        mib(f.loaded.anon),
        mib(f.loaded.file),
        mib(f.idle.rss),
        SETTLE.as_secs(),
        mib(f.settled.rss),
        mib(f.settled.anon),
        mib(f.settled.file),
    );
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn json_of(f: &Figures) -> serde_json::Value {
    json!({"p50_ms": f.p50_ms, "p99_ms": f.p99_ms, "all_running_s": f.all_running_s,
           "nodelet_rss_kib": f.loaded.rss, "nodelet_hwm_kib": f.loaded.hwm,
           "nodelet_rss_anon_kib": f.loaded.anon, "nodelet_rss_file_kib": f.loaded.file,
           "nodelet_idle_rss_kib": f.idle.rss,
           "nodelet_settled_rss_kib": f.settled.rss, "settle_s": SETTLE.as_secs()})
}

fn main() -> anyhow::Result<()> {
    // The runtime re-executes this program's sibling binary (`minik8s shim`), not this one,
    // but `cargo bench` passes `--bench`; nothing else is accepted.
    let count: usize = std::env::var("PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let tmp = tempfile::Builder::new().prefix("pod-startup").tempdir()?;
    let dir = tmp.path();
    let images = dir.join("images");
    std::fs::create_dir_all(&images)?;
    let busybox = images.join("busybox.tar");
    minik8s_runtime::image::testimage::build_busybox_oci_tar(&busybox, BUSYBOX)?;
    let api_port = free_port().to_string();
    let api_dir = dir.join("api");
    let _api = spawn(
        &[
            "apiserver",
            "--data-dir",
            api_dir.to_str().unwrap(),
            "--bind",
            &format!("127.0.0.1:{api_port}"),
        ],
        &dir.join("apiserver.log"),
    )?;
    let kubeconfig = api_dir.join("admin.kubeconfig");
    wait_for(&kubeconfig, Duration::from_secs(30), "admin.kubeconfig")?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        let client = kube::Client::try_from(cfg)?;
        let ours_dir = dir.join("minik8s");
        std::fs::create_dir_all(&ours_dir)?;
        let ours = start_minik8s_runtime(&ours_dir, &images)?;
        let ours = round(&client, &kubeconfig, dir, ours, "minik8s", count).await?;
        print("minik8s", &ours, count);
        let peer = match containerd::unavailable() {
            Some(why) => {
                println!("containerd: not measured ({why})");
                None
            }
            None => {
                let cdir = dir.join("containerd");
                std::fs::create_dir_all(&cdir)?;
                let n = std::process::id();
                let c = containerd::Containerd::start(
                    &cdir,
                    &format!("mk8c{:x}", n % 0xfffff),
                    &format!("10.91.{}.0/24", 1 + n % 250),
                    &busybox,
                );
                let f = round(
                    &client,
                    &kubeconfig,
                    dir,
                    Runtime::Containerd(c),
                    "containerd",
                    count,
                )
                .await?;
                print("containerd", &f, count);
                Some(f)
            }
        };
        let out = json!({
            "pods": count,
            "minik8s": json_of(&ours),
            "containerd": peer.as_ref().map(json_of),
            "targets": {"p99_ms": 1000, "nodelet_rss_mib": 30},
        });
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/pod_startup.json");
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(&path, serde_json::to_string_pretty(&out)?)?;
        println!("wrote {}", path.display());
        Ok(())
    })
}
