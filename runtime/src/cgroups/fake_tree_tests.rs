//! Unit tests on fake cgroup trees of plain files: what gets written where, and what is refused.
//! The kernel's own behaviour (write order, EINVAL, EBUSY) is covered by `host_tests`.

use std::fs;
use std::path::Path;

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

use super::*;

const V1_CONTROLLERS: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "devices", "blkio", "systemd",
];

/// The files the kernel would create in a new v1 cgroup directory of `controller`.
fn v1_files(controller: &str) -> &'static [(&'static str, &'static str)] {
    match controller {
        "cpu" => &[
            ("cpu.shares", "1024"),
            ("cpu.cfs_quota_us", "-1"),
            ("cpu.cfs_period_us", "100000"),
            (
                "cpu.stat",
                "nr_periods 4\nnr_throttled 2\nthrottled_time 300\n",
            ),
        ],
        "cpuacct" => &[
            ("cpuacct.usage", "5000"),
            ("cpuacct.usage_user", "3000"),
            ("cpuacct.usage_sys", "2000"),
        ],
        "cpuset" => &[("cpuset.cpus", ""), ("cpuset.mems", "")],
        "memory" => &[
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712"),
            ("memory.soft_limit_in_bytes", "9223372036854771712"),
            ("memory.usage_in_bytes", "10000"),
            ("memory.max_usage_in_bytes", "20000"),
            (
                "memory.stat",
                "cache 0\ntotal_rss 5000\ntotal_pgfault 9\ntotal_pgmajfault 1\ntotal_inactive_file 4000\n",
            ),
            ("memory.memsw.usage_in_bytes", "10500"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
            ("memory.swappiness", "60"),
        ],
        "pids" => &[("pids.max", "max"), ("pids.current", "2")],
        "freezer" => &[("freezer.state", "THAWED")],
        "devices" => &[("devices.allow", ""), ("devices.deny", "")],
        _ => &[],
    }
}

/// A fake v1 root with every hierarchy, the host's cpuset at the root, and `rel` pre-populated
/// (the kernel fills a new cgroup directory; plain mkdir does not).
fn fake_v1(rel: &str) -> (tempfile::TempDir, Layout) {
    let tmp = tempfile::tempdir().unwrap();
    for c in V1_CONTROLLERS {
        let mut dir = tmp.path().join(c);
        fs::create_dir(&dir).unwrap();
        for part in std::iter::once("").chain(rel.split('/')) {
            dir.push(part);
            fs::create_dir_all(&dir).unwrap();
            for (f, v) in v1_files(c) {
                fs::write(dir.join(f), v).unwrap();
            }
            fs::write(dir.join("cgroup.procs"), "").unwrap();
        }
    }
    fs::write(tmp.path().join("cpuset/cpuset.cpus"), "0-3\n").unwrap();
    fs::write(tmp.path().join("cpuset/cpuset.mems"), "0\n").unwrap();
    let layout = Layout::detect_at(tmp.path()).unwrap();
    (tmp, layout)
}

fn read(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p).unwrap().trim().to_string()
}

fn resources() -> LinuxResources {
    LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("1")
                .mems("0")
                .build()
                .unwrap(),
        )
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64i64 << 20)
                .reservation(32i64 << 20)
                .swap(128i64 << 20)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(10i64).build().unwrap())
        .build()
        .unwrap()
}

