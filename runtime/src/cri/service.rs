//! The gRPC services: thin wrappers that run each call's blocking work (syscalls, plugin and
//! shim execs) on tokio's blocking pool and map errors to statuses.

use std::sync::Arc;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use tonic::{Request, Response, Status};

use super::images::ImageInfo;
use super::{now_ns, Cri, CriError};

/// Both CRI services over one [`Cri`].
#[derive(Clone)]
pub struct Service(pub Arc<Cri>);

type Reply<T> = Result<Response<T>, Status>;

impl Service {
    async fn blocking<T, F>(&self, f: F) -> Reply<T>
    where
        T: Send + 'static,
        F: FnOnce(&Cri) -> Result<T, CriError> + Send + 'static,
    {
        let cri = self.0.clone();
        match tokio::task::spawn_blocking(move || f(&cri)).await {
            Ok(Ok(v)) => Ok(Response::new(v)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cri call failed");
                Err(e.into())
            }
            Err(e) => Err(CriError::Task(e.to_string()).into()),
        }
    }
}

fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is not implemented by the minik8s runtime (streaming and checkpoint calls are not supported)"
    ))
}

#[tonic::async_trait]
impl RuntimeService for Service {
    async fn version(&self, _: Request<cri::VersionRequest>) -> Reply<cri::VersionResponse> {
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "minik8s".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        r: Request<cri::RunPodSandboxRequest>,
    ) -> Reply<cri::RunPodSandboxResponse> {
        let req = r.into_inner();
        self.blocking(move |c| {
            c.run_pod_sandbox(req)
                .map(|pod_sandbox_id| cri::RunPodSandboxResponse { pod_sandbox_id })
        })
        .await
    }

    async fn stop_pod_sandbox(
        &self,
        r: Request<cri::StopPodSandboxRequest>,
    ) -> Reply<cri::StopPodSandboxResponse> {
        let id = r.into_inner().pod_sandbox_id;
        self.blocking(move |c| {
            c.stop_pod_sandbox(&id)
                .map(|()| cri::StopPodSandboxResponse {})
        })
        .await
    }

    async fn remove_pod_sandbox(
        &self,
        r: Request<cri::RemovePodSandboxRequest>,
    ) -> Reply<cri::RemovePodSandboxResponse> {
        let id = r.into_inner().pod_sandbox_id;
        self.blocking(move |c| {
            c.remove_pod_sandbox(&id)
                .map(|()| cri::RemovePodSandboxResponse {})
        })
        .await
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<cri::PodSandboxStatusRequest>,
    ) -> Reply<cri::PodSandboxStatusResponse> {
        let req = r.into_inner();
        self.blocking(move |c| {
            let status = c.pod_sandbox_status(&req.pod_sandbox_id)?;
            let containers_statuses = if req.verbose {
                c.containers_of(&status.id)
                    .iter()
                    .filter_map(|id| c.container_status(id).ok())
                    .collect()
            } else {
                Vec::new()
            };
            Ok(cri::PodSandboxStatusResponse {
                status: Some(status),
                info: Default::default(),
                containers_statuses,
                timestamp: now_ns(),
            })
        })
        .await
    }

    async fn list_pod_sandbox(
        &self,
        r: Request<cri::ListPodSandboxRequest>,
    ) -> Reply<cri::ListPodSandboxResponse> {
        let filter = r.into_inner().filter;
        self.blocking(move |c| {
            Ok(cri::ListPodSandboxResponse {
                items: c.list_pod_sandbox(filter),
            })
        })
        .await
    }

    async fn create_container(
        &self,
        r: Request<cri::CreateContainerRequest>,
    ) -> Reply<cri::CreateContainerResponse> {
        let req = r.into_inner();
        self.blocking(move |c| {
            c.create_container(req)
                .map(|container_id| cri::CreateContainerResponse { container_id })
        })
        .await
    }

    async fn start_container(
        &self,
        r: Request<cri::StartContainerRequest>,
    ) -> Reply<cri::StartContainerResponse> {
        let id = r.into_inner().container_id;
        self.blocking(move |c| {
            c.start_container(&id)
                .map(|()| cri::StartContainerResponse {})
        })
        .await
    }

    async fn stop_container(
        &self,
        r: Request<cri::StopContainerRequest>,
    ) -> Reply<cri::StopContainerResponse> {
        let req = r.into_inner();
        self.blocking(move |c| {
            c.stop_container(&req.container_id, req.timeout)
                .map(|()| cri::StopContainerResponse {})
        })
        .await
    }

