//! Joining a cluster, k3s style: fetch the CA from the server's unauthenticated `/cacerts`
//! without verifying the server (there is no trust anchor yet), accept it only if its sha256
//! is the one pinned in the token, check that the server — now verified against that CA —
//! accepts the token's secret, and only then write the agent's kubeconfig.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use minik8s_api::kubeconfig::{self, KubeconfigSpec};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::token::{ca_hash, JoinToken};

/// How long one request to the server may take (connect, handshake, response).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response read (a CA bundle is a few KiB).
const MAX_RESPONSE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("invalid server URL {0:?} (expected https://HOST:PORT)")]
    ServerUrl(String),
    #[error("connecting to {server}: {message}")]
    Connect { server: String, message: String },
    #[error(
        "TLS handshake with {server}: {message} (if the name or IP is missing from the server's \
         certificate, join with an address it was issued for)"
    )]
    Handshake { server: String, message: String },
    #[error("GET {path} on {server} answered {status}")]
    Status {
        server: String,
        path: &'static str,
        status: String,
    },
    #[error(
        "the CA served by {server} has sha256 {got}, but the join token pins {expected}: \
         wrong token or not the expected server; refusing to join"
    )]
    CaMismatch {
        server: String,
        expected: String,
        got: String,
    },
    #[error("the CA served by {server} holds no PEM certificate")]
    CaInvalid { server: String },
    #[error("{server} rejected the join token's secret (401 Unauthorized)")]
    Unauthorized { server: String },
    #[error("creating agent data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the agent kubeconfig: {0}")]
    Kubeconfig(#[from] kubeconfig::KubeconfigError),
}

/// Where to reach the server: `https://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    pub url: String,
    pub host: String,
    pub port: u16,
}

impl ServerUrl {
    /// Parses `https://HOST[:PORT][/]` (port 443 when absent; `[v6]:port` brackets allowed).
    pub fn parse(text: &str) -> Result<ServerUrl, JoinError> {
        let bad = || JoinError::ServerUrl(text.to_string());
        let rest = text.strip_prefix("https://").ok_or_else(bad)?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, tail) = v6.split_once(']').ok_or_else(bad)?;
            let port = match tail.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if tail.is_empty() => 443,
                None => return Err(bad()),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
                None => (authority.to_string(), 443),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(ServerUrl {
            url: format!("https://{authority}"),
            host,
            port,
        })
    }
}

/// Joins: verifies the CA and the secret, then writes `<data_dir>/kubeconfig`. Nothing is
/// written (not even the data dir) unless both checks pass.
pub async fn join(
    server: &ServerUrl,
    token: &JoinToken,
    data_dir: &Path,
) -> Result<PathBuf, JoinError> {
    let ca_pem = fetch_ca(server).await?;
    let got = ca_hash(&ca_pem);
    match &token.ca_hash {
        Some(expected) if *expected != got => {
            return Err(JoinError::CaMismatch {
                server: server.url.clone(),
                expected: expected.clone(),
                got,
            })
        }
        Some(_) => {}
        None => tracing::warn!(
            server = %server.url,
            ca_sha256 = %got,
            "the join token has no CA hash (not K10…): trusting the server's CA on first use; \
             use the full token the server prints to pin it"
        ),
    }
    let roots = root_store(&ca_pem).ok_or_else(|| JoinError::CaInvalid {
        server: server.url.clone(),
    })?;
    check_secret(server, roots, &token.secret).await?;
    std::fs::create_dir_all(data_dir).map_err(|source| JoinError::DataDir {
        path: data_dir.into(),
        source,
    })?;
    let path = data_dir.join("kubeconfig");
    kubeconfig::write(
        &path,
        &KubeconfigSpec {
            name: "minik8s",
            server: &server.url,
            ca_pem: &ca_pem,
            token: &token.secret,
            namespace: None,
        },
    )?;
    Ok(path)
}

/// `GET /cacerts` without verifying the server.
pub async fn fetch_ca(server: &ServerUrl) -> Result<Vec<u8>, JoinError> {
    let config = minik8s_api::tls::unverified_client_config();
    let (status, body) = get(server, config, "/cacerts", None).await?;
    if status != 200 {
        return Err(JoinError::Status {
            server: server.url.clone(),
            path: "/cacerts",
            status: status.to_string(),
        });
    }
    Ok(body)
}

/// An authenticated request, verifying the server against the pinned CA, so a wrong secret
/// is reported at join time rather than as the nodelet's first failed call.
async fn check_secret(
    server: &ServerUrl,
    roots: rustls::RootCertStore,
    secret: &str,
) -> Result<(), JoinError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| connect_error(server, e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (status, _) = get(server, config, "/api", Some(secret)).await?;
    match status {
        200 => Ok(()),
        401 | 403 => Err(JoinError::Unauthorized {
            server: server.url.clone(),
        }),
        other => Err(JoinError::Status {
            server: server.url.clone(),
            path: "/api",
            status: other.to_string(),
        }),
    }
}

fn root_store(ca_pem: &[u8]) -> Option<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let mut reader = std::io::BufReader::new(ca_pem);
    for cert in rustls_pemfile::certs(&mut reader) {
        roots.add(cert.ok()?).ok()?;
    }
    (!roots.is_empty()).then_some(roots)
}

fn connect_error(server: &ServerUrl, e: impl std::fmt::Display) -> JoinError {
    JoinError::Connect {
        server: server.url.clone(),
        message: e.to_string(),
    }
}

/// One HTTP/1.1 GET over TLS (`Connection: close`): the status code and the body.
async fn get(
    server: &ServerUrl,
    config: rustls::ClientConfig,
    path: &'static str,
    bearer: Option<&str>,
) -> Result<(u16, Vec<u8>), JoinError> {
    let exchange = async {
        let name =
            ServerName::try_from(server.host.clone()).map_err(|e| connect_error(server, e))?;
        let tcp = tokio::net::TcpStream::connect((server.host.as_str(), server.port))
            .await
            .map_err(|e| connect_error(server, e))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| JoinError::Handshake {
                server: server.url.clone(),
                message: e.to_string(),
            })?;
        let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: minik8s-agent\r\n{auth}\
             Accept: */*\r\nConnection: close\r\n\r\n",
            server.host, server.port
        );
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| connect_error(server, e))?;
        let mut raw = Vec::new();
        // A server closing without close_notify is an error to rustls but the response is
        // complete; parse whatever arrived.
        let _ = (&mut tls)
            .take(MAX_RESPONSE as u64)
            .read_to_end(&mut raw)
            .await;
        parse_response(&raw).ok_or_else(|| connect_error(server, "malformed HTTP response"))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| connect_error(server, format!("no answer within {REQUEST_TIMEOUT:?}")))?
}

/// Status code and body of an HTTP/1.1 response (Content-Length or chunked).
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Some((status, out));
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let u = ServerUrl::parse("https://10.0.0.1:6443").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("10.0.0.1", 6443));
        assert_eq!(u.url, "https://10.0.0.1:6443");
        let u = ServerUrl::parse("https://example.org/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("example.org", 443));
        assert_eq!(u.url, "https://example.org");
        let u = ServerUrl::parse("https://[::1]:6443").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 6443));
        for bad in [
            "http://x:1",
            "https://",
            "https://x:port",
            "https://x:1/api",
            "x:1",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(parse_response(r), Some((200, b"abc".to_vec())));
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(r), Some((200, b"abcde".to_vec())));
        assert_eq!(parse_response(b"garbage"), None);
    }
}
