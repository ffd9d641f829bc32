//! Image references, normalised as Docker and containerd do
//! (`github.com/distribution/reference`, `ParseNormalizedNamed`):
//! `busybox` → `docker.io/library/busybox:latest`, `localhost:5000/x` stays on `localhost:5000`,
//! `name@sha256:…` keeps the digest and gets no default tag.

use std::fmt;

use super::digest::validate_digest;
use super::error::ImageError;

/// The registry of references that name none (Docker Hub).
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's official images live under this namespace.
const OFFICIAL_NAMESPACE: &str = "library";
/// Registry host that serves `docker.io` over the distribution API.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// A normalised image reference: `domain/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (with port when given), e.g. `docker.io`, `127.0.0.1:5000`.
    pub domain: String,
    /// Repository path inside the registry, e.g. `library/busybox`.
    pub path: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:<hex>` when the reference pins a manifest digest.
    pub digest: Option<String>,
}

impl Reference {
    /// `domain/path`, the name part shared by tags and digests.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The host:port to talk the distribution API to (`docker.io` is served by `registry-1.docker.io`).
    pub fn api_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN {
            DOCKER_HUB_API_HOST
        } else {
            &self.domain
        }
    }

    /// What to ask the registry's manifest endpoint for: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `domain/path:tag`, when the reference has a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{}", self.name(), t))
    }

    /// `domain/path@digest` for a given manifest digest.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}@{}", self.name(), digest)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Parses and normalises `r` (see the module docs).
pub fn normalize_reference(r: &str) -> Result<Reference, ImageError> {
    let bad = |reason: &str| ImageError::InvalidReference {
        reference: r.to_string(),
        reason: reason.to_string(),
    };
    if r.is_empty() {
        return Err(bad("empty reference"));
    }
    let (rest, digest) = match r.split_once('@') {
        Some((rest, digest)) => {
            validate_digest(digest).map_err(|_| bad("digest must be sha256:<64 hex>"))?;
            (rest, Some(digest.to_string()))
        }
        None => (r, None),
    };
    // A tag is a ':' after the last '/', so `localhost:5000/x` has no tag.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].find(':') {
        Some(i) => {
            let (n, t) = rest.split_at(last_slash + i);
            (n, Some(t[1..].to_string()))
        }
        None => (rest, None),
    };
    if let Some(tag) = &tag {
        if !valid_tag(tag) {
            return Err(bad("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
        }
    }
    let (domain, path) = split_domain(name);
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_NAMESPACE}/{path}")
    } else {
        path
    };
    if path.is_empty() || !path.split('/').all(valid_path_component) {
        return Err(bad(
            "repository must be lowercase components of [a-z0-9] joined by '.', '_', '__' or '-'",
        ));
    }
    let tag = match (&tag, &digest) {
        (None, None) => Some("latest".to_string()),
        _ => tag,
    };
    Ok(Reference {
        domain,
        path,
        tag,
        digest,
    })
}

/// Splits off the registry: the first component is one when it has a '.' or ':' or is `localhost`.
fn split_domain(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(r: &str) -> String {
        normalize_reference(r).unwrap().to_string()
    }

    #[test]
    fn short_names_go_to_docker_hub_library_with_latest() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            norm("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn registries_with_ports_and_localhost_are_kept() {
        assert_eq!(norm("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(norm("localhost/x:1"), "localhost/x:1");
        assert_eq!(
            norm("127.0.0.1:5000/test/busybox:1"),
            "127.0.0.1:5000/test/busybox:1"
        );
        assert_eq!(
            norm("registry.k8s.io/pause:3.9"),
            "registry.k8s.io/pause:3.9"
        );
        let r = normalize_reference("127.0.0.1:5000/a/b").unwrap();
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(
            normalize_reference("busybox").unwrap().api_host(),
            "registry-1.docker.io"
        );
    }

    #[test]
    fn digests_are_kept_and_get_no_default_tag() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = normalize_reference(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{d}"));
        let r = normalize_reference(&format!("busybox:1@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
    }

    #[test]
    fn invalid_references_are_refused() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "x:",
            "x:-bad",
            "busybox@sha256:abc",
            "a/-b",
            "x@md5:00",
        ] {
            assert!(
                normalize_reference(bad).is_err(),
                "{bad:?} should be invalid"
            );
        }
        assert!(normalize_reference("a__b/c-d/e.f").is_ok());
    }
}
