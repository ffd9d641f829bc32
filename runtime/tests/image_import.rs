//! Image store: tarball import (OCI layout, docker archive), layer unpacking, dedupe,
//! persistence and removal, against the real filesystem.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use minik8s_runtime::image::testimage::{self, Compression, LayerBuilder, TestImage};
use minik8s_runtime::image::{ImageError, ImageStore};

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn blobs(root: &Path) -> usize {
    count(&root.join("blobs/sha256"))
}

fn layers(root: &Path) -> usize {
    count(&root.join("layers/sha256"))
}

fn base_layer() -> testimage::Layer {
    LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/os-release", 0o644, b"ID=test\n")
        .finish(Compression::Gzip)
}

fn app_layer(name: &str) -> testimage::Layer {
    LayerBuilder::new()
        .dir("app", 0o755)
        .file(&format!("app/{name}"), 0o755, name.as_bytes())
        .finish(Compression::Gzip)
}

#[test]
fn store_is_send_sync_and_cheap_to_share() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<ImageStore>();
}

#[test]
fn busybox_oci_layout_imports_with_name_config_and_unpacked_rootfs() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let tar = tmp.path().join("busybox.tar");
    let built = testimage::build_busybox_oci_tar(&tar, "docker.io/library/busybox:latest")?;
    let store = ImageStore::open(&tmp.path().join("store"))?;
    let images = store.import(&tar)?;
    assert_eq!(images.len(), 1);
    let image = store
        .get("busybox")
        .expect("busybox resolves to docker.io/library/busybox:latest");
    assert_eq!(image.id, built.config_digest);
    assert_eq!(image.manifest_digest, built.manifest_digest);
    assert_eq!(image.repo_tags, vec!["docker.io/library/busybox:latest"]);
    assert_eq!(
        image.repo_digests,
        vec![format!(
            "docker.io/library/busybox@{}",
            built.manifest_digest
        )]
    );
    assert!(
        store.get(&image.repo_digests[0]).is_some(),
        "found by digest reference"
    );
    assert!(store.get(&image.id[7..19]).is_some(), "found by short id");
    assert_eq!(image.cmd(), vec!["sh"]);
    assert_eq!(image.uid_or_username(), (None, String::new()));
    assert!(image.entrypoint().is_empty() && image.user().is_none());
    assert!(image.env()[0].starts_with("PATH=/usr/local/sbin:"));
    assert!(
        image.size > 500_000,
        "size counts the compressed layer: {}",
        image.size
    );

    let dirs = store.layer_dirs(&image)?;
    assert_eq!(dirs.len(), 1);
    let usage = store.fs_usage()?;
    assert!(
        usage.bytes > fs::metadata("/bin/busybox")?.len() + image.size,
        "compressed blob + unpacked busybox: {usage:?}"
    );
    assert!(
        usage.inodes > 270,
        "one per applet link at least: {usage:?}"
    );
    let root = &dirs[0];
    let bb = fs::metadata(root.join("bin/busybox"))?;
    assert_eq!(bb.len(), fs::metadata("/bin/busybox")?.len());
    assert_eq!(bb.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read_link(root.join("bin/sh"))?,
        Path::new("/bin/busybox")
    );
    assert!(
        fs::read_to_string(root.join("etc/passwd"))?.starts_with("root:x:0:0:root:/root:/bin/sh\n")
    );
    let tmpdir = fs::metadata(root.join("tmp"))?;
    assert_eq!(
        tmpdir.permissions().mode() & 0o7777,
        0o1777,
        "sticky bit kept"
    );
    assert_eq!(
        tmpdir.mtime(),
        946_684_800,
        "directory mtime applied after its children"
    );
    Ok(())
}

#[test]
fn busybox_tarball_is_reproducible() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let a = testimage::build_busybox_oci_tar(&tmp.path().join("a.tar"), "busybox:latest")?;
    let b = testimage::build_busybox_oci_tar(&tmp.path().join("b.tar"), "busybox:latest")?;
    assert_eq!(a.manifest_digest, b.manifest_digest);
    assert_eq!(
        fs::read(tmp.path().join("a.tar"))?,
        fs::read(tmp.path().join("b.tar"))?
    );
    Ok(())
}

