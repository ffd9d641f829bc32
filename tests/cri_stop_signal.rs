//! CRI StopContainer sends the stop signal to the container's init process only, as
//! containerd's CRI does (`task.Kill` without `WithKillAll`); only the SIGKILL at the end of
//! the grace period reaches every process. Signalling every process at once killed a
//! server's per-connection children (busybox httpd forks one per request) while the server
//! itself drained: in-flight requests were reset during a rolling update.

mod cri_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use cri_support::*;
use minik8s_runtime::cri::k8s_cri::v1 as cri;
use minik8s_runtime::cri::OciRuntimeKind;

/// Live (not zombie) processes below the cgroup parent, in any hierarchy that has it.
fn live_pids(parent: &str) -> BTreeSet<i32> {
    fn walk(dir: &Path, out: &mut BTreeSet<i32>) {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            }
        }
    }
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        walk(&e.path().join(parent), &mut out);
    }
    walk(&Path::new("/sys/fs/cgroup").join(parent), &mut out);
    out.retain(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    });
    out
}

async fn stop_signal_spares_the_children(oci: OciRuntimeKind) {
    let mut env = Env::start(oci).await;
    env.import_busybox().await;
    let mut rt = env.runtime().await;
    let (pod, sandbox) = run_pod(&env, &mut rt, "stopsig").await;
    // The init process (PID 1 of the container without a SIGTERM handler: the kernel drops
    // the signal, as for a server that drains) and a child that SIGTERM would kill.
    let id = create_start(
        &mut rt,
        &pod,
        &sandbox,
        container_config("server", &["sh", "-c", "sleep 1000 & exec sleep 1001"]),
    )
    .await;
    let parent = env.args.cgroup_parent.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut before = live_pids(&parent);
    while before.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the container's two processes never ran: {before:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        before = live_pids(&parent);
    }

    let started = Instant::now();
    let stop = {
        let (mut rt, id) = (rt.clone(), id.clone());
        tokio::spawn(async move {
            let req = cri::StopContainerRequest {
                container_id: id,
                timeout: 3,
            };
            rt.stop_container(req).await
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = live_pids(&parent);
    assert!(
        before.is_subset(&during),
        "the stop signal ended processes of the container within its grace period: {before:?} then {during:?}"
    );
    stop.await.unwrap().expect("StopContainer");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "the init process ignores SIGTERM: only the grace period's SIGKILL stops it"
    );
    let st = wait_exited(&mut rt, &id, 5).await;
    assert_eq!(st.exit_code, 137, "{st:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live_pids(&parent).is_disjoint(&before) {
        assert!(
            Instant::now() < deadline,
            "the SIGKILL left a process of the container running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_signal_goes_to_the_init_process_only_builtin() {
    tokio::time::timeout(
        Duration::from_secs(60),
        stop_signal_spares_the_children(OciRuntimeKind::Builtin),
    )
    .await
    .expect("test timed out: a CRI call or the container's stop never finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_signal_goes_to_the_init_process_only_runc() {
    tokio::time::timeout(
        Duration::from_secs(60),
        stop_signal_spares_the_children(OciRuntimeKind::Runc),
    )
    .await
    .expect("test timed out: a CRI call or the container's stop never finished");
}
