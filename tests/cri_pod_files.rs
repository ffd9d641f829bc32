//! The files a pod's containers share and the log rotation the kubelet drives, through a real
//! CRI client: one /dev/shm per pod (its containers share the sandbox's IPC namespace, so POSIX
//! shared memory must be shared too, as containerd does), and ReopenContainerLog after the log
//! file was renamed (the kubelet's container log rotation).

mod cri_support;

use std::time::{Duration, Instant};

use cri_support::*;
use minik8s_runtime::cri::k8s_cri::v1 as cri;
use minik8s_runtime::cri::tonic::Code;
use minik8s_runtime::cri::OciRuntimeKind;

/// Every test body runs under this timeout: a hang means a CRI call or a container never
/// returned (a stuck shim, monitor or wait).
async fn within<F: std::future::Future<Output = ()>>(secs: u64, f: F) {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test timed out: a CRI call or a container never finished");
}

/// Mounts under the test's temp dir, from this process's mountinfo.
fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.display().to_string();
    read("/proc/self/mountinfo")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&dir))
        .collect()
}

async fn pod_containers_share_dev_shm(oci: OciRuntimeKind) {
    let mut env = Env::start(oci).await;
    env.import_busybox().await;
    let mut rt = env.runtime().await;
    let (pod, sandbox) = run_pod(&env, &mut rt, "shm").await;
    let token = format!("token-{}", unique_number());
    // The writer leaves a file in /dev/shm and stays up; the reader, another container of the
    // pod, must find that very file in its own /dev/shm.
    let writer = create_start(
        &mut rt,
        &pod,
        &sandbox,
        container_config(
            "writer",
            &[
                "sh",
                "-c",
                &format!("echo {token} > /dev/shm/shared && exec sleep 30"),
            ],
        ),
    )
    .await;
    let reader = create_start(
        &mut rt,
        &pod,
        &sandbox,
        container_config(
            "reader",
            &[
                "sh",
                "-c",
                "for i in $(seq 200); do [ -f /dev/shm/shared ] && cat /dev/shm/shared && grep ' /dev/shm ' /proc/mounts && exit 0; sleep 0.02; done; exit 1",
            ],
        ),
    )
    .await;
    let status = wait_exited(&mut rt, &reader, 20).await;
    let log = read(&status.log_path);
    assert_eq!(status.exit_code, 0, "reader did not see the file: {log}");
    assert!(log.contains(&format!("stdout F {token}")), "{log}");
    // One tmpfs shared by the pod, not a tmpfs per container.
    assert!(log.contains("/dev/shm tmpfs"), "{log}");
    let shm_mounts = mounts_under(env.tmp.path())
        .into_iter()
        .filter(|m| m.ends_with("/shm"))
        .count();
    assert_eq!(shm_mounts, 1, "one /dev/shm tmpfs for the pod on the host");

    rt.stop_container(cri::StopContainerRequest {
        container_id: writer.clone(),
        timeout: 0,
    })
    .await
    .expect("StopContainer");
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
    let left = mounts_under(env.tmp.path());
    assert!(
        left.is_empty(),
        "mounts left after RemovePodSandbox: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_containers_share_dev_shm_builtin() {
    within(60, pod_containers_share_dev_shm(OciRuntimeKind::Builtin)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_containers_share_dev_shm_runc() {
    within(60, pod_containers_share_dev_shm(OciRuntimeKind::Runc)).await;
}

/// The numbers of the `line-N` records in a CRI log.
fn line_numbers(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.split_once(" stdout F line-"))
        .filter_map(|(_, n)| n.trim().parse().ok())
        .collect()
}

async fn wait_for_lines(path: &std::path::Path, min: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = read(path);
        if line_numbers(&text).len() >= min {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {min} lines in {}: {text}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn reopen_container_log_after_rename(oci: OciRuntimeKind) {
    let mut env = Env::start(oci).await;
    env.import_busybox().await;
    let mut rt = env.runtime().await;
    let (pod, sandbox) = run_pod(&env, &mut rt, "rotate").await;
    let id = create_start(
        &mut rt,
        &pod,
        &sandbox,
        container_config(
            "ticker",
            &[
                "sh",
                "-c",
                "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.02; done",
            ],
        ),
    )
    .await;
    let log = env.log_dir().join("rotate").join("ticker.log");
    wait_for_lines(&log, 3).await;

    // The kubelet's rotation: rename, then ReopenContainerLog.
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    rt.reopen_container_log(cri::ReopenContainerLogRequest {
        container_id: id.clone(),
    })
    .await
    .expect("ReopenContainerLog");
    assert!(
        log.exists(),
        "ReopenContainerLog returned before the new file exists"
    );
    let new = wait_for_lines(&log, 3).await;
    let old_after_reopen = read(&rotated);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Nothing more lands in the rotated file once the new one was opened.
    assert_eq!(
        read(&rotated),
        old_after_reopen,
        "old file still written to"
    );
    let (old_lines, new_lines) = (line_numbers(&old_after_reopen), line_numbers(&new));
    assert!(
        old_lines.last() < new_lines.first(),
        "the new file continues where the old one stopped: {old_lines:?} then {new_lines:?}"
    );
    let mut all = old_lines.clone();
    all.extend(&new_lines);
    assert!(
        all.windows(2).all(|w| w[1] == w[0] + 1),
        "no line lost or repeated across the rotation: {all:?}"
    );

    // Only a running container's log can be reopened; an unknown id is NotFound.
    rt.stop_container(cri::StopContainerRequest {
        container_id: id.clone(),
        timeout: 0,
    })
    .await
    .expect("StopContainer");
    let err = rt
        .reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await
        .expect_err("reopen of a stopped container");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    let err = rt
        .reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: "no-such-container".into(),
        })
        .await
        .expect_err("reopen of an unknown container");
    assert_eq!(err.code(), Code::NotFound, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_container_log_after_rename_builtin() {
    within(
        60,
        reopen_container_log_after_rename(OciRuntimeKind::Builtin),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_container_log_after_rename_runc() {
    within(60, reopen_container_log_after_rename(OciRuntimeKind::Runc)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_container_log_after_rename_crun() {
    within(60, reopen_container_log_after_rename(OciRuntimeKind::Crun)).await;
}
