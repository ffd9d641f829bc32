//! The server's PKI, like k3s': a CA generated on first start and kept in the data dir
//! (`ca.crt`, `ca.key`), and a serving certificate signed by it on every start with SANs
//! for 127.0.0.1, localhost, the bind address and the hostname.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading or writing {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("configuring TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The CA a client must trust, and the rustls config the server serves with.
pub struct Pki {
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

const CA_COMMON_NAME: &str = "minik8s-ca";

/// The CA's parameters are fixed, so the CA certificate re-derived from the stored key
/// after a restart has the same subject and key identifier as the stored `ca.crt` that
/// clients trust; a serving certificate it signs verifies against that stored file.
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn read(path: &Path) -> Result<Option<String>, TlsError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::File {
            path: path.into(),
            source,
        }),
    }
}

/// Writes a file readable by the owner only (keys, tokens), durably.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::File {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(contents).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// The names the serving certificate is valid for, as kube-apiserver and k3s issue it:
/// loopback, the bind address (every address of the host when it is unspecified, so agents can
/// join through any of them), the hostname, the `kubernetes` Service's names and ClusterIP, and
/// any `--tls-san`.
pub fn serving_names(
    bind: SocketAddr,
    service_ip: Option<IpAddr>,
    extra: &[String],
) -> Vec<String> {
    let mut sans = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let bind_ip = bind.ip();
    if bind_ip.is_unspecified() {
        sans.extend(
            minik8s_api::host::ipv4_addrs()
                .iter()
                .map(|ip| ip.to_string()),
        );
    } else {
        sans.push(bind_ip.to_string());
    }
    sans.extend(hostname());
    sans.extend(service_ip.map(|ip| ip.to_string()));
    for name in [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        sans.push(name.into());
    }
    sans.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    sans.retain(|n| seen.insert(n.clone()));
    sans
}

/// Loads the CA from `dir` (creating it on first start) and issues a serving certificate
/// for the names in `sans`.
pub fn load_or_create(dir: &Path, sans: Vec<String>) -> Result<Pki, TlsError> {
    let (crt_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
    let (ca_pem, ca_key) = match (read(&crt_path)?, read(&key_path)?) {
        (Some(crt), Some(key)) => (crt, KeyPair::from_pem(&key)?),
        _ => {
            let key = KeyPair::generate()?;
            let cert = ca_params()?.self_signed(&key)?;
            write_private(&key_path, key.serialize_pem().as_bytes())?;
            write_private(&crt_path, cert.pem().as_bytes())?;
            (cert.pem(), key)
        }
    };
    let ca_cert = ca_params()?.self_signed(&ca_key)?;

    let mut params = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "minik8s-apiserver");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let leaf_key = KeyPair::generate()?;
    let leaf = params.signed_by(&leaf_key, &ca_cert, &ca_key)?;

    let chain = vec![CertificateDer::from(leaf.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Pki {
        ca_pem,
        server_config: Arc::new(config),
    })
}

/// A random bearer token (256 bits, hex).
pub fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the token kept in `path`, creating it on first start.
pub fn load_or_create_token(path: &Path) -> Result<String, TlsError> {
    if let Some(t) = read(path)?.map(|t| t.trim().to_string()) {
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let token = random_token();
    write_private(path, format!("{token}\n").as_bytes())?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_names_cover_every_host_address_when_bound_to_all() {
        let all: SocketAddr = "0.0.0.0:6443".parse().unwrap();
        let names = serving_names(
            all,
            Some("10.96.0.1".parse().unwrap()),
            &["lb.example".into()],
        );
        for ip in minik8s_api::host::ipv4_addrs() {
            assert!(
                names.contains(&ip.to_string()),
                "{ip} missing from {names:?}"
            );
        }
        for want in [
            "127.0.0.1",
            "10.96.0.1",
            "kubernetes.default.svc",
            "lb.example",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
        assert!(!names.iter().any(|n| n == "0.0.0.0"));
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        let one: SocketAddr = "10.1.2.3:6443".parse().unwrap();
        assert!(serving_names(one, None, &[]).contains(&"10.1.2.3".to_string()));
    }

    #[test]
    fn ca_is_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let first = load_or_create(dir.path(), serving_names(bind, None, &[])).unwrap();
        let second = load_or_create(dir.path(), serving_names(bind, None, &[])).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem);
        let t1 = load_or_create_token(&dir.path().join("tok")).unwrap();
        let t2 = load_or_create_token(&dir.path().join("tok")).unwrap();
        assert_eq!(t1, t2);
        assert_eq!(t1.len(), 64);
    }
}
