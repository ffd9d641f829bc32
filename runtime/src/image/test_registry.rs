//! A real `docker-registry` (Debian's distribution 2.8) on 127.0.0.1 for tests, with images
//! pushed into it by `skopeo`. The process is killed by its PID when the guard drops.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// How long the registry may take to listen before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running registry; dropping it kills the process and removes its storage.
pub struct TestRegistry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts a registry without authentication.
    pub fn start() -> io::Result<TestRegistry> {
        Self::start_with("")
    }

    /// Starts a registry whose config gets `extra_yaml` appended (e.g. an `auth:` section).
    pub fn start_with(extra_yaml: &str) -> io::Result<TestRegistry> {
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{extra_yaml}",
            dir.path().join("storage").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut registry = TestRegistry { child, addr, dir };
        registry.wait_listening()?;
        Ok(registry)
    }

    fn wait_listening(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "docker-registry exited with {status}: {}",
                    self.log()
                )));
            }
            if TcpStream::connect(&self.addr).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::other(format!(
            "docker-registry did not listen on {} within {START_TIMEOUT:?}",
            self.addr
        )))
    }

    /// The registry's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `skopeo copy oci-archive:<archive> docker://<addr>/<repo_tag>` plus `extra` flags
    /// (e.g. `--dest-compress-format zstd`, `--dest-creds u:p`, `--all`).
    pub fn push(&self, archive: &Path, repo_tag: &str, extra: &[&str]) -> io::Result<()> {
        let out = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
            ])
            .args(extra)
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{}/{repo_tag}", self.addr))
            .env("TMPDIR", self.dir.path())
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "skopeo copy to {}/{repo_tag} failed: {}",
                self.addr,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Where the registry keeps its blobs (to check what was pushed).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
