//! The container's root filesystem, built inside its new mount namespace: propagation, the
//! mounts of config.json, /dev, pivot_root, masked and read-only paths (runtime-spec config.md
//! "mounts" and config-linux.md "rootfs mount propagation", "masked paths", "readonly paths").

use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{Linux, Mount, Spec};

use super::devices;
use super::InitError;
use crate::cgroups::{container_view, mount_container_view, Cgroup};

/// Builds the root filesystem and pivots into it.
/// The container's cgroup, for the `cgroup` mount type.
pub struct CgroupView<'a> {
    pub cgroup: &'a Cgroup,
    pub namespaced: bool,
}

pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    linux: &Linux,
    cgroup: &CgroupView<'_>,
) -> Result<(), InitError> {
    // Nothing we mount may propagate back to the host: make everything a slave (or what
    // linux.rootfsPropagation asks) before the first mount.
    let propagation = match linux.rootfs_propagation().as_deref() {
        Some(p) => parse_options(&[p.to_string()]).propagation,
        None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    do_mount(None, Path::new("/"), None, propagation, None)?;
    // pivot_root needs the new root to be a mount point.
    do_mount(
        Some(rootfs),
        rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;

    let mounts = spec.mounts().clone().unwrap_or_default();
    for m in &mounts {
        mount_one(rootfs, m, cgroup)?;
    }
    let dev_is_bind = mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev") && is_bind(m));
    if !dev_is_bind {
        devices::create_defaults(rootfs, linux)?;
    }
    pivot_root(rootfs)?;
    for path in linux.masked_paths().as_deref().unwrap_or(&[]) {
        mask_path(Path::new(path))?;
    }
    for path in linux.readonly_paths().as_deref().unwrap_or(&[]) {
        readonly_path(Path::new(path))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        do_mount(None, Path::new("/"), None, flags, None)?;
    }
    Ok(())
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

/// Mount flags, propagation flags and the leftover data string of an options list (mount(8)).
#[derive(Debug, PartialEq)]
pub struct ParsedOptions {
    pub flags: MsFlags,
    pub propagation: MsFlags,
    pub data: String,
}

pub fn parse_options(options: &[String]) -> ParsedOptions {
    let mut p = ParsedOptions {
        flags: MsFlags::empty(),
        propagation: MsFlags::empty(),
        data: String::new(),
    };
    for o in options {
        let (clear, set) = match o.as_str() {
            "defaults" | "rw" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "ro" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "suid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "nodev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "dev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "noexec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "exec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "async" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "dirsync" => (MsFlags::empty(), MsFlags::MS_DIRSYNC),
            "remount" => (MsFlags::empty(), MsFlags::MS_REMOUNT),
            "mand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "nomand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "noatime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "atime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "diratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "norelatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "nostrictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "bind" => (MsFlags::empty(), MsFlags::MS_BIND),
            "rbind" => (MsFlags::empty(), MsFlags::MS_BIND | MsFlags::MS_REC),
            prop @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            | "unbindable" | "runbindable") => {
                p.propagation |= propagation_flag(prop);
                continue;
            }
            data => {
                if !p.data.is_empty() {
                    p.data.push(',');
                }
                p.data.push_str(data);
                continue;
            }
        };
        p.flags = (p.flags & !clear) | set;
    }
    p
}

fn propagation_flag(name: &str) -> MsFlags {
    let rec = if name.starts_with('r') {
        MsFlags::MS_REC
    } else {
        MsFlags::empty()
    };
    rec | match name.trim_start_matches('r') {
        "private" => MsFlags::MS_PRIVATE,
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        _ => MsFlags::MS_UNBINDABLE,
    }
}

fn mount_one(rootfs: &Path, m: &Mount, cgroup: &CgroupView<'_>) -> Result<(), InitError> {
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let target = secure_join(rootfs, m.destination())?;
    let fstype = m.typ().clone().unwrap_or_default();
    let source = m.source().clone().unwrap_or_default();
    if is_bind(m) {
        let src_is_dir = source.is_dir();
        make_target(&target, src_is_dir)?;
        let bind = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        do_mount(Some(&source), &target, None, bind, None)?;
        // A bind mount ignores other flags: apply them with a remount (mount(8) "bind").
        let rest = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !rest.is_empty() {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | rest;
            do_mount(None, &target, None, flags, None)?;
        }
    } else if fstype == "cgroup" {
        mount_cgroup(&target, &opts, cgroup.cgroup, cgroup.namespaced)?;
    } else {
        make_target(&target, true)?;
        let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
        do_mount(Some(&source), &target, Some(&fstype), opts.flags, data)?;
    }
    if !opts.propagation.is_empty() {
        do_mount(None, &target, None, opts.propagation, None)?;
    }
    Ok(())
}

/// `/sys/fs/cgroup`: the container's own cgroups, seen through its cgroup namespace when it has
/// one (the cgroups module says which mounts make that view on this host's layout).
fn mount_cgroup(
    target: &Path,
    opts: &ParsedOptions,
    cgroup: &Cgroup,
    cgroupns: bool,
) -> Result<(), InitError> {
    make_target(target, true)?;
    let steps = container_view(cgroup, cgroupns);
    let readonly = opts.flags.contains(MsFlags::MS_RDONLY);
    mount_container_view(&steps, target, readonly)
        .map_err(|e| InitError::Config(format!("mount cgroups on {}: {e}", target.display())))
}

/// Creates the mount point: a directory, or an empty file for a file bind mount.
fn make_target(target: &Path, dir: bool) -> Result<(), InitError> {
    if dir {
        std::fs::create_dir_all(target)
            .map_err(|e| InitError::io(format!("mkdir {}", target.display()), e))
    } else {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| InitError::io(format!("mkdir {}", parent.display()), e))?;
        }
        if !target.exists() {
            std::fs::File::create(target)
                .map_err(|e| InitError::io(format!("create {}", target.display()), e))?;
        }
        Ok(())
    }
}

