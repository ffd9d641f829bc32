//! A real API server started in-process on 127.0.0.1:0 with a temp data dir, and a runner
//! for the real `minictl` binary pointed at its admin kubeconfig.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How long one minictl invocation may take before the test calls it hung.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Server {
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<Result<(), minik8s_apiserver::Error>>>,
}

impl Server {
    pub fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let shutdown = CancellationToken::new();
        let config =
            minik8s_apiserver::Config::new(dir.path().join("data"), "127.0.0.1:0".parse().unwrap());
        let running = rt
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(30),
                    minik8s_apiserver::start(config, shutdown.clone()),
                )
                .await
            })
            .expect("API server did not start within 30s (hang in start)")
            .expect("API server starts");
        Server {
            kubeconfig: running.kubeconfig,
            dir,
            rt,
            shutdown,
            handle: Some(running.handle),
        }
    }

    /// Runs minictl with `--kubeconfig` and the given stdin; fails the test if it hangs.
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_minictl"));
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("minictl starts");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        Run::from(wait(child, args))
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_stdin(args, "")
    }

    /// Like `run`, asserting exit code 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "minictl {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
            r.stdout, r.stderr
        );
        r
    }

    /// Starts minictl in the background (for `-w` and `rollout status`).
    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_minictl"))
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("minictl starts")
    }

    /// A kube client for the test's own setup (status writes, events).
    pub fn client(&self) -> kube::Client {
        let path = self.kubeconfig.clone();
        self.rt.block_on(async move {
            let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap();
            kube::Client::try_from(cfg).unwrap()
        })
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), h).await });
        }
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

fn wait(mut child: Child, args: &[&str]) -> Output {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "minictl {args:?} hung for {COMMAND_TIMEOUT:?}:\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a child's stdout lines on a thread; `expect_line` waits for a matching one.
pub struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    pub fn new(child: &mut Child) -> Lines {
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    pub fn expect_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(_) => panic!("no line {what} within 30s; saw:\n{}", self.seen.join("\n")),
            }
        }
    }
}

/// The workspace's manifests/ directory.
pub fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// Waits for `child` to exit, failing with `what` after `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("polling the child") {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
