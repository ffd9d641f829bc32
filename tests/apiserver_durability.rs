//! Durability of the real `minik8s apiserver` binary: clients write ConfigMaps over HTTPS
//! (curl, with the server's CA and admin token); the server is killed with SIGKILL while
//! they write; after a restart on the same data dir every write that was acknowledged
//! (201 Created) is there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CURL: &str = "/usr/bin/curl";
const WRITERS: usize = 8;

/// The server process; killed on drop so a failing test leaves nothing running.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path) -> (Server, String) {
    let kubeconfig = dir.join("admin.kubeconfig");
    let _ = std::fs::remove_file(&kubeconfig);
    let child = Command::new(env!("CARGO_BIN_EXE_minik8s"))
        .args(["apiserver", "--data-dir"])
        .arg(dir)
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("minik8s apiserver starts");
    let server = Server { child };
    // The kubeconfig appears once the server is ready; it names the real port.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&kubeconfig) {
            let url = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("server: "))
                .map(|s| s.trim().to_string());
            if let Some(url) = url {
                return (server, url);
            }
        }
        assert!(
            Instant::now() < deadline,
            "apiserver never wrote its kubeconfig"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One curl request; returns the HTTP code (0 when the connection failed).
fn curl(dir: &Path, url: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let token = std::fs::read_to_string(dir.join("admin-token")).unwrap();
    let mut cmd = Command::new(CURL);
    cmd.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(dir.join("ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
        .args(["-X", method]);
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let out = cmd.arg(format!("{url}{path}")).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    if !Path::new(CURL).exists() {
        eprintln!("SKIPPED: {CURL} is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    let (mut server, url) = start_server(&dir);

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (dir, url, acked, stop) = (dir.clone(), url.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let name = format!("w{w}-{i}");
                    let body = format!(
                        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"i":"{i}"}}}}"#
                    );
                    let path = "/api/v1/namespaces/default/configmaps";
                    match curl(&dir, &url, "POST", path, Some(&body)) {
                        (201, _) => acked.lock().unwrap().push(name),
                        // The server is gone: nothing more can be acknowledged.
                        (0, _) => break,
                        (code, body) => panic!("unexpected {code} for {name}: {body}"),
                    }
                }
            })
        })
        .collect();

    // Let writes flow, then SIGKILL the server mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 100 {
        assert!(Instant::now() < deadline, "writers made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.child.kill().expect("SIGKILL the server");
    server.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer thread");
    }
    drop(server);
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 100);

    let (_server, url) = start_server(&dir);
    let (code, list) = curl(
        &dir,
        &url,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        None,
    );
    assert_eq!(code, 200, "{list}");
    let missing: Vec<&String> = acked
        .iter()
        .filter(|name| !list.contains(&format!("\"name\":\"{name}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost after kill -9, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}
