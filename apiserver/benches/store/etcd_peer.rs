//! A real etcd started for the benchmark: its own temp data dir, free loopback ports,
//! killed by PID when dropped.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

pub struct EtcdProcess {
    child: Child,
    pub endpoint: String,
    // Dropped after the child is killed (field order), removing the data dir.
    _dir: tempfile::TempDir,
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the etcd binary is, if installed.
pub fn etcd_binary() -> Option<&'static str> {
    ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdProcess {
    /// Starts a single-member etcd on loopback and waits until it answers.
    pub async fn start(binary: &str) -> anyhow::Result<EtcdProcess> {
        let dir = tempfile::tempdir()?;
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(dir.path().join("etcd.log"))?;
        let child = Command::new(binary)
            .args(["--name", "bench"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("bench={peer_url}")])
            // Keep the benchmark's history; no auto compaction during the run.
            .args(["--quota-backend-bytes", &(8u64 << 30).to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        let etcd = EtcdProcess {
            child,
            endpoint: client_url,
            _dir: dir,
        };
        etcd.wait_ready().await?;
        Ok(etcd)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = async {
                let mut client = self.client().await?;
                client.get("/ready-probe", None).await?;
                anyhow::Ok(())
            };
            match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(Ok(())) => return Ok(()),
                _ if Instant::now() > deadline => {
                    anyhow::bail!("etcd at {} not ready within 30s", self.endpoint)
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn client(&self) -> anyhow::Result<etcd_client::Client> {
        Ok(etcd_client::Client::connect([self.endpoint.as_str()], None).await?)
    }
}
