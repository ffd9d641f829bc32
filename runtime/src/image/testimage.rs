//! Reproducible test images: layers built entry by entry, packed as an OCI-layout tarball
//! (what `skopeo copy … oci-archive:` and `ctr images import` read) or as a docker archive
//! (what `docker save` writes). [`build_busybox_oci_tar`] makes the busybox image that the
//! runtime, node agent and end-to-end tests and the demo run; every entry has uid/gid 0 and a
//! fixed mtime and entries are sorted, so the same busybox binary gives the same digests.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::process::Command;

use serde_json::json;

use super::digest::sha256_digest;
use super::manifest::media;

/// The fixed mtime of every entry (2000-01-01T00:00:00Z; some tools treat 0 as "unset").
const FIXED_MTIME: u64 = 946_684_800;
/// Where the busybox-static package installs the binary.
const HOST_BUSYBOX: &str = "/bin/busybox";

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A finished layer: the blob as stored in a registry and the digest of its uncompressed tar.
#[derive(Debug, Clone)]
pub struct Layer {
    pub blob: Vec<u8>,
    pub diff_id: String,
    pub media_type: &'static str,
}

impl Layer {
    pub fn digest(&self) -> String {
        sha256_digest(&self.blob)
    }
}

/// Builds one layer tar; paths are relative (`etc/passwd`).
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    pub fn new() -> Self {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        LayerBuilder { tar }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(FIXED_MTIME);
        h
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        let path = format!("{}/", path.trim_end_matches('/'));
        self.tar
            .append_data(&mut h, path, io::empty())
            .expect("tar in memory");
        self
    }

    pub fn file(mut self, path: &str, mode: u32, data: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.tar
            .append_data(&mut h, path, data)
            .expect("tar in memory");
        self
    }

    /// A file owned by `uid:gid`, to check ownership survives unpacking.
    pub fn file_owned(mut self, path: &str, mode: u32, uid: u64, gid: u64, data: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.tar
            .append_data(&mut h, path, data)
            .expect("tar in memory");
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.tar
            .append_link(&mut h, path, target)
            .expect("tar in memory");
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.tar
            .append_link(&mut h, path, target)
            .expect("tar in memory");
        self
    }

    /// An AUFS/OCI whiteout: `path` is deleted from the layers below.
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, 0o644, b"")
    }

    /// An opaque-directory marker: `dir`'s contents from lower layers are hidden.
    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), 0o644, b"")
    }

    /// A character device entry (the unpacker must skip it, not create it).
    pub fn char_device(mut self, path: &str, major: u32, minor: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Char, 0o666, 0);
        h.set_device_major(major).expect("ustar");
        h.set_device_minor(minor).expect("ustar");
        self.tar
            .append_data(&mut h, path, io::empty())
            .expect("tar in memory");
        self
    }

    /// Any raw entry, e.g. one whose path tries to escape (`../x`).
    pub fn raw(mut self, header: tar::Header, data: &[u8]) -> Self {
        self.tar.append(&header, data).expect("tar in memory");
        self
    }

    pub fn finish(self, compression: Compression) -> Layer {
        let tar = self.tar.into_inner().expect("tar in memory");
        let diff_id = sha256_digest(&tar);
        let (blob, media_type) = match compression {
            Compression::None => (tar, media::OCI_LAYER_TAR),
            Compression::Gzip => (gzip(&tar), media::OCI_LAYER_GZIP),
            Compression::Zstd => (
                zstd::encode_all(&tar[..], 3).expect("zstd in memory"),
                media::OCI_LAYER_ZSTD,
            ),
        };
        Layer {
            blob,
            diff_id,
            media_type,
        }
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    // GzBuilder writes mtime 0 and no file name: the output depends on the input only.
    let mut enc = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

/// An image: layers (lowest first) and the parts of its config the runtime uses.
#[derive(Debug, Clone)]
pub struct TestImage {
    pub layers: Vec<Layer>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `amd64` unless a test wants an image for another platform.
    pub architecture: String,
}

/// Digests of a written image.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub manifest_digest: String,
    pub config_digest: String,
}

