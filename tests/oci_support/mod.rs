//! Shared fixtures of the `oci_*` end-to-end tests: a runtime with its own state root and cgroup
//! parent in a temp dir, busybox bundles, the CLI, and a guard that force-deletes every
//! container a test made (also when it fails).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use minik8s_runtime::oci::busybox::BusyboxBundle;
use minik8s_runtime::oci::{CreateOptions, Runtime};

pub const BIN: &str = env!("CARGO_BIN_EXE_minik8s");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique across parallel tests and test binaries.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's runtime; dropping it deletes its containers and its cgroup parent.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub rt: Runtime,
}

impl Env {
    pub fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("oci-test")
            .tempdir()
            .unwrap();
        let rt = Runtime::new(tmp.path().join("state"))
            .unwrap()
            .with_shim_binary(BIN);
        let mut rt = rt;
        rt.cgroup_parent = unique("minik8s-test");
        Env { tmp, rt }
    }

    /// A busybox bundle named `name` running `args`.
    pub fn bundle(&self, name: &str, args: &[&str]) -> BusyboxBundle {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        BusyboxBundle::create(&dir, args).unwrap()
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.tmp.path().join(format!("{id}.log"))
    }

    pub fn opts(&self, bundle: &BusyboxBundle, id: &str) -> CreateOptions {
        CreateOptions {
            bundle: bundle.dir.clone(),
            pid_file: None,
            log_path: Some(self.log_path(id)),
            start: false,
        }
    }

    /// `minik8s oci --root <state> --cgroup-parent <parent> ARGS`.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("oci")
            .arg("--root")
            .arg(&self.rt.root)
            .arg("--cgroup-parent")
            .arg(&self.rt.cgroup_parent)
            .args(args);
        cmd
    }

    /// The container's log lines as (stream, tag, text).
    pub fn log_lines(&self, id: &str) -> Vec<(String, String, String)> {
        read_cri_log(&self.log_path(id))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(states) = self.rt.list() {
            for s in states {
                let _ = self.rt.delete(&s.id, true);
            }
        }
        remove_cgroup_parent(&self.rt.cgroup_parent);
    }
}

/// Removes `<hierarchy>/<parent>` from every cgroup hierarchy (v1 controllers and v2).
pub fn remove_cgroup_parent(parent: &str) {
    for dir in cgroup_dirs(parent) {
        let _ = std::fs::remove_dir(&dir);
    }
}

/// Every existing directory `<hierarchy>/<path>` under /sys/fs/cgroup.
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let root = Path::new("/sys/fs/cgroup");
    if root.join(path).is_dir() {
        dirs.push(root.join(path));
    }
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let d = entry.path().join(path);
        if d.is_dir() {
            dirs.push(d);
        }
    }
    dirs
}

/// Parses a CRI log: `<RFC3339Nano> <stream> <F|P> <text>`.
pub fn read_cri_log(path: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let ts = parts.next().unwrap_or_default();
            assert!(
                ts.len() == 30 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
                "not an RFC3339Nano UTC timestamp: {line:?}"
            );
            let stream = parts.next().unwrap_or_default().to_string();
            let tag = parts.next().unwrap_or_default().to_string();
            let text = parts.next().unwrap_or_default().to_string();
            (stream, tag, text)
        })
        .collect()
}

/// The stdout lines of a log.
pub fn stdout_lines(lines: &[(String, String, String)]) -> Vec<String> {
    lines
        .iter()
        .filter(|(s, _, _)| s == "stdout")
        .map(|(_, _, t)| t.clone())
        .collect()
}

/// Polls `f` every 10 ms for up to `secs` seconds.
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("timed out after {secs}s waiting for {what}");
}
