//! What a container sees at /sys/fs/cgroup, and the mounts that build it.
//!
//! With a private cgroup namespace (the container's init joined its cgroup, then unshared
//! CLONE_NEWCGROUP; what runc and crun do by default on v2 and Kubernetes' default there), the
//! container sees its own cgroup as the root: `/proc/self/cgroup` reads `0::/` (v2) or
//! `4:memory:/` (v1), and /sys/fs/cgroup is
//! - v2: one cgroup2 mount, rooted at the container's cgroup;
//! - v1: a tmpfs holding one `cgroup` mount per host hierarchy with the same controllers
//!   (`cpu,cpuacct`, `memory`, `name=systemd`, ...) each rooted at the container's cgroup, the
//!   host's co-mount symlinks (`cpu -> cpu,cpuacct`), and on a hybrid host the controller-less
//!   cgroup2 at `unified`.
//!
//! Without a cgroup namespace the same shape is made by bind-mounting the container's own host
//! directories instead, as runc does, so the container still cannot see its siblings' cgroups.
//! Everything is read-only unless asked otherwise (runc mounts cgroupfs `ro` unless the spec's
//! mount is `rw`): a container must not raise its own limits.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use super::{Cgroup, CgroupError, Layout};

/// One step in building /sys/fs/cgroup. Targets are relative to that directory ("" = itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewStep {
    /// A tmpfs to hold the v1 hierarchies.
    Tmpfs { target: PathBuf },
    /// A fresh cgroup filesystem: `cgroup` with `options` naming the hierarchy's controllers, or
    /// `cgroup2`. Needs the mounting process to be inside the container's cgroup namespace.
    Mount {
        target: PathBuf,
        fstype: &'static str,
        options: String,
    },
    /// A bind mount of the container's host cgroup directory (no cgroup namespace).
    Bind { source: PathBuf, target: PathBuf },
    /// A symlink `link -> points_to` (co-mounted v1 controllers).
    Symlink { link: PathBuf, points_to: PathBuf },
    /// Make the v1 tmpfs read-only once it is populated.
    RemountTmpfsReadOnly { target: PathBuf },
}

/// The steps that give `cg`'s container its view of /sys/fs/cgroup.
pub fn container_view(cg: &Cgroup, cgroupns: bool) -> Vec<ViewStep> {
    let here = PathBuf::new();
    match cg.layout() {
        Layout::V2 { .. } => vec![cgroup_fs(
            cg,
            cgroupns,
            here,
            "cgroup2",
            String::new(),
            None,
        )],
        Layout::V1 { root } => {
            let mut steps = vec![ViewStep::Tmpfs {
                target: here.clone(),
            }];
            for h in cg.dirs() {
                let name = h
                    .dir
                    .strip_prefix(root)
                    .ok()
                    .and_then(|p| p.components().next());
                let Some(name) = name else { continue };
                let target = PathBuf::from(name.as_os_str());
                let (fstype, options) = if h.unified {
                    ("cgroup2", String::new())
                } else {
                    ("cgroup", h.controllers.join(","))
                };
                steps.push(cgroup_fs(
                    cg,
                    cgroupns,
                    target,
                    fstype,
                    options,
                    Some(&h.dir),
                ));
            }
            steps.extend(co_mount_links(root));
            steps.push(ViewStep::RemountTmpfsReadOnly { target: here });
            steps
        }
    }
}

fn cgroup_fs(
    cg: &Cgroup,
    cgroupns: bool,
    target: PathBuf,
    fstype: &'static str,
    options: String,
    host_dir: Option<&Path>,
) -> ViewStep {
    if cgroupns {
        ViewStep::Mount {
            target,
            fstype,
            options,
        }
    } else {
        let source = host_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cg.layout().root().join(cg.path()));
        ViewStep::Bind { source, target }
    }
}

/// The host's symlinks between hierarchy names (`cpu -> cpu,cpuacct`).
fn co_mount_links(root: &Path) -> Vec<ViewStep> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<ViewStep> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .filter_map(|e| {
            let points_to = std::fs::read_link(e.path()).ok()?;
            // Only relative links within the root make sense inside the container.
            (points_to.components().count() == 1).then(|| ViewStep::Symlink {
                link: PathBuf::from(e.file_name()),
                points_to,
            })
        })
        .collect();
    out.sort_by_key(|s| format!("{s:?}"));
    out
}

