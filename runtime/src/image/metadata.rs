//! The persisted image records (`images.json`), written atomically.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use super::error::ImageError;

/// An image in the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Image {
    /// `sha256:<config digest>`, as `docker images --no-trunc` and CRI show it.
    pub id: String,
    /// Normalised `domain/path:tag` names.
    pub repo_tags: Vec<String>,
    /// `domain/path@sha256:<manifest or index digest>` names.
    pub repo_digests: Vec<String>,
    /// Compressed layers plus config, in bytes (what a pull transfers).
    pub size: u64,
    /// The platform manifest the layers come from.
    pub manifest_digest: String,
    /// Layers, lowest first.
    pub layers: Vec<ImageLayer>,
    /// The image config: entrypoint, cmd, env, working dir, user, ports, labels.
    pub config: ImageConfiguration,
}

impl Image {
    /// The image config's `config` section (entrypoint, cmd, env, user, …), when present.
    pub fn runtime_config(&self) -> Option<&oci_spec::image::Config> {
        self.config.config().as_ref()
    }

    pub fn entrypoint(&self) -> Vec<String> {
        self.runtime_config()
            .and_then(|c| c.entrypoint().clone())
            .unwrap_or_default()
    }

    pub fn cmd(&self) -> Vec<String> {
        self.runtime_config()
            .and_then(|c| c.cmd().clone())
            .unwrap_or_default()
    }

    /// `KEY=value` entries.
    pub fn env(&self) -> Vec<String> {
        self.runtime_config()
            .and_then(|c| c.env().clone())
            .unwrap_or_default()
    }

    pub fn working_dir(&self) -> Option<String> {
        self.runtime_config()
            .and_then(|c| c.working_dir().clone())
            .filter(|w| !w.is_empty())
    }

    /// `user`, `uid`, `user:group` or `uid:gid`, as the image says (CRI ImageStatus splits it).
    pub fn user(&self) -> Option<String> {
        self.runtime_config()
            .and_then(|c| c.user().clone())
            .filter(|u| !u.is_empty())
    }

    /// CRI `Image.uid` / `Image.username` from the config's `User` (`name`, `uid`, `x:group`):
    /// a numeric user is a uid, anything else a name, as the kubelet's runAsNonRoot check expects.
    pub fn uid_or_username(&self) -> (Option<i64>, String) {
        let user = self.user().unwrap_or_default();
        let name = user.split(':').next().unwrap_or_default();
        match name.parse::<i64>() {
            Ok(uid) => (Some(uid), String::new()),
            Err(_) => (None, name.to_string()),
        }
    }

    /// The diff_ids, lowest layer first.
    pub fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageLayer {
    /// Digest of the blob as stored (compressed).
    pub digest: String,
    pub size: u64,
    /// Digest of the uncompressed tar; names the unpacked directory.
    pub diff_id: String,
}

#[derive(Serialize, Deserialize)]
struct MetadataFile {
    version: u32,
    images: Vec<Image>,
}

const VERSION: u32 = 1;

pub fn read(path: &Path) -> Result<Vec<Image>, ImageError> {
    match fs::read(path) {
        Ok(bytes) => {
            let file: MetadataFile =
                serde_json::from_slice(&bytes).map_err(|source| ImageError::CorruptMetadata {
                    path: path.to_path_buf(),
                    source,
                })?;
            Ok(file.images)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ImageError::io(path)(e)),
    }
}

/// temp file in `tmp` + fsync + rename over `path`.
pub fn write(path: &Path, tmp: &Path, images: &[Image]) -> Result<(), ImageError> {
    let doc = MetadataFile {
        version: VERSION,
        images: images.to_vec(),
    };
    let bytes = serde_json::to_vec(&doc).map_err(|e| ImageError::invalid("image metadata", e))?;
    let mut file = tempfile::Builder::new()
        .prefix("images-")
        .tempfile_in(tmp)
        .map_err(ImageError::io(tmp))?;
    file.write_all(&bytes)
        .map_err(ImageError::io(file.path()))?;
    file.as_file()
        .sync_all()
        .map_err(ImageError::io(file.path()))?;
    file.persist(path)
        .map_err(|e| ImageError::io(path)(e.error))?;
    Ok(())
}

/// Adds `image` or merges it into the record with its id; its names are taken off other images,
/// and images left with no name are dropped. Returns whether any image was dropped.
pub fn upsert(images: &mut Vec<Image>, image: Image) -> bool {
    let named = |i: &Image| !i.repo_tags.is_empty() || !i.repo_digests.is_empty();
    let mut lost_names = Vec::new();
    for other in images.iter_mut().filter(|i| i.id != image.id) {
        let had = named(other);
        other.repo_tags.retain(|t| !image.repo_tags.contains(t));
        other
            .repo_digests
            .retain(|d| !image.repo_digests.contains(d));
        // An image whose last tag moved away stays while a digest names it, as in containerd.
        if had && !named(other) {
            lost_names.push(other.id.clone());
        }
    }
    images.retain(|i| !lost_names.contains(&i.id));
    match images.iter_mut().find(|i| i.id == image.id) {
        Some(existing) => {
            for t in image.repo_tags {
                if !existing.repo_tags.contains(&t) {
                    existing.repo_tags.push(t);
                }
            }
            for d in image.repo_digests {
                if !existing.repo_digests.contains(&d) {
                    existing.repo_digests.push(d);
                }
            }
            existing.manifest_digest = image.manifest_digest;
            existing.layers = image.layers;
            existing.size = image.size;
            existing.config = image.config;
        }
        None => images.push(image),
    }
    !lost_names.is_empty()
}
