//! Importing image tarballs, as `ctr images import` and k3s's air-gap images directory do:
//! an OCI layout (`index.json`, `blobs/sha256/…`; e.g. `skopeo copy … oci-archive:`), or a docker
//! archive (`manifest.json` with RepoTags; `docker save`). The tarball may itself be gzip- or
//! zstd-compressed. It is read in one pass: every file goes straight into the content store.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use super::digest::{sha256_digest, validate_digest};
use super::error::ImageError;
use super::manifest::{media, parse_document, select_platform, Descriptor, Document, Manifest};
use super::metadata::Image;
use super::reference::normalize_reference;
use super::store::ImageStore;
use super::unpack::decompress;

/// The largest index/manifest file read into memory.
const MAX_JSON: u64 = 16 << 20;
/// containerd's annotation with the full image name.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation: a tag, or (as skopeo writes) a full reference.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What one pass over the archive found.
#[derive(Default)]
struct Archive {
    index_json: Option<Vec<u8>>,
    manifest_json: Option<Vec<u8>>,
    /// Archive path → (digest, size) of the file's content, now in the store.
    files: HashMap<String, (String, u64)>,
    /// Archive path → target path, for symlinks (docker save links repeated layers).
    links: HashMap<String, String>,
}

impl ImageStore {
    /// Imports every image of an OCI-layout or docker-archive tarball.
    pub fn import(&self, tarball: &Path) -> Result<Vec<Image>, ImageError> {
        let images = {
            let _lease = self.lease()?;
            let archive = self.read_archive(tarball)?;
            if let Some(index) = &archive.index_json {
                self.import_oci_layout(tarball, index)?
            } else if let Some(manifest) = &archive.manifest_json {
                self.import_docker_archive(tarball, &archive, manifest)?
            } else {
                return Err(ImageError::UnknownArchive {
                    path: tarball.to_path_buf(),
                });
            }
        };
        // Blobs the archive held for other platforms are not kept.
        self.gc_if_idle()?;
        for image in &images {
            tracing::info!(image = %image.id, tags = ?image.repo_tags, archive = %tarball.display(), "imported image");
        }
        Ok(images)
    }

