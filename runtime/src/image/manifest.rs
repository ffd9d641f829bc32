//! Manifests and indexes, OCI and Docker v2 flavours, parsed leniently into one shape, and
//! platform selection (linux/amd64) as containerd's default platform matcher does.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::digest::validate_digest;
use super::error::ImageError;

/// Media types we read and write.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
}

/// The platform this runtime runs images for.
pub const PLATFORM_OS: &str = "linux";
pub const PLATFORM_ARCH: &str = "amd64";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A content descriptor (the fields we use).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<HashMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest-or-index document.
#[derive(Debug, Clone)]
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

/// Parses `bytes` as a manifest or an index. `media_type` (the registry's Content-Type or the
/// descriptor's) decides when given; otherwise the document's own `mediaType` or shape does.
pub fn parse_document(
    bytes: &[u8],
    media_type: Option<&str>,
    what: &str,
) -> Result<Document, ImageError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ImageError::invalid(what, e))?;
    let declared = value
        .get("mediaType")
        .and_then(|m| m.as_str())
        .map(str::to_string);
    let mt = media_type
        .filter(|m| !m.is_empty() && *m != "application/json" && *m != "text/plain")
        .map(|m| m.split(';').next().unwrap_or(m).trim().to_string())
        .or(declared);
    let is_index = match mt.as_deref() {
        Some(media::OCI_INDEX | media::DOCKER_MANIFEST_LIST) => true,
        Some(media::OCI_MANIFEST | media::DOCKER_MANIFEST) => false,
        Some(other) if other == media::DOCKER_SCHEMA1 || other.contains("manifest.v1") => {
            return Err(ImageError::UnsupportedMediaType {
                what: what.to_string(),
                media_type: other.to_string(),
            })
        }
        _ => value.get("manifests").is_some(),
    };
    if is_index {
        let index: Index =
            serde_json::from_value(value).map_err(|e| ImageError::invalid(what, e))?;
        for d in &index.manifests {
            validate_digest(&d.digest)?;
        }
        Ok(Document::Index(index))
    } else {
        let m: Manifest =
            serde_json::from_value(value).map_err(|e| ImageError::invalid(what, e))?;
        validate_digest(&m.config.digest)?;
        for l in &m.layers {
            validate_digest(&l.digest)?;
            check_layer_media_type(&l.media_type, what)?;
        }
        Ok(Document::Manifest(m))
    }
}

/// Refuses descriptors that are not filesystem layers (e.g. artifacts, Windows foreign layers).
fn check_layer_media_type(mt: &str, what: &str) -> Result<(), ImageError> {
    let ok = mt.is_empty()
        || mt.starts_with("application/vnd.oci.image.layer.")
        || mt.starts_with("application/vnd.docker.image.rootfs.diff.tar");
    if ok {
        Ok(())
    } else {
        Err(ImageError::UnsupportedMediaType {
            what: format!("layer of {what}"),
            media_type: mt.to_string(),
        })
    }
}

/// Picks the linux/amd64 manifest of an index (attestation entries say `unknown/unknown`).
pub fn select_platform(index: &Index) -> Option<&Descriptor> {
    let matches = |d: &&Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == PLATFORM_OS && p.architecture == PLATFORM_ARCH)
    };
    index
        .manifests
        .iter()
        .find(matches)
        // An index without platforms (e.g. an OCI layout holding one image) has one candidate.
        .or_else(|| match index.manifests.as_slice() {
            [only] if only.platform.is_none() => Some(only),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: char, os: &str, arch: &str) -> serde_json::Value {
        serde_json::json!({ "mediaType": media::OCI_MANIFEST, "digest": format!("sha256:{}", n.to_string().repeat(64)),
            "size": 1, "platform": { "os": os, "architecture": arch } })
    }

    #[test]
    fn index_resolves_to_linux_amd64_skipping_attestations() {
        let doc = serde_json::json!({ "schemaVersion": 2, "manifests": [
            d('a', "linux", "arm64"), d('b', "unknown", "unknown"), d('c', "linux", "amd64") ] });
        let bytes = serde_json::to_vec(&doc).unwrap();
        let Document::Index(index) =
            parse_document(&bytes, Some(media::DOCKER_MANIFEST_LIST), "t").unwrap()
        else {
            panic!("expected an index");
        };
        assert!(select_platform(&index)
            .unwrap()
            .digest
            .starts_with("sha256:ccc"));
        let arm_only = Index {
            manifests: vec![index.manifests[0].clone()],
            ..index
        };
        assert!(select_platform(&arm_only).is_none());
    }

    #[test]
    fn schema1_and_non_layer_blobs_are_refused() {
        let err = parse_document(b"{}", Some(media::DOCKER_SCHEMA1), "t").unwrap_err();
        assert!(
            matches!(err, ImageError::UnsupportedMediaType { .. }),
            "{err}"
        );
        let doc = serde_json::json!({ "schemaVersion": 2, "config": { "mediaType": media::OCI_CONFIG,
            "digest": format!("sha256:{}", "a".repeat(64)), "size": 1 },
            "layers": [{ "mediaType": "application/vnd.example.artifact", "digest": format!("sha256:{}", "b".repeat(64)), "size": 1 }] });
        let err = parse_document(&serde_json::to_vec(&doc).unwrap(), None, "t").unwrap_err();
        assert!(err.to_string().contains("vnd.example.artifact"), "{err}");
    }
}
