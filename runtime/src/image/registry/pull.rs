//! `ImageStore::pull`: manifest (index → linux/amd64), config and layers into the content store,
//! every digest verified, then unpacked and recorded like an import.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use super::client::RegistryClient;
use super::{PullOptions, RegistryAuth};
use crate::image::error::ImageError;
use crate::image::manifest::{parse_document, select_platform, Descriptor, Document};
use crate::image::metadata::Image;
use crate::image::reference::normalize_reference;
use crate::image::store::ImageStore;

/// Layers downloaded at once (containerd's default `max_concurrent_downloads` is 3).
const CONCURRENT_DOWNLOADS: usize = 3;
/// Tries per blob when the connection fails (containerd's fetcher retries too).
const BLOB_ATTEMPTS: u32 = 3;
/// Wait before a retry, times the attempt number.
const BLOB_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

impl ImageStore {
    /// Pulls `reference` (normalised: `busybox` is `docker.io/library/busybox:latest`).
    pub async fn pull(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        opts: &PullOptions,
    ) -> Result<Image, ImageError> {
        let r = normalize_reference(reference)?;
        let started = std::time::Instant::now();
        let store = self.clone();
        let lease = tokio::task::spawn_blocking(move || store.lease())
            .await
            .map_err(|e| task_error("content lease", e))??;
        let client = RegistryClient::new(&r, auth, opts)?;
        let top = client.manifest(r.manifest_ref()).await?;
        self.blobs.put(&top.bytes, Some(&top.digest), "manifest")?;
        let what = format!("manifest of {r}");
        let (manifest_digest, manifest) =
            match parse_document(&top.bytes, top.media_type.as_deref(), &what)? {
                Document::Manifest(m) => (top.digest.clone(), m),
                Document::Index(index) => {
                    let desc =
                        select_platform(&index).ok_or_else(|| ImageError::NoMatchingPlatform {
                            reference: r.to_string(),
                        })?;
                    let fetched = client.manifest(&desc.digest).await?;
                    self.blobs
                        .put(&fetched.bytes, Some(&fetched.digest), "manifest")?;
                    let media_type = fetched
                        .media_type
                        .as_deref()
                        .or(Some(desc.media_type.as_str()));
                    match parse_document(&fetched.bytes, media_type, &what)? {
                        Document::Manifest(m) => (fetched.digest, m),
                        Document::Index(_) => {
                            return Err(ImageError::invalid(what, "index inside an index"))
                        }
                    }
                }
            };
        let wanted: Vec<&Descriptor> = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .collect();
        futures::stream::iter(wanted)
            .map(|d| self.fetch_blob(&client, d))
            .buffer_unordered(CONCURRENT_DOWNLOADS)
            .try_collect::<Vec<()>>()
            .await?;
        let tags = r.tagged().into_iter().collect();
        let digests = vec![r.with_digest(&top.digest)];
        let store = self.clone();
        let image = tokio::task::spawn_blocking(move || {
            let image = store.register(&manifest_digest, &manifest, tags, digests);
            drop(lease);
            image
        })
        .await
        .map_err(|e| task_error("unpack", e))??;
        tracing::info!(image = %image.id, reference = %r, elapsed = ?started.elapsed(), "pulled image");
        Ok(image)
    }

    /// Downloads one blob unless the store has it; one download per digest in this process.
    async fn fetch_blob(
        &self,
        client: &RegistryClient,
        desc: &Descriptor,
    ) -> Result<(), ImageError> {
        if self.blobs.contains(&desc.digest) {
            return Ok(());
        }
        let lock = {
            let mut map = self.downloads.lock().expect("download map lock");
            map.entry(desc.digest.clone()).or_default().clone()
        };
        let guard = lock.lock().await;
        let mut result = Ok(());
        for attempt in 1..=BLOB_ATTEMPTS {
            if self.blobs.contains(&desc.digest) {
                result = Ok(());
                break;
            }
            result = client.blob(&self.blobs, &desc.digest, desc.size).await;
            match &result {
                // A dropped connection mid-transfer is worth another try; a wrong digest is not.
                Err(e @ ImageError::RegistryUnreachable { .. }) if attempt < BLOB_ATTEMPTS => {
                    tracing::debug!(blob = desc.digest, attempt, error = %e, "retrying blob download");
                    tokio::time::sleep(BLOB_RETRY_DELAY * attempt).await;
                }
                _ => break,
            }
        }
        drop(guard);
        let mut map = self.downloads.lock().expect("download map lock");
        if Arc::strong_count(&lock) <= 2 {
            map.remove(&desc.digest);
        }
        result
    }
}

fn task_error(what: &str, e: tokio::task::JoinError) -> ImageError {
    ImageError::Task {
        what: what.into(),
        message: e.to_string(),
    }
}