#[test]
fn v1_create_writes_every_limit_to_its_controller() {
    let (tmp, layout) = fake_v1("minik8s/c1");
    let cg = Cgroup::create(&layout, "/minik8s/c1/", Some(&resources())).unwrap();
    assert_eq!(cg.path(), "minik8s/c1");
    let r = tmp.path();
    assert_eq!(read(r.join("cpu/minik8s/c1/cpu.shares")), "512");
    assert_eq!(read(r.join("cpu/minik8s/c1/cpu.cfs_quota_us")), "50000");
    assert_eq!(read(r.join("cpu/minik8s/c1/cpu.cfs_period_us")), "100000");
    assert_eq!(read(r.join("cpuset/minik8s/c1/cpuset.cpus")), "1");
    assert_eq!(
        read(r.join("memory/minik8s/c1/memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(
        read(r.join("memory/minik8s/c1/memory.memsw.limit_in_bytes")),
        "134217728"
    );
    assert_eq!(
        read(r.join("memory/minik8s/c1/memory.soft_limit_in_bytes")),
        "33554432"
    );
    assert_eq!(read(r.join("pids/minik8s/c1/pids.max")), "10");
    assert_eq!(cg.dir_for("freezer").unwrap(), r.join("freezer/minik8s/c1"));
    assert_eq!(cg.dirs().len(), V1_CONTROLLERS.len());
}

#[test]
fn v1_cpuset_levels_copy_cpus_and_mems_from_their_parent() {
    let (tmp, layout) = fake_v1("minik8s/c2");
    Cgroup::create(&layout, "minik8s/c2", None).unwrap();
    for level in ["cpuset/minik8s", "cpuset/minik8s/c2"] {
        assert_eq!(
            read(tmp.path().join(level).join("cpuset.cpus")),
            "0-3",
            "{level}"
        );
        assert_eq!(
            read(tmp.path().join(level).join("cpuset.mems")),
            "0",
            "{level}"
        );
    }
}

#[test]
fn v1_swap_without_swap_accounting_is_refused_but_limit_alone_is_fine() {
    let (tmp, layout) = fake_v1("k/c");
    fs::remove_file(tmp.path().join("memory/k/c/memory.memsw.limit_in_bytes")).unwrap();
    let err = Cgroup::create(&layout, "k/c", Some(&resources())).unwrap_err();
    assert!(matches!(err, CgroupError::Unsupported { .. }), "{err}");
    assert!(
        err.to_string().contains("memory.memsw.limit_in_bytes"),
        "{err}"
    );

    let only_limit = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(-1i64).build().unwrap())
        .build()
        .unwrap();
    Cgroup::open(&layout, "k/c").update(&only_limit).unwrap();
    assert_eq!(
        read(tmp.path().join("memory/k/c/memory.limit_in_bytes")),
        "-1"
    );
}

#[test]
fn v1_unlimited_memory_also_lifts_memsw() {
    let (tmp, layout) = fake_v1("k/c");
    let r = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(-1i64).build().unwrap())
        .build()
        .unwrap();
    Cgroup::open(&layout, "k/c").update(&r).unwrap();
    assert_eq!(
        read(tmp.path().join("memory/k/c/memory.memsw.limit_in_bytes")),
        "-1"
    );
}

#[test]
fn v1_refuses_unified_resources() {
    let (_tmp, layout) = fake_v1("k/c");
    let mut r = LinuxResources::default();
    r.set_unified(Some([("memory.high".to_string(), "1M".to_string())].into()));
    let err = Cgroup::open(&layout, "k/c").update(&r).unwrap_err();
    assert!(matches!(err, CgroupError::Unsupported { .. }), "{err}");
}

