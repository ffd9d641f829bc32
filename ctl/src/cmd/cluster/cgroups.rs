//! A node's cgroup parent (the runtime's `--cgroup-parent`): every container of the node runs
//! below it, in every mounted hierarchy. kill-node freezes it (cgroup-v1 freezer.state, or
//! cgroup.freeze on v2) so the containers neither run nor exit, as on a machine that hung;
//! `down` kills and removes what is left in it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROOT: &str = "/sys/fs/cgroup";

/// Every existing directory of `parent`: /sys/fs/cgroup/<hierarchy>/<parent> on v1 and
/// hybrid hosts, /sys/fs/cgroup/<parent> on a v2 host.
pub fn dirs(parent: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let direct = Path::new(ROOT).join(parent);
    if direct.join("cgroup.procs").is_file() {
        out.push(direct);
    }
    for entry in std::fs::read_dir(ROOT).into_iter().flatten().flatten() {
        let dir = entry.path().join(parent);
        if dir.join("cgroup.procs").is_file() {
            out.push(dir);
        }
    }
    out
}

/// Freezes (or thaws) every task below `parent`; false if the host has no freezer.
pub fn set_frozen(parent: &str, frozen: bool) -> bool {
    let v1 = Path::new(ROOT).join("freezer").join(parent);
    let (file, value, done) = if v1.join("freezer.state").is_file() {
        let state = if frozen { "FROZEN" } else { "THAWED" };
        (v1.join("freezer.state"), state, state)
    } else {
        let v2 = Path::new(ROOT).join(parent);
        if !v2.join("cgroup.freeze").is_file() {
            return false;
        }
        let flag = if frozen { "1" } else { "0" };
        (v2.join("cgroup.freeze"), flag, flag)
    };
    if let Err(e) = std::fs::write(&file, value) {
        tracing::warn!(path = %file.display(), "cannot write the freezer state: {e}");
        return false;
    }
    // v1 goes through FREEZING until every task is stopped (freezer-subsystem.rst).
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match std::fs::read_to_string(&file) {
            Ok(s) if s.trim() == done => return true,
            Ok(_) if file.ends_with("cgroup.freeze") => return true,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

/// PIDs of every task below `parent`, in all hierarchies.
pub fn pids(parent: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for dir in dirs(parent) {
        collect_pids(&dir, &mut out);
    }
    out
}

fn collect_pids(dir: &Path, out: &mut BTreeSet<i32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&entry.path(), out);
        }
    }
}

/// Processes below `parent` whose command name is `comm` (e.g. the pods' `httpd`).
pub fn count_comm(parent: &str, comm: &str) -> usize {
    pids(parent)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .count()
}

/// Thaws, SIGKILLs every task below `parent`, then removes its directories bottom-up.
pub fn kill_and_remove(parent: &str) {
    set_frozen(parent, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = pids(parent);
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in pids {
            // SAFETY: kill(2); these are the cluster's own containers (its cgroup parent).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for dir in dirs(parent) {
        remove_tree(&dir);
    }
}

fn remove_tree(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path());
        }
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        tracing::warn!(path = %dir.display(), "cannot remove cgroup: {e}");
    }
}
