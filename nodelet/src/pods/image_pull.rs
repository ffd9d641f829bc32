//! Image pulls per imagePullPolicy, with the Pulling/Pulled events and the ErrImagePull and
//! ErrImageNeverPull waiting reasons the kubelet reports.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::worker::Worker;
use crate::Error;

impl Worker {
    /// Pulls per imagePullPolicy; the image ref, or None with the container left waiting.
    pub(super) async fn ensure_image(
        &mut self,
        pod: &Pod,
        c: &Container,
    ) -> Result<Option<String>, Error> {
        let image = c.image.clone().unwrap_or_default();
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            let tagged = image.rsplit('/').next().is_some_and(|l| l.contains(':'));
            if !tagged || image.ends_with(":latest") {
                "Always".into()
            } else {
                "IfNotPresent".into()
            }
        });
        let present = self.cri.image_id(&image).await?;
        if let (Some(id), false) = (&present, policy == "Always") {
            return Ok(Some(id.clone()));
        }
        if policy == "Never" {
            let msg = format!("Container image {image:?} is not present with pull policy of Never");
            self.fail(pod, c, "ErrImageNeverPull", msg);
            return Ok(None);
        }
        self.event(
            pod,
            Some(&c.name),
            false,
            "Pulling",
            format!("Pulling image {image:?}"),
        );
        let began = std::time::Instant::now();
        match self.cri.pull_image(&image).await {
            Ok(r) => {
                let msg = format!(
                    "Successfully pulled image {image:?} in {:?}",
                    began.elapsed()
                );
                self.event(pod, Some(&c.name), false, "Pulled", msg);
                Ok(Some(r))
            }
            Err(e) => {
                self.fail(pod, c, "ErrImagePull", e.to_string());
                Ok(None)
            }
        }
    }
}
