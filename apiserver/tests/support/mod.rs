//! A real API server on 127.0.0.1:0 with a temp data dir, and kube clients for it.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use minik8s_apiserver::{start, Config, Running};
use tokio_util::sync::CancellationToken;

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub running: Option<Running>,
    pub shutdown: CancellationToken,
    pub client: kube::Client,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> TestServer {
        let shutdown = CancellationToken::new();
        let config = Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().unwrap());
        let running = start(config, shutdown.clone())
            .await
            .expect("server starts");
        let client = client_for(&running.kubeconfig).await;
        TestServer {
            dir,
            running: Some(running),
            shutdown,
            client,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.running.as_ref().unwrap().kubeconfig.clone()
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().unwrap().addr
    }

    pub fn token(&self) -> String {
        self.running.as_ref().unwrap().token.clone()
    }

    /// Stops the server and waits for it; returns the data dir for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.shutdown.cancel();
        if let Some(r) = self.running.take() {
            r.handle
                .await
                .expect("server task")
                .expect("server ran cleanly");
        }
        // Let the store's writer thread release its files before a restart reopens them.
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// A reqwest-free raw HTTPS client is not available here; tests that need raw requests
    /// use `kube::Client::request_text` / `send` through this client.
    pub fn raw(&self) -> &kube::Client {
        &self.client
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn client_for(path: &std::path::Path) -> kube::Client {
    let kc = Kubeconfig::read_from(path).expect("kubeconfig readable");
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    // kube retries 503s for minutes; the server answers 503 on purpose (pods/log).
    cfg.default_retry = false;
    kube::Client::try_from(cfg).expect("client")
}

/// Runs a test body under a timeout whose message says what a hang means.
pub async fn within<F: Future<Output = T>, T>(secs: u64, what: &str, f: F) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s: {what}"))
}

/// Sends a raw request through the kube client; returns (status code, body JSON).
pub async fn raw_request(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        b = b.header(http::header::CONTENT_TYPE, ct);
    }
    let req = b.body(body).unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("request sent");
    let code = resp.status().as_u16();
    let ct = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body read")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    if !json.is_null() {
        assert!(
            ct.starts_with("application/json"),
            "JSON response with content type {ct:?}"
        );
    }
    (code, json)
}
