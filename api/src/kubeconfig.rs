//! Kubeconfig files: writing the admin and node kubeconfigs, and the lookup order minictl uses.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("writing kubeconfig {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encoding kubeconfig: {0}")]
    Encode(#[from] serde_yaml::Error),
}

/// What a kubeconfig with one cluster, one user and one context holds.
#[derive(Debug, Clone)]
pub struct KubeconfigSpec<'a> {
    /// Name used for the cluster, the user and the context.
    pub name: &'a str,
    /// `https://host:port`.
    pub server: &'a str,
    /// The CA certificate (PEM) that signed the server's certificate.
    pub ca_pem: &'a [u8],
    pub token: &'a str,
    /// Namespace of the context; None leaves the client's default (`default`).
    pub namespace: Option<&'a str>,
}

/// Renders a kubeconfig (YAML) that kubectl, client-go, kube-rs and the Python client read.
pub fn render(spec: &KubeconfigSpec<'_>) -> Result<String, KubeconfigError> {
    let ca = base64::engine::general_purpose::STANDARD.encode(spec.ca_pem);
    let mut context = json!({"cluster": spec.name, "user": spec.name});
    if let Some(ns) = spec.namespace {
        context["namespace"] = json!(ns);
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": spec.name, "cluster": {
            "server": spec.server, "certificate-authority-data": ca}}],
        "users": [{"name": spec.name, "user": {"token": spec.token}}],
        "contexts": [{"name": spec.name, "context": context}],
        "current-context": spec.name,
        "preferences": {},
    });
    Ok(serde_yaml::to_string(&doc)?)
}

/// Writes a kubeconfig atomically (temp file + rename), readable by the owner only since
/// it carries a bearer token.
pub fn write(path: &Path, spec: &KubeconfigSpec<'_>) -> Result<(), KubeconfigError> {
    let text = render(spec)?;
    let err = |source| KubeconfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

/// The data directory the server uses by default; its admin kubeconfig is the last resort
/// of the lookup below.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/minik8s";

/// Where a client finds its kubeconfig: `--kubeconfig`, `$KUBECONFIG` (first entry),
/// `~/.kube/config`, then the server's default admin kubeconfig.
pub fn lookup(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()))
    {
        return Some(first);
    }
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"));
    if let Some(h) = home.filter(|h| h.exists()) {
        return Some(h);
    }
    let admin = Path::new(DEFAULT_DATA_DIR).join("admin.kubeconfig");
    admin.exists().then_some(admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_kubeconfig_is_readable_by_kube_rs() {
        let spec = KubeconfigSpec {
            name: "minik8s",
            server: "https://127.0.0.1:6443",
            ca_pem: b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            token: "abc",
            namespace: None,
        };
        let text = render(&spec).unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("minik8s"));
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.token.is_some());
    }
}
