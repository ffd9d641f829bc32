//! The CRI client: RuntimeService and ImageService over the runtime's unix socket.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::Error;

pub use k8s_cri::v1 as types;

/// Labels the nodelet sets on every sandbox and container, so a restarted nodelet can adopt
/// them (the kubelet uses the same io.kubernetes.* keys).
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const LABEL_MANAGED: &str = "minik8s.io/nodelet";
/// The pod's terminationGracePeriodSeconds, kept on each container (as the kubelet does) so a
/// container whose pod object is gone is still stopped with its own grace period.
pub const ANNOTATION_GRACE: &str = "io.kubernetes.pod.terminationGracePeriod";

/// A cheap-to-clone CRI client.
#[derive(Clone)]
pub struct Cri {
    rt: RuntimeServiceClient<Channel>,
    img: ImageServiceClient<Channel>,
}

fn cri_err(call: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Cri {
        call,
        status: Box::new(status),
    }
}

impl Cri {
    pub async fn connect(socket: &Path) -> Result<Cri, Error> {
        let path: PathBuf = socket.to_path_buf();
        let dial = path.clone();
        // The URI is required by tonic but unused: the connector dials the socket.
        let channel = Endpoint::from_static("http://[::]:50051")
            .connect_with_connector(tower::service_fn(move |_| {
                let p = dial.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(p).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                }
            }))
            .await
            .map_err(|source| Error::Connect {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Cri {
            rt: RuntimeServiceClient::new(channel.clone()),
            img: ImageServiceClient::new(channel),
        })
    }

