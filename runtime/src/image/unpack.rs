//! Unpacks one layer tar into its own directory, ready to be an overlayfs lowerdir.
//!
//! Each layer gets an empty directory, so OCI whiteouts become overlayfs ones
//! (Documentation/filesystems/overlayfs.rst, "whiteouts and opaque directories"):
//! `.wh.<name>` → a 0/0 character device `<name>`, `.wh..wh..opq` → `trusted.overlay.opaque=y`
//! on the directory. Paths never leave the layer directory: `..` is refused, and nothing is
//! written through a symlink (a parent that is a symlink is refused; the last component is
//! replaced, never followed). Device nodes are skipped: a container gets its /dev from the runtime.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{self, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::digest::{verify, HashingReader};
use super::error::ImageError;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Unpacks the layer blob at `blob` (tar, tar+gzip or tar+zstd, told apart by magic bytes) into
/// `dest` (an empty directory) and checks the uncompressed stream hashes to `diff_id`.
pub fn unpack_layer_blob(blob: &Path, dest: &Path, diff_id: &str) -> Result<(), ImageError> {
    let file = File::open(blob).map_err(ImageError::io(blob))?;
    let reader = decompress(BufReader::new(file)).map_err(ImageError::io(blob))?;
    let mut hashing = HashingReader::new(reader);
    unpack_tar(&mut hashing, dest, diff_id)?;
    hashing.drain().map_err(ImageError::io(blob))?;
    let (actual, _) = hashing.finish();
    verify(
        format!("uncompressed layer {}", blob.display()),
        diff_id,
        &actual,
    )
}

/// Wraps `r` in the decoder its first bytes call for (gzip `1f 8b`, zstd `28 b5 2f fd`).
pub fn decompress<'a, R: io::BufRead + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(r)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(r)?))
    } else {
        Ok(Box::new(r))
    }
}

/// Attributes of a directory, applied after all entries (children change a directory's mtime).
struct DirAttrs {
    path: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

/// Unpacks a tar stream into `dest`; `layer` names the layer in errors.
pub fn unpack_tar(reader: impl Read, dest: &Path, layer: &str) -> Result<(), ImageError> {
    let mut archive = tar::Archive::new(reader);
    let mut dirs = Vec::new();
    let entries = archive.entries().map_err(ImageError::io(dest))?;
    for entry in entries {
        let mut entry = entry.map_err(ImageError::io(dest))?;
        if let Some(attrs) = unpack_entry(&mut entry, dest, layer)? {
            dirs.push(attrs);
        }
    }
    // Deepest first, so setting a parent's mtime is the last change to it.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
    for d in dirs {
        set_owner_mode(&d.path, d.uid, d.gid, Some(d.mode))?;
        set_mtime(&d.path, d.mtime)?;
    }
    Ok(())
}

/// The entry's path as components inside the layer; `..` anywhere is refused.
fn clean_path(raw: &Path, layer: &str) -> Result<PathBuf, ImageError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ImageError::UnsafePath {
                    layer: layer.to_string(),
                    path: raw.display().to_string(),
                    reason: "'..' would leave the layer directory".into(),
                })
            }
        }
    }
    Ok(out)
}

fn unpack_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    dest: &Path,
    layer: &str,
) -> Result<Option<DirAttrs>, ImageError> {
    let raw = entry.path().map_err(ImageError::io(dest))?.into_owned();
    let rel = clean_path(&raw, layer)?;
    let header = entry.header();
    let kind = header.entry_type();
    let mode = header.mode().map_err(ImageError::io(&raw))?;
    let uid = header.uid().map_err(ImageError::io(&raw))? as u32;
    let gid = header.gid().map_err(ImageError::io(&raw))? as u32;
    let mtime = header.mtime().map_err(ImageError::io(&raw))? as i64;
    let dir_attrs = |path: PathBuf| DirAttrs {
        path,
        mode,
        uid,
        gid,
        mtime,
    };
    if rel.as_os_str().is_empty() {
        // The layer root ("./"): only a directory's attributes apply.
        return Ok(kind.is_dir().then(|| dir_attrs(dest.to_path_buf())));
    }
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = ensure_parents(dest, rel.parent().unwrap_or(Path::new("")), layer, &raw)?;
    if write_whiteout(&parent, &name)? {
        return Ok(None);
    }
    let target = parent.join(&name);
    match kind {
        tar::EntryType::Directory => {
            make_dir(&target)?;
            apply_xattrs(entry, &target)?;
            return Ok(Some(dir_attrs(target)));
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            remove_existing(&target)?;
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&target)
                .map_err(ImageError::io(&target))?;
            io::copy(entry, &mut file).map_err(ImageError::io(&target))?;
            set_owner_mode(&target, uid, gid, Some(mode))?;
        }
        tar::EntryType::Symlink => {
            let link = link_name(entry, &raw, layer)?;
            remove_existing(&target)?;
            // The target is stored as is: it is resolved inside the container's root, not here.
            std::os::unix::fs::symlink(&link, &target).map_err(ImageError::io(&target))?;
            set_owner_mode(&target, uid, gid, None)?;
        }
        tar::EntryType::Link => {
            let link = link_name(entry, &raw, layer)?;
            write_hardlink(dest, &link, &target, layer)?;
            return Ok(None);
        }
        tar::EntryType::Fifo => {
            remove_existing(&target)?;
            stat::mknod(&target, SFlag::S_IFIFO, Mode::from_bits_truncate(0o600), 0)
                .map_err(|e| ImageError::io(&target)(e.into()))?;
            set_owner_mode(&target, uid, gid, Some(mode))?;
        }
        tar::EntryType::Char | tar::EntryType::Block => {
            tracing::debug!(layer, path = %raw.display(), "skipping device node in layer");
            return Ok(None);
        }
        other => {
            tracing::debug!(layer, path = %raw.display(), kind = ?other, "skipping tar entry of unsupported type");
            return Ok(None);
        }
    }
    apply_xattrs(entry, &target)?;
    set_mtime(&target, mtime)?;
    Ok(None)
}

