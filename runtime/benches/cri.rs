//! `cargo bench -p minik8s-runtime --bench cri`: pod start through CRI (RunPodSandbox +
//! CreateContainer + StartContainer of busybox `sleep 1000`, image present) and teardown
//! (StopPodSandbox + RemovePodSandbox), median over 50 pods, against our runtime (a separate
//! process: this binary re-executed as the server and as the shims) and, in the same run,
//! containerd 1.6 + runc on the same image. Also the RSS of each runtime with 50 pods running.
//! Prints the figures and writes them to `target/bench/cri.json`.

#[path = "../../tests/cri_support/containerd.rs"]
mod containerd;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use minik8s_runtime::cri::k8s_cri::v1 as cri;
use minik8s_runtime::cri::k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use minik8s_runtime::cri::tonic::transport::Channel;

const PODS: usize = 50;
const BUSYBOX: &str = "docker.io/library/busybox:latest";

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // This binary is also the shim, the runc monitor and the server under test.
    match args.get(1).and_then(|a| a.to_str()) {
        Some("shim") => minik8s_runtime::shim::main(&args[2..]),
        Some(minik8s_runtime::cri::monitor::ARG) => minik8s_runtime::cri::monitor::main(&args[2..]),
        Some("serve-cri") => return serve(&args[2..]),
        _ => {}
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(bench());
}

fn serve(args: &[std::ffi::OsString]) {
    let s = |i: usize| args[i].to_string_lossy().to_string();
    let mut a = minik8s_runtime::cri::Args::new(s(0), s(1));
    a.cni_bridge = s(2);
    a.pod_cidr = s(3);
    a.cgroup_parent = s(4);
    a.images_dir = Some(s(5).into());
    a.cni_network = format!("bench-{}", s(2));
    // The shim-only binary, as installed beside `minik8s` (the server prefers it).
    a.shim_binary = Some(env!("CARGO_BIN_EXE_minik8s-shim").into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        minik8s_runtime::cri::run(a, async move {
            term.recv().await;
        })
        .await
        .expect("serve");
    });
}

struct Figures {
    start_ms: Vec<f64>,
    teardown_ms: Vec<f64>,
    rss_kib: u64,
    rss_with_shims_kib: u64,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// RSS of every process whose command line contains `needle` (the shims).
fn rss_of_matching(needle: &str) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) {
            total += rss_kib(pid);
        }
    }
    total
}

async fn run_pods(
    mut rt: RuntimeServiceClient<Channel>,
    tag: &str,
    cgroup_parent: Option<&str>,
) -> (Vec<f64>, Vec<String>) {
    let mut times = Vec::new();
    let mut pods = Vec::new();
    for i in 0..PODS {
        let sandbox = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: format!("bench-{i}"),
                uid: format!("uid-{tag}-{i}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: format!("bench-{i}"),
            linux: cgroup_parent.map(|p| cri::LinuxPodSandboxConfig {
                cgroup_parent: p.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let container = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: "sleep".into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: BUSYBOX.into(),
                ..Default::default()
            }),
            command: vec!["sleep".into(), "1000".into()],
            ..Default::default()
        };
        let t = Instant::now();
        let pod = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(sandbox.clone()),
                runtime_handler: String::new(),
            })
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        let id = rt
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(container),
                sandbox_config: Some(sandbox),
            })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        rt.start_container(cri::StartContainerRequest { container_id: id })
            .await
            .expect("StartContainer");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        pods.push(pod);
    }
    (times, pods)
}

