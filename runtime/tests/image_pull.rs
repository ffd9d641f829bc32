//! Registry pull against a real `docker-registry` on 127.0.0.1, images pushed with skopeo.

use std::fs;
use std::future::Future;
use std::time::Duration;

use minik8s_runtime::image::test_registry::TestRegistry;
use minik8s_runtime::image::testimage::{self, Compression, LayerBuilder, TestImage};
use minik8s_runtime::image::{ImageError, ImageStore, PullOptions};

/// A pull of these small images takes well under a second; longer means the client hangs.
const PULL_TIMEOUT: Duration = Duration::from_secs(60);

async fn timed<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PULL_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {PULL_TIMEOUT:?}: registry client stuck"))
}

fn insecure(registry: &TestRegistry) -> PullOptions {
    PullOptions {
        insecure_registries: vec![registry.addr.clone()],
    }
}

#[tokio::test]
async fn pull_busybox_from_docker_registry() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let tar = tmp.path().join("bb.tar");
    let built = testimage::build_busybox_oci_tar(&tar, "docker.io/library/busybox:latest")?;
    let registry = TestRegistry::start()?;
    registry.push(&tar, "test/busybox:1", &[])?;
    let store = ImageStore::open(&tmp.path().join("store"))?;
    let reference = format!("{}/test/busybox:1", registry.addr);
    let image = timed("pull", store.pull(&reference, None, &insecure(&registry))).await?;
    assert_eq!(image.id, built.config_digest);
    assert_eq!(image.repo_tags, vec![reference.clone()]);
    assert_eq!(
        image.repo_digests,
        vec![format!(
            "{}/test/busybox@{}",
            registry.addr, built.manifest_digest
        )]
    );
    let dirs = store.layer_dirs(&image)?;
    assert!(dirs[0].join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(dirs[0].join("bin/ls"))?.to_str(),
        Some("/bin/busybox")
    );
    assert!(store.get(&image.repo_digests[0]).is_some());

    // Pulling again is a no-op that finds everything in place; concurrent pulls agree.
    let opts = insecure(&registry);
    let (a, b) = timed("concurrent pulls", async {
        tokio::join!(
            store.pull(&reference, None, &opts),
            store.pull(&reference, None, &opts)
        )
    })
    .await;
    assert_eq!(a?.id, image.id);
    assert_eq!(b?.id, image.id);
    assert_eq!(store.list().len(), 1);
    Ok(())
}

#[tokio::test]
async fn missing_tag_unreachable_registry_and_plain_http_are_clear_errors() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let tar = tmp.path().join("a.tar");
    TestImage::new(vec![LayerBuilder::new()
        .file("a", 0o644, b"a")
        .finish(Compression::Gzip)])
    .write_oci_archive(&tar, "a:1")?;
    let registry = TestRegistry::start()?;
    registry.push(&tar, "test/a:1", &[])?;
    let store = ImageStore::open(&tmp.path().join("store"))?;

    let missing = format!("{}/test/a:2", registry.addr);
    let err = timed(
        "pull of a missing tag",
        store.pull(&missing, None, &insecure(&registry)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains(&missing), "{err}");
    let missing_repo = format!("{}/test/nothing:1", registry.addr);
    let err = timed(
        "pull of a missing repo",
        store.pull(&missing_repo, None, &insecure(&registry)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");

    // Without --insecure-registry the client speaks TLS to a plain-HTTP registry and fails.
    let https = timed(
        "pull over https",
        store.pull(
            &format!("{}/test/a:1", registry.addr),
            None,
            &PullOptions::default(),
        ),
    )
    .await
    .unwrap_err();
    assert!(https.to_string().contains(&registry.addr), "{https}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string();
    let opts = PullOptions {
        insecure_registries: vec![closed.clone()],
    };
    let err = timed(
        "pull from a closed port",
        store.pull(&format!("{closed}/x:1"), None, &opts),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ImageError::RegistryUnreachable { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("registry {closed} unreachable")),
        "{err}"
    );
    assert!(store.list().is_empty());
    Ok(())
}

#[tokio::test]
async fn zstd_layers_pushed_by_skopeo_pull_and_share_the_unpacked_layer() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let tar = tmp.path().join("bb.tar");
    testimage::build_busybox_oci_tar(&tar, "docker.io/library/busybox:latest")?;
    let registry = TestRegistry::start()?;
    // A fresh registry, so skopeo cannot reuse the gzip blob instead of recompressing.
    registry.push(
        &tar,
        "test/busybox:zstd",
        &["--dest-compress", "--dest-compress-format", "zstd"],
    )?;
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root)?;
    let gz = store.import(&tar)?.remove(0);
    let reference = format!("{}/test/busybox:zstd", registry.addr);
    let zst = timed(
        "zstd pull",
        store.pull(&reference, None, &insecure(&registry)),
    )
    .await?;
    assert_ne!(
        gz.layers[0].digest, zst.layers[0].digest,
        "different compressed blobs"
    );
    let blob = fs::read(root.join("blobs/sha256").join(&zst.layers[0].digest[7..]))?;
    assert_eq!(
        &blob[..4],
        &[0x28, 0xb5, 0x2f, 0xfd],
        "skopeo pushed a zstd layer"
    );
    assert_eq!(gz.layers[0].diff_id, zst.layers[0].diff_id);
    assert_eq!(
        store.layer_dirs(&gz)?,
        store.layer_dirs(&zst)?,
        "one unpacked directory for both"
    );
    assert_eq!(fs::read_dir(root.join("layers/sha256"))?.count(), 1);
    assert!(store.layer_dirs(&zst)?[0].join("bin/busybox").is_file());
    Ok(())
}

#[tokio::test]
async fn multi_platform_index_resolves_to_linux_amd64() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let amd64 = TestImage::new(vec![LayerBuilder::new()
        .file("arch", 0o644, b"amd64")
        .finish(Compression::Gzip)]);
    let mut arm64 = TestImage::new(vec![LayerBuilder::new()
        .file("arch", 0o644, b"arm64")
        .finish(Compression::Gzip)]);
    arm64.architecture = "arm64".into();
    let tar = tmp.path().join("multi.tar");
    let index_digest =
        testimage::write_multiarch_oci_archive(&tar, "multi:1", &[arm64, amd64.clone()])?;
    let registry = TestRegistry::start()?;
    registry.push(&tar, "test/multi:1", &["--all"])?;
    let store = ImageStore::open(&tmp.path().join("store"))?;
    let image = timed(
        "index pull",
        store.pull(
            &format!("{}/test/multi:1", registry.addr),
            None,
            &insecure(&registry),
        ),
    )
    .await?;
    assert_eq!(
        fs::read(store.layer_dirs(&image)?[0].join("arch"))?,
        b"amd64"
    );
    assert_eq!(
        image.manifest_digest,
        testimage::sha256_of(&amd64.manifest_json())
    );
    assert_eq!(
        image.repo_digests,
        vec![format!("{}/test/multi@{index_digest}", registry.addr)]
    );
    // By digest: the index digest pins the same image.
    let by_digest = format!("{}/test/multi@{index_digest}", registry.addr);
    let again = timed(
        "pull by digest",
        store.pull(&by_digest, None, &insecure(&registry)),
    )
    .await?;
    assert_eq!(again.id, image.id);
    // The same archive imports to the same image.
    let imported = ImageStore::open(&tmp.path().join("store2"))?.import(&tar)?;
    assert_eq!(imported[0].id, image.id);
    Ok(())
}

