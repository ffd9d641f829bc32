//! /dev inside the container: the default device nodes every container gets (config-linux.md
//! "default devices"), the devices config.json lists, and the standard symlinks. Nodes are made
//! with mknod(2); where that is not allowed they are bind mounts of the host's nodes, like runc
//! does in a user namespace.

use std::path::Path;

use nix::mount::MsFlags;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use oci_spec::runtime::{Linux, LinuxDeviceType};

use super::rootfs::{do_mount, secure_join};
use super::InitError;

/// (name, major, minor) of the default character devices, mode 0666.
const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const SYMLINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
];

pub fn create_defaults(rootfs: &Path, linux: &Linux) -> Result<(), InitError> {
    let dev = secure_join(rootfs, Path::new("/dev"))?;
    std::fs::create_dir_all(&dev)
        .map_err(|e| InitError::io(format!("mkdir {}", dev.display()), e))?;
    for (name, major, minor) in DEFAULT_DEVICES {
        let path = dev.join(name);
        make_node(&path, SFlag::S_IFCHR, *major, *minor, 0o666, (0, 0))?;
    }
    for d in linux.devices().as_deref().unwrap_or(&[]) {
        let kind = match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        let path = secure_join(rootfs, d.path())?;
        let mode = d.file_mode().unwrap_or(0o666);
        let owner = (d.uid().unwrap_or(0), d.gid().unwrap_or(0));
        make_node(&path, kind, d.major() as u64, d.minor() as u64, mode, owner)?;
    }
    for (target, name) in SYMLINKS {
        let link = dev.join(name);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(target, &link)
                .map_err(|e| InitError::io(format!("symlink {}", link.display()), e))?;
        }
    }
    Ok(())
}

fn make_node(
    path: &Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    owner: (u32, u32),
) -> Result<(), InitError> {
    if path.symlink_metadata().is_ok() {
        let _ = std::fs::remove_file(path);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| InitError::io(format!("mkdir {}", parent.display()), e))?;
    }
    let perm = Mode::from_bits_truncate(mode & 0o7777);
    match mknod(path, kind, perm, makedev(major, minor)) {
        Ok(()) => {
            // mknod honours the umask; set the mode the spec asked for.
            nix::sys::stat::fchmodat(
                None,
                path,
                perm,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| InitError::sys(format!("chmod {}", path.display()), e))?;
            nix::unistd::chown(path, Some(owner.0.into()), Some(owner.1.into()))
                .map_err(|e| InitError::sys(format!("chown {}", path.display()), e))
        }
        Err(nix::errno::Errno::EPERM) => bind_host_node(path),
        Err(e) => Err(InitError::sys(format!("mknod {}", path.display()), e)),
    }
}

/// Bind-mounts the host's node of the same name over an empty file.
fn bind_host_node(path: &Path) -> Result<(), InitError> {
    let name = path.file_name().unwrap_or_default();
    let host = Path::new("/dev").join(name);
    std::fs::File::create(path)
        .map_err(|e| InitError::io(format!("create {}", path.display()), e))?;
    do_mount(Some(&host), path, None, MsFlags::MS_BIND, None)
}