#[test]
fn v1_failed_create_removes_the_directories_it_made() {
    // Only memory and pids hierarchies, nothing pre-populated: pids.max does not exist.
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("memory")).unwrap();
    fs::create_dir(tmp.path().join("pids")).unwrap();
    let layout = Layout::detect_at(tmp.path()).unwrap();
    let r = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(5i64).build().unwrap())
        .build()
        .unwrap();
    let err = Cgroup::create(&layout, "minik8s/bad", Some(&r)).unwrap_err();
    match &err {
        CgroupError::Write { path, value, .. } => {
            assert_eq!(path, &tmp.path().join("pids/minik8s/bad/pids.max"));
            assert_eq!(value, "5");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(!tmp.path().join("pids/minik8s").exists());
    assert!(!tmp.path().join("memory/minik8s").exists());
}

#[test]
fn v1_hybrid_unified_membership_is_best_effort() {
    let (tmp, layout) = fake_v1("k/u");
    let unified = tmp.path().join("unified");
    fs::create_dir(&unified).unwrap();
    fs::write(unified.join("cgroup.controllers"), "").unwrap();
    // A plain file where the cgroup's parent should be: every mkdir or write below fails.
    fs::write(unified.join("k"), "").unwrap();
    let cg = Cgroup::create(&layout, "k/u", None).unwrap();
    assert!(cg.dirs().iter().any(|h| h.unified));
    cg.add_process(77).unwrap();
    assert_eq!(read(tmp.path().join("memory/k/u/cgroup.procs")), "77");
}

#[test]
fn v1_stats_read_every_controller() {
    let (_tmp, layout) = fake_v1("k/s");
    let s = Cgroup::open(&layout, "k/s").stats().unwrap();
    let cpu = s.cpu.unwrap();
    assert_eq!(
        (cpu.usage_total_ns, cpu.usage_user_ns, cpu.usage_system_ns),
        (5000, 3000, 2000)
    );
    assert_eq!(
        (cpu.nr_periods, cpu.nr_throttled, cpu.throttled_ns),
        (4, 2, 300)
    );
    let mem = s.memory.unwrap();
    assert_eq!(mem.usage_bytes, 10_000);
    assert_eq!(mem.max_usage_bytes, Some(20_000));
    assert_eq!(mem.limit_bytes, None);
    assert_eq!(mem.working_set_bytes, 6000);
    assert_eq!((mem.oom_events, mem.oom_kill), (None, 3));
    assert_eq!(
        (mem.rss_bytes, mem.page_faults, mem.major_page_faults),
        (5000, 9, 1)
    );
    assert_eq!(mem.swap_bytes, Some(500));
    assert_eq!(
        s.pids.unwrap(),
        PidsStats {
            current: 2,
            limit: None
        }
    );
    assert_eq!(Cgroup::open(&layout, "k/s").oom_kill_count().unwrap(), 3);
}

#[test]
fn v1_freeze_and_thaw_write_the_freezer_state() {
    let (tmp, layout) = fake_v1("k/f");
    let cg = Cgroup::open(&layout, "k/f");
    cg.freeze().unwrap();
    assert_eq!(read(tmp.path().join("freezer/k/f/freezer.state")), "FROZEN");
    cg.thaw().unwrap();
    assert_eq!(read(tmp.path().join("freezer/k/f/freezer.state")), "THAWED");
}

#[test]
fn v1_add_process_writes_every_hierarchy() {
    let (tmp, layout) = fake_v1("k/p");
    Cgroup::open(&layout, "k/p").add_process(4242).unwrap();
    for c in V1_CONTROLLERS {
        assert_eq!(
            read(tmp.path().join(c).join("k/p/cgroup.procs")),
            "4242",
            "{c}"
        );
    }
    assert_eq!(Cgroup::open(&layout, "k/p").pids().unwrap(), vec![4242]);
}

#[test]
fn invalid_paths_are_refused_and_touch_nothing() {
    let (tmp, layout) = fake_v1("k/x");
    for bad in ["", "/", "//", "../k", "k/../../etc", "k/./x"] {
        let err = Cgroup::create(&layout, bad, None).unwrap_err();
        assert!(
            matches!(err, CgroupError::InvalidPath { .. }),
            "{bad}: {err}"
        );
        let cg = Cgroup::open(&layout, bad);
        assert!(
            matches!(cg.remove(), Err(CgroupError::InvalidPath { .. })),
            "{bad}"
        );
        assert!(cg.pids().is_err() && cg.add_process(1).is_err(), "{bad}");
    }
    assert!(tmp.path().join("memory/k/x").exists());
}

#[test]
fn paths_are_normalized_like_runc_cgroups_paths() {
    let (_tmp, layout) = fake_v1("k/x");
    assert_eq!(Cgroup::open(&layout, "/k//x/").path(), "k/x");
    let cg = Cgroup::create(&layout, "//k/x", None).unwrap();
    assert_eq!(cg.path(), "k/x");
    assert!(cg.dir_for("memory").unwrap().ends_with("memory/k/x"));
}

#[test]
fn remove_clears_every_hierarchy_and_tolerates_missing() {
    let (tmp, layout) = fake_v1("k/r");
    let cg = Cgroup::open(&layout, "k/r");
    assert!(cg.exists());
    cg.remove().unwrap();
    assert!(!cg.exists());
    for c in V1_CONTROLLERS {
        assert!(!tmp.path().join(c).join("k/r").exists(), "{c}");
        assert!(
            tmp.path().join(c).join("k").exists(),
            "{c}: the parent stays"
        );
    }
    cg.remove().unwrap();
}

/// A fake v2 root offering `controllers`, with `rel` pre-populated with the kernel's files.
fn fake_v2(rel: &str, enabled: &str) -> (tempfile::TempDir, Layout) {
    let tmp = tempfile::tempdir().unwrap();
    let mut dir = tmp.path().to_path_buf();
    fs::write(
        dir.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
    fs::write(dir.join("cgroup.subtree_control"), enabled).unwrap();
    for part in rel.split('/') {
        dir.push(part);
        fs::create_dir(&dir).unwrap();
        for (f, v) in [
            ("cgroup.controllers", "cpuset cpu io memory pids"),
            ("cgroup.subtree_control", "cpuset cpu io memory pids"),
            ("cgroup.procs", ""),
            ("cgroup.freeze", "0"),
            ("cgroup.events", "populated 0\nfrozen 1\n"),
            ("cpu.weight", "100"),
            ("cpu.max", "max 100000"),
            (
                "cpu.stat",
                "usage_usec 7\nuser_usec 4\nsystem_usec 3\nnr_periods 1\n",
            ),
            ("cpuset.cpus", ""),
            ("cpuset.mems", ""),
            ("memory.max", "max"),
            ("memory.low", "0"),
            ("memory.swap.max", "max"),
            ("memory.current", "8192"),
            ("memory.peak", "16384"),
            (
                "memory.stat",
                "anon 1\ninactive_file 4096\npgfault 8\npgmajfault 2\n",
            ),
            ("memory.events", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\n"),
            ("pids.max", "max"),
            ("pids.current", "3"),
            ("io.weight", "default 100"),
        ] {
            fs::write(dir.join(f), v).unwrap();
        }
    }
    let layout = Layout::detect_at(tmp.path()).unwrap();
    assert!(layout.is_v2());
    (tmp, layout)
}

#[test]
fn v2_create_converts_oci_values() {
    let (tmp, layout) = fake_v2("minik8s/c1", "cpuset cpu io memory pids");
    let mut r = resources();
    r.set_unified(Some(
        [("memory.high".to_string(), "50000000".to_string())].into(),
    ));
    fs::write(tmp.path().join("minik8s/c1/memory.high"), "max").unwrap();
    Cgroup::create(&layout, "minik8s/c1", Some(&r)).unwrap();
    let d = tmp.path().join("minik8s/c1");
    assert_eq!(
        read(d.join("cpu.weight")),
        shares_to_weight(512).to_string()
    );
    assert_eq!(read(d.join("cpu.max")), "50000 100000");
    assert_eq!(read(d.join("cpuset.cpus")), "1");
    assert_eq!(read(d.join("memory.max")), "67108864");
    assert_eq!(read(d.join("memory.low")), "33554432");
    // OCI swap is memory+swap; v2's swap.max is swap alone.
    assert_eq!(read(d.join("memory.swap.max")), (64u64 << 20).to_string());
    assert_eq!(read(d.join("pids.max")), "10");
    assert_eq!(read(d.join("memory.high")), "50000000");
    // Every parent already had everything enabled: nothing was rewritten.
    assert_eq!(
        read(tmp.path().join("cgroup.subtree_control")),
        "cpuset cpu io memory pids"
    );
}

#[test]
fn v2_create_enables_missing_controllers_in_parents() {
    let (tmp, layout) = fake_v2("minik8s/c1", "cpuset cpu io memory");
    Cgroup::create(&layout, "minik8s/c1", None).unwrap();
    // A plain file keeps only the last write; the kernel would accumulate "+pids".
    assert_eq!(read(tmp.path().join("cgroup.subtree_control")), "+pids");
}

#[test]
fn v2_refuses_bad_unified_keys_and_inconsistent_swap() {
    let (_tmp, layout) = fake_v2("k/c", "");
    let cg = Cgroup::open(&layout, "k/c");
    let mut r = LinuxResources::default();
    r.set_unified(Some(
        [("../cgroup.procs".to_string(), "1".to_string())].into(),
    ));
    assert!(matches!(
        cg.update(&r),
        Err(CgroupError::InvalidResources { .. })
    ));
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(100i64)
                .swap(50i64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert!(matches!(
        cg.update(&r),
        Err(CgroupError::InvalidResources { .. })
    ));
}

#[test]
fn v2_stats_freeze_and_oom_counts() {
    let (_tmp, layout) = fake_v2("k/s", "");
    let cg = Cgroup::open(&layout, "k/s");
    let s = cg.stats().unwrap();
    let cpu = s.cpu.unwrap();
    assert_eq!(
        (cpu.usage_total_ns, cpu.usage_user_ns, cpu.usage_system_ns),
        (7000, 4000, 3000)
    );
    let mem = s.memory.unwrap();
    assert_eq!(
        (mem.usage_bytes, mem.max_usage_bytes, mem.limit_bytes),
        (8192, Some(16384), None)
    );
    assert_eq!(
        (mem.working_set_bytes, mem.oom_events, mem.oom_kill),
        (4096, Some(2), 1)
    );
    assert_eq!(
        (mem.rss_bytes, mem.page_faults, mem.major_page_faults),
        (1, 8, 2)
    );
    assert_eq!(mem.swap_bytes, None);
    assert_eq!(
        s.pids.unwrap(),
        PidsStats {
            current: 3,
            limit: None
        }
    );
    assert_eq!(cg.oom_kill_count().unwrap(), 1);
    // cgroup.events says frozen 1, as the kernel would once every task stopped.
    cg.freeze().unwrap();
}
