//! Shared by the tests that run `minik8s server`/`agent` processes: stopping them, and the
//! teardown of what their runtimes leave in cgroups and mounts when the test kills them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `/sys/fs/cgroup/<controller>` directories (v1) and the v2 mount(s).
pub fn cgroup_roots() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    roots
}

/// Removes the cgroup parent `name` from every hierarchy.
pub fn remove_cgroup_parent(name: &str) {
    for root in cgroup_roots() {
        remove_cgroup_tree(&root.join(name));
    }
}

/// Kills the processes left in a cgroup tree (all started by the test's runtime) and
/// removes its directories, deepest first.
pub fn remove_cgroup_tree(top: &Path) {
    if !top.is_dir() {
        return;
    }
    let mut dirs = vec![top.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        if let Ok(entries) = std::fs::read_dir(&dirs[i]) {
            dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        i += 1;
    }
    let mut killed = false;
    for d in &dirs {
        for pid in std::fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
        {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            killed = true;
        }
    }
    if killed {
        // A killed process leaves its cgroup a moment after the signal.
        std::thread::sleep(Duration::from_millis(200));
    }
    for d in dirs.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
}

/// Lazily unmounts everything mounted under `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    mounts.sort_by(|a, b| b.cmp(a));
    for m in mounts {
        let _ = Command::new("umount").args(["-l", &m]).status();
    }
}

/// SIGTERMs `child` and waits up to `secs` for it to exit (panicking after): how the tests
/// stop a server or agent the way a service manager would.
pub fn terminate(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} still running {secs}s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
