//! Compatibility with the reference CRI implementation: the same CRI calls against our runtime
//! and against containerd (Debian's, with runc, `restrict_oom_score_adj = true`, its own root,
//! socket, CNI bridge and subnet), and the same observations from both: pod IP on the pod
//! network and reachable from the host, two containers talking over localhost, exit codes and
//! reasons, CRI log records, ExecSync output and exit code, label filters, stop/remove
//! semantics and NotFound codes. Skipped, with the reason printed, only where containerd is
//! not installed.

mod cri_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use cri_support::containerd::{unavailable, Containerd};
use cri_support::*;
use minik8s_runtime::cri::k8s_cri::v1 as cri;
use minik8s_runtime::cri::k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use minik8s_runtime::cri::tonic::transport::Channel;
use minik8s_runtime::cri::OciRuntimeKind;

/// What a runtime did; must be equal for ours and containerd.
#[derive(Debug, PartialEq)]
struct Observed {
    pod_ready: bool,
    pod_ip_in_subnet: bool,
    host_reaches_pod: bool,
    client_exit: (i32, String),
    failing_exit: (i32, String),
    client_log_record: String,
    failing_log_record: String,
    exec: (i32, String, String),
    by_label: usize,
    stopped_exit: (i32, String),
    removed_status_code: minik8s_runtime::cri::tonic::Code,
    unknown_container_code: minik8s_runtime::cri::tonic::Code,
}

/// The stream and tag of a CRI log record plus its text: "<ts> stdout F hello" → "stdout F hello".
fn record(log: &str) -> String {
    log.lines()
        .next()
        .and_then(|l| l.split_once(' '))
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_default()
}

fn host_get(ip: String) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(
            &format!("{ip}:8080").parse().unwrap(),
            Duration::from_millis(300),
        ) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.contains("hello-from-pod") {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

async fn scenario(
    mut rt: RuntimeServiceClient<Channel>,
    sandbox: cri::PodSandboxConfig,
    subnet_prefix: &str,
) -> Observed {
    let pod = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(sandbox.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    let status = rt
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    let ip = status.network.clone().unwrap_or_default().ip;
    let server = create_start(
        &mut rt,
        &pod,
        &sandbox,
        container_config(
            "server",
            &["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www"],
        ),
    )
    .await;
    let client = create_start(
        &mut rt,
        &pod,
        &sandbox,
        container_config(
            "client",
            &["sh", "-c", "for i in $(seq 100); do wget -q -O - http://127.0.0.1:8080/ && exit 0; sleep 0.05; done; exit 1"],
        ),
    )
    .await;
    let failing = create_start(
        &mut rt,
        &pod,
        &sandbox,
        container_config("failing", &["sh", "-c", "echo oops >&2; exit 3"]),
    )
    .await;
    let c = wait_exited(&mut rt, &client, 20).await;
    let f = wait_exited(&mut rt, &failing, 20).await;
    let host_reaches_pod = tokio::task::spawn_blocking({
        let ip = ip.clone();
        move || host_get(ip)
    })
    .await
    .unwrap();
    let exec = rt
        .exec_sync(cri::ExecSyncRequest {
            container_id: server.clone(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "cat /www/index.html; echo err >&2; exit 7".into(),
            ],
            timeout: 10,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    let by_label = rt
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: pod.clone(),
                label_selector: [("name".to_string(), "failing".to_string())].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers
        .len();
    rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .expect("StopPodSandbox");
    let s = wait_exited(&mut rt, &server, 10).await;
    rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .expect("RemovePodSandbox");
    let removed = rt
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod,
            verbose: false,
        })
        .await
        .unwrap_err();
    let unknown = rt
        .container_status(cri::ContainerStatusRequest {
            container_id: "0123456789abcdef".into(),
            verbose: false,
        })
        .await
        .unwrap_err();
    Observed {
        pod_ready: status.state == cri::PodSandboxState::SandboxReady as i32,
        pod_ip_in_subnet: ip.starts_with(subnet_prefix),
        host_reaches_pod,
        client_exit: (c.exit_code, c.reason),
        failing_exit: (f.exit_code, f.reason),
        client_log_record: record(&read(&c.log_path)),
        failing_log_record: record(&read(&f.log_path)),
        exec: (
            exec.exit_code,
            String::from_utf8_lossy(&exec.stdout).into(),
            String::from_utf8_lossy(&exec.stderr).into(),
        ),
        by_label,
        stopped_exit: (s.exit_code, s.reason),
        removed_status_code: removed.code(),
        unknown_container_code: unknown.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_behaviour_as_containerd() {
    if let Some(why) = unavailable() {
        eprintln!("skipping the containerd compatibility test: {why}");
        return;
    }
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut env = Env::start(OciRuntimeKind::Builtin).await;
        env.import_busybox().await;
        let ours_prefix = format!("{}.", env.args.pod_cidr.rsplit_once('.').unwrap().0);
        let mut config = sandbox_config(&env, "compat");
        let ours = scenario(env.runtime().await, config.clone(), &ours_prefix).await;

        let n = unique_number();
        let subnet_third = 1 + (n + 125) % 250;
        let dir = env.tmp.path().join("containerd");
        std::fs::create_dir_all(&dir).unwrap();
        let tar = env.args.images_dir.clone().unwrap().join("busybox.tar");
        let bridge = format!("mk8c{:x}", n % 0xfffff);
        let subnet = format!("10.88.{subnet_third}.0/24");
        let ctrd = {
            let dir = dir.clone();
            let bridge = bridge.clone();
            let subnet = subnet.clone();
            tokio::task::spawn_blocking(move || Containerd::start(&dir, &bridge, &subnet, &tar))
                .await
                .unwrap()
        };
        let channel = minik8s_runtime::cri::connect(&ctrd.socket).await.unwrap();
        config.metadata.as_mut().unwrap().uid = format!("uid-ctrd-{n}");
        config.log_directory = env.log_dir().join("containerd").display().to_string();
        let cgroup_parent = format!("/minik8s-ctrd-test-{n}");
        config.linux = Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.clone(),
            ..Default::default()
        });
        let theirs = scenario(
            RuntimeServiceClient::new(channel),
            config,
            &format!("10.88.{subnet_third}."),
        )
        .await;
        drop(ctrd);
        if let Ok(layout) = minik8s_runtime::cgroups::Layout::detect() {
            let cg = minik8s_runtime::cgroups::Cgroup::open(
                &layout,
                cgroup_parent.trim_start_matches('/'),
            );
            if cg.exists() {
                let _ = cg.remove();
            }
        }
        assert_eq!(ours, theirs, "ours (left) differs from containerd (right)");
        assert!(
            ours.host_reaches_pod && ours.pod_ready && ours.pod_ip_in_subnet,
            "{ours:?}"
        );
        assert_eq!(ours.client_exit, (0, "Completed".into()));
    })
    .await
    .expect("compat test timed out: a CRI call to ours or containerd hung");
}
