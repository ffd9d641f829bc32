//! cgroup v1 and v2 behind one API: create, limit, join, stats, freeze, kill, remove.
//!
//! A [`Cgroup`] is named by a path relative to the root of each hierarchy (`minik8s/<id>`), the
//! way runc treats an absolute `cgroupsPath`. On v1 the same relative path is made in every
//! mounted hierarchy (cpu, cpuacct, cpuset, memory, pids, freezer, devices, blkio, name=systemd
//! ...) and a process joins all of them; on v2 it is one directory. The [`Layout`] is detected
//! from /proc/self/mountinfo, or from a directory so tests can use a fake tree of plain files.
//! On a hybrid host the controller-less cgroup2 (`/sys/fs/cgroup/unified`) is managed as one
//! more hierarchy, so processes are contained there too and SIGKILL can use `cgroup.kill`.
//!
//! A container's life, as the runtime drives it (runc's order):
//! 1. [`Cgroup::create`] with `linux.resources` before the container's init runs anything, so
//!    no limit is missing at its first instruction (a failed create leaves no directory behind);
//! 2. [`Cgroup::add_process`] with the init's pid while it waits; the init then unshares its
//!    cgroup namespace so the cgroup is its root, and may build /sys/fs/cgroup with
//!    [`container_view`] + [`mount_container_view`];
//! 3. [`Cgroup::update`], [`Cgroup::stats`], [`Cgroup::freeze`]/[`Cgroup::thaw`] while it runs;
//! 4. after the init exits, [`Cgroup::oom_kill_count`] `> 0` tells an OOM kill (Kubernetes'
//!    `OOMKilled` reason);
//! 5. [`Cgroup::kill_all`] with SIGKILL, then [`Cgroup::remove`] (which waits briefly for exiting
//!    tasks to leave; a cgroup that still holds live processes is an error, EBUSY).
//!
//! Device rules are devices.allow/deny files on v1 and an eBPF program on v2
//! (module `device_filter`); `unified` resources on v1 are refused.

mod container_view;
mod conversions;
mod device_filter;
mod error;
mod files;
mod layout;
mod stats;
mod v1;
mod v2;

#[cfg(test)]
mod fake_tree_tests;
#[cfg(test)]
mod host_v1_tests;
#[cfg(test)]
mod host_v2_tests;
#[cfg(test)]
mod test_support;

use std::path::Path;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

pub use container_view::{container_view, mount_container_view, ViewStep};
pub use conversions::shares_to_weight;
pub use error::CgroupError;
pub use layout::{Hierarchy, Layout, DEFAULT_ROOT};
pub use stats::{CpuStats, MemoryStats, PidsStats, Stats};

/// How long freeze/thaw may take before we give up; tasks in uninterruptible sleep (D) can delay
/// a v1 freeze indefinitely, and runc gives up after a similar bound.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);

/// One cgroup (the same relative path in every hierarchy on v1).
#[derive(Clone, Debug)]
pub struct Cgroup {
    layout: Layout,
    path: String,
    /// v1: this cgroup's directory in each hierarchy; v2: one entry, no controller names.
    /// Empty when the path was invalid (see `invalid`), so no operation can touch a directory.
    dirs: Vec<Hierarchy>,
    /// Why `open` was given an unusable path; every operation then fails with it.
    invalid: Option<String>,
}

impl Cgroup {
    /// Make the cgroup (every missing level, in every hierarchy) and apply `resources`. If
    /// applying fails, the directories this call made are removed again.
    pub fn create(
        layout: &Layout,
        path: &str,
        resources: Option<&LinuxResources>,
    ) -> Result<Cgroup, CgroupError> {
        let rel = normalize(path)?;
        let cg = Cgroup::open(layout, &rel);
        let mut created = Vec::new();
        let result = cg
            .make_dirs(&rel, &mut created)
            .and_then(|()| match resources {
                Some(r) => cg.update(r),
                None => Ok(()),
            });
        if let Err(e) = result {
            // Only what this call made, and a shared parent (`minik8s`) only if it is empty:
            // a concurrent create may already have put its own cgroup in it.
            for dir in created.iter().rev() {
                let cleanup = if dir.ends_with(&rel) {
                    files::remove_tree(dir)
                } else {
                    files::remove_if_unused(dir)
                };
                if let Err(cleanup) = cleanup {
                    tracing::warn!(error = %cleanup, "cleaning up after failed cgroup create");
                }
            }
            return Err(e);
        }
        tracing::debug!(path = %rel, "cgroup created");
        Ok(cg)
    }

