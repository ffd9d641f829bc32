//! Reading an OCI bundle: `config.json` and the root filesystem it names, with errors that say
//! which of the two is wrong.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

/// The namespace types the runtime spec defines (config-linux.md#namespaces).
const NAMESPACE_TYPES: &[&str] = &[
    "pid", "network", "net", "mount", "mnt", "ipc", "uts", "user", "cgroup", "time",
];

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {0}: no such directory")]
    MissingBundle(PathBuf),
    #[error("read {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config.json {path}: {source}")]
    InvalidConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid config.json {path}: unknown namespace type {typ:?}")]
    UnknownNamespace { path: PathBuf, typ: String },
    #[error("invalid config.json {path}: {what}")]
    Missing { path: PathBuf, what: &'static str },
    #[error("rootfs {0}: no such directory")]
    MissingRootfs(PathBuf),
}

/// A loaded bundle: its absolute directory, its spec and its absolute rootfs.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Loads and checks `<dir>/config.json` and the rootfs it names.
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        if !dir.is_dir() {
            return Err(BundleError::MissingBundle(dir));
        }
        let path = dir.join("config.json");
        let bytes = std::fs::read(&path).map_err(|source| BundleError::ReadConfig {
            path: path.clone(),
            source,
        })?;
        let spec: Spec = match serde_json::from_slice(&bytes) {
            Ok(spec) => spec,
            Err(source) => return Err(explain_invalid(path, &bytes, source)),
        };
        let root = spec.root().as_ref().ok_or(BundleError::Missing {
            path: path.clone(),
            what: "no root.path",
        })?;
        if spec.process().is_none() {
            return Err(BundleError::Missing {
                path,
                what: "no process",
            });
        }
        let rootfs = dir.join(root.path());
        if !rootfs.is_dir() {
            return Err(BundleError::MissingRootfs(rootfs));
        }
        Ok(Bundle { dir, spec, rootfs })
    }
}

/// serde's message for an unknown enum variant is obscure; name the namespace type instead.
fn explain_invalid(path: PathBuf, bytes: &[u8], source: serde_json::Error) -> BundleError {
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(_) => return BundleError::InvalidConfig { path, source },
    };
    let namespaces = value
        .pointer("/linux/namespaces")
        .and_then(|n| n.as_array())
        .cloned()
        .unwrap_or_default();
    for ns in namespaces {
        let typ = ns.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if !NAMESPACE_TYPES.contains(&typ) {
            return BundleError::UnknownNamespace {
                path,
                typ: typ.to_string(),
            };
        }
    }
    BundleError::InvalidConfig { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str, rootfs: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        if rootfs {
            std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        }
        dir
    }

    #[test]
    fn missing_rootfs_is_named() {
        let spec = serde_json::to_string(&Spec::default()).unwrap();
        let dir = bundle_with(&spec, false);
        let err = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with("rootfs ") && err.ends_with("rootfs: no such directory"),
            "{err}"
        );
    }

    #[test]
    fn invalid_json_names_config() {
        let dir = bundle_with("{not json", true);
        let err = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("invalid config.json") && err.contains("config.json"),
            "{err}"
        );
    }

    #[test]
    fn unknown_namespace_type_is_named() {
        let mut spec = serde_json::to_value(Spec::default()).unwrap();
        spec["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "bogus"}]);
        let dir = bundle_with(&spec.to_string(), true);
        let err = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("unknown namespace type \"bogus\""), "{err}");
    }

    #[test]
    fn default_spec_loads() {
        let spec = serde_json::to_string(&Spec::default()).unwrap();
        let dir = bundle_with(&spec, true);
        let bundle = Bundle::load(dir.path()).unwrap();
        assert_eq!(bundle.rootfs, dir.path().join("rootfs"));
    }
}
