//! Layer unpacking: overlayfs whiteouts (checked through a real overlay mount), path safety,
//! links, devices, ownership, compression, and diff_id verification.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use minik8s_runtime::image::testimage::{Compression, LayerBuilder, TestImage};
use minik8s_runtime::image::{ImageError, ImageStore};

/// Unmounts on drop, also when an assertion failed.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn import_layers(
    tmp: &Path,
    layers: Vec<minik8s_runtime::image::testimage::Layer>,
) -> Result<(ImageStore, Vec<PathBuf>), ImageError> {
    let tar = tmp.join("image.tar");
    TestImage::new(layers)
        .write_oci_archive(&tar, "test/unpack:1")
        .map_err(|e| ImageError::Io {
            path: tar.clone(),
            source: e,
        })?;
    let store = ImageStore::open(&tmp.join("store"))?;
    store.import(&tar)?;
    let image = store.get("test/unpack:1").expect("imported");
    let dirs = store.layer_dirs(&image)?;
    Ok((store, dirs))
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_files_in_an_overlay_mount() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let lower = LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/gone", 0o644, b"lower")
        .file("etc/kept", 0o644, b"lower")
        .dir("data", 0o755)
        .file("data/old1", 0o644, b"1")
        .file("data/old2", 0o644, b"2")
        .finish(Compression::Gzip);
    let upper = LayerBuilder::new()
        .dir("etc", 0o755)
        .whiteout("etc/gone")
        .dir("data", 0o755)
        .opaque("data")
        .file("data/new", 0o644, b"new")
        .finish(Compression::Gzip);
    let (_store, dirs) = import_layers(tmp.path(), vec![lower, upper])?;

    // On disk: the overlayfs forms of the OCI whiteouts.
    let wh = fs::symlink_metadata(dirs[1].join("etc/gone"))?;
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0/0 char device"
    );
    assert!(!dirs[1].join("etc/.wh.gone").exists());
    assert_eq!(
        xattr(&dirs[1].join("data"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!dirs[1].join("data/.wh..wh..opq").exists());

    // Through overlayfs, as a container sees it (lowerdir lists the highest layer first).
    let target = tmp.path().join("merged");
    fs::create_dir(&target)?;
    let opts = format!("lowerdir={}:{}", dirs[1].display(), dirs[0].display());
    nix::mount::mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )?;
    let _mount = Mount(target.clone());
    assert!(!target.join("etc/gone").exists(), "whited-out file is gone");
    assert_eq!(fs::read(target.join("etc/kept"))?, b"lower");
    let mut data: Vec<_> = fs::read_dir(target.join("data"))?
        .map(|e| e.unwrap().file_name())
        .collect();
    data.sort();
    assert_eq!(
        data,
        vec!["new"],
        "opaque dir hides the lower layer's entries"
    );
    Ok(())
}

#[test]
fn later_layer_whiteout_of_a_directory_and_replacement() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let lower = LayerBuilder::new()
        .dir("d", 0o755)
        .file("d/f", 0o644, b"x")
        .finish(Compression::None);
    let upper = LayerBuilder::new()
        .whiteout("d")
        .file("d2", 0o600, b"y")
        .finish(Compression::None);
    let (_store, dirs) = import_layers(tmp.path(), vec![lower, upper])?;
    assert!(fs::symlink_metadata(dirs[1].join("d"))?
        .file_type()
        .is_char_device());
    assert_eq!(
        fs::metadata(dirs[1].join("d2"))?.permissions().mode() & 0o777,
        0o600
    );
    Ok(())
}

#[test]
fn links_ownership_modes_and_devices() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let layer = LayerBuilder::new()
        .dir("bin", 0o755)
        .file("bin/tool", 0o4755, b"#!/bin/sh\n")
        .hardlink("bin/tool2", "bin/tool")
        .symlink("bin/rel", "tool")
        .symlink("bin/abs", "/etc/shadow")
        .file_owned("owned", 0o640, 1000, 1001, b"mine")
        .dir("dev", 0o755)
        .char_device("dev/null", 1, 3)
        .finish(Compression::Gzip);
    let (_store, dirs) = import_layers(tmp.path(), vec![layer])?;
    let root = &dirs[0];
    let tool = fs::metadata(root.join("bin/tool"))?;
    assert_eq!(
        tool.permissions().mode() & 0o7777,
        0o4755,
        "setuid survives chown"
    );
    assert_eq!(
        tool.ino(),
        fs::metadata(root.join("bin/tool2"))?.ino(),
        "hardlink shares the inode"
    );
    assert_eq!(fs::read_link(root.join("bin/rel"))?, Path::new("tool"));
    // Absolute symlinks are kept verbatim: they resolve inside the container's root.
    assert_eq!(
        fs::read_link(root.join("bin/abs"))?,
        Path::new("/etc/shadow")
    );
    let owned = fs::metadata(root.join("owned"))?;
    assert_eq!(
        (owned.uid(), owned.gid(), owned.permissions().mode() & 0o777),
        (1000, 1001, 0o640)
    );
    assert_eq!(owned.mtime(), 946_684_800);
    assert!(!root.join("dev/null").exists(), "device nodes are skipped");
    Ok(())
}

