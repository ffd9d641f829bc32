//! Errors of the image store, named for the step that failed.

use std::path::PathBuf;

/// What went wrong while importing, pulling, unpacking or looking up an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("image {reference:?} not found")]
    NotFound { reference: String },
    #[error("image reference {reference:?} is ambiguous: it matches {count} images")]
    Ambiguous { reference: String, count: usize },
    #[error("io error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("invalid digest {digest:?}: only sha256 digests with 64 hex characters are supported")]
    InvalidDigest { digest: String },
    #[error("invalid {what}: {reason}")]
    InvalidContent { what: String, reason: String },
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType { what: String, media_type: String },
    #[error("no linux/amd64 image in the index of {reference}")]
    NoMatchingPlatform { reference: String },
    #[error("unsafe path {path:?} in layer {layer}: {reason}")]
    UnsafePath {
        layer: String,
        path: String,
        reason: String,
    },
    #[error("unrecognized image archive {path}: neither an OCI layout (index.json) nor a docker archive (manifest.json)")]
    UnknownArchive { path: PathBuf },
    #[error("registry {registry} unreachable: {source}")]
    RegistryUnreachable {
        registry: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("registry {registry} denied access to {reference}: {message}")]
    Unauthorized {
        registry: String,
        reference: String,
        message: String,
    },
    #[error("registry {registry} answered {status} for {url}: {message}")]
    RegistryStatus {
        registry: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("token request to {realm} failed: {message}")]
    TokenRequest { realm: String, message: String },
    #[error("image metadata {path} is corrupt: {source}")]
    CorruptMetadata {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("background task for {what} failed: {message}")]
    Task { what: String, message: String },
}

impl ImageError {
    /// An [`ImageError::Io`] for `path`, for `map_err`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ImageError {
        let path = path.into();
        move |source| ImageError::Io { path, source }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl ToString) -> ImageError {
        ImageError::InvalidContent {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