impl TestImage {
    pub fn new(layers: Vec<Layer>) -> Self {
        TestImage {
            layers,
            cmd: vec!["sh".into()],
            entrypoint: Vec::new(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            working_dir: None,
            user: None,
            labels: BTreeMap::new(),
            architecture: "amd64".into(),
        }
    }

    pub fn config_json(&self) -> Vec<u8> {
        let mut config = json!({ "Env": self.env, "Cmd": self.cmd });
        if !self.entrypoint.is_empty() {
            config["Entrypoint"] = json!(self.entrypoint);
        }
        if let Some(user) = &self.user {
            config["User"] = json!(user);
        }
        if let Some(wd) = &self.working_dir {
            config["WorkingDir"] = json!(wd);
        }
        if !self.labels.is_empty() {
            config["Labels"] = json!(self.labels);
        }
        let diff_ids: Vec<_> = self.layers.iter().map(|l| l.diff_id.clone()).collect();
        let doc = json!({
            "architecture": self.architecture,
            "os": "linux",
            "created": "2000-01-01T00:00:00Z",
            "config": config,
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        serde_json::to_vec(&doc).expect("json")
    }

    pub fn manifest_json(&self) -> Vec<u8> {
        let config = self.config_json();
        let layers: Vec<_> = self
            .layers
            .iter()
            .map(|l| json!({ "mediaType": l.media_type, "digest": l.digest(), "size": l.blob.len() }))
            .collect();
        let doc = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": { "mediaType": media::OCI_CONFIG, "digest": sha256_digest(&config), "size": config.len() },
            "layers": layers,
        });
        serde_json::to_vec(&doc).expect("json")
    }

    /// Writes an OCI-layout tarball; `name` (e.g. `docker.io/library/busybox:latest`) goes in
    /// `io.containerd.image.name`, its tag in `org.opencontainers.image.ref.name`.
    pub fn write_oci_archive(&self, out: &Path, name: &str) -> io::Result<BuiltImage> {
        let config = self.config_json();
        let manifest = self.manifest_json();
        let tag = name
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map_or("latest", |(_, t)| t);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": [{
                "mediaType": media::OCI_MANIFEST,
                "digest": sha256_digest(&manifest),
                "size": manifest.len(),
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": tag,
                },
                "platform": { "architecture": "amd64", "os": "linux" },
            }],
        });
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        files.insert(
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        );
        files.insert(
            "index.json".into(),
            serde_json::to_vec(&index).expect("json"),
        );
        for blob in [&config, &manifest]
            .into_iter()
            .chain(self.layers.iter().map(|l| &l.blob))
        {
            let hex = sha256_digest(blob)[7..].to_string();
            files.insert(format!("blobs/sha256/{hex}"), blob.clone());
        }
        write_archive(out, &["blobs/", "blobs/sha256/"], &files)?;
        Ok(BuiltImage {
            manifest_digest: sha256_digest(&manifest),
            config_digest: sha256_digest(&config),
        })
    }

    /// Writes a docker archive as classic `docker save` does: `manifest.json` with RepoTags,
    /// `<config hex>.json`, and `<n>/layer.tar` per layer.
    pub fn write_docker_archive(&self, out: &Path, repo_tags: &[&str]) -> io::Result<BuiltImage> {
        let config = self.config_json();
        let config_name = format!("{}.json", &sha256_digest(&config)[7..]);
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut layer_names = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let name = format!("layer{i}/layer.tar");
            files.insert(name.clone(), layer.blob.clone());
            layer_names.push(name);
        }
        let manifest =
            json!([{ "Config": config_name, "RepoTags": repo_tags, "Layers": layer_names }]);
        files.insert(
            "manifest.json".into(),
            serde_json::to_vec(&manifest).expect("json"),
        );
        files.insert(config_name, config.clone());
        write_archive(out, &[], &files)?;
        Ok(BuiltImage {
            manifest_digest: sha256_digest(&self.manifest_json()),
            config_digest: sha256_digest(&config),
        })
    }
}

