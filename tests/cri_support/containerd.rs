//! containerd as the reference CRI implementation, started with its own root, state, socket,
//! CNI conf dir (a bridge conflist on its own bridge and subnet) and a busybox-based sandbox
//! ("pause") image imported with `ctr`: used by the compatibility test and the benchmark.
//! Dropping it stops containerd, removes its pods and deletes its bridge and cgroups.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CONTAINERD: &str = "/usr/bin/containerd";
pub const PAUSE_IMAGE: &str = "docker.io/library/minik8s-pause:test";

pub struct Containerd {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub bridge: String,
    child: Child,
}

/// Why containerd cannot be used here, or `None` when it can.
pub fn unavailable() -> Option<String> {
    if !Path::new(CONTAINERD).exists() {
        return Some(format!("{CONTAINERD} is not installed"));
    }
    if !Path::new("/usr/bin/containerd-shim-runc-v2").exists() {
        return Some("containerd-shim-runc-v2 is not installed".into());
    }
    None
}

impl Containerd {
    /// Starts containerd in `dir` with pods on `subnet` behind `bridge`, the busybox and pause
    /// images imported from `busybox_tar` / built here.
    pub fn start(dir: &Path, bridge: &str, subnet: &str, busybox_tar: &Path) -> Containerd {
        let socket = dir.join("containerd.sock");
        let net_d = dir.join("net.d");
        std::fs::create_dir_all(&net_d).unwrap();
        let conflist = format!(
            r#"{{"cniVersion": "1.0.0", "name": "ctrd-{bridge}", "plugins": [
  {{"type": "bridge", "bridge": "{bridge}", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{subnet}"}}]], "routes": [{{"dst": "0.0.0.0/0"}}],
             "dataDir": "{ipam}"}}}},
  {{"type": "portmap", "capabilities": {{"portMappings": true}}}}]}}"#,
            ipam = dir.join("ipam").display()
        );
        std::fs::write(net_d.join("10-test.conflist"), conflist).unwrap();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.introspection"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{net_d}"
"#,
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = socket.display(),
            pause = PAUSE_IMAGE,
            net_d = net_d.display(),
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new(CONTAINERD)
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            dir: dir.into(),
            socket,
            bridge: bridge.into(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !minik8s_runtime::cri::accepting(&c.socket) {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let pause_tar = dir.join("pause.tar");
        let mut pause = minik8s_runtime::image::testimage::busybox_image().unwrap();
        pause.entrypoint = vec!["sleep".into(), "2147483647".into()];
        pause.cmd = Vec::new();
        pause.write_oci_archive(&pause_tar, PAUSE_IMAGE).unwrap();
        c.import(&pause_tar);
        c.import(busybox_tar);
        c
    }

    fn import(&self, tar: &Path) {
        let out = Command::new("ctr")
            .arg("-a")
            .arg(&self.socket)
            .args(["-n", "k8s.io", "images", "import"])
            .arg(tar)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ctr images import {}: {}",
            tar.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// Stops containerd (its pods must have been removed through CRI first, which ends their
    /// shims), unmounts what it left under its dir and deletes the bridge.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Unmount whatever containerd left mounted under its root (overlay snapshots, shm).
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
            let prefix = self.dir.display().to_string();
            let mut points: Vec<String> = mounts
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|p| p.starts_with(&prefix))
                .map(String::from)
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = Command::new("umount").arg("-l").arg(&p).status();
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}