#[test]
fn zstd_layers_unpack() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let layer = LayerBuilder::new()
        .file("z", 0o644, b"zstd!")
        .finish(Compression::Zstd);
    let (store, dirs) = import_layers(tmp.path(), vec![layer])?;
    assert_eq!(fs::read(dirs[0].join("z"))?, b"zstd!");
    let image = store.get("test/unpack:1").unwrap();
    let blob = fs::read(
        tmp.path()
            .join("store/blobs/sha256")
            .join(&image.layers[0].digest[7..]),
    )?;
    assert_eq!(
        &blob[..4],
        &[0x28, 0xb5, 0x2f, 0xfd],
        "stored compressed as zstd"
    );
    Ok(())
}

fn raw_entry(path: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) -> tar::Header {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    h
}

#[test]
fn entries_escaping_the_layer_are_refused() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside)?;
    let cases = vec![
        (
            "dotdot",
            LayerBuilder::new().raw(
                raw_entry("../../escaped", tar::EntryType::Regular, None, b"x"),
                b"x",
            ),
        ),
        (
            "through-symlink",
            LayerBuilder::new()
                .symlink("link", outside.to_str().unwrap())
                .raw(
                    raw_entry("link/escaped", tar::EntryType::Regular, None, b"x"),
                    b"x",
                ),
        ),
        (
            "hardlink-out",
            LayerBuilder::new().raw(
                raw_entry("h", tar::EntryType::Link, Some("../../../etc/passwd"), b""),
                b"",
            ),
        ),
    ];
    for (name, builder) in cases {
        let dir = tmp.path().join(name);
        fs::create_dir(&dir)?;
        let err = import_layers(&dir, vec![builder.finish(Compression::None)]).unwrap_err();
        assert!(
            matches!(err, ImageError::UnsafePath { .. }),
            "{name}: {err}"
        );
        assert_eq!(
            fs::read_dir(&outside)?.count(),
            0,
            "{name}: nothing written outside"
        );
        assert!(!tmp.path().join("escaped").exists() && !dir.join("escaped").exists());
        assert_eq!(
            fs::read_dir(dir.join("store/layers/sha256"))?.count(),
            0,
            "{name}: no layer kept"
        );
        assert_eq!(
            fs::read_dir(dir.join("store/tmp"))?.count(),
            0,
            "{name}: partial unpack removed"
        );
    }
    Ok(())
}

#[test]
fn diff_id_mismatch_is_refused() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut layer = LayerBuilder::new()
        .file("a", 0o644, b"a")
        .finish(Compression::Gzip);
    layer.diff_id = format!("sha256:{}", "0".repeat(64));
    let err = import_layers(tmp.path(), vec![layer]).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&"0".repeat(64)), "{err}");
    Ok(())
}

#[test]
fn layers_of_a_removed_image_stay_while_an_overlay_uses_them() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let lower = LayerBuilder::new()
        .file("a", 0o644, b"a")
        .finish(Compression::Gzip);
    let upper = LayerBuilder::new()
        .file("b", 0o644, b"b")
        .finish(Compression::Gzip);
    let (store, dirs) = import_layers(tmp.path(), vec![lower, upper])?;
    let target = tmp.path().join("merged");
    fs::create_dir(&target)?;
    let opts = format!("lowerdir={}:{}", dirs[1].display(), dirs[0].display());
    nix::mount::mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )?;
    let mount = Mount(target.clone());
    store.remove("test/unpack:1")?;
    assert!(store.list().is_empty());
    assert!(dirs.iter().all(|d| d.is_dir()), "mounted layers are kept");
    assert_eq!(fs::read(target.join("a"))?, b"a");
    drop(mount);
    store.gc()?;
    assert!(dirs.iter().all(|d| !d.exists()), "freed once unmounted");
    Ok(())
}
