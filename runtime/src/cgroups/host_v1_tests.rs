//! Integration tests on this machine's real v1 cgroups (run as root). Every test makes its own
//! `minik8s-test-<pid>-<n>` cgroup behind a guard that kills its processes and removes it on
//! every path, including a failed assertion.

use std::time::{Duration, Instant};

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

use super::test_support::*;
use super::*;

#[test]
fn host_v1_limits_land_in_files_and_a_child_joins_every_controller() {
    let Some(layout) = v1() else { return };
    let top = unique_name();
    let mut g = Guard::new(&layout, &top);
    let r = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .shares(256u64)
                .quota(20_000i64)
                .period(100_000u64)
                .cpus("0")
                .build()
                .unwrap(),
        )
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64i64 << 20)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(20i64).build().unwrap())
        .build()
        .unwrap();
    let cg = Cgroup::create(&layout, &format!("{top}/pod/ctr"), Some(&r)).unwrap();
    let cpu = cg.dir_for("cpu").unwrap();
    assert_eq!(read(&cpu.join("cpu.shares")), "256");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "20000");
    assert_eq!(
        read(&cg.dir_for("cpuset").unwrap().join("cpuset.cpus")),
        "0"
    );
    assert_eq!(
        read(&cg.dir_for("memory").unwrap().join("memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(read(&cg.dir_for("pids").unwrap().join("pids.max")), "20");

    let i = g.spawn_held("exec sleep 30");
    let pid = g.pid(i);
    cg.add_process(pid).unwrap();
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    // The process sees the cgroup in every v1 hierarchy.
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in own.lines().filter(|l| !l.starts_with("0::")) {
        assert!(line.ends_with(&format!("/{top}/pod/ctr")), "{line}");
    }
    g.release(i);
    // Pages are charged where they are faulted in (v1 moves no charges on migration), so wait
    // until sleep has been exec'd inside the cgroup and touched memory there.
    let deadline = Instant::now() + Duration::from_secs(2);
    let s = loop {
        let s = cg.stats().unwrap();
        if s.memory.as_ref().unwrap().usage_bytes > 0 {
            break s;
        }
        assert!(Instant::now() < deadline, "no memory charged: {s:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(s.memory.unwrap().limit_bytes, Some(64 << 20));
    assert_eq!(
        s.pids.unwrap(),
        PidsStats {
            current: 1,
            limit: Some(20)
        }
    );
    assert!(s.cpu.is_some());
}

#[test]
fn host_v1_device_rules_replace_the_inherited_allow_list() {
    let Some(layout) = v1() else { return };
    let top = unique_name();
    let _g = Guard::new(&layout, &top);
    let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(
        r#"[{"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"}]"#,
    )
    .unwrap();
    let mut r = LinuxResources::default();
    r.set_devices(Some(rules));
    let cg = Cgroup::create(&layout, &top, Some(&r)).unwrap();
    let list = read(&cg.dir_for("devices").unwrap().join("devices.list"));
    let mut lines: Vec<&str> = list.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, vec!["c 136:* rw", "c 1:3 rwm"]);
}

#[test]
fn host_v1_a_refused_value_names_the_file() {
    let Some(layout) = v1() else { return };
    let top = unique_name();
    let _g = Guard::new(&layout, &top);
    // CFS refuses quotas below 1 ms (kernel/sched/core.c: tg_set_cfs_bandwidth → EINVAL).
    let r = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .quota(500i64)
                .period(100_000u64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = Cgroup::create(&layout, &format!("{top}/c"), Some(&r)).unwrap_err();
    match &err {
        CgroupError::Write {
            path,
            value,
            source,
        } => {
            assert!(path.ends_with(format!("{top}/c/cpu.cfs_quota_us")), "{err}");
            assert_eq!(value, "500");
            assert_eq!(source.raw_os_error(), Some(libc::EINVAL));
        }
        other => panic!("unexpected {other}"),
    }
    // The failed create left nothing behind in any hierarchy.
    for h in layout.hierarchies() {
        assert!(
            !h.dir.join(&top).exists(),
            "{} left behind",
            h.dir.display()
        );
    }
}

#[test]
fn host_v1_memory_and_swap_can_grow_and_shrink() {
    let Some(layout) = v1() else { return };
    let top = unique_name();
    let _g = Guard::new(&layout, &top);
    let cg = Cgroup::create(&layout, &top, Some(&limits(Some(64 << 20), None))).unwrap();
    // Growing must write memsw first and shrinking memory first, or the kernel says EINVAL.
    cg.update(&limits(Some(256 << 20), None)).unwrap();
    cg.update(&limits(Some(32 << 20), None)).unwrap();
    let mem = cg.dir_for("memory").unwrap();
    assert_eq!(
        read(&mem.join("memory.limit_in_bytes")),
        (32u64 << 20).to_string()
    );
    cg.update(&limits(Some(-1), None)).unwrap();
    assert_eq!(cg.stats().unwrap().memory.unwrap().limit_bytes, None);
}

#[test]
fn host_v1_pids_limit_stops_a_fork_loop() {
    let Some(layout) = v1() else { return };
    let top = unique_name();
    let mut g = Guard::new(&layout, &top);
    let cg = Cgroup::create(&layout, &top, Some(&limits(None, Some(10)))).unwrap();
    let i = g.spawn_held("for i in $(seq 100); do sleep 5 >/dev/null 2>&1 & done; wait");
    cg.add_process(g.pid(i)).unwrap();
    g.release(i);
    // dash gives up on the first failed fork ("Cannot fork") and exits non-zero.
    let (code, stderr) = g.wait(i, Duration::from_secs(5));
    assert_ne!(code, 0, "the loop finished: {stderr}");
    assert!(stderr.to_lowercase().contains("fork"), "{stderr}");
    let left = cg.pids().unwrap();
    assert!(!left.is_empty() && left.len() < 10, "{left:?}");
    assert!(cg.stats().unwrap().pids.unwrap().current <= 10);
}

#[test]
fn host_v1_memory_hog_is_oom_killed_and_counted() {
    let Some(layout) = v1() else { return };
    let top = unique_name();
    let mut g = Guard::new(&layout, &top);
    let cg = Cgroup::create(&layout, &top, Some(&limits(Some(16 << 20), None))).unwrap();
    assert_eq!(cg.oom_kill_count().unwrap(), 0);
    // dd's 64 MiB block buffer is filled from /dev/zero: 64 MiB of anonymous memory.
    let i = g.spawn_held("exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    cg.add_process(g.pid(i)).unwrap();
    g.release(i);
    let (code, _) = g.wait(i, Duration::from_secs(5));
    assert_eq!(code, -libc::SIGKILL, "dd was not killed");
    assert_eq!(cg.oom_kill_count().unwrap(), 1);
    let mem = cg.stats().unwrap().memory.unwrap();
    assert_eq!(mem.oom_kill, 1);
    assert!(mem.max_usage_bytes.unwrap() >= 15 << 20, "{mem:?}");
}

#[test]
fn host_v1_freeze_stops_tasks_and_thaw_resumes_them() {
    let Some(layout) = v1() else { return };
    let top = unique_name();
    let mut g = Guard::new(&layout, &top);
    let cg = Cgroup::create(&layout, &top, None).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    assert_freeze_stops_and_thaw_resumes(&cg, &mut g, tmp.path());
    assert_eq!(
        read(&cg.dir_for("freezer").unwrap().join("freezer.state")),
        "THAWED"
    );
}

#[test]
fn host_v1_kill_all_kills_everything_and_remove_leaves_nothing() {
    let Some(layout) = v1() else { return };
    let top = unique_name();
    let mut g = Guard::new(&layout, &top);
    let cg = Cgroup::create(&layout, &top, None).unwrap();
    assert_kill_all_then_remove(&layout, &cg, &mut g);
    for h in layout.hierarchies() {
        assert!(!h.dir.join(&top).exists());
    }
}

/// A shell forking sleeps as fast as it can; `kill_all(signal)` must leave nobody behind.
fn fork_loop_is_killed_by(signal: i32) {
    let Some(layout) = v1() else { return };
    let top = unique_name();
    let mut g = Guard::new(&layout, &top);
    // The pids limit keeps a bug from turning this into a real fork bomb.
    let cg = Cgroup::create(&layout, &top, Some(&limits(None, Some(1000)))).unwrap();
    let i = g.spawn_held("while :; do sleep 30 >/dev/null 2>&1 & done");
    cg.add_process(g.pid(i)).unwrap();
    g.release(i);
    let deadline = Instant::now() + Duration::from_secs(2);
    while cg.pids().unwrap().len() < 20 {
        assert!(Instant::now() < deadline, "the fork loop never got going");
        std::thread::sleep(Duration::from_millis(2));
    }
    cg.kill_all(signal).unwrap();
    // On a slow machine the loop may reach the pids limit first: dash then exits 2 ("Cannot
    // fork") and only its children are left to kill.
    let (code, stderr) = g.wait(i, Duration::from_secs(2));
    assert!(code == -signal || code == 2, "sh exited {code}: {stderr}");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = cg.pids().unwrap();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "survivors of kill_all: {left:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    cg.remove().unwrap();
}

#[test]
fn host_v1_kill_all_sigterm_freezes_so_no_fork_escapes() {
    // Not SIGKILL, so this takes the freeze → signal each → thaw path even on a hybrid host.
    fork_loop_is_killed_by(libc::SIGTERM);
}

#[test]
fn host_kill_all_sigkill_stops_a_fork_loop() {
    // SIGKILL: cgroup.kill on the hybrid unified hierarchy (or v1's freeze path without it).
    fork_loop_is_killed_by(libc::SIGKILL);
}
