//! End-to-end tests of the CRI server through a real CRI client on its unix socket: pods with
//! real network namespaces wired by the Debian CNI plugins, containers from an image on overlayfs,
//! logs, exit codes and reasons, OOM, stop timeouts, exec, stats, and a restart of the runtime.

mod cri_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use cri_support::*;
use minik8s_runtime::cri::k8s_cri::v1 as cri;
use minik8s_runtime::cri::tonic::Code;
use minik8s_runtime::cri::OciRuntimeKind;

/// Every test body runs under this timeout: a hang means a CRI call or a container never
/// returned (a stuck shim, plugin or wait).
async fn within<F: std::future::Future<Output = ()>>(secs: u64, f: F) {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test timed out: a CRI call or a container never finished");
}

fn http_get(ip: &str, port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect_timeout(
        &format!("{ip}:{port}").parse().unwrap(),
        Duration::from_millis(500),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

async fn pod_with_two_containers(oci: OciRuntimeKind) {
    let mut env = Env::start(oci).await;
    env.import_busybox().await;
    let mut rt = env.runtime().await;

    let version = rt
        .version(cri::VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.runtime_name, "minik8s");
    let status = rt
        .status(cri::StatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let conditions = status.status.unwrap().conditions;
    assert!(conditions.iter().all(|c| c.status), "{conditions:?}");

    let (pod, sandbox) = run_pod(&env, &mut rt, "web").await;
    let pod_status = rt
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(pod_status.state, cri::PodSandboxState::SandboxReady as i32);
    let ip = pod_status.network.unwrap().ip;
    let subnet_prefix = env.args.pod_cidr.rsplit_once('.').unwrap().0.to_string();
    assert!(
        ip.starts_with(&subnet_prefix),
        "pod ip {ip} not in {}",
        env.args.pod_cidr
    );

    let server = create_start(
        &mut rt,
        &pod,
        &sandbox,
        container_config(
            "server",
            &["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www"],
        ),
    )
    .await;
    // The second container reaches the first over the pod's shared loopback.
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
    let done = wait_exited(&mut rt, &client, 20).await;
    assert_eq!(
        (done.exit_code, done.reason.as_str()),
        (0, "Completed"),
        "{done:?}"
    );
    assert!(done.finished_at >= done.started_at && done.started_at > 0);
    let log = read(&done.log_path);
    assert!(
        log.contains(" stdout F hello-from-pod"),
        "client log: {log:?}"
    );
    let server_log = read(env.log_dir().join("web/server.log"));
    assert!(
        server_log.contains(" stdout F serving"),
        "server log: {server_log:?}"
    );

    // The pod IP is reachable from the host through the test's own bridge.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ip2 = ip.clone();
    let body = tokio::task::spawn_blocking(move || loop {
        if let Some(body) = http_get(&ip2, 8080) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "pod ip {ip2}:8080 unreachable from the host"
        );
        std::thread::sleep(Duration::from_millis(50));
    })
    .await
    .unwrap();
    assert!(body.contains("hello-from-pod"), "{body}");

    // ExecSync sees the pod's hostname, DNS config and the container's filesystem.
    let exec = rt
        .exec_sync(cri::ExecSyncRequest {
            container_id: server.clone(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "hostname; cat /etc/resolv.conf; cat /www/index.html; echo err >&2; exit 7".into(),
            ],
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    let out = String::from_utf8_lossy(&exec.stdout);
    assert_eq!(exec.exit_code, 7);
    assert!(out.starts_with("web\n"), "{out}");
    assert!(
        out.contains("nameserver 10.96.0.10") && out.contains("hello-from-pod"),
        "{out}"
    );
    assert_eq!(String::from_utf8_lossy(&exec.stderr), "err\n");

    // Stats come from the container's cgroup.
    let stats = rt
        .container_stats(cri::ContainerStatsRequest {
            container_id: server.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert!(stats
        .memory
        .and_then(|m| m.usage_bytes)
        .is_some_and(|u| u.value > 0));

    // Filters.
    let lister = rt.clone();
    let list = |filter: cri::ContainerFilter| {
        let mut rt = lister.clone();
        async move {
            rt.list_containers(cri::ListContainersRequest {
                filter: Some(filter),
            })
            .await
            .unwrap()
            .into_inner()
            .containers
        }
    };
    assert_eq!(list(cri::ContainerFilter::default()).await.len(), 2);
    let running = list(cri::ContainerFilter {
        state: Some(cri::ContainerStateValue {
            state: cri::ContainerState::ContainerRunning as i32,
        }),
        ..Default::default()
    })
    .await;
    assert_eq!(
        running.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [server.as_str()]
    );
    let by_label = list(cri::ContainerFilter {
        label_selector: [("name".to_string(), "client".to_string())].into(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_label.len(), 1);
    assert_eq!(by_label[0].id, client);

    // Teardown releases the network namespace.
    rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap();
    let stopped = wait_exited(&mut rt, &server, 10).await;
    assert_eq!(stopped.exit_code, 137, "{stopped:?}");
    rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap();
    assert!(!env.args.root.join("sandboxes").join(&pod).exists());
    let err = rt
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod,
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let left = list(cri::ContainerFilter::default()).await;
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_with_two_containers_builtin() {
    within(60, pod_with_two_containers(OciRuntimeKind::Builtin)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_with_two_containers_runc() {
    within(60, pod_with_two_containers(OciRuntimeKind::Runc)).await;
}

/// crun refuses this hybrid-cgroup host unless it runs without the cgroup2 mount (see
/// `monitor::hide_hybrid_cgroup2_from_crun`): the same pod through `--oci-runtime crun`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_with_two_containers_crun() {
    within(60, pod_with_two_containers(OciRuntimeKind::Crun)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_oom_and_stop_timeout_builtin() {
    within(60, exit_codes_oom_and_stop_timeout(OciRuntimeKind::Builtin)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_oom_and_stop_timeout_runc() {
    within(60, exit_codes_oom_and_stop_timeout(OciRuntimeKind::Runc)).await;
}

async fn exit_codes_oom_and_stop_timeout(oci: OciRuntimeKind) {
    {
        let mut env = Env::start(oci).await;
        env.import_busybox().await;
        let mut rt = env.runtime().await;
        let (pod, sandbox) = run_pod(&env, &mut rt, "exits").await;

        let failing = create_start(
            &mut rt,
            &pod,
            &sandbox,
            container_config("failing", &["sh", "-c", "echo oops >&2; exit 3"]),
        )
        .await;
        let st = wait_exited(&mut rt, &failing, 10).await;
        assert_eq!((st.exit_code, st.reason.as_str()), (3, "Error"));
        assert!(
            read(&st.log_path).contains(" stderr F oops"),
            "{}",
            read(&st.log_path)
        );

        let mut hog = container_config("hog", &["sh", "-c", "tail /dev/zero"]);
        hog.linux = Some(cri::LinuxContainerConfig {
            resources: Some(cri::LinuxContainerResources {
                memory_limit_in_bytes: 16 << 20,
                ..Default::default()
            }),
            ..Default::default()
        });
        let hog = create_start(&mut rt, &pod, &sandbox, hog).await;
        let st = wait_exited(&mut rt, &hog, 30).await;
        assert_eq!(
            (st.exit_code, st.reason.as_str()),
            (137, "OOMKilled"),
            "{st:?}"
        );

        let stubborn = create_start(
            &mut rt,
            &pod,
            &sandbox,
            container_config("stubborn", &["sh", "-c", "trap '' TERM; sleep 1000"]),
        )
        .await;
        let started = Instant::now();
        rt.stop_container(cri::StopContainerRequest {
            container_id: stubborn.clone(),
            timeout: 1,
        })
        .await
        .unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "SIGTERM was not ignored?"
        );
        let st = wait_exited(&mut rt, &stubborn, 5).await;
        assert_eq!((st.exit_code, st.reason.as_str()), (137, "Error"), "{st:?}");

        // Wrong state and unknown ids map to their gRPC codes.
        let err = rt
            .start_container(cri::StartContainerRequest {
                container_id: stubborn.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        let err = rt
            .container_status(cri::ContainerStatusRequest {
                container_id: "nope".into(),
                verbose: false,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
        let err = rt.exec(cri::ExecRequest::default()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_sandboxes_containers_and_images_builtin() {
    restart_keeps_sandboxes_containers_and_images(OciRuntimeKind::Builtin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_sandboxes_containers_and_images_runc() {
    restart_keeps_sandboxes_containers_and_images(OciRuntimeKind::Runc).await;
}

async fn restart_keeps_sandboxes_containers_and_images(oci: OciRuntimeKind) {
    within(60, async {
        let mut env = Env::start(oci).await;
        env.import_busybox().await;
        let mut rt = env.runtime().await;
        let (pod, sandbox) = run_pod(&env, &mut rt, "durable").await;
        let sleeper = create_start(
            &mut rt,
            &pod,
            &sandbox,
            container_config("sleeper", &["sleep", "1000"]),
        )
        .await;
        let done = create_start(
            &mut rt,
            &pod,
            &sandbox,
            container_config("done", &["sh", "-c", "exit 4"]),
        )
        .await;
        // Only observed after the restart: the exit must come from the shim's record.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = rt
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        drop(rt);

        env.shutdown().await;
        // Without the tarball, the image must come back from the store itself, not from a
        // re-import of --images-dir at start.
        std::fs::remove_dir_all(env.args.images_dir.as_ref().unwrap()).unwrap();
        env.serve().await;
        let image = env
            .images()
            .await
            .image_status(cri::ImageStatusRequest {
                image: Some(cri::ImageSpec {
                    image: "busybox".into(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .image;
        assert!(
            image.is_some(),
            "the image store lost busybox across a restart"
        );

        let mut rt = env.runtime().await;
        let pods = rt
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
            .await
            .unwrap()
            .into_inner()
            .items;
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].state, cri::PodSandboxState::SandboxReady as i32);
        let after = rt
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        assert_eq!(after.network, before.network);
        let st = rt
            .container_status(cri::ContainerStatusRequest {
                container_id: sleeper.clone(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        assert_eq!(
            st.state,
            cri::ContainerState::ContainerRunning as i32,
            "{st:?}"
        );
        let st = wait_exited(&mut rt, &done, 5).await;
        assert_eq!((st.exit_code, st.reason.as_str()), (4, "Error"));
        let exec = rt
            .exec_sync(cri::ExecSyncRequest {
                container_id: sleeper.clone(),
                cmd: vec!["true".into()],
                timeout: 5,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(exec.exit_code, 0);
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await
        .unwrap();
    })
    .await;
}
