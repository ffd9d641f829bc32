//! The GET the kubelet sends for an `httpGet` probe or lifecycle hook: HTTP/1.0 to the pod
//! (or the action's host), with the action's `httpHeaders` over the defaults; `scheme: HTTPS`
//! over TLS without verifying the certificate, as the kubelet's prober does
//! (InsecureSkipVerify: the target is the pod at its own IP, named by nothing a CA signs).

use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::HTTPGetAction;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// One request.
pub struct HttpGet<'a> {
    https: bool,
    host: &'a str,
    port: u16,
    path: &'a str,
    /// `kube-probe` or `kube-lifecycle`: the User-Agent's product.
    agent: &'static str,
    headers: Vec<(String, String)>,
}

impl<'a> HttpGet<'a> {
    /// The request of `action` (its scheme and headers) to `host:port` and `path`, which
    /// the caller resolved (probes and hooks default them differently).
    pub fn for_action(
        action: &HTTPGetAction,
        host: &'a str,
        port: u16,
        path: &'a str,
        agent: &'static str,
    ) -> HttpGet<'a> {
        HttpGet {
            https: action.scheme.as_deref() == Some("HTTPS"),
            host,
            port,
            path,
            agent,
            headers: action
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}:{}{}", self.host, self.port, self.path)
    }

    /// The request's header lines, as the kubelet's prober builds them: the action's
    /// headers, with `User-Agent: <agent>/1.32` and `Accept: */*` unless it sets its own (an
    /// empty Accept removes it), and `Host` from the action or else the target.
    fn header_lines(&self) -> String {
        let custom = &self.headers;
        let set = |name: &str| custom.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        let mut out = String::new();
        if !set("Host") {
            out.push_str(&format!("Host: {}:{}\r\n", self.host, self.port));
        }
        if !set("User-Agent") {
            out.push_str(&format!("User-Agent: {}/1.32\r\n", self.agent));
        }
        if !set("Accept") {
            out.push_str("Accept: */*\r\n");
        }
        // A line break in a name or value would start a header of its own.
        let clean = |s: &str| s.replace(['\r', '\n'], "");
        for (name, value) in custom {
            if name.eq_ignore_ascii_case("Accept") && value.is_empty() {
                continue;
            }
            out.push_str(&format!("{}: {}\r\n", clean(name), clean(value)));
        }
        out
    }

    /// Sends the request; the response's status code.
    pub async fn send(&self) -> Result<u16, String> {
        let url = self.url();
        let fail = |e: &dyn std::fmt::Display| format!("Get {url}: {e}");
        let tcp = tokio::net::TcpStream::connect((self.host, self.port))
            .await
            .map_err(|e| fail(&e))?;
        let request = format!("GET {} HTTP/1.0\r\n{}\r\n", self.path, self.header_lines());
        if !self.https {
            return exchange(tcp, &request).await.map_err(|e| fail(&e));
        }
        let name = ServerName::try_from(self.host.to_string()).map_err(|e| fail(&e))?;
        let tls = connector().connect(name, tcp).await.map_err(|e| fail(&e))?;
        exchange(tls, &request).await.map_err(|e| fail(&e))
    }
}

/// Writes the request and reads the status line's code.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &str,
) -> Result<u16, String> {
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256];
    let mut n = 0;
    while n < 12 {
        let r = s.read(&mut buf[n..]).await.map_err(|e| e.to_string())?;
        if r == 0 {
            break;
        }
        n += r;
    }
    String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| "malformed response".to_string())
}

fn connector() -> tokio_rustls::TlsConnector {
    static CONNECTOR: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| Arc::new(minik8s_api::tls::unverified_client_config()).into())
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves one request on loopback (over TLS with a self-signed certificate when `tls`
    /// is given): answers `status`, returns the request's text.
    async fn one_request(
        status: u16,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            match tls {
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    serve(acceptor.accept(tcp).await.unwrap(), status).await
                }
                None => serve(tcp, status).await,
            }
        });
        (port, served)
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, status: u16) -> String {
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        let answer = format!("HTTP/1.0 {status} X\r\nContent-Length: 0\r\n\r\n");
        s.write_all(answer.as_bytes()).await.unwrap();
        s.shutdown().await.ok();
        String::from_utf8(req).unwrap()
    }

    fn get(port: u16, https: bool, headers: Vec<(String, String)>) -> HttpGet<'static> {
        HttpGet {
            https,
            host: "127.0.0.1",
            port,
            path: "/healthz",
            agent: "kube-probe",
            headers,
        }
    }

    #[tokio::test]
    async fn sends_the_action_headers_over_the_defaults() {
        let (port, served) = one_request(204, None).await;
        let headers = vec![
            ("Host".to_string(), "web.example".to_string()),
            ("X-Probe".to_string(), "yes\r\nInjected: 1".to_string()),
            ("Accept".to_string(), String::new()),
        ];
        assert_eq!(get(port, false, headers).send().await.unwrap(), 204);
        let req = served.await.unwrap();
        assert!(req.starts_with("GET /healthz HTTP/1.0\r\n"), "{req}");
        assert!(req.contains("\r\nHost: web.example\r\n"), "{req}");
        assert!(
            !req.contains("127.0.0.1"),
            "the action's Host replaces the target: {req}"
        );
        assert!(req.contains("\r\nUser-Agent: kube-probe/1.32\r\n"), "{req}");
        assert!(req.contains("\r\nX-Probe: yesInjected: 1\r\n"), "{req}");
        assert!(!req.contains("Accept"), "an empty Accept removes it: {req}");
    }

    #[tokio::test]
    async fn defaults_without_action_headers() {
        let (port, served) = one_request(500, None).await;
        assert_eq!(get(port, false, Vec::new()).send().await.unwrap(), 500);
        let req = served.await.unwrap();
        assert!(
            req.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{req}"
        );
        assert!(req.contains("User-Agent: kube-probe/1.32\r\n"), "{req}");
        assert!(req.contains("Accept: */*\r\n"), "{req}");
    }

    #[tokio::test]
    async fn https_accepts_a_self_signed_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::server::tls::server_config(
            dir.path(),
            std::net::Ipv4Addr::LOCALHOST,
            "probe-target",
        )
        .unwrap();
        let (port, served) = one_request(200, Some(config)).await;
        assert_eq!(get(port, true, Vec::new()).send().await.unwrap(), 200);
        assert!(served
            .await
            .unwrap()
            .starts_with("GET /healthz HTTP/1.0\r\n"));
    }
}
