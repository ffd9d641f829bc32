//! Shared fixtures of the `cri_*` end-to-end tests: a CRI server started in-process on a temp
//! socket and root, with its own cgroup parent, CNI network, bridge and /24 subnet, a real CRI
//! client over the socket, and a guard that removes every sandbox, container, mount, bridge and
//! cgroup the test made (also when it fails).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use minik8s_runtime::cri::k8s_cri::v1 as cri;
use minik8s_runtime::cri::k8s_cri::v1::image_service_client::ImageServiceClient;
use minik8s_runtime::cri::k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use minik8s_runtime::cri::tonic::transport::Channel;
use minik8s_runtime::cri::{Args, Cri, OciRuntimeKind};

pub mod containerd;

pub const BIN: &str = env!("CARGO_BIN_EXE_minik8s");
pub const BUSYBOX: &str = "docker.io/library/busybox:latest";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A number unique across this process's tests, mixed with the pid to spread test binaries.
pub fn unique_number() -> usize {
    std::process::id() as usize * 7 + COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// One test's runtime.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub args: Args,
    pub cri: Option<Arc<Cri>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Env {
    pub async fn start(oci: OciRuntimeKind) -> Env {
        Env::start_with(oci, |_| {}).await
    }

    /// Like [`Env::start`], with `configure` applied to the flags first.
    pub async fn start_with(oci: OciRuntimeKind, configure: impl FnOnce(&mut Args)) -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("cri-test")
            .tempdir()
            .unwrap();
        let n = unique_number();
        let mut args = Args::new(tmp.path().join("cri.sock"), tmp.path().join("root"));
        args.oci_runtime = oci;
        args.cgroup_parent = format!("minik8s-cri-test-{n}");
        args.cni_network = format!("cri-test-{n}");
        args.cni_bridge = format!("mk8t{:x}", n % 0xfffff);
        // A /24 of 10.88.0.0/16 per test; 10.88.0.0/24 is left to a default runtime.
        args.pod_cidr = format!("10.88.{}.0/24", 1 + n % 250);
        args.shim_binary = Some(BIN.into());
        args.images_dir = Some(tmp.path().join("images"));
        configure(&mut args);
        let mut env = Env {
            tmp,
            args,
            cri: None,
            stop: None,
            server: None,
        };
        env.serve().await;
        env
    }

    /// (Re)starts the in-process server on the same socket and root.
    pub async fn serve(&mut self) {
        let args = self.args.clone();
        let cri = tokio::task::spawn_blocking(move || {
            let images =
                minik8s_runtime::cri::images::open_store(&args).expect("open the image store");
            Cri::open(args, images).expect("open cri")
        })
        .await
        .unwrap();
        let cri = Arc::new(cri);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let socket = self.args.socket.clone();
        let server_cri = cri.clone();
        self.server = Some(tokio::spawn(async move {
            minik8s_runtime::cri::serve(server_cri, &socket, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        }));
        self.stop = Some(tx);
        self.cri = Some(cri);
        for _ in 0..200 {
            if minik8s_runtime::cri::accepting(&self.args.socket) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the CRI socket never appeared");
    }

    /// Stops the server and forgets its state, as a runtime restart does.
    pub async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.unwrap();
        }
        self.cri = None;
    }

    pub async fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel().await)
    }

    pub async fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel().await)
    }

    async fn channel(&self) -> Channel {
        minik8s_runtime::cri::connect(&self.args.socket)
            .await
            .expect("connect to the CRI socket")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.tmp.path().join("logs")
    }

    /// Imports the busybox test image: an OCI-layout tarball in `--images-dir`, imported by a
    /// restart of the runtime (the air-gapped path), then checked through ImageStatus.
    pub async fn import_busybox(&mut self) {
        let dir = self.args.images_dir.clone().unwrap();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).unwrap();
            minik8s_runtime::image::testimage::build_busybox_oci_tar(
                &dir.join("busybox.tar"),
                BUSYBOX,
            )
            .expect("build the busybox tarball");
        })
        .await
        .unwrap();
        self.shutdown().await;
        self.serve().await;
        let status = self
            .images()
            .await
            .image_status(cri::ImageStatusRequest {
                image: Some(cri::ImageSpec {
                    image: "busybox".into(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner();
        let image = status.image.expect("busybox imported from --images-dir");
        assert!(image.repo_tags.contains(&BUSYBOX.to_string()), "{image:?}");
    }

    /// Removes everything the test made; also run on drop.
    pub fn cleanup(&mut self) {
        let cri = match self.cri.clone() {
            Some(c) => c,
            None => {
                let args = self.args.clone();
                let Ok(images) = minik8s_runtime::cri::images::open_store(&args) else {
                    return;
                };
                match Cri::open(args, images) {
                    Ok(c) => Arc::new(c),
                    Err(_) => return,
                }
            }
        };
        for s in cri.list_pod_sandbox(None) {
            if let Err(e) = cri.remove_pod_sandbox(&s.id) {
                eprintln!("cleanup: remove sandbox {}: {e}", s.id);
            }
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.args.cni_bridge])
            .stderr(std::process::Stdio::null())
            .status();
        if let Ok(layout) = minik8s_runtime::cgroups::Layout::detect() {
            let cg = minik8s_runtime::cgroups::Cgroup::open(&layout, &self.args.cgroup_parent);
            if cg.exists() {
                let _ = cg.remove();
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.cleanup();
    }
}

pub fn sandbox_config(env: &Env, name: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}-{}", unique_number()),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: env.log_dir().join(name).display().to_string(),
        dns_config: Some(cri::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["default.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        }),
        labels: [("app".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

pub fn container_config(name: &str, command: &[&str]) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: BUSYBOX.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        labels: [("name".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

/// RunPodSandbox of [`sandbox_config`] named `name`: the pod's id and config.
pub async fn run_pod(
    env: &Env,
    rt: &mut RuntimeServiceClient<Channel>,
    name: &str,
) -> (String, cri::PodSandboxConfig) {
    let config = sandbox_config(env, name);
    let id = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    (id, config)
}

/// CreateContainer + StartContainer in `pod`: the container's id.
pub async fn create_start(
    rt: &mut RuntimeServiceClient<Channel>,
    pod: &str,
    sandbox: &cri::PodSandboxConfig,
    config: cri::ContainerConfig,
) -> String {
    let id = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(sandbox.clone()),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    rt.start_container(cri::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .expect("StartContainer");
    id
}

/// Polls ContainerStatus until the container is exited (or panics after `secs`).
pub async fn wait_exited(
    rt: &mut RuntimeServiceClient<Channel>,
    id: &str,
    secs: u64,
) -> cri::ContainerStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let status = rt
            .container_status(cri::ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        if status.state == cri::ContainerState::ContainerExited as i32 {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "container {id} did not exit within {secs}s: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref()).unwrap_or_default()
}
