//! The nodelet as a child process, so a test can SIGKILL it as a crash or an OOM kill of the
//! node agent would. The child is this test binary re-executed as `nodelet FLAGS`: the flags,
//! the config and `minik8s_nodelet::run` of `minik8s nodelet`, stopped by SIGTERM as that
//! command is.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;

/// The first argument that makes this binary a nodelet.
pub const ARG: &str = "nodelet";

/// `minik8s nodelet`'s flags.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: minik8s_nodelet::Args,
}

/// The nodelet's `main` for the re-executed binary.
pub fn main(args: &[OsString]) -> i32 {
    let argv = std::iter::once(OsString::from(ARG)).chain(args.iter().cloned());
    let cli = Cli::parse_from(argv);
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let config = minik8s_nodelet::Config::try_from(cli.args).expect("valid nodelet flags");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = rt.block_on(async {
        let shutdown = CancellationToken::new();
        let on_term = shutdown.clone();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::spawn(async move {
            term.recv().await;
            on_term.cancel();
        });
        minik8s_nodelet::run(config, shutdown).await
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nodelet: {e}");
            1
        }
    }
}

/// A running nodelet process; SIGKILLed and reaped when dropped.
pub struct NodeletProcess {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

impl NodeletProcess {
    /// Starts a nodelet for `config` (its node IP, port and root dir included), its stderr
    /// in `log`.
    pub fn spawn(config: &minik8s_nodelet::Config, log: &Path) -> NodeletProcess {
        let err = std::fs::File::create(log).expect("create the nodelet log");
        let endpoint = format!("unix://{}", config.runtime_endpoint.display());
        let child = Command::new(std::env::current_exe().unwrap())
            .arg(ARG)
            .arg("--kubeconfig")
            .arg(&config.kubeconfig)
            .args(["--node-name", &config.node_name])
            .args(["--runtime-endpoint", &endpoint])
            .args(["--node-ip", &config.node_ip.to_string()])
            .args(["--port", &config.port.to_string()])
            .args(["--status-update", "2s"])
            .arg("--root-dir")
            .arg(&config.root_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start the nodelet process");
        NodeletProcess {
            child: Some(child),
            port: config.port,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL, as the kernel's OOM killer or a crash ends it: no shutdown code runs.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the child this test spawned and has not reaped.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let st = c.wait().expect("reap the nodelet");
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&st),
                Some(libc::SIGKILL),
                "the nodelet died of SIGKILL"
            );
        }
    }

    /// SIGTERM and waits (10 s at most) for a clean exit.
    pub async fn stop(mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the child this test spawned and has not reaped.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        for _ in 0..200 {
            if let Some(st) = c.try_wait().unwrap() {
                assert!(
                    st.success(),
                    "the nodelet exited with {st}; log {:?}",
                    self.log
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = c.kill();
        let _ = c.wait();
        panic!(
            "the nodelet did not stop within 10 s of SIGTERM; log {:?}",
            self.log
        );
    }

    /// The end of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for NodeletProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port free on loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