/// Turns `.wh..wh..opq` and `.wh.<name>` into their overlayfs forms in `parent`; false for
/// any other name.
fn write_whiteout(parent: &Path, name: &str) -> Result<bool, ImageError> {
    if name == OPAQUE_MARKER {
        set_xattr(parent, "trusted.overlay.opaque", b"y")?;
        return Ok(true);
    }
    let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) else {
        return Ok(false);
    };
    // Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs) has no overlayfs meaning.
    if !hidden.starts_with(WHITEOUT_PREFIX) {
        let target = parent.join(hidden);
        remove_existing(&target)?;
        stat::mknod(&target, SFlag::S_IFCHR, Mode::empty(), stat::makedev(0, 0))
            .map_err(|e| ImageError::io(&target)(e.into()))?;
    }
    Ok(true)
}

/// A directory at `target`, keeping one that is there (and its opaque xattr).
fn make_dir(target: &Path) -> Result<(), ImageError> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => remove_existing(target)?,
        Err(_) => {}
    }
    fs::create_dir(target).map_err(ImageError::io(target))
}

fn link_name<R: Read>(
    entry: &tar::Entry<'_, R>,
    raw: &Path,
    layer: &str,
) -> Result<PathBuf, ImageError> {
    entry
        .link_name()
        .map_err(ImageError::io(raw))?
        .map(|l| l.into_owned())
        .ok_or_else(|| {
            ImageError::invalid(
                format!("layer {layer}"),
                format!("link {} has no target", raw.display()),
            )
        })
}

/// A hard link to `link` (a path inside this layer; never through a symlink).
fn write_hardlink(dest: &Path, link: &Path, target: &Path, layer: &str) -> Result<(), ImageError> {
    let link_rel = clean_path(link, layer)?;
    let source_parent = ensure_parents(
        dest,
        link_rel.parent().unwrap_or(Path::new("")),
        layer,
        link,
    )?;
    let source = source_parent.join(link_rel.file_name().unwrap_or_default());
    remove_existing(target)?;
    // linkat without AT_SYMLINK_FOLLOW: links the entry itself, never what a symlink points to.
    fs::hard_link(&source, target).map_err(ImageError::io(target))
}

/// Creates the directories of `rel` under `dest` and returns the last one; refuses to go
/// through a symlink (it could point outside the layer).
fn ensure_parents(dest: &Path, rel: &Path, layer: &str, raw: &Path) -> Result<PathBuf, ImageError> {
    let mut cur = dest.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ImageError::UnsafePath {
                    layer: layer.to_string(),
                    path: raw.display().to_string(),
                    reason: format!(
                        "parent {} is a symlink",
                        cur.strip_prefix(dest).unwrap_or(&cur).display()
                    ),
                })
            }
            Ok(_) => {
                fs::remove_file(&cur).map_err(ImageError::io(&cur))?;
                fs::create_dir(&cur).map_err(ImageError::io(&cur))?;
            }
            Err(_) => fs::create_dir(&cur).map_err(ImageError::io(&cur))?,
        }
    }
    Ok(cur)
}

/// Removes whatever is at `path` (a later tar entry replaces an earlier one).
fn remove_existing(path: &Path) -> Result<(), ImageError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(ImageError::io(path)),
        Ok(_) => fs::remove_file(path).map_err(ImageError::io(path)),
        Err(_) => Ok(()),
    }
}

/// lchown, then chmod (chown clears setuid/setgid bits, so the mode goes last).
fn set_owner_mode(path: &Path, uid: u32, gid: u32, mode: Option<u32>) -> Result<(), ImageError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(ImageError::io(path))?;
    if let Some(mode) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
            .map_err(ImageError::io(path))?;
    }
    Ok(())
}

fn set_mtime(path: &Path, mtime: i64) -> Result<(), ImageError> {
    let t = TimeSpec::new(mtime, 0);
    stat::utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| ImageError::io(path)(e.into()))
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<(), ImageError> {
    let p = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| ImageError::io(path)(io::Error::other(e)))?;
    let n = CString::new(name).expect("xattr name has no NUL");
    // SAFETY: both strings are NUL-terminated and live across the call; value is a valid slice.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(ImageError::io(path)(io::Error::last_os_error()));
    }
    Ok(())
}

/// Applies PAX `SCHILY.xattr.*` records (e.g. `security.capability` on ping), except overlayfs's
/// own `trusted.overlay.*`, which an image must not be able to forge. Failures are logged, as
/// some filesystems refuse some namespaces.
fn apply_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>, target: &Path) -> Result<(), ImageError> {
    let Some(exts) = entry.pax_extensions().map_err(ImageError::io(target))? else {
        return Ok(());
    };
    for ext in exts {
        let ext = ext.map_err(ImageError::io(target))?;
        let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) else {
            continue;
        };
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        if let Err(e) = set_xattr(target, name, ext.value_bytes()) {
            tracing::debug!(path = %target.display(), xattr = name, error = %e, "could not set xattr from layer");
        }
    }
    Ok(())
}