/// `rootfs` joined with `unsafe_path`, resolving symlinks as if `rootfs` were `/`, so a symlink in
/// the image cannot point a mount outside the container (what runc's securejoin does).
pub fn secure_join(rootfs: &Path, unsafe_path: &Path) -> Result<PathBuf, InitError> {
    let mut pending: Vec<PathBuf> = vec![unsafe_path.to_path_buf()];
    let mut resolved = PathBuf::new(); // relative to rootfs
    let mut links = 0;
    while let Some(path) = pending.pop() {
        let mut comps: Vec<Component> = path.components().collect();
        comps.reverse();
        while let Some(c) = comps.pop() {
            match c {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::Normal(name) => {
                    let candidate = resolved.join(name);
                    let full = rootfs.join(&candidate);
                    match std::fs::read_link(&full) {
                        Ok(link) => {
                            links += 1;
                            if links > 255 {
                                return Err(InitError::Config(format!(
                                    "too many symlinks resolving {}",
                                    unsafe_path.display()
                                )));
                            }
                            if link.is_absolute() {
                                resolved = PathBuf::new();
                            }
                            let rest: PathBuf = comps.iter().rev().collect();
                            pending.push(rest);
                            pending.push(link);
                            comps.clear();
                        }
                        Err(_) => resolved = candidate,
                    }
                }
            }
        }
    }
    Ok(rootfs.join(resolved))
}

/// pivot_root(".", ".") then detach the old root, as runc does; falls back to chroot only where
/// pivot_root cannot work (a rootfs on the initramfs, EINVAL).
fn pivot_root(rootfs: &Path) -> Result<(), InitError> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let dir = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old = open("/", dir, Mode::empty()).map_err(|e| InitError::sys("open /", e))?;
    let new = open(rootfs, dir, Mode::empty())
        .map_err(|e| InitError::sys(format!("open {}", rootfs.display()), e))?;
    let _close = scopeguard_close(&[old, new]);
    nix::unistd::fchdir(new).map_err(|e| InitError::sys("fchdir rootfs", e))?;
    match nix::unistd::pivot_root(".", ".") {
        Ok(()) => {
            nix::unistd::fchdir(old).map_err(|e| InitError::sys("fchdir old root", e))?;
            do_mount(
                None,
                Path::new("."),
                None,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                None,
            )?;
            umount2(".", MntFlags::MNT_DETACH).map_err(|e| InitError::sys("umount old root", e))?;
        }
        Err(nix::errno::Errno::EINVAL) => {
            nix::unistd::chroot(".").map_err(|e| InitError::sys("chroot", e))?;
        }
        Err(e) => {
            return Err(InitError::sys(
                format!("pivot_root {}", rootfs.display()),
                e,
            ))
        }
    }
    nix::unistd::chdir("/").map_err(|e| InitError::sys("chdir /", e))
}

struct CloseOnDrop(Vec<i32>);
impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        for fd in &self.0 {
            let _ = nix::unistd::close(*fd);
        }
    }
}
fn scopeguard_close(fds: &[i32]) -> CloseOnDrop {
    CloseOnDrop(fds.to_vec())
}

/// Hides a path: a read-only empty tmpfs over a directory, /dev/null over a file.
fn mask_path(path: &Path) -> Result<(), InitError> {
    match std::fs::metadata(path) {
        Err(_) => Ok(()), // absent: nothing to hide
        Ok(md) if md.is_dir() => do_mount(
            Some(Path::new("tmpfs")),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None,
        ),
        Ok(_) => do_mount(
            Some(Path::new("/dev/null")),
            path,
            None,
            MsFlags::MS_BIND,
            None,
        ),
    }
}

fn readonly_path(path: &Path) -> Result<(), InitError> {
    if !path.exists() {
        return Ok(());
    }
    do_mount(
        Some(path),
        path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    do_mount(None, path, None, flags, None)
}

pub(super) fn do_mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), InitError> {
    mount(source, target, fstype, flags, data).map_err(|e| InitError::Mount {
        source_path: source
            .map(|s| s.display().to_string())
            .unwrap_or_else(|| "none".into()),
        target: target.to_path_buf(),
        fstype: fstype.unwrap_or("none").to_string(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let opts: Vec<String> = ["nosuid", "ro", "rslave", "mode=755", "size=65536k"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = parse_options(&opts);
        assert_eq!(p.flags, MsFlags::MS_NOSUID | MsFlags::MS_RDONLY);
        assert_eq!(p.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(p.data, "mode=755,size=65536k");
    }

    #[test]
    fn secure_join_keeps_symlinks_inside_rootfs() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("real")).unwrap();
        std::os::unix::fs::symlink("/real", root.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../etc", root.path().join("escape")).unwrap();
        assert_eq!(
            secure_join(root.path(), Path::new("/abs/x")).unwrap(),
            root.path().join("real/x")
        );
        assert_eq!(
            secure_join(root.path(), Path::new("/escape/passwd")).unwrap(),
            root.path().join("etc/passwd")
        );
        assert_eq!(
            secure_join(root.path(), Path::new("/../../a")).unwrap(),
            root.path().join("a")
        );
    }
}
