//! Containers under cgroup limits (`linux.resources`), on this machine's cgroup layout.

mod oci_support;

use minik8s_runtime::oci::busybox::BusyboxBundle;
use minik8s_runtime::oci::spec::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};
use minik8s_runtime::oci::Status;
use oci_support::{eventually, stdout_lines, unique, Env};

fn with_resources(b: &mut BusyboxBundle, resources: LinuxResources) {
    let mut linux = b.spec.linux().clone().unwrap();
    linux.set_resources(Some(resources));
    b.spec.set_linux(Some(linux));
    b.save().unwrap();
}

#[test]
fn memory_limit_oom_kill_is_recorded() {
    let env = Env::new();
    // The init itself allocates 64 MiB in one buffer under a 16 MiB limit (swap included).
    let mut b = env.bundle(
        "b",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    let limit = 16 * 1024 * 1024;
    let memory = LinuxMemoryBuilder::default()
        .limit(limit)
        .swap(limit)
        .build()
        .unwrap();
    with_resources(
        &mut b,
        LinuxResourcesBuilder::default()
            .memory(memory)
            .build()
            .unwrap(),
    );
    let id = unique("oom");
    let exit = env.rt.run(&id, &env.opts(&b, &id)).unwrap();
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)), "{exit:?}");

    // The same program with room to spare is not OOM killed.
    let mut roomy = env.bundle(
        "roomy",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=1"],
    );
    let memory = LinuxMemoryBuilder::default()
        .limit(limit)
        .swap(limit)
        .build()
        .unwrap();
    with_resources(
        &mut roomy,
        LinuxResourcesBuilder::default()
            .memory(memory)
            .build()
            .unwrap(),
    );
    let id = unique("no-oom");
    let exit = env.rt.run(&id, &env.opts(&roomy, &id)).unwrap();
    assert!(!exit.oom_killed && exit.exit_code == 0, "{exit:?}");
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let env = Env::new();
    // The fork loop runs in a child shell, which dies at the first failed fork (ash exits 2);
    // its sleeps stay. Then builtins only: at the limit even `cat` could not fork.
    let script = "sh -c 'i=0; while [ $i -lt 30 ]; do sleep 30 & i=$((i+1)); done'; echo loop=$?; \
                  read c < /sys/fs/cgroup/pids/pids.current; read m < /sys/fs/cgroup/pids/pids.max; \
                  echo current=$c max=$m";
    let mut b = env.bundle("b", &["sh", "-c", script]);
    let pids = LinuxPidsBuilder::default().limit(8).build().unwrap();
    with_resources(
        &mut b,
        LinuxResourcesBuilder::default().pids(pids).build().unwrap(),
    );
    let id = unique("pids");
    let exit = env.rt.run(&id, &env.opts(&b, &id)).unwrap();
    assert_eq!(exit.exit_code, 0, "{exit:?}");
    let lines = env.log_lines(&id);
    let out = stdout_lines(&lines);
    // 1 init + 6 sleeps: the loop's shell used the 8th slot and is gone.
    assert_eq!(
        out,
        vec!["loop=2".to_string(), "current=7 max=8".to_string()],
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|(s, _, t)| s == "stderr" && t.contains("fork")),
        "forks past the limit must fail: {lines:?}"
    );
}

#[test]
fn cpu_quota_is_visible_in_the_cgroup() {
    let env = Env::new();
    let mut b = env.bundle(
        "b",
        &["sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; sleep 60"],
    );
    let cpu = LinuxCpuBuilder::default()
        .quota(25_000)
        .period(100_000u64)
        .shares(512u64)
        .build()
        .unwrap();
    with_resources(
        &mut b,
        LinuxResourcesBuilder::default().cpu(cpu).build().unwrap(),
    );
    let id = unique("cpu");
    env.rt.create(&id, &env.opts(&b, &id)).unwrap();
    env.rt.start(&id).unwrap();
    assert_eq!(env.rt.state(&id).unwrap().status, Status::Running);
    // Seen from the host, in the container's own cgroup...
    let dir =
        std::path::Path::new("/sys/fs/cgroup/cpu").join(format!("{}/{id}", env.rt.cgroup_parent));
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("cpu.cfs_quota_us"), "25000");
    assert_eq!(read("cpu.shares"), "512");
    let pid = env.rt.state(&id).unwrap().pid;
    assert!(read("cgroup.procs").lines().any(|p| p == pid.to_string()));
    // ... and from inside, through its cgroup namespace.
    eventually(10, "container output", || {
        stdout_lines(&env.log_lines(&id)).len() >= 2
    });
    assert_eq!(
        stdout_lines(&env.log_lines(&id))[..2],
        ["25000".to_string(), "100000".to_string()]
    );
    env.rt.delete(&id, true).unwrap();
    assert!(!dir.exists(), "cgroup left after delete");
}

#[test]
fn pause_freezes_and_resume_thaws_the_container() {
    let env = Env::new();
    // Prints a counter every 50 ms: frozen, the log stops growing.
    let b = env.bundle(
        "b",
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done",
        ],
    );
    let id = unique("pause");
    env.rt.create(&id, &env.opts(&b, &id)).unwrap();
    env.rt.start(&id).unwrap();
    eventually(10, "output", || !env.log_lines(&id).is_empty());
    let out = env.cli(&["pause", &id]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.rt.state(&id).unwrap().status, Status::Paused);
    let freezer = std::path::Path::new("/sys/fs/cgroup/freezer")
        .join(format!("{}/{id}", env.rt.cgroup_parent))
        .join("freezer.state");
    if freezer.exists() {
        assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    }
    // Output written just before the freeze may still be on its way through the shim.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let frozen_at = env.log_lines(&id).len();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        env.log_lines(&id).len(),
        frozen_at,
        "a paused container must not run"
    );
    assert!(
        env.rt.exec_command(&id, &Default::default()).is_err(),
        "no exec while paused"
    );

    assert!(env.cli(&["resume", &id]).status().unwrap().success());
    assert_eq!(env.rt.state(&id).unwrap().status, Status::Running);
    eventually(10, "output after resume", || {
        env.log_lines(&id).len() > frozen_at
    });

    // A paused container is deleted (with force) too: killed, thawed, reaped.
    env.rt.pause(&id).unwrap();
    env.rt.delete(&id, true).unwrap();
    assert!(oci_support::cgroup_dirs(&format!("{}/{id}", env.rt.cgroup_parent)).is_empty());
}