/// Carry out `steps` under `dest` (e.g. `<rootfs>/sys/fs/cgroup` before pivot_root), in a mount
/// namespace of the container's own and, for [`ViewStep::Mount`], inside its cgroup namespace.
pub fn mount_container_view(
    steps: &[ViewStep],
    dest: &Path,
    readonly: bool,
) -> Result<(), CgroupError> {
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let ro = if readonly {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    for step in steps {
        match step {
            ViewStep::Tmpfs { target } => {
                let t = make_target(dest, target)?;
                do_mount(
                    &t,
                    "tmpfs",
                    Some("tmpfs"),
                    Some("tmpfs"),
                    base,
                    Some("mode=755"),
                )?;
            }
            ViewStep::Mount {
                target,
                fstype,
                options,
            } => {
                let t = make_target(dest, target)?;
                let data = (!options.is_empty()).then_some(options.as_str());
                do_mount(&t, fstype, Some(fstype), Some(fstype), base | ro, data)?;
            }
            ViewStep::Bind { source, target } => {
                let t = make_target(dest, target)?;
                let what = source.display().to_string();
                let src = source.to_str();
                do_mount(
                    &t,
                    &what,
                    src,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
                // A bind mount ignores MS_RDONLY until remounted (mount(2), MS_REMOUNT|MS_BIND).
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | base | ro;
                do_mount(&t, &what, None, None, flags, None)?;
            }
            ViewStep::Symlink { link, points_to } => {
                let l = dest.join(link);
                std::os::unix::fs::symlink(points_to, &l).map_err(|source| CgroupError::Mount {
                    path: l.clone(),
                    what: format!("a symlink to {}", points_to.display()),
                    source,
                })?;
            }
            ViewStep::RemountTmpfsReadOnly { target } if readonly => {
                let t = dest.join(target);
                let flags = MsFlags::MS_REMOUNT | base | MsFlags::MS_RDONLY;
                do_mount(&t, "tmpfs", None, None, flags, Some("mode=755"))?;
            }
            ViewStep::RemountTmpfsReadOnly { .. } => {}
        }
    }
    Ok(())
}

fn make_target(dest: &Path, target: &Path) -> Result<PathBuf, CgroupError> {
    let t = dest.join(target);
    std::fs::create_dir_all(&t).map_err(|source| CgroupError::Mount {
        path: t.clone(),
        what: "a mount point directory".into(),
        source,
    })?;
    Ok(t)
}

fn do_mount(
    target: &Path,
    what: &str,
    source: Option<&str>,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), CgroupError> {
    mount(source, target, fstype, flags, data).map_err(|e| CgroupError::Mount {
        path: target.to_path_buf(),
        what: what.to_string(),
        source: std::io::Error::from(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_view_is_one_cgroup2_mount_or_a_bind() {
        let layout = Layout::V2 {
            root: "/sys/fs/cgroup".into(),
        };
        let cg = Cgroup::open(&layout, "minik8s/c1");
        assert_eq!(
            container_view(&cg, true),
            vec![ViewStep::Mount {
                target: "".into(),
                fstype: "cgroup2",
                options: String::new()
            }]
        );
        assert_eq!(
            container_view(&cg, false),
            vec![ViewStep::Bind {
                source: "/sys/fs/cgroup/minik8s/c1".into(),
                target: "".into()
            }]
        );
    }

    #[test]
    fn v1_view_mounts_each_hierarchy_with_its_controllers_and_links() {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["cpu,cpuacct", "memory", "systemd"] {
            std::fs::create_dir(tmp.path().join(d)).unwrap();
        }
        std::os::unix::fs::symlink("cpu,cpuacct", tmp.path().join("cpu")).unwrap();
        let layout = Layout::detect_at(tmp.path()).unwrap();
        let cg = Cgroup::open(&layout, "minik8s/c1");
        let steps = container_view(&cg, true);
        let mount = |t: &str, o: &str| ViewStep::Mount {
            target: t.into(),
            fstype: "cgroup",
            options: o.into(),
        };
        assert_eq!(
            steps,
            vec![
                ViewStep::Tmpfs { target: "".into() },
                mount("cpu,cpuacct", "cpu,cpuacct"),
                mount("memory", "memory"),
                mount("systemd", "name=systemd"),
                ViewStep::Symlink {
                    link: "cpu".into(),
                    points_to: "cpu,cpuacct".into()
                },
                ViewStep::RemountTmpfsReadOnly { target: "".into() },
            ]
        );
        let binds = container_view(&cg, false);
        assert_eq!(
            binds[2],
            ViewStep::Bind {
                source: tmp.path().join("memory/minik8s/c1"),
                target: "memory".into()
            }
        );
    }
}