#[tokio::test]
async fn docker_schema2_images_pull() -> anyhow::Result<()> {
    // Docker Hub mostly serves Docker media types (manifest v2 schema 2, rootfs.diff layers).
    let tmp = tempfile::tempdir()?;
    let tar = tmp.path().join("bb.tar");
    let built = testimage::build_busybox_oci_tar(&tar, "busybox:latest")?;
    let registry = TestRegistry::start()?;
    registry.push(&tar, "test/docker:1", &["--format", "v2s2"])?;
    let store = ImageStore::open(&tmp.path().join("store"))?;
    let reference = format!("{}/test/docker:1", registry.addr);
    let image = timed(
        "schema2 pull",
        store.pull(&reference, None, &insecure(&registry)),
    )
    .await?;
    assert_eq!(
        image.id, built.config_digest,
        "skopeo keeps the config bytes"
    );
    assert_ne!(
        image.manifest_digest, built.manifest_digest,
        "a converted (Docker) manifest"
    );
    let manifest = fs::read_to_string(
        tmp.path()
            .join("store/blobs/sha256")
            .join(&image.manifest_digest[7..]),
    )?;
    assert!(
        manifest.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{manifest}"
    );
    assert!(store.layer_dirs(&image)?[0].join("bin/busybox").is_file());
    Ok(())
}

#[test]
fn archives_written_by_skopeo_import() -> anyhow::Result<()> {
    // Real tools' archives, not only our builder's: skopeo's docker-archive (as `docker save`)
    // and oci-archive with a full reference in org.opencontainers.image.ref.name.
    let tmp = tempfile::tempdir()?;
    let tar = tmp.path().join("bb.tar");
    let built = testimage::build_busybox_oci_tar(&tar, "busybox:latest")?;
    let docker = tmp.path().join("docker.tar");
    let oci = tmp.path().join("oci.tar");
    for (dest, what) in [
        (
            format!(
                "docker-archive:{}:example.org/tools/bb:v1",
                docker.display()
            ),
            "docker-archive",
        ),
        (
            format!("oci-archive:{}:example.org/tools/bb:v2", oci.display()),
            "oci-archive",
        ),
    ] {
        let out = std::process::Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet"])
            .arg(format!("oci-archive:{}", tar.display()))
            .arg(dest)
            .env("TMPDIR", tmp.path())
            .output()?;
        assert!(
            out.status.success(),
            "skopeo {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let store = ImageStore::open(&tmp.path().join("store"))?;
    store.import(&docker)?;
    store.import(&oci)?;
    let image = store
        .get("example.org/tools/bb:v1")
        .expect("docker-archive tag");
    assert_eq!(image.id, built.config_digest);
    let again = store
        .get("example.org/tools/bb:v2")
        .expect("oci-archive ref.name");
    assert_eq!(again.id, image.id);
    assert_eq!(store.list().len(), 1, "one image with both tags");
    assert!(store.layer_dirs(&again)?[0].join("bin/busybox").is_file());
    Ok(())
}
