//! [`ImageStore`]: the on-disk image store of one runtime root.
//!
//! ```text
//! <root>/blobs/sha256/<hex>    content (manifests, configs, compressed layers), keyed by digest
//! <root>/layers/sha256/<hex>   unpacked layers keyed by diff_id: one overlayfs lowerdir each
//! <root>/images.json           the images: ids, tags, digests, layers, config
//! <root>/tmp/                  partial writes, renamed into place when complete and verified
//! <root>/locks/                flock files (metadata, content vs. garbage collection, per layer)
//! ```
//!
//! Every write is a temp file or directory renamed into place, so a crash leaves either the old or
//! the new state. Writers serialise on flock(2), which also orders the runtime against a
//! concurrent `minik8s images import` on the same root.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use oci_spec::image::ImageConfiguration;

use super::blobs::Blobs;
use super::digest::validate_digest;
use super::error::ImageError;
use super::lock::FileLock;
use super::manifest::Manifest;
use super::metadata::{self, Image, ImageLayer};
use super::resolve::{self, Match};
use super::unpack::unpack_layer_blob;

/// Partial writes older than this are left over from a crash and removed at open.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

/// The image store; cheap to clone or share in an `Arc`, safe to use from many threads and
/// processes.
#[derive(Clone)]
pub struct ImageStore {
    root: PathBuf,
    pub(crate) blobs: Blobs,
    layers: PathBuf,
    tmp: PathBuf,
    locks: PathBuf,
    meta: PathBuf,
    /// images.json as last read, with the (inode, mtime, size) it was read at.
    cache: Arc<Mutex<Option<CachedImages>>>,
    /// One download per blob digest at a time within this process.
    pub(crate) downloads: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// images.json as read, and the stamp of the file it was read from.
type CachedImages = (FileStamp, Arc<Vec<Image>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp(u64, i64, i64, u64);

/// Disk use of the store (CRI `FilesystemUsage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsUsage {
    pub bytes: u64,
    pub inodes: u64,
}

/// Held while content is written that no image names yet; garbage collection waits for it.
pub(crate) struct ContentLease {
    _lock: FileLock,
}

impl ImageStore {
    /// Opens (creating) the store at `root`, e.g. `<runtime-root>/images`.
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        let layers = root.join("layers/sha256");
        let tmp = root.join("tmp");
        let locks = root.join("locks");
        for dir in [root, &layers, &tmp, &locks] {
            fs::create_dir_all(dir).map_err(ImageError::io(dir))?;
        }
        let blobs = Blobs::open(root.join("blobs/sha256"), tmp.clone())?;
        let store = ImageStore {
            root: root.to_path_buf(),
            blobs,
            layers,
            tmp: tmp.clone(),
            locks,
            meta: root.join("images.json"),
            cache: Arc::new(Mutex::new(None)),
            downloads: Arc::default(),
        };
        store.remove_stale_tmp();
        store.load()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All images.
    pub fn list(&self) -> Vec<Image> {
        match self.load() {
            Ok(images) => images.as_ref().clone(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read image metadata");
                Vec::new()
            }
        }
    }

    /// The image named by a reference (`busybox`, `name@sha256:…`), an id, or a unique id prefix.
    pub fn get(&self, reference_or_id: &str) -> Option<Image> {
        let images = self.load().ok()?;
        match resolve::find(&images, reference_or_id) {
            Ok(m) => Some(images[m.index()].clone()),
            Err(_) => None,
        }
    }

    /// Like [`ImageStore::get`], with the reason when there is no single match.
    pub fn resolve(&self, reference_or_id: &str) -> Result<Image, ImageError> {
        let images = self.load()?;
        resolve::find(&images, reference_or_id).map(|m| images[m.index()].clone())
    }

    /// Removes a tag or digest reference; by id, the whole image. An image left without tags and
    /// digests is deleted, then content and unpacked layers no image uses are freed.
    pub fn remove(&self, reference_or_id: &str) -> Result<(), ImageError> {
        self.update(|images| {
            let m = resolve::find(images, reference_or_id)?;
            let image = &mut images[m.index()];
            match &m {
                Match::Id(i) | Match::Prefix(i) => {
                    images.remove(*i);
                }
                Match::Tag(_, tag) => image.repo_tags.retain(|t| t != tag),
                Match::Digest(_, d) => image.repo_digests.retain(|t| t != d),
            }
            if matches!(m, Match::Tag(..) | Match::Digest(..)) {
                let image = &images[m.index()];
                // As `docker rmi` of the last tag: the image goes, with its digest references.
                if image.repo_tags.is_empty() {
                    tracing::info!(image = %image.id, "removing image: its last tag was removed");
                    images.remove(m.index());
                }
            }
            Ok(())
        })?;
        self.gc()
    }

