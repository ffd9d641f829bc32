//! The CRI ImageService over the socket: pull from a real `docker-registry` on 127.0.0.1
//! (plain HTTP via `--insecure-registry`), status, list, run a container from the pulled image,
//! remove; pull failures name the image and the registry.

mod cri_support;

use std::time::Duration;

use cri_support::*;
use minik8s_runtime::cri::k8s_cri::v1 as cri;
use minik8s_runtime::cri::OciRuntimeKind;
use minik8s_runtime::image::test_registry::TestRegistry;

fn spec(image: &str) -> Option<cri::ImageSpec> {
    Some(cri::ImageSpec {
        image: image.into(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_status_run_remove() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let tmp = tempfile::tempdir().unwrap();
        let tar = tmp.path().join("busybox.tar");
        minik8s_runtime::image::testimage::build_busybox_oci_tar(&tar, BUSYBOX).unwrap();
        let registry = TestRegistry::start().expect("start docker-registry");
        registry
            .push(&tar, "test/busybox:1", &[])
            .expect("push busybox");
        let addr = registry.addr.clone();
        let env = Env::start_with(OciRuntimeKind::Builtin, |a| {
            a.insecure_registry = vec![addr.clone()]
        })
        .await;
        let mut images = env.images().await;
        let reference = format!("{addr}/test/busybox:1");

        let pulled = images
            .pull_image(cri::PullImageRequest {
                image: spec(&reference),
                ..Default::default()
            })
            .await
            .expect("PullImage")
            .into_inner()
            .image_ref;
        assert!(pulled.starts_with("sha256:"), "{pulled}");
        let status = images
            .image_status(cri::ImageStatusRequest {
                image: spec(&reference),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .image
            .expect("pulled image has a status");
        assert_eq!(status.id, pulled);
        assert!(status.repo_tags.contains(&reference), "{status:?}");
        assert!(status.size > 0);
        let list = images
            .list_images(cri::ListImagesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .images;
        assert!(list.iter().any(|i| i.id == pulled), "{list:?}");
        let fs = images
            .image_fs_info(cri::ImageFsInfoRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(fs.image_filesystems[0].used_bytes.as_ref().unwrap().value > 0);

        // A container from the pulled image.
        let mut rt = env.runtime().await;
        let sandbox = sandbox_config(&env, "pulled");
        let pod = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(sandbox.clone()),
                runtime_handler: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .pod_sandbox_id;
        let mut config = container_config("hello", &["echo", "pulled"]);
        config.image = spec(&reference);
        let id = rt
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(config),
                sandbox_config: Some(sandbox),
            })
            .await
            .unwrap()
            .into_inner()
            .container_id;
        rt.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
        let st = wait_exited(&mut rt, &id, 10).await;
        assert_eq!((st.exit_code, st.image_ref.as_str()), (0, pulled.as_str()));
        assert!(read(&st.log_path).contains(" stdout F pulled"));
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await
        .unwrap();

        images
            .remove_image(cri::RemoveImageRequest {
                image: spec(&reference),
            })
            .await
            .expect("RemoveImage");
        let gone = images
            .image_status(cri::ImageStatusRequest {
                image: spec(&reference),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .image;
        assert!(gone.is_none(), "{gone:?}");
        // Idempotent, as the CRI requires.
        images
            .remove_image(cri::RemoveImageRequest {
                image: spec(&reference),
            })
            .await
            .expect("second RemoveImage");

        // Failures say which image and which registry.
        let missing = format!("{addr}/test/nothing:1");
        let err = images
            .pull_image(cri::PullImageRequest {
                image: spec(&missing),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(err.message().contains("test/nothing"), "{err:?}");
        let unreachable = "127.0.0.1:1/test/busybox:1";
        let err = images
            .pull_image(cri::PullImageRequest {
                image: spec(unreachable),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(err.message().contains("127.0.0.1:1"), "{err:?}");
        let err = env
            .runtime()
            .await
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: "nope".into(),
                config: Some(container_config("x", &["true"])),
                sandbox_config: None,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), minik8s_runtime::cri::tonic::Code::NotFound);
    })
    .await
    .expect("image test timed out: a pull or CRI call hung");
}