async fn teardown(mut rt: RuntimeServiceClient<Channel>, pods: Vec<String>) -> Vec<f64> {
    let mut times = Vec::new();
    for pod in pods {
        let t = Instant::now();
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .expect("StopPodSandbox");
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await
        .expect("RemovePodSandbox");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times
}

async fn wait_socket(path: &Path, child: &mut Option<&mut Child>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        if let Some(c) = child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("server exited early: {status}");
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn bench_ours(tmp: &Path, images: &Path) -> Figures {
    let socket = tmp.join("ours.sock");
    let n = std::process::id() % 0xffff;
    let cgroup_parent = format!("minik8s-bench-{n}");
    let bridge = format!("mk8b{n:x}");
    let mut server = Command::new(std::env::current_exe().unwrap())
        .arg("serve-cri")
        .arg(&socket)
        .arg(tmp.join("ours-root"))
        .arg(&bridge)
        .arg("10.88.252.0/22")
        .arg(&cgroup_parent)
        .arg(images)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_socket(&socket, &mut Some(&mut server)).await;
    let channel = minik8s_runtime::cri::connect(&socket).await.unwrap();
    let rt = RuntimeServiceClient::new(channel);
    let (start_ms, pods) = run_pods(rt.clone(), "ours", None).await;
    let rss = rss_kib(server.id());
    let shims = rss_of_matching(&format!("shim\0{}", tmp.join("ours-root").display()));
    let teardown_ms = teardown(rt, pods).await;
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let _ = server.wait();
    let _ = Command::new("ip")
        .args(["link", "del", &bridge])
        .stderr(Stdio::null())
        .status();
    if let Ok(layout) = minik8s_runtime::cgroups::Layout::detect() {
        let _ = minik8s_runtime::cgroups::Cgroup::open(&layout, &cgroup_parent).remove();
    }
    Figures {
        start_ms,
        teardown_ms,
        rss_kib: rss,
        rss_with_shims_kib: rss + shims,
    }
}

async fn bench_containerd(tmp: &Path, busybox_tar: &Path) -> Option<Figures> {
    if let Some(why) = containerd::unavailable() {
        println!("containerd: skipped ({why})");
        return None;
    }
    let dir = tmp.join("containerd");
    std::fs::create_dir_all(&dir).unwrap();
    let n = std::process::id() % 0xffff;
    let bridge = format!("mk8d{n:x}");
    let (d, b, t) = (dir.clone(), bridge.clone(), busybox_tar.to_path_buf());
    let ctrd = tokio::task::spawn_blocking(move || {
        containerd::Containerd::start(&d, &b, "10.88.248.0/22", &t)
    })
    .await
    .unwrap();
    let channel = minik8s_runtime::cri::connect(&ctrd.socket).await.unwrap();
    let rt = RuntimeServiceClient::new(channel);
    let cgroup_parent = format!("/minik8s-bench-ctrd-{n}");
    let (start_ms, pods) = run_pods(rt.clone(), "ctrd", Some(&cgroup_parent)).await;
    let pid = ctrd_pid(&dir);
    let rss = pid.map(rss_kib).unwrap_or(0);
    let shims = rss_of_matching("containerd-shim-runc-v2");
    let teardown_ms = teardown(rt, pods).await;
    drop(ctrd);
    if let Ok(layout) = minik8s_runtime::cgroups::Layout::detect() {
        let _ =
            minik8s_runtime::cgroups::Cgroup::open(&layout, cgroup_parent.trim_start_matches('/'))
                .remove();
    }
    Some(Figures {
        start_ms,
        teardown_ms,
        rss_kib: rss,
        rss_with_shims_kib: rss + shims,
    })
}

/// containerd's pid: the process whose command line names our config file.
fn ctrd_pid(dir: &Path) -> Option<u32> {
    let needle = dir.join("config.toml").display().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        (String::from_utf8_lossy(&cmd).contains(&needle)
            && String::from_utf8_lossy(&cmd).starts_with(containerd::CONTAINERD))
        .then_some(pid)
    })
}

fn summary(name: &str, f: &Figures) -> serde_json::Value {
    println!(
        "{name:>10}: pod start median {:7.1} ms, teardown median {:7.1} ms, RSS with {PODS} pods {:6.1} MiB (incl. shims {:7.1} MiB)",
        median(&f.start_ms),
        median(&f.teardown_ms),
        f.rss_kib as f64 / 1024.0,
        f.rss_with_shims_kib as f64 / 1024.0
    );
    serde_json::json!({
        "pod_start_median_ms": median(&f.start_ms),
        "teardown_median_ms": median(&f.teardown_ms),
        "rss_mib": f.rss_kib as f64 / 1024.0,
        "rss_with_shims_mib": f.rss_with_shims_kib as f64 / 1024.0,
        "pods": PODS,
    })
}

async fn bench() {
    let tmp = tempfile::Builder::new()
        .prefix("cri-bench")
        .tempdir()
        .unwrap();
    let images = tmp.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let tar = images.join("busybox.tar");
    minik8s_runtime::image::testimage::build_busybox_oci_tar(&tar, BUSYBOX).unwrap();

    let ours = bench_ours(tmp.path(), &images).await;
    let theirs = bench_containerd(tmp.path(), &tar).await;
    let mut out = serde_json::json!({ "minik8s": summary("minik8s", &ours) });
    if let Some(t) = &theirs {
        out["containerd"] = summary("containerd", t);
        let ratio = median(&t.start_ms) / median(&ours.start_ms);
        println!("pod start: minik8s is {ratio:.1}x faster than containerd + runc");
        out["start_speedup_vs_containerd"] = serde_json::json!(ratio);
    }
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("cri.json"),
        serde_json::to_string_pretty(&out).unwrap(),
    )
    .unwrap();
    println!("wrote {}", dir.join("cri.json").display());
}