    /// The unpacked layer directories of `image`, lowest first (overlayfs wants `lowerdir`
    /// highest first: reverse them).
    pub fn layer_dirs(&self, image: &Image) -> Result<Vec<PathBuf>, ImageError> {
        image
            .layers
            .iter()
            .map(|l| {
                let dir = self.layer_dir(&l.diff_id)?;
                if dir.is_dir() {
                    Ok(dir)
                } else {
                    Err(ImageError::io(&dir)(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("layer {} of image {} is not unpacked", l.diff_id, image.id),
                    )))
                }
            })
            .collect()
    }

    /// Bytes and inodes the store uses on disk (CRI ImageFsInfo), each inode counted once.
    pub fn fs_usage(&self) -> Result<FsUsage, ImageError> {
        let mut seen = HashSet::new();
        let mut usage = FsUsage::default();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                // Removed while we walk (a concurrent collection): nothing to count.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ImageError::io(&dir)(e)),
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if !seen.insert((meta.dev(), meta.ino())) {
                    continue;
                }
                usage.inodes += 1;
                usage.bytes += meta.blocks() * 512;
                if meta.is_dir() {
                    stack.push(entry.path());
                }
            }
        }
        Ok(usage)
    }

    pub(crate) fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self.layers.join(validate_digest(diff_id)?))
    }

    pub(crate) fn lease(&self) -> Result<ContentLease, ImageError> {
        Ok(ContentLease {
            _lock: FileLock::shared(&self.locks.join("content.lock"))?,
        })
    }

    /// Makes an image of a manifest whose blobs are all in the store: unpacks and verifies its
    /// layers, then records it under `tags` and `digests` (moving those names off other images).
    pub(crate) fn register(
        &self,
        manifest_digest: &str,
        manifest: &Manifest,
        tags: Vec<String>,
        digests: Vec<String>,
    ) -> Result<Image, ImageError> {
        let config_digest = &manifest.config.digest;
        let config_bytes = self.blobs.read(config_digest)?;
        super::digest::verify(
            format!("config {config_digest}"),
            config_digest,
            &super::digest::sha256_digest(&config_bytes),
        )?;
        let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
            .map_err(|e| ImageError::invalid(format!("image config {config_digest}"), e))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::invalid(
                format!("image config {config_digest}"),
                format!(
                    "{} diff_ids for {} layers in manifest {manifest_digest}",
                    diff_ids.len(),
                    manifest.layers.len()
                ),
            ));
        }
        let mut layers = Vec::new();
        for (desc, diff_id) in manifest.layers.iter().zip(diff_ids) {
            self.ensure_unpacked(&desc.digest, diff_id)?;
            layers.push(ImageLayer {
                digest: desc.digest.clone(),
                size: desc.size,
                diff_id: diff_id.clone(),
            });
        }
        let size = layers.iter().map(|l| l.size).sum::<u64>() + config_bytes.len() as u64;
        let image = Image {
            id: config_digest.clone(),
            repo_tags: tags,
            repo_digests: digests,
            size,
            manifest_digest: manifest_digest.to_string(),
            layers,
            config,
        };
        let mut stored = image.clone();
        let mut dropped = false;
        self.update(|images| {
            dropped = metadata::upsert(images, image);
            stored = images
                .iter()
                .find(|i| i.id == *config_digest)
                .cloned()
                .unwrap_or(stored.clone());
            Ok(())
        })?;
        if dropped {
            self.gc_if_idle()?;
        }
        Ok(stored)
    }

    /// Unpacks layer blob `digest` into `layers/sha256/<diff_id hex>` unless already there.
    fn ensure_unpacked(&self, digest: &str, diff_id: &str) -> Result<(), ImageError> {
        let dest = self.layer_dir(diff_id)?;
        if dest.is_dir() {
            return Ok(());
        }
        // One unpacker per layer; a second one waits and then finds the directory.
        let _lock = FileLock::exclusive(&self.locks.join(format!("layer-{}", &diff_id[7..])))?;
        if dest.is_dir() {
            return Ok(());
        }
        let tmp = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(&self.tmp)
            .map_err(ImageError::io(&self.tmp))?;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
            .map_err(ImageError::io(tmp.path()))?;
        let blob = self.blobs.path(digest)?;
        let started = std::time::Instant::now();
        unpack_layer_blob(&blob, tmp.path(), diff_id)?;
        let tmp = tmp.keep();
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_dir_all(&tmp);
            if !dest.is_dir() {
                return Err(ImageError::io(&dest)(e));
            }
        }
        tracing::debug!(layer = diff_id, elapsed = ?started.elapsed(), "unpacked layer");
        Ok(())
    }

    /// images.json, re-read when another writer replaced it.
    fn load(&self) -> Result<Arc<Vec<Image>>, ImageError> {
        let stamp = match fs::metadata(&self.meta) {
            Ok(m) => Some(FileStamp(m.ino(), m.mtime(), m.mtime_nsec(), m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(ImageError::io(&self.meta)(e)),
        };
        let mut cache = self.cache.lock().expect("image cache lock");
        if let (Some(stamp), Some((cached, images))) = (stamp, cache.as_ref()) {
            if *cached == stamp {
                return Ok(images.clone());
            }
        }
        let images = Arc::new(metadata::read(&self.meta)?);
        if let Some(stamp) = stamp {
            *cache = Some((stamp, images.clone()));
        }
        Ok(images)
    }

    /// Read-modify-write of images.json under the metadata lock.
    fn update(
        &self,
        f: impl FnOnce(&mut Vec<Image>) -> Result<(), ImageError>,
    ) -> Result<(), ImageError> {
        let _lock = FileLock::exclusive(&self.locks.join("metadata.lock"))?;
        let mut images = metadata::read(&self.meta)?;
        f(&mut images)?;
        metadata::write(&self.meta, &self.tmp, &images)
    }

    /// Frees blobs and unpacked layers that no image uses, waiting for running imports and pulls.
    pub fn gc(&self) -> Result<(), ImageError> {
        let lock = FileLock::exclusive(&self.locks.join("content.lock"))?;
        self.collect(lock)
    }

    /// [`ImageStore::gc`] unless an import or pull is running (it collects when done).
    pub(crate) fn gc_if_idle(&self) -> Result<(), ImageError> {
        match FileLock::try_exclusive(&self.locks.join("content.lock"))? {
            Some(lock) => self.collect(lock),
            None => Ok(()),
        }
    }

    fn collect(&self, _lock: FileLock) -> Result<(), ImageError> {
        let images = self.load()?;
        let mut blobs_used = HashSet::new();
        let mut layers_used = HashSet::new();
        for image in images.iter() {
            blobs_used.insert(image.manifest_digest.clone());
            blobs_used.insert(image.id.clone());
            for l in &image.layers {
                blobs_used.insert(l.digest.clone());
                layers_used.insert(l.diff_id[7..].to_string());
            }
        }
        for digest in self.blobs.list()? {
            if !blobs_used.contains(&digest) {
                tracing::debug!(blob = digest, "removing unused blob");
                self.blobs.remove(&digest)?;
            }
        }
        let mounted = super::mounts::overlay_lowerdirs();
        for entry in fs::read_dir(&self.layers).map_err(ImageError::io(&self.layers))? {
            let entry = entry.map_err(ImageError::io(&self.layers))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if layers_used.contains(&name) {
                continue;
            }
            if mounted.contains(&entry.path()) {
                // A container's overlay still stacks it; the next collection frees it.
                tracing::info!(layer = name, "unused layer still mounted, keeping it");
                continue;
            }
            tracing::debug!(layer = name, "removing unused layer");
            fs::remove_dir_all(entry.path()).map_err(ImageError::io(entry.path()))?;
            // Its unpack lock too; a racing unpacker holding the old file still renames safely.
            let _ = fs::remove_file(self.locks.join(format!("layer-{name}")));
        }
        Ok(())
    }

    fn remove_stale_tmp(&self) {
        let Ok(entries) = fs::read_dir(&self.tmp) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_TMP_AGE);
            if old {
                let p = entry.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
    }
}
