//! The shim-only binary `minik8s-shim` runs real containers like `minik8s shim` does: it sets
//! the container up and execs the static monitor in its place (the shim pid's
//! /proc/<pid>/exe), which writes the CRI log, records the exit, and reopens the log on request
//! (the library side of CRI ReopenContainerLog).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use minik8s_runtime::oci::busybox::BusyboxBundle;
use minik8s_runtime::oci::{CreateOptions, Runtime, Status};

const SHIM: &str = env!("CARGO_BIN_EXE_minik8s-shim");

/// A runtime with its own state root and cgroup parent, removed on drop (also on failure).
struct Env {
    tmp: tempfile::TempDir,
    rt: Runtime,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("shim-bin-test")
            .tempdir()
            .unwrap();
        let mut rt = Runtime::new(tmp.path().join("state"))
            .unwrap()
            .with_shim_binary(SHIM);
        rt.cgroup_parent = format!("minik8s-shim-test-{}", std::process::id());
        Env { tmp, rt }
    }

    fn bundle(&self, args: &[&str]) -> BusyboxBundle {
        let dir = self.tmp.path().join("bundle");
        std::fs::create_dir_all(&dir).unwrap();
        BusyboxBundle::create(&dir, args).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for c in self.rt.list().unwrap_or_default() {
            let _ = self.rt.delete(&c.id, true);
        }
        for entry in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(entry.path().join(&self.rt.cgroup_parent));
        }
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(" stdout F ").map(|(_, text)| text.to_string()))
        .collect()
}

#[test]
fn shim_only_binary_runs_logs_and_reopens_the_log() {
    let env = Env::new();
    let bundle = env.bundle(&[
        "sh",
        "-c",
        "echo first; while [ ! -e /tmp/go ]; do sleep 0.01; done; echo second; exit 3",
    ]);
    let log: PathBuf = env.tmp.path().join("c.log");
    let id = "shim-bin";
    env.rt
        .create(
            id,
            &CreateOptions {
                bundle: bundle.dir.clone(),
                log_path: Some(log.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    // Once the container is set up the shim execs the monitor in its place: the long-lived
    // process is the small static program the runtime installed in its state root.
    let shim = env.rt.shim_pid(id).unwrap();
    let monitor = minik8s_runtime::shim::monitor::path_in(&env.tmp.path().join("state"));
    let exe = std::fs::read_link(format!("/proc/{shim}/exe")).unwrap();
    assert_eq!(exe, monitor, "the shim process became the monitor");
    let maps = std::fs::read_to_string(format!("/proc/{shim}/maps")).unwrap();
    assert!(
        !maps.contains("libc.so") && !maps.contains("ld-linux"),
        "the monitor is linked statically: {maps}"
    );
    env.rt.start(id).unwrap();
    wait_for("the first line", || log_lines(&log) == ["first"]);

    // Rotation: rename, reopen, and what follows lands in the new file.
    let rotated = env.tmp.path().join("c.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    env.rt.reopen_log(id).unwrap();
    assert!(log.exists(), "reopen_log returns once the new file exists");
    let rootfs_go = bundle.dir.join("rootfs/tmp/go");
    std::fs::create_dir_all(rootfs_go.parent().unwrap()).unwrap();
    std::fs::write(&rootfs_go, b"").unwrap();
    let exit = env.rt.wait(id).unwrap();
    assert_eq!(exit.exit_code, 3);
    assert_eq!(log_lines(&rotated), ["first"]);
    assert_eq!(log_lines(&log), ["second"]);

    // A stopped container's log cannot be reopened.
    assert_eq!(env.rt.state(id).unwrap().status, Status::Stopped);
    assert!(env.rt.reopen_log(id).is_err());
    env.rt.delete(id, false).unwrap();
}