    /// Imports every `*.tar`, `*.tar.gz`, `*.tgz`, `*.tar.zst` in `dir` (k3s's
    /// `agent/images`); a broken tarball is logged and skipped so the others still load.
    pub fn import_dir(&self, dir: &Path) -> Result<Vec<Image>, ImageError> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(ImageError::io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd"]
                    .iter()
                    .any(|s| name.ends_with(s))
                    && p.is_file()
            })
            .collect();
        paths.sort();
        let mut out = Vec::new();
        for path in paths {
            match self.import(&path) {
                Ok(images) => out.extend(images),
                Err(e) => {
                    tracing::warn!(archive = %path.display(), error = %e, "cannot import image archive")
                }
            }
        }
        Ok(out)
    }

    fn read_archive(&self, tarball: &Path) -> Result<Archive, ImageError> {
        let file = File::open(tarball).map_err(ImageError::io(tarball))?;
        let reader = decompress(BufReader::new(file)).map_err(ImageError::io(tarball))?;
        let mut tar = tar::Archive::new(reader);
        let mut archive = Archive::default();
        for entry in tar.entries().map_err(ImageError::io(tarball))? {
            let mut entry = entry.map_err(ImageError::io(tarball))?;
            let raw = entry.path().map_err(ImageError::io(tarball))?.into_owned();
            let Some(name) = archive_path(&raw) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Ok(Some(target)) = entry.link_name() {
                        let base = if entry.header().entry_type() == tar::EntryType::Symlink {
                            raw.parent().unwrap_or(Path::new("")).join(target)
                        } else {
                            target.into_owned()
                        };
                        if let Some(t) = archive_path(&base) {
                            archive.links.insert(name, t);
                        }
                    }
                    continue;
                }
                _ => continue,
            }
            match name.as_str() {
                "index.json" | "manifest.json" => {
                    let mut buf = Vec::new();
                    (&mut entry)
                        .take(MAX_JSON)
                        .read_to_end(&mut buf)
                        .map_err(ImageError::io(tarball))?;
                    if name == "index.json" {
                        archive.index_json = Some(buf);
                    } else {
                        archive.manifest_json = Some(buf);
                    }
                }
                "oci-layout" | "repositories" => {}
                _ => {
                    // blobs/sha256/<hex> must hash to its name; other files get their digest computed.
                    let expected = name.strip_prefix("blobs/").map(|d| d.replacen('/', ":", 1));
                    let expected = expected.filter(|d| validate_digest(d).is_ok());
                    let what = format!("{name} in {}", tarball.display());
                    let stored = self.blobs.ingest(&mut entry, expected.as_deref(), &what)?;
                    archive.files.insert(name, stored);
                }
            }
        }
        Ok(archive)
    }

    fn import_oci_layout(&self, tarball: &Path, index: &[u8]) -> Result<Vec<Image>, ImageError> {
        let what = format!("index.json of {}", tarball.display());
        let Document::Index(index) = parse_document(index, Some(media::OCI_INDEX), &what)? else {
            return Err(ImageError::invalid(what, "not an image index"));
        };
        let mut images = Vec::new();
        for desc in &index.manifests {
            let names = descriptor_names(desc);
            let manifest_digest = desc.digest.clone();
            let Some((platform_digest, manifest)) = self.resolve_manifest(desc, tarball, 0)? else {
                tracing::info!(digest = manifest_digest, archive = %tarball.display(), "no linux/amd64 image, skipping");
                continue;
            };
            let digests = names
                .iter()
                .map(|n| normalize_reference(n).map(|r| r.with_digest(&manifest_digest)))
                .collect::<Result<Vec<_>, _>>()?;
            images.push(self.register(&platform_digest, &manifest, names, digests)?);
        }
        Ok(images)
    }

    /// Follows (nested) indexes to the linux/amd64 manifest; every document's digest is checked
    /// by the content store when it was ingested.
    fn resolve_manifest(
        &self,
        desc: &Descriptor,
        tarball: &Path,
        depth: u32,
    ) -> Result<Option<(String, Manifest)>, ImageError> {
        if depth > 4 {
            return Err(ImageError::invalid(
                format!("{}", tarball.display()),
                "indexes nested too deep",
            ));
        }
        let what = format!("{} in {}", desc.digest, tarball.display());
        let bytes = self
            .blobs
            .read(&desc.digest)
            .map_err(|_| missing_blob(&desc.digest, tarball))?;
        match parse_document(&bytes, Some(&desc.media_type), &what)? {
            Document::Manifest(m) => {
                for d in std::iter::once(&m.config).chain(&m.layers) {
                    if !self.blobs.contains(&d.digest) {
                        return Err(missing_blob(&d.digest, tarball));
                    }
                }
                Ok(Some((desc.digest.clone(), m)))
            }
            Document::Index(index) => match select_platform(&index) {
                Some(d) => self.resolve_manifest(d, tarball, depth + 1),
                None => Ok(None),
            },
        }
    }

    fn import_docker_archive(
        &self,
        tarball: &Path,
        archive: &Archive,
        manifest: &[u8],
    ) -> Result<Vec<Image>, ImageError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let entries: Vec<Entry> = serde_json::from_slice(manifest).map_err(|e| {
            ImageError::invalid(format!("manifest.json of {}", tarball.display()), e)
        })?;
        let mut images = Vec::new();
        for entry in entries {
            let (config_digest, config_size) = archive.file(&entry.config, tarball)?;
            let layers = entry
                .layers
                .iter()
                .map(|l| {
                    let (digest, size) = archive.file(l, tarball)?;
                    let media_type = self.layer_media_type(&digest)?;
                    Ok(Descriptor {
                        media_type: media_type.into(),
                        digest,
                        size,
                        platform: None,
                        annotations: None,
                    })
                })
                .collect::<Result<Vec<_>, ImageError>>()?;
            // docker save has no manifest blob; write the OCI manifest it stands for.
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(media::OCI_MANIFEST.into()),
                config: Descriptor {
                    media_type: media::OCI_CONFIG.into(),
                    digest: config_digest,
                    size: config_size,
                    platform: None,
                    annotations: None,
                },
                layers,
            };
            let bytes =
                serde_json::to_vec(&manifest).map_err(|e| ImageError::invalid("manifest", e))?;
            let digest = self
                .blobs
                .put(&bytes, Some(&sha256_digest(&bytes)), "manifest")?;
            let tags = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| normalize_reference(t).map(|r| r.to_string()))
                .collect::<Result<Vec<_>, _>>()?;
            images.push(self.register(&digest, &manifest, tags, Vec::new())?);
        }
        Ok(images)
    }

    /// Media type of a layer blob from its magic bytes (docker archives do not say).
    fn layer_media_type(&self, digest: &str) -> Result<&'static str, ImageError> {
        let path = self.blobs.path(digest)?;
        let mut head = [0u8; 4];
        let n = File::open(&path)
            .and_then(|mut f| f.read(&mut head))
            .map_err(ImageError::io(&path))?;
        Ok(match &head[..n] {
            [0x1f, 0x8b, ..] => media::OCI_LAYER_GZIP,
            [0x28, 0xb5, 0x2f, 0xfd] => media::OCI_LAYER_ZSTD,
            _ => media::OCI_LAYER_TAR,
        })
    }
}

impl Archive {
    fn file(&self, name: &str, tarball: &Path) -> Result<(String, u64), ImageError> {
        let mut name = archive_path(Path::new(name)).unwrap_or_default();
        for _ in 0..8 {
            if let Some(found) = self.files.get(&name) {
                return Ok(found.clone());
            }
            match self.links.get(&name) {
                Some(target) => name = target.clone(),
                None => break,
            }
        }
        Err(ImageError::invalid(
            format!("docker archive {}", tarball.display()),
            format!("{name} is missing"),
        ))
    }
}

/// A path inside the archive without `./`; `None` for the root or one that climbs out.
fn archive_path(p: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The normalised names an index entry gives its image: `io.containerd.image.name`, else
/// `org.opencontainers.image.ref.name` when it is a full reference (a bare tag names no repository).
fn descriptor_names(desc: &Descriptor) -> Vec<String> {
    let Some(ann) = &desc.annotations else {
        return Vec::new();
    };
    let name = ann.get(CONTAINERD_NAME).or_else(|| {
        ann.get(OCI_REF_NAME)
            .filter(|r| r.contains('/') || r.contains(':'))
    });
    name.and_then(|n| normalize_reference(n).ok())
        .and_then(|r| r.tagged())
        .into_iter()
        .collect()
}

fn missing_blob(digest: &str, tarball: &Path) -> ImageError {
    ImageError::invalid(
        format!("image archive {}", tarball.display()),
        format!("blob {digest} is missing"),
    )
}