/// Writes an OCI-layout tarball whose `index.json` names one image index (a multi-platform image)
/// over `images`; returns the index digest.
pub fn write_multiarch_oci_archive(
    out: &Path,
    name: &str,
    images: &[TestImage],
) -> io::Result<String> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut manifests = Vec::new();
    for image in images {
        let config = image.config_json();
        let manifest = image.manifest_json();
        manifests.push(json!({
            "mediaType": media::OCI_MANIFEST,
            "digest": sha256_digest(&manifest),
            "size": manifest.len(),
            "platform": { "architecture": image.architecture, "os": "linux" },
        }));
        for blob in [config, manifest]
            .into_iter()
            .chain(image.layers.iter().map(|l| l.blob.clone()))
        {
            files.insert(format!("blobs/sha256/{}", &sha256_digest(&blob)[7..]), blob);
        }
    }
    let image_index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests,
    }))
    .expect("json");
    let index_digest = sha256_digest(&image_index);
    files.insert(
        format!("blobs/sha256/{}", &index_digest[7..]),
        image_index.clone(),
    );
    let layout_index = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [{
            "mediaType": media::OCI_INDEX,
            "digest": index_digest,
            "size": image_index.len(),
            "annotations": { "io.containerd.image.name": name },
        }],
    });
    files.insert(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    files.insert(
        "index.json".into(),
        serde_json::to_vec(&layout_index).expect("json"),
    );
    write_archive(out, &["blobs/", "blobs/sha256/"], &files)?;
    Ok(index_digest)
}

fn write_archive(out: &Path, dirs: &[&str], files: &BTreeMap<String, Vec<u8>>) -> io::Result<()> {
    let mut tar = tar::Builder::new(io::BufWriter::new(File::create(out)?));
    for dir in dirs {
        let mut h = LayerBuilder::header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, dir, io::empty())?;
    }
    for (name, data) in files {
        let mut h = LayerBuilder::header(tar::EntryType::Regular, 0o644, data.len() as u64);
        tar.append_data(&mut h, name, &data[..])?;
    }
    tar.into_inner()?.flush()
}

/// The busybox root filesystem as one layer: `/bin/busybox` from the host's busybox-static,
/// one symlink per applet (`busybox --list-full`), `/etc/passwd` and `/etc/group` with root and
/// nobody, and the usual top-level directories.
pub fn busybox_layer(compression: Compression) -> io::Result<Layer> {
    let binary = std::fs::read(HOST_BUSYBOX)?;
    let list = Command::new(HOST_BUSYBOX).arg("--list-full").output()?;
    if !list.status.success() {
        return Err(io::Error::other(format!(
            "{HOST_BUSYBOX} --list-full failed"
        )));
    }
    let mut applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != "bin/busybox")
        .collect();
    applets.sort();
    applets.dedup();
    let dirs = [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sbin", 0o755),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("var", 0o755),
    ];
    let mut entries: BTreeMap<String, Box<dyn Fn(LayerBuilder) -> LayerBuilder>> = BTreeMap::new();
    for (dir, mode) in dirs {
        entries.insert(
            dir.to_string(),
            Box::new(move |b: LayerBuilder| b.dir(dir, mode)),
        );
    }
    entries.insert(
        "bin/busybox".into(),
        Box::new(move |b: LayerBuilder| b.file("bin/busybox", 0o755, &binary)),
    );
    entries.insert(
        "etc/passwd".into(),
        Box::new(|b: LayerBuilder| {
            b.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
        }),
    );
    entries.insert(
        "etc/group".into(),
        Box::new(|b: LayerBuilder| b.file("etc/group", 0o644, b"root:x:0:\nnobody:x:65534:\n")),
    );
    for applet in applets {
        if entries.contains_key(&applet) {
            continue;
        }
        let path = applet.clone();
        entries.insert(
            applet,
            Box::new(move |b: LayerBuilder| b.symlink(&path, "/bin/busybox")),
        );
    }
    // BTreeMap order: parents ("usr") sort before their children ("usr/bin/[").
    let builder = entries
        .into_values()
        .fold(LayerBuilder::new(), |b, add| add(b));
    Ok(builder.finish(compression))
}

/// The busybox image (one gzip layer, Cmd `["sh"]`).
pub fn busybox_image() -> io::Result<TestImage> {
    Ok(TestImage::new(vec![busybox_layer(Compression::Gzip)?]))
}

/// Writes the busybox image as an OCI-layout tarball named `name`
/// (e.g. `docker.io/library/busybox:latest`); importable by `minik8s images import`,
/// `ctr images import` and `skopeo copy oci-archive:OUT docker://…`.
pub fn build_busybox_oci_tar(out: &Path, name: &str) -> io::Result<BuiltImage> {
    busybox_image()?.write_oci_archive(out, name)
}

/// `sha256:<hex>` of `data` (for tests comparing digests).
pub fn sha256_of(data: &[u8]) -> String {
    sha256_digest(data)
}
