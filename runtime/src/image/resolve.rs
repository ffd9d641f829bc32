//! Finding an image by what CRI and users pass: an id (`sha256:<config digest>` or its hex),
//! a unique id prefix, a reference with a tag (normalised: `busybox` finds
//! `docker.io/library/busybox:latest`), or a digest reference (`name@sha256:…`).

use super::error::ImageError;
use super::metadata::Image;
use super::reference::normalize_reference;

/// How `find` matched, with the image's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Id(usize),
    Prefix(usize),
    /// The normalised tag that matched.
    Tag(usize, String),
    /// The normalised digest reference that matched.
    Digest(usize, String),
}

impl Match {
    pub fn index(&self) -> usize {
        match self {
            Match::Id(i) | Match::Prefix(i) | Match::Tag(i, _) | Match::Digest(i, _) => *i,
        }
    }
}

pub fn find(images: &[Image], query: &str) -> Result<Match, ImageError> {
    let hex = query.strip_prefix("sha256:").unwrap_or(query);
    let is_hex = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex && hex.len() == 64 {
        if let Some(i) = images.iter().position(|i| i.id[7..] == *hex) {
            return Ok(Match::Id(i));
        }
    }
    if let Ok(r) = normalize_reference(query) {
        if let Some(digest) = &r.digest {
            let wanted = r.with_digest(digest);
            let name = r.name();
            let found = images
                .iter()
                .position(|i| i.repo_digests.contains(&wanted))
                .or_else(|| {
                    // A digest reference also finds the image by its platform manifest's digest.
                    images.iter().position(|i| {
                        i.manifest_digest == *digest
                            && (i.repo_tags.iter().chain(&i.repo_digests))
                                .any(|n| has_name(n, &name))
                    })
                });
            if let Some(i) = found {
                return Ok(Match::Digest(i, wanted));
            }
        } else if let Some(tagged) = r.tagged() {
            if let Some(i) = images.iter().position(|i| i.repo_tags.contains(&tagged)) {
                return Ok(Match::Tag(i, tagged));
            }
        }
    }
    if is_hex {
        let matches: Vec<usize> = (0..images.len())
            .filter(|&i| images[i].id[7..].starts_with(hex))
            .collect();
        match matches.as_slice() {
            [i] => return Ok(Match::Prefix(*i)),
            [] => {}
            many => {
                return Err(ImageError::Ambiguous {
                    reference: query.to_string(),
                    count: many.len(),
                })
            }
        }
    }
    Err(ImageError::NotFound {
        reference: query.to_string(),
    })
}

/// Whether `full` (`name:tag` or `name@digest`) is of repository `name`.
fn has_name(full: &str, name: &str) -> bool {
    full.strip_prefix(name)
        .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id_char: char, tags: &[&str], digests: &[&str]) -> Image {
        let config: oci_spec::image::ImageConfiguration = serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux", "rootfs": { "type": "layers", "diff_ids": [] }
        }))
        .unwrap();
        Image {
            id: format!("sha256:{}", id_char.to_string().repeat(64)),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            size: 0,
            manifest_digest: format!("sha256:{}", "e".repeat(64)),
            layers: vec![],
            config,
        }
    }

    #[test]
    fn finds_by_short_name_id_prefix_and_digest() {
        let d = format!("sha256:{}", "d".repeat(64));
        let images = vec![
            image(
                'a',
                &["docker.io/library/busybox:latest"],
                &[&format!("docker.io/library/busybox@{d}")],
            ),
            image('b', &["127.0.0.1:5000/test/app:1"], &[]),
        ];
        assert_eq!(
            find(&images, "busybox").unwrap(),
            Match::Tag(0, "docker.io/library/busybox:latest".into())
        );
        assert_eq!(find(&images, &"a".repeat(64)).unwrap(), Match::Id(0));
        assert_eq!(
            find(&images, &format!("sha256:{}", "b".repeat(64))).unwrap(),
            Match::Id(1)
        );
        assert_eq!(find(&images, "bbb").unwrap(), Match::Prefix(1));
        assert!(matches!(
            find(&images, &format!("busybox@{d}")).unwrap(),
            Match::Digest(0, _)
        ));
        // By platform-manifest digest under the same repository name.
        let e = format!("sha256:{}", "e".repeat(64));
        assert!(matches!(
            find(&images, &format!("127.0.0.1:5000/test/app@{e}")).unwrap(),
            Match::Digest(1, _)
        ));
        assert!(matches!(
            find(&images, "busybox:1").unwrap_err(),
            ImageError::NotFound { .. }
        ));
        assert!(matches!(
            find(&images, "c").unwrap_err(),
            ImageError::NotFound { .. }
        ));
    }

    #[test]
    fn ambiguous_prefix_is_an_error() {
        let mut images = vec![image('a', &[], &[]), image('a', &[], &[])];
        images[1].id = format!("sha256:{}b", "a".repeat(63));
        assert!(matches!(
            find(&images, "aaaa").unwrap_err(),
            ImageError::Ambiguous { count: 2, .. }
        ));
    }
}