    fn make_dirs(
        &self,
        rel: &str,
        created: &mut Vec<std::path::PathBuf>,
    ) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::V2 { root } => v2::create(root, rel, created)?,
            Layout::V1 { .. } => {
                // Each hierarchy's mount point is this cgroup's directory minus `rel`; reusing
                // it saves re-reading mountinfo.
                let depth = rel.split('/').count();
                for h in &self.dirs {
                    let mount = Hierarchy {
                        dir: h.dir.ancestors().nth(depth).unwrap_or(&h.dir).to_path_buf(),
                        ..h.clone()
                    };
                    let result = v1::create(&mount, rel, created);
                    match result {
                        // Membership in a hybrid host's controller-less cgroup2 is a bonus
                        // (cgroup.kill, a tidy 0:: line); a read-only or delegated-away
                        // `unified` (e.g. when nested in another container) must not fail
                        // the container.
                        Err(e) if h.unified => tracing::debug!(error = %e, "skipping unified"),
                        other => other?,
                    }
                }
            }
        }
        Ok(())
    }

    /// Refer to an existing cgroup without touching the filesystem beyond reading the mounts.
    /// An invalid path yields a handle whose operations fail with the path named.
    pub fn open(layout: &Layout, path: &str) -> Cgroup {
        let rel = match normalize(path) {
            Ok(rel) => rel,
            Err(e) => {
                return Cgroup {
                    layout: layout.clone(),
                    path: path.to_string(),
                    dirs: Vec::new(),
                    invalid: Some(e.to_string()),
                }
            }
        };
        let dirs = match layout {
            Layout::V2 { root } => vec![Hierarchy {
                dir: root.join(&rel),
                controllers: Vec::new(),
                unified: true,
            }],
            Layout::V1 { .. } => layout
                .hierarchies()
                .into_iter()
                .map(|h| Hierarchy {
                    dir: h.dir.join(&rel),
                    controllers: h.controllers,
                    unified: h.unified,
                })
                .collect(),
        };
        Cgroup {
            layout: layout.clone(),
            path: rel,
            dirs,
            invalid: None,
        }
    }

    /// The one v2 directory, or the first v1 hierarchy's; fails for an invalid path or a v1
    /// layout without hierarchies.
    fn first_dir(&self) -> Result<&Path, CgroupError> {
        self.check()?;
        self.dirs
            .first()
            .map(|h| h.dir.as_path())
            .ok_or_else(|| CgroupError::NotMounted {
                path: self.layout.root().to_path_buf(),
            })
    }

    fn check(&self) -> Result<(), CgroupError> {
        match &self.invalid {
            Some(reason) => Err(CgroupError::InvalidPath {
                path: self.path.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The path relative to the hierarchy roots, normalized (no leading, trailing or double `/`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the cgroup's directory exists in every hierarchy (false for an invalid path).
    /// A hybrid host's controller-less cgroup2 does not count: a runtime that sees the host as
    /// plain v1 (crun, run without that mount) makes the cgroup in the v1 hierarchies only.
    pub fn exists(&self) -> bool {
        let v1 = matches!(self.layout, Layout::V1 { .. });
        self.invalid.is_none()
            && !self.dirs.is_empty()
            && self
                .dirs
                .iter()
                .filter(|h| !(v1 && h.unified))
                .all(|h| h.dir.is_dir())
    }

    /// The layout this cgroup lives in.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// This cgroup's directory in each hierarchy (one on v2).
    pub fn dirs(&self) -> &[Hierarchy] {
        &self.dirs
    }

    /// This cgroup's directory for `controller` (v1), or its only directory (v2).
    pub fn dir_for(&self, controller: &str) -> Option<&Path> {
        if self.invalid.is_some() {
            return None;
        }
        match self.layout {
            Layout::V2 { .. } => self.dirs.first().map(|h| h.dir.as_path()),
            Layout::V1 { .. } => v1::dir(&self.dirs, controller),
        }
    }

    /// Move process `pid` (all its threads) into the cgroup, in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        self.first_dir()?;
        let hybrid = !self.layout.is_v2();
        for h in &self.dirs {
            match files::write(&h.dir.join("cgroup.procs"), &pid.to_string()) {
                // Best effort on a hybrid host's unified hierarchy, as in `create`.
                Err(e) if hybrid && h.unified => tracing::debug!(error = %e, "skipping unified"),
                other => other?,
            }
        }
        Ok(())
    }

    /// Apply (or change) resource limits.
    pub fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.check()?;
        match self.layout {
            Layout::V2 { .. } => v2::apply(self.first_dir()?, resources),
            Layout::V1 { .. } => v1::apply(&self.dirs, resources),
        }
    }

    /// Current usage: cpu time, memory and OOM counts, pids.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        self.check()?;
        match self.layout {
            Layout::V2 { .. } => v2::stats(self.first_dir()?),
            Layout::V1 { .. } => v1::stats(&self.dirs),
        }
    }

    /// Processes in this cgroup and every cgroup below it (a container may make its own).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut out = Vec::new();
        for dir in files::walk(self.primary_dir()?)? {
            match files::read_procs(&dir) {
                Ok(p) => out.extend(p),
                // A child cgroup removed while we walked is not an error.
                Err(CgroupError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The directory whose cgroup.procs we list: pids or freezer on v1 (both always track every
    /// task we add), else the first hierarchy.
    fn primary_dir(&self) -> Result<&Path, CgroupError> {
        let first = self.first_dir()?;
        Ok(["pids", "freezer", "memory"]
            .iter()
            .find_map(|c| self.dir_for(c))
            .unwrap_or(first))
    }

    /// Stop every task (v1 freezer.state FROZEN, v2 cgroup.freeze) and wait until it is frozen.
    /// On timeout the cgroup is thawed again so it is not left half-frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        let result = self.set_frozen(true);
        if matches!(result, Err(CgroupError::Timeout { .. })) {
            let _ = self.set_frozen(false);
        }
        result
    }

    /// Resume every task.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        self.check()?;
        match self.layout {
            Layout::V2 { .. } => v2::set_frozen(self.first_dir()?, frozen),
            Layout::V1 { .. } => v1::set_frozen(&self.dirs, frozen),
        }
    }

    /// Whether freezing is possible here (v1 freezer hierarchy, v2 cgroup.freeze).
    fn can_freeze(&self) -> bool {
        match self.layout {
            Layout::V2 { .. } => self
                .dirs
                .iter()
                .any(|h| h.dir.join("cgroup.freeze").exists()),
            Layout::V1 { .. } => self.dir_for("freezer").is_some(),
        }
    }

    /// Send `signal` to every process in the cgroup and below. SIGKILL uses cgroup.kill (Linux ≥
    /// 5.14; v2, or a hybrid host's unified hierarchy), which the kernel applies atomically. Otherwise the cgroup is frozen first
    /// so nothing can fork between listing and signalling, then thawed so the signal is acted on.
    pub fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        self.check()?;
        let kill_file = self
            .dirs
            .iter()
            .find(|h| h.unified)
            .map(|h| h.dir.join("cgroup.kill"));
        if let Some(kill_file) = kill_file.filter(|f| signal == libc::SIGKILL && f.exists()) {
            files::write(&kill_file, "1")?;
            if self.layout.is_v2() {
                return Ok(());
            }
            // Hybrid host: also reach tasks a container moved into v1-only sub-cgroups.
        }
        let frozen = self.can_freeze() && self.freeze().is_ok();
        let result = self.signal_each(signal);
        if frozen {
            self.thaw()?;
        }
        result
    }

    fn signal_each(&self, signal: i32) -> Result<(), CgroupError> {
        let dir = self.primary_dir()?;
        let sig =
            nix::sys::signal::Signal::try_from(signal).map_err(|source| CgroupError::Signal {
                path: dir.to_path_buf(),
                pid: 0,
                signal,
                source,
            })?;
        for pid in self.pids()? {
            match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(source) => {
                    return Err(CgroupError::Signal {
                        path: dir.to_path_buf(),
                        pid,
                        signal,
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Remove the cgroup (and any cgroups a container made below it) from every hierarchy,
    /// retrying briefly while exiting tasks leave it. Already gone is fine. The parent
    /// (`minik8s`) is shared and stays.
    pub fn remove(&self) -> Result<(), CgroupError> {
        self.check()?;
        let mut first_err = None;
        for h in &self.dirs {
            if let Err(e) = files::remove_tree(&h.dir) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Processes the kernel's OOM killer killed in this cgroup.
    pub fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        self.check()?;
        match self.layout {
            Layout::V2 { .. } => v2::oom_kill_count(self.first_dir()?),
            Layout::V1 { .. } => match v1::dir(&self.dirs, "memory") {
                Some(d) => v1::oom_kill_count(d),
                None => Err(CgroupError::Unsupported {
                    path: self.layout.root().join(&self.path),
                    what: "oom kill counting".into(),
                    reason: "the memory controller is not mounted".into(),
                }),
            },
        }
    }
}

/// Strip leading/trailing `/` and refuse `..`, `.` or empty components, so a cgroup path can
/// never escape the hierarchy root.
fn normalize(path: &str) -> Result<String, CgroupError> {
    let bad = |reason: &str| CgroupError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err(bad("empty (the root cgroup cannot be managed)"));
    }
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(bad("'.' and '..' components are not allowed"));
    }
    Ok(parts.join("/"))
}
