//! A container's root filesystem: one overlayfs over the image's unpacked layers (read-only
//! lower dirs) with the container's own upper and work dirs, mounted at `<dir>/rootfs`.
//! Whiteouts and opaque directories in the layers were turned into overlayfs' own form when the
//! image store unpacked them, so the kernel honours them. Removed with the container.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("create {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image has no layers for snapshot {0}")]
    NoLayers(PathBuf),
    #[error("mount overlay at {path}: {source}")]
    Mount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("remove snapshot {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The mounted root filesystem of a container snapshot in `dir`.
pub fn rootfs(dir: &Path) -> PathBuf {
    dir.join("rootfs")
}

/// Mounts the overlay in `dir` (`upper`, `work`, `rootfs`) over `layers`, given base layer first
/// (the order of the image manifest). Returns the rootfs path.
pub fn prepare(dir: &Path, layers: &[PathBuf]) -> Result<PathBuf, SnapshotError> {
    if layers.is_empty() {
        return Err(SnapshotError::NoLayers(dir.into()));
    }
    let (upper, work, root) = (dir.join("upper"), dir.join("work"), rootfs(dir));
    for d in [&upper, &work, &root] {
        std::fs::create_dir_all(d).map_err(|source| SnapshotError::Create {
            path: d.clone(),
            source,
        })?;
    }
    // overlayfs wants the topmost lower dir first.
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        &root,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|source| SnapshotError::Mount {
        path: root.clone(),
        source,
    })?;
    Ok(root)
}

/// Unmounts the rootfs and deletes the snapshot directory (idempotent).
pub fn remove(dir: &Path) -> Result<(), SnapshotError> {
    let root = rootfs(dir);
    // EINVAL: not mounted (already removed, or prepare failed before the mount).
    let _ = umount2(&root, MntFlags::MNT_DETACH);
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SnapshotError::Remove {
            path: dir.into(),
            source,
        }),
    }
}
