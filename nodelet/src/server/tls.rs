//! The serving certificate: self-signed, made at every start for the node's IP and name
//! (the kubelet does the same when no --tls-cert-file is given, writing kubelet.crt into its
//! cert dir). The API server does not verify it, as kube-apiserver does not without
//! --kubelet-certificate-authority.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::ServerError;

/// `<root>/pki`: where the serving certificate and key are kept.
pub fn pki_dir(root: &Path) -> PathBuf {
    root.join("pki")
}

/// Makes the certificate, writes it (key mode 0600) and returns the rustls config.
pub fn server_config(
    root: &Path,
    ip: Ipv4Addr,
    node: &str,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let mut params = rcgen::CertificateParams::new(vec![ip.to_string(), node.to_string()])?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, format!("{node}@minik8s-nodelet"));
    params.distinguished_name = dn;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let dir = pki_dir(root);
    write(&dir, "nodelet.crt", cert.pem().as_bytes(), 0o644)?;
    write(&dir, "nodelet.key", key.serialize_pem().as_bytes(), 0o600)?;
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn write(dir: &Path, name: &str, data: &[u8], mode: u32) -> Result<(), ServerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let io = |source| ServerError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&path)
        .map_err(io)?;
    f.write_all(data).map_err(io)
}