#[test]
fn docker_archive_imports_with_repo_tags() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut image = TestImage::new(vec![
        base_layer(),
        LayerBuilder::new()
            .file("hello", 0o644, b"hi")
            .finish(Compression::None),
    ]);
    image.entrypoint = vec!["/hello".into()];
    image.user = Some("1000:1000".into());
    let tar = tmp.path().join("docker.tar");
    let built = image.write_docker_archive(&tar, &["example.com/team/app:v1", "app:latest"])?;
    let store = ImageStore::open(&tmp.path().join("store"))?;
    let imported = store.import(&tar)?;
    assert_eq!(imported.len(), 1);
    let got = store
        .get("example.com/team/app:v1")
        .expect("tag from RepoTags");
    assert_eq!(got.id, built.config_digest);
    assert_eq!(
        got.repo_tags,
        vec!["example.com/team/app:v1", "docker.io/library/app:latest"]
    );
    assert!(
        got.repo_digests.is_empty(),
        "a docker archive carries no registry digest"
    );
    let dirs = store.layer_dirs(&got)?;
    assert_eq!(fs::read(dirs[1].join("hello"))?, b"hi");
    assert_eq!(fs::read(dirs[0].join("etc/os-release"))?, b"ID=test\n");
    Ok(())
}

#[test]
fn shared_layers_are_stored_and_unpacked_once() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root)?;
    for name in ["one", "two"] {
        let tar = tmp.path().join(format!("{name}.tar"));
        TestImage::new(vec![base_layer(), app_layer(name)])
            .write_oci_archive(&tar, &format!("test/{name}:1"))?;
        store.import(&tar)?;
    }
    assert_eq!(store.list().len(), 2);
    // 2 manifests + 2 configs + 1 shared base layer + 2 app layers.
    assert_eq!(blobs(&root), 7);
    assert_eq!(layers(&root), 3);
    let one = store.layer_dirs(&store.get("test/one:1").unwrap())?;
    let two = store.layer_dirs(&store.get("test/two:1").unwrap())?;
    assert_eq!(one[0], two[0], "base layer directory is shared");
    assert_ne!(one[1], two[1]);
    Ok(())
}

#[test]
fn reopened_store_lists_the_same_images() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("store");
    let tar = tmp.path().join("bb.tar");
    testimage::build_busybox_oci_tar(&tar, "docker.io/library/busybox:latest")?;
    let before = {
        let store = ImageStore::open(&root)?;
        store.import(&tar)?;
        store.list()
    };
    let store = ImageStore::open(&root)?;
    assert_eq!(store.list(), before);
    assert!(!store.layer_dirs(&before[0])?.is_empty());
    Ok(())
}

#[test]
fn another_writer_is_seen_without_reopening() -> anyhow::Result<()> {
    // The runtime keeps its store open while `minik8s images import` writes the same root.
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("store");
    let runtime = ImageStore::open(&root)?;
    assert!(runtime.list().is_empty());
    let tar = tmp.path().join("a.tar");
    TestImage::new(vec![app_layer("a")]).write_oci_archive(&tar, "test/a:1")?;
    ImageStore::open(&root)?.import(&tar)?;
    assert!(runtime.get("test/a:1").is_some());
    Ok(())
}

#[test]
fn remove_frees_only_unreferenced_content() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root)?;
    for name in ["one", "two"] {
        let tar = tmp.path().join(format!("{name}.tar"));
        TestImage::new(vec![base_layer(), app_layer(name)])
            .write_oci_archive(&tar, &format!("test/{name}:1"))?;
        store.import(&tar)?;
    }
    let one = store.get("test/one:1").unwrap();
    store.remove("docker.io/test/one:1")?;
    assert!(store.get("test/one:1").is_none());
    assert!(
        store.get(&one.id).is_none(),
        "last tag removed: the image is gone"
    );
    assert_eq!(
        blobs(&root),
        4,
        "manifest, config, shared base and app layer of two remain"
    );
    assert_eq!(layers(&root), 2);
    let two = store.get("test/two:1").unwrap();
    assert!(store.layer_dirs(&two).is_ok());
    store.remove(&two.id)?;
    assert!(store.list().is_empty());
    assert_eq!((blobs(&root), layers(&root)), (0, 0));
    let locks: Vec<_> = fs::read_dir(root.join("locks"))?
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        locks
            .iter()
            .all(|l| !l.to_string_lossy().starts_with("layer-")),
        "{locks:?}"
    );
    let err = store.remove("test/two:1").unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("test/two:1"));
    Ok(())
}