    /// Connects once the runtime answers Version, retrying until then (or until `shutdown`,
    /// then `None`): like the kubelet, a nodelet started beside its runtime waits for it
    /// rather than failing, since a runtime's socket file exists before it accepts (bind(2)
    /// comes before listen(2)) and a runtime may still be importing its images dir.
    pub async fn connect_when_ready(
        socket: &Path,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<Option<(Cri, String)>, Error> {
        // 100 ms doubling to 2 s: fast when the runtime is a moment behind, quiet when down.
        let mut delay = std::time::Duration::from_millis(100);
        let mut attempts = 0u32;
        loop {
            let attempt = async {
                let mut cri = Cri::connect(socket).await?;
                let version = cri.version().await?;
                Ok::<_, Error>((cri, version))
            };
            match attempt.await {
                Ok(ready) => return Ok(Some(ready)),
                Err(e) => {
                    attempts += 1;
                    // The first seconds are the expected start-up race; after that an
                    // operator should know the runtime is not there.
                    if attempts == 10 {
                        tracing::warn!(error = %e, "waiting for the CRI runtime");
                    } else {
                        tracing::debug!(error = %e, "CRI runtime not ready yet");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(std::time::Duration::from_secs(2));
        }
    }

    /// `<runtime_name>://<runtime_version>`, as Node status reports it.
    pub async fn version(&mut self) -> Result<String, Error> {
        let v = self
            .rt
            .version(api::VersionRequest::default())
            .await
            .map_err(cri_err("Version"))?
            .into_inner();
        Ok(format!("{}://{}", v.runtime_name, v.runtime_version))
    }

    pub async fn sandboxes(&mut self, uid: Option<&str>) -> Result<Vec<api::PodSandbox>, Error> {
        let mut labels = HashMap::from([(LABEL_MANAGED.to_string(), "true".to_string())]);
        if let Some(uid) = uid {
            labels.insert(LABEL_POD_UID.into(), uid.into());
        }
        let filter = api::PodSandboxFilter {
            label_selector: labels,
            ..Default::default()
        };
        Ok(self
            .rt
            .list_pod_sandbox(api::ListPodSandboxRequest {
                filter: Some(filter),
            })
            .await
            .map_err(cri_err("ListPodSandbox"))?
            .into_inner()
            .items)
    }

    pub async fn containers(&mut self, uid: Option<&str>) -> Result<Vec<api::Container>, Error> {
        let mut labels = HashMap::from([(LABEL_MANAGED.to_string(), "true".to_string())]);
        if let Some(uid) = uid {
            labels.insert(LABEL_POD_UID.into(), uid.into());
        }
        let filter = api::ContainerFilter {
            label_selector: labels,
            ..Default::default()
        };
        Ok(self
            .rt
            .list_containers(api::ListContainersRequest {
                filter: Some(filter),
            })
            .await
            .map_err(cri_err("ListContainers"))?
            .into_inner()
            .containers)
    }

    pub async fn sandbox_status(&mut self, id: &str) -> Result<api::PodSandboxStatus, Error> {
        self.rt
            .pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: false,
            })
            .await
            .map_err(cri_err("PodSandboxStatus"))?
            .into_inner()
            .status
            .ok_or_else(|| cri_err("PodSandboxStatus")(tonic::Status::internal("no status")))
    }

    pub async fn container_status(&mut self, id: &str) -> Result<api::ContainerStatus, Error> {
        self.rt
            .container_status(api::ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            })
            .await
            .map_err(cri_err("ContainerStatus"))?
            .into_inner()
            .status
            .ok_or_else(|| cri_err("ContainerStatus")(tonic::Status::internal("no status")))
    }

    pub async fn run_sandbox(&mut self, config: api::PodSandboxConfig) -> Result<String, Error> {
        Ok(self
            .rt
            .run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
            .map_err(cri_err("RunPodSandbox"))?
            .into_inner()
            .pod_sandbox_id)
    }

    pub async fn stop_sandbox(&mut self, id: &str) -> Result<(), Error> {
        self.rt
            .stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await
            .map_err(cri_err("StopPodSandbox"))?;
        Ok(())
    }

    pub async fn remove_sandbox(&mut self, id: &str) -> Result<(), Error> {
        self.rt
            .remove_pod_sandbox(api::RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await
            .map_err(cri_err("RemovePodSandbox"))?;
        Ok(())
    }

    pub async fn create_container(
        &mut self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, Error> {
        Ok(self
            .rt
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.into(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            })
            .await
            .map_err(cri_err("CreateContainer"))?
            .into_inner()
            .container_id)
    }

    pub async fn start_container(&mut self, id: &str) -> Result<(), Error> {
        self.rt
            .start_container(api::StartContainerRequest {
                container_id: id.into(),
            })
            .await
            .map_err(cri_err("StartContainer"))?;
        Ok(())
    }

    pub async fn stop_container(&mut self, id: &str, timeout: i64) -> Result<(), Error> {
        self.rt
            .stop_container(api::StopContainerRequest {
                container_id: id.into(),
                timeout,
            })
            .await
            .map_err(cri_err("StopContainer"))?;
        Ok(())
    }

    pub async fn remove_container(&mut self, id: &str) -> Result<(), Error> {
        self.rt
            .remove_container(api::RemoveContainerRequest {
                container_id: id.into(),
            })
            .await
            .map_err(cri_err("RemoveContainer"))?;
        Ok(())
    }

    /// Runs a command in a container; (exit code, output).
    pub async fn exec_sync(
        &mut self,
        id: &str,
        cmd: Vec<String>,
        timeout: i64,
    ) -> Result<(i32, Vec<u8>), Error> {
        let r = self
            .rt
            .exec_sync(api::ExecSyncRequest {
                container_id: id.into(),
                cmd,
                timeout,
            })
            .await
            .map_err(cri_err("ExecSync"))?
            .into_inner();
        let mut out = r.stdout;
        out.extend(r.stderr);
        Ok((r.exit_code, out))
    }

    /// The image's id if it is present.
    pub async fn image_id(&mut self, image: &str) -> Result<Option<String>, Error> {
        let r = self
            .img
            .image_status(api::ImageStatusRequest {
                image: Some(image_spec(image)),
                verbose: false,
            })
            .await
            .map_err(cri_err("ImageStatus"))?
            .into_inner();
        Ok(r.image.map(|i| i.id))
    }

    pub async fn pull_image(&mut self, image: &str) -> Result<String, Error> {
        Ok(self
            .img
            .pull_image(api::PullImageRequest {
                image: Some(image_spec(image)),
                auth: None,
                sandbox_config: None,
            })
            .await
            .map_err(cri_err("PullImage"))?
            .into_inner()
            .image_ref)
    }
}

pub fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec {
        image: image.into(),
        ..Default::default()
    }
}