    async fn remove_container(
        &self,
        r: Request<cri::RemoveContainerRequest>,
    ) -> Reply<cri::RemoveContainerResponse> {
        let id = r.into_inner().container_id;
        self.blocking(move |c| {
            c.remove_container(&id)
                .map(|()| cri::RemoveContainerResponse {})
        })
        .await
    }

    async fn list_containers(
        &self,
        r: Request<cri::ListContainersRequest>,
    ) -> Reply<cri::ListContainersResponse> {
        let filter = r.into_inner().filter;
        self.blocking(move |c| {
            c.list_containers(filter)
                .map(|containers| cri::ListContainersResponse { containers })
        })
        .await
    }

    async fn container_status(
        &self,
        r: Request<cri::ContainerStatusRequest>,
    ) -> Reply<cri::ContainerStatusResponse> {
        let id = r.into_inner().container_id;
        self.blocking(move |c| {
            c.container_status(&id)
                .map(|s| cri::ContainerStatusResponse {
                    status: Some(s),
                    info: Default::default(),
                })
        })
        .await
    }

    async fn update_container_resources(
        &self,
        r: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Reply<cri::UpdateContainerResourcesResponse> {
        let req = r.into_inner();
        self.blocking(move |c| {
            c.update_container_resources(&req.container_id, req.linux)
                .map(|()| cri::UpdateContainerResourcesResponse {})
        })
        .await
    }

    async fn reopen_container_log(
        &self,
        r: Request<cri::ReopenContainerLogRequest>,
    ) -> Reply<cri::ReopenContainerLogResponse> {
        let id = r.into_inner().container_id;
        self.blocking(move |c| {
            c.reopen_container_log(&id)
                .map(|()| cri::ReopenContainerLogResponse {})
        })
        .await
    }

    async fn exec_sync(&self, r: Request<cri::ExecSyncRequest>) -> Reply<cri::ExecSyncResponse> {
        let req = r.into_inner();
        self.blocking(move |c| c.exec_sync(req)).await
    }

    async fn exec(&self, _: Request<cri::ExecRequest>) -> Reply<cri::ExecResponse> {
        Err(unimplemented("Exec (streaming)"))
    }

    async fn attach(&self, _: Request<cri::AttachRequest>) -> Reply<cri::AttachResponse> {
        Err(unimplemented("Attach (streaming)"))
    }

    async fn port_forward(
        &self,
        _: Request<cri::PortForwardRequest>,
    ) -> Reply<cri::PortForwardResponse> {
        Err(unimplemented("PortForward (streaming)"))
    }

    async fn container_stats(
        &self,
        r: Request<cri::ContainerStatsRequest>,
    ) -> Reply<cri::ContainerStatsResponse> {
        let id = r.into_inner().container_id;
        self.blocking(move |c| {
            c.container_stats(&id)
                .map(|s| cri::ContainerStatsResponse { stats: Some(s) })
        })
        .await
    }

    async fn list_container_stats(
        &self,
        r: Request<cri::ListContainerStatsRequest>,
    ) -> Reply<cri::ListContainerStatsResponse> {
        let filter = r.into_inner().filter;
        self.blocking(move |c| {
            c.list_container_stats(filter)
                .map(|stats| cri::ListContainerStatsResponse { stats })
        })
        .await
    }

    async fn pod_sandbox_stats(
        &self,
        _: Request<cri::PodSandboxStatsRequest>,
    ) -> Reply<cri::PodSandboxStatsResponse> {
        Err(unimplemented("PodSandboxStats"))
    }

    async fn list_pod_sandbox_stats(
        &self,
        _: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Reply<cri::ListPodSandboxStatsResponse> {
        Err(unimplemented("ListPodSandboxStats"))
    }

    async fn update_runtime_config(
        &self,
        _: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Reply<cri::UpdateRuntimeConfigResponse> {
        // The kubelet sends the node's pod CIDR here; our CNI config carries its own subnet.
        Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
    }

    async fn status(&self, _: Request<cri::StatusRequest>) -> Reply<cri::StatusResponse> {
        let cri = self.0.clone();
        let network_ok = cri.args.cni_bin_dir.join("bridge").exists();
        let condition =
            |kind: &str, ok: bool, reason: &str, message: String| cri::RuntimeCondition {
                r#type: kind.into(),
                status: ok,
                reason: if ok { String::new() } else { reason.into() },
                message: if ok { String::new() } else { message },
            };
        Ok(Response::new(cri::StatusResponse {
            status: Some(cri::RuntimeStatus {
                conditions: vec![
                    condition("RuntimeReady", true, "", String::new()),
                    condition(
                        "NetworkReady",
                        network_ok,
                        "NetworkPluginNotReady",
                        format!("no CNI plugins in {}", cri.args.cni_bin_dir.display()),
                    ),
                ],
            }),
            ..Default::default()
        }))
    }

    async fn checkpoint_container(
        &self,
        _: Request<cri::CheckpointContainerRequest>,
    ) -> Reply<cri::CheckpointContainerResponse> {
        Err(unimplemented("CheckpointContainer"))
    }

    type GetContainerEventsStream =
        futures::stream::Empty<Result<cri::ContainerEventResponse, Status>>;

    async fn get_container_events(
        &self,
        _: Request<cri::GetEventsRequest>,
    ) -> Reply<Self::GetContainerEventsStream> {
        Err(unimplemented("GetContainerEvents"))
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Reply<cri::ListMetricDescriptorsResponse> {
        Ok(Response::new(cri::ListMetricDescriptorsResponse::default()))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Reply<cri::ListPodSandboxMetricsResponse> {
        Ok(Response::new(cri::ListPodSandboxMetricsResponse::default()))
    }

    async fn runtime_config(
        &self,
        _: Request<cri::RuntimeConfigRequest>,
    ) -> Reply<cri::RuntimeConfigResponse> {
        Ok(Response::new(cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration {
                cgroup_driver: cri::CgroupDriver::Cgroupfs as i32,
            }),
        }))
    }
}

fn image_message(i: ImageInfo) -> cri::Image {
    let uid = i.user.split(':').next().and_then(|u| u.parse::<i64>().ok());
    cri::Image {
        id: i.id.clone(),
        repo_tags: i.repo_tags,
        repo_digests: i.repo_digests,
        size: i.size,
        uid: uid.map(|value| cri::Int64Value { value }),
        username: if uid.is_none() {
            i.user.split(':').next().unwrap_or("").into()
        } else {
            String::new()
        },
        spec: Some(cri::ImageSpec {
            image: i.id,
            ..Default::default()
        }),
        pinned: false,
    }
}

#[tonic::async_trait]
impl ImageService for Service {
    async fn list_images(
        &self,
        _: Request<cri::ListImagesRequest>,
    ) -> Reply<cri::ListImagesResponse> {
        self.blocking(|c| {
            Ok(cri::ListImagesResponse {
                images: c.images.list()?.into_iter().map(image_message).collect(),
            })
        })
        .await
    }

    async fn image_status(
        &self,
        r: Request<cri::ImageStatusRequest>,
    ) -> Reply<cri::ImageStatusResponse> {
        let image = r.into_inner().image.map(|i| i.image).unwrap_or_default();
        self.blocking(move |c| {
            Ok(cri::ImageStatusResponse {
                image: c.images.resolve(&image)?.map(image_message),
                info: Default::default(),
            })
        })
        .await
    }

    async fn pull_image(&self, r: Request<cri::PullImageRequest>) -> Reply<cri::PullImageResponse> {
        let req = r.into_inner();
        let image = req.image.map(|i| i.image).unwrap_or_default();
        let auth = req
            .auth
            .filter(|a| !a.username.is_empty())
            .map(|a| (a.username, a.password));
        self.blocking(move |c| {
            if image.is_empty() {
                return Err(CriError::InvalidArgument(
                    "PullImage without an image".into(),
                ));
            }
            c.images
                .pull(&image, auth)
                .map(|i| cri::PullImageResponse { image_ref: i.id })
        })
        .await
    }

    async fn remove_image(
        &self,
        r: Request<cri::RemoveImageRequest>,
    ) -> Reply<cri::RemoveImageResponse> {
        let image = r.into_inner().image.map(|i| i.image).unwrap_or_default();
        self.blocking(move |c| match c.images.remove(&image) {
            Ok(()) | Err(CriError::ImageNotFound(_)) => Ok(cri::RemoveImageResponse {}),
            Err(e) => Err(e),
        })
        .await
    }

    async fn image_fs_info(
        &self,
        _: Request<cri::ImageFsInfoRequest>,
    ) -> Reply<cri::ImageFsInfoResponse> {
        self.blocking(|c| {
            let root = c.images.root();
            let used = super::stats::dir_usage(&root);
            Ok(cri::ImageFsInfoResponse {
                image_filesystems: vec![cri::FilesystemUsage {
                    timestamp: now_ns(),
                    fs_id: Some(cri::FilesystemIdentifier {
                        mountpoint: root.display().to_string(),
                    }),
                    used_bytes: Some(cri::UInt64Value { value: used }),
                    inodes_used: None,
                }],
                container_filesystems: Vec::new(),
            })
        })
        .await
    }
}
