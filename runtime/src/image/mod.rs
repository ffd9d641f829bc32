//! Images: the content store, layer unpacking, tarball import and registry pull behind the CRI
//! ImageService (issue 5).
//!
//! - [`ImageStore`] (`store`): blobs keyed by digest, layers unpacked once into one directory per
//!   diff_id (overlayfs lowerdirs), image records in `images.json`; see its module for the layout.
//! - `import`: OCI-layout and docker-archive tarballs, as `ctr images import` / k3s air-gap.
//! - `registry`: OCI distribution v2 pull with Docker Hub style bearer-token auth.
//! - `unpack`: tar → directory with OCI whiteouts converted to overlayfs ones.
//! - [`testimage`]: reproducible test images (busybox from the host's busybox-static);
//!   [`test_registry`]: a real `docker-registry` on 127.0.0.1 for pull tests.
//!
//! For the CRI ImageService: `PullImage` → [`ImageStore::pull`], `ImageStatus`/`ListImages` →
//! [`ImageStore::get`]/[`ImageStore::list`] (id, repo tags, repo digests, size, [`Image::user`]),
//! `RemoveImage` → [`ImageStore::remove`]. A container's rootfs is an overlay whose lowerdirs are
//! [`ImageStore::layer_dirs`] reversed (overlayfs lists the top layer first). `import`, `remove`
//! and the unpacking inside `pull` block on disk work and file locks: call the blocking ones
//! through `spawn_blocking`. Collection never deletes a layer directory that a mounted overlay
//! still lists, so removing an image in use by a running container keeps its layers until later.

mod blobs;
pub mod cli;
mod digest;
mod error;
mod import;
mod lock;
pub mod manifest;
mod metadata;
mod mounts;
mod reference;
pub mod registry;
mod resolve;
mod store;
pub mod test_registry;
pub mod testimage;
mod unpack;

pub use digest::sha256_digest;
pub use error::ImageError;
pub use metadata::{Image, ImageLayer};
pub use reference::{normalize_reference, Reference};
pub use registry::{PullOptions, RegistryAuth};
pub use store::{FsUsage, ImageStore};
pub use unpack::unpack_tar;