#[test]
fn removing_one_of_two_tags_keeps_the_image() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let tar = tmp.path().join("d.tar");
    TestImage::new(vec![app_layer("x")]).write_docker_archive(&tar, &["x:1", "x:2"])?;
    let store = ImageStore::open(&tmp.path().join("store"))?;
    store.import(&tar)?;
    store.remove("x:1")?;
    let image = store.get("x:2").expect("other tag remains");
    assert_eq!(image.repo_tags, vec!["docker.io/library/x:2"]);
    assert!(store.layer_dirs(&image).is_ok());
    Ok(())
}

#[test]
fn retagging_moves_the_tag_to_the_new_image() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root)?;
    for (i, name) in ["old", "new"].iter().enumerate() {
        let tar = tmp.path().join(format!("{i}.tar"));
        TestImage::new(vec![app_layer(name)]).write_docker_archive(&tar, &["app:latest"])?;
        store.import(&tar)?;
    }
    let images = store.list();
    assert_eq!(
        images.len(),
        1,
        "the untagged old image is dropped: {images:?}"
    );
    assert!(fs::read(store.layer_dirs(&images[0])?[0].join("app/new")).is_ok());
    assert_eq!(layers(&root), 1, "the old image's layer was collected");
    Ok(())
}

#[test]
fn concurrent_imports_of_one_image_agree() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("store");
    let tar = tmp.path().join("bb.tar");
    testimage::build_busybox_oci_tar(&tar, "docker.io/library/busybox:latest")?;
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (root, tar) = (root.clone(), tar.clone());
            std::thread::spawn(move || ImageStore::open(&root).and_then(|s| s.import(&tar)))
        })
        .collect();
    for h in handles {
        h.join().expect("import thread")?;
    }
    let store = ImageStore::open(&root)?;
    assert_eq!(store.list().len(), 1);
    assert_eq!((blobs(&root), layers(&root)), (3, 1));
    assert_eq!(count(&root.join("tmp")), 0, "no partial writes left behind");
    let dirs = store.layer_dirs(&store.get("busybox").unwrap())?;
    assert!(dirs[0].join("bin/busybox").is_file());
    Ok(())
}

#[test]
fn images_dir_imports_compressed_tarballs_and_skips_broken_ones() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("images");
    fs::create_dir(&dir)?;
    let plain = tmp.path().join("a.tar");
    TestImage::new(vec![app_layer("a")]).write_oci_archive(&plain, "test/a:1")?;
    let gz = fs::File::create(dir.join("a.tar.gz"))?;
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
    std::io::copy(&mut fs::File::open(&plain)?, &mut enc)?;
    enc.finish()?;
    let zst = tmp.path().join("b.tar");
    TestImage::new(vec![app_layer("b")]).write_docker_archive(&zst, &["test/b:1"])?;
    fs::write(
        dir.join("b.tar.zst"),
        zstd::encode_all(fs::File::open(&zst)?, 3)?,
    )?;
    fs::write(dir.join("broken.tar"), b"not a tarball")?;
    fs::write(dir.join("notes.txt"), b"ignored")?;
    let store = ImageStore::open(&tmp.path().join("store"))?;
    let images = store.import_dir(&dir)?;
    assert_eq!(images.len(), 2);
    assert!(store.get("test/a:1").is_some() && store.get("test/b:1").is_some());
    Ok(())
}

#[test]
fn unknown_archive_and_missing_blobs_are_clear_errors() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let store = ImageStore::open(&tmp.path().join("store"))?;
    let empty = tmp.path().join("empty.tar");
    tar::Builder::new(fs::File::create(&empty)?).into_inner()?;
    let err = store.import(&empty).unwrap_err();
    assert!(matches!(err, ImageError::UnknownArchive { .. }), "{err}");
    let missing = tmp.path().join("nope.tar");
    assert!(store
        .import(&missing)
        .unwrap_err()
        .to_string()
        .contains("nope.tar"));
    Ok(())
}
