//! What the scheduler's and the controller-manager's scale benches share: this binary
//! re-executed as a child component (each child's RSS is its own), the API server child, and
//! a client for the kubeconfig it writes. The controller-manager bench includes this file.

#![allow(dead_code)]

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use tokio_util::sync::CancellationToken;

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Stops when stdin closes (the driver dropped its end).
pub fn stop_on_stdin_close() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    std::thread::spawn(move || {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
        cancel.cancel();
    });
    token
}

pub async fn child_apiserver(dir: PathBuf) -> anyhow::Result<()> {
    let shutdown = stop_on_stdin_close();
    let config = minik8s_apiserver::Config::new(dir, "127.0.0.1:0".parse()?);
    let running = minik8s_apiserver::start(config, shutdown.clone()).await?;
    println!("{}", running.kubeconfig.display());
    std::io::stdout().flush()?;
    shutdown.cancelled().await;
    Ok(())
}

pub struct ChildProcess {
    child: Child,
}

impl ChildProcess {
    pub fn spawn(
        args: &[&str],
    ) -> anyhow::Result<(ChildProcess, BufReader<std::process::ChildStdout>)> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok((ChildProcess { child }, stdout))
    }

    /// (VmHWM, VmRSS) in KiB from /proc/<pid>/status.
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // Closing stdin asks the child to stop; kill it if it does not within 10 s.
        drop(self.child.stdin.take());
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn client_for(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}
