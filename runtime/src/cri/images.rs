//! The image store as the CRI server sees it: what it needs to resolve an image reference to a
//! stack of unpacked layers and the image's config defaults.

use std::path::PathBuf;

use super::CriError;
use crate::image::{Image, ImageError, ImageStore, PullOptions, RegistryAuth};

/// An image with what containers need from its config.
#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub size: u64,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

/// The operations the CRI ImageService and CreateContainer need.
pub trait Images: Send + Sync {
    /// The image a reference (name, name:tag, name@digest or image id) names, if present.
    fn resolve(&self, reference: &str) -> Result<Option<ImageInfo>, CriError>;
    fn list(&self) -> Result<Vec<ImageInfo>, CriError>;
    fn pull(&self, reference: &str, auth: Option<(String, String)>) -> Result<ImageInfo, CriError>;
    fn remove(&self, reference: &str) -> Result<(), CriError>;
    /// Unpacked layer directories, base layer first.
    fn layer_dirs(&self, image_id: &str) -> Result<Vec<PathBuf>, CriError>;
    /// Where the store keeps its files (ImageFsInfo).
    fn root(&self) -> PathBuf;
}

/// The image store under `<root>/images`, after importing every tarball in `--images-dir`
/// (as k3s does with its agent images directory for air-gapped nodes).
pub fn open_store(args: &super::Args) -> Result<Box<dyn Images>, CriError> {
    let store = ImageStore::open(&args.root.join("images")).map_err(image_error)?;
    if let Some(dir) = args.images_dir.as_deref().filter(|d| d.is_dir()) {
        let imported = store.import_dir(dir).map_err(image_error)?;
        tracing::info!(dir = %dir.display(), images = imported.len(), "imported image tarballs");
    }
    Ok(Box::new(StoreImages {
        store,
        opts: PullOptions {
            insecure_registries: args.insecure_registry.clone(),
        },
    }))
}

/// [`Images`] over the content store of [`crate::image`].
pub struct StoreImages {
    store: ImageStore,
    opts: PullOptions,
}

fn image_error(e: ImageError) -> CriError {
    match e {
        ImageError::NotFound { reference } => CriError::ImageNotFound(reference),
        e => CriError::Image(e.to_string()),
    }
}

fn info(image: &Image) -> ImageInfo {
    let config = image.config.config().clone().unwrap_or_default();
    ImageInfo {
        id: image.id.clone(),
        repo_tags: image.repo_tags.clone(),
        repo_digests: image.repo_digests.clone(),
        size: image.size,
        entrypoint: config.entrypoint().clone().unwrap_or_default(),
        cmd: config.cmd().clone().unwrap_or_default(),
        env: config.env().clone().unwrap_or_default(),
        working_dir: config.working_dir().clone().unwrap_or_default(),
        user: config.user().clone().unwrap_or_default(),
    }
}

impl Images for StoreImages {
    fn resolve(&self, reference: &str) -> Result<Option<ImageInfo>, CriError> {
        Ok(self.store.get(reference).as_ref().map(info))
    }

    fn list(&self) -> Result<Vec<ImageInfo>, CriError> {
        Ok(self.store.list().iter().map(info).collect())
    }

    fn pull(&self, reference: &str, auth: Option<(String, String)>) -> Result<ImageInfo, CriError> {
        let auth = auth.map(|(user, password)| RegistryAuth {
            username: Some(user),
            password: Some(password),
            registry_token: None,
        });
        // Called on a blocking-pool thread of the server's runtime.
        let image = tokio::runtime::Handle::current()
            .block_on(self.store.pull(reference, auth.as_ref(), &self.opts))
            .map_err(|e| match e {
                ImageError::NotFound { reference } => {
                    CriError::Image(format!("pull {reference}: not found in its registry"))
                }
                e => CriError::Image(format!("pull {reference}: {e}")),
            })?;
        Ok(info(&image))
    }

    fn remove(&self, reference: &str) -> Result<(), CriError> {
        self.store.remove(reference).map_err(image_error)
    }

    fn layer_dirs(&self, image_id: &str) -> Result<Vec<PathBuf>, CriError> {
        let image = self.store.resolve(image_id).map_err(image_error)?;
        self.store.layer_dirs(&image).map_err(image_error)
    }

    fn root(&self) -> PathBuf {
        self.store.root().to_path_buf()
    }
}
