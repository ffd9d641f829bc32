//! An API server on 127.0.0.1:0 in a temp dir, and the test timeout.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use kube::Client;
use tokio_util::sync::CancellationToken;

pub async fn within<T>(what: &str, secs: u64, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// An API server on 127.0.0.1:0 in a temp dir, stopped on drop.
pub struct Apiserver {
    pub client: Client,
    pub kubeconfig: std::path::PathBuf,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Apiserver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Apiserver {
    pub async fn start() -> Apiserver {
        let dir = tempfile::tempdir().expect("temp dir");
        let shutdown = CancellationToken::new();
        let config = minik8s_apiserver::Config::new(
            dir.path().to_path_buf(),
            "127.0.0.1:0".parse().unwrap(),
        );
        let running = minik8s_apiserver::start(config, shutdown.clone())
            .await
            .expect("starting the API server");
        let kc = kube::config::Kubeconfig::read_from(&running.kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        Apiserver {
            client: Client::try_from(cfg).unwrap(),
            kubeconfig: running.kubeconfig,
            shutdown,
            _dir: dir,
        }
    }
}
