//! Containers: Create/Start/Stop/Remove, ContainerStatus, ListContainers,
//! UpdateContainerResources.

use std::path::PathBuf;
use std::time::Duration;

use k8s_cri::v1 as cri;
use nix::sys::signal::Signal;

use super::backend::Live;
use super::pods::labels_match;
use super::spec::{self, SpecInput};
use super::store::{self, ContainerRecord, ExitInfo};
use super::{new_id, now_ns, Cri, CriError};
use crate::snapshot;

impl Cri {
    pub fn create_container(&self, req: cri::CreateContainerRequest) -> Result<String, CriError> {
        let sandbox = self.sandbox(&req.pod_sandbox_id)?;
        if !sandbox.ready {
            return Err(CriError::WrongState(format!(
                "pod sandbox {} is not ready",
                sandbox.id
            )));
        }
        let config = req
            .config
            .ok_or_else(|| CriError::InvalidArgument("CreateContainer without a config".into()))?;
        let image_name = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .filter(|i| !i.is_empty())
            .ok_or_else(|| CriError::InvalidArgument("container config names no image".into()))?;
        let image = self
            .images
            .resolve(&image_name)?
            .ok_or_else(|| CriError::ImageNotFound(image_name.clone()))?;
        let layers = self.images.layer_dirs(&image.id)?;
        let id = new_id();
        let dir = self.container_dir(&id);
        let log_path = log_path(&sandbox.config.log_directory, &config.log_path);
        let record = ContainerRecord {
            id: id.clone(),
            sandbox_id: sandbox.id.clone(),
            image: image_name,
            image_id: image.id.clone(),
            created_at: now_ns(),
            started_at: 0,
            finished_at: 0,
            exit: None,
            log_path: log_path.clone(),
            cgroup: format!("{}/{}", sandbox.cgroup, id),
            config,
        };
        let made = (|| {
            let rootfs = snapshot::prepare(&dir, &layers)?;
            let hostname = std::fs::read_to_string(self.sandbox_dir(&sandbox.id).join("hostname"))
                .unwrap_or_default();
            let spec = spec::build(&SpecInput {
                config: &record.config,
                image: &image,
                rootfs: &rootfs,
                sandbox_dir: &self.sandbox_dir(&sandbox.id),
                hostname: hostname.trim(),
                cgroup_path: &record.cgroup,
            })?;
            let config_path = dir.join("config.json");
            spec.save(&config_path).map_err(|e| CriError::Io {
                what: "write",
                path: config_path,
                source: std::io::Error::other(e.to_string()),
            })?;
            if let Some(parent) = log_path.as_ref().and_then(|p| p.parent()) {
                std::fs::create_dir_all(parent).map_err(|source| CriError::Io {
                    what: "create",
                    path: parent.into(),
                    source,
                })?;
            }
            self.backend.create(&id, &dir, log_path.as_deref())?;
            store::save(&dir, store::CONTAINER_FILE, &record)
        })();
        if let Err(e) = made {
            let _ = self.backend.delete(&id);
            let _ = snapshot::remove(&dir);
            return Err(e);
        }
        self.containers.lock().unwrap().insert(id.clone(), record);
        Ok(id)
    }

    pub(crate) fn container(&self, id: &str) -> Result<ContainerRecord, CriError> {
        let containers = self.containers.lock().unwrap();
        if let Some(r) = containers.get(id) {
            return Ok(r.clone());
        }
        let mut found = containers
            .values()
            .filter(|r| !id.is_empty() && r.id.starts_with(id));
        match (found.next(), found.next()) {
            (Some(r), None) => Ok(r.clone()),
            _ => Err(CriError::ContainerNotFound(id.into())),
        }
    }

    pub(crate) fn containers_of(&self, sandbox_id: &str) -> Vec<String> {
        self.containers
            .lock()
            .unwrap()
            .values()
            .filter(|c| c.sandbox_id == sandbox_id)
            .map(|c| c.id.clone())
            .collect()
    }

    fn put(&self, record: ContainerRecord) -> Result<(), CriError> {
        store::save(
            &self.container_dir(&record.id),
            store::CONTAINER_FILE,
            &record,
        )?;
        self.containers
            .lock()
            .unwrap()
            .insert(record.id.clone(), record);
        Ok(())
    }

    pub fn start_container(&self, id: &str) -> Result<(), CriError> {
        let mut record = self.container(id)?;
        match self.backend.live(&record.id) {
            Live::Created => {}
            other => {
                return Err(CriError::WrongState(format!(
                    "container {} is not in created state ({other:?})",
                    record.id
                )))
            }
        }
        record.started_at = now_ns();
        self.backend.start(&record.id)?;
        self.put(record)
    }

    /// SIGTERM to the init process, then SIGKILL to every process after `timeout` seconds
    /// (0: at once), as the kubelet's grace period asks. Stopping a stopped container is a
    /// no-op.
    pub fn stop_container(&self, id: &str, timeout: i64) -> Result<(), CriError> {
        let record = self.container(id)?;
        if matches!(self.backend.live(&record.id), Live::Running { .. }) {
            if timeout > 0 {
                self.backend.signal(&record.id, Signal::SIGTERM)?;
            }
            if timeout <= 0
                || !self
                    .backend
                    .wait_exit(&record.id, Duration::from_secs(timeout as u64))
            {
                self.backend.signal(&record.id, Signal::SIGKILL)?;
                self.backend.wait_exit(&record.id, Duration::from_secs(10));
            }
        } else if matches!(self.backend.live(&record.id), Live::Created) {
            // Never started: its init waits on the exec fifo; kill it so it reads as exited.
            self.backend.signal(&record.id, Signal::SIGKILL)?;
            self.backend.wait_exit(&record.id, Duration::from_secs(10));
        }
        self.refresh(record).map(|_| ())
    }

    /// Kills the container if needed and removes it with its rootfs; unknown ids succeed.
    pub fn remove_container(&self, id: &str) -> Result<(), CriError> {
        let record = match self.container(id) {
            Ok(r) => r,
            Err(CriError::ContainerNotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.backend.delete(&record.id)?;
        snapshot::remove(&self.container_dir(&record.id))?;
        self.containers.lock().unwrap().remove(&record.id);
        Ok(())
    }

    /// The record with the exit recorded once the OCI runtime reports it (persisted so that a
    /// restarted runtime reports the same exit even after the OCI state is gone).
    pub(crate) fn refresh(
        &self,
        mut record: ContainerRecord,
    ) -> Result<(cri::ContainerState, ContainerRecord), CriError> {
        if record.exit.is_some() {
            return Ok((cri::ContainerState::ContainerExited, record));
        }
        let state = match self.backend.live(&record.id) {
            Live::Created => cri::ContainerState::ContainerCreated,
            Live::Running { .. } => cri::ContainerState::ContainerRunning,
            Live::Exited(rec) => {
                record.finished_at = chrono::DateTime::parse_from_rfc3339(&rec.finished_at)
                    .ok()
                    .and_then(|t| t.timestamp_nanos_opt())
                    .unwrap_or_else(now_ns);
                let reason = if rec.oom_killed {
                    "OOMKilled"
                } else if rec.error.is_some() {
                    "ContainerCannotRun"
                } else if rec.exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                };
                record.exit = Some(ExitInfo {
                    exit_code: rec.exit_code,
                    reason: reason.into(),
                    message: rec.error.clone().unwrap_or_default(),
                });
                self.put(record.clone())?;
                cri::ContainerState::ContainerExited
            }
            Live::Lost => cri::ContainerState::ContainerUnknown,
        };
        Ok((state, record))
    }

    pub fn container_status(&self, id: &str) -> Result<cri::ContainerStatus, CriError> {
        let (state, r) = self.refresh(self.container(id)?)?;
        let exit = r.exit.clone().unwrap_or(ExitInfo {
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
        });
        Ok(cri::ContainerStatus {
            id: r.id.clone(),
            metadata: r.config.metadata.clone(),
            state: state as i32,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            exit_code: exit.exit_code,
            image: Some(cri::ImageSpec {
                image: r.image.clone(),
                ..Default::default()
            }),
            image_ref: r.image_id.clone(),
            image_id: r.image_id.clone(),
            reason: exit.reason,
            message: exit.message,
            labels: r.config.labels.clone(),
            annotations: r.config.annotations.clone(),
            mounts: r.config.mounts.clone(),
            log_path: r
                .log_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            resources: r
                .config
                .linux
                .as_ref()
                .and_then(|l| l.resources.clone())
                .map(|linux| cri::ContainerResources {
                    linux: Some(linux),
                    ..Default::default()
                }),
            user: None,
        })
    }

    pub fn list_containers(
        &self,
        filter: Option<cri::ContainerFilter>,
    ) -> Result<Vec<cri::Container>, CriError> {
        let filter = filter.unwrap_or_default();
        let records: Vec<ContainerRecord> = self
            .containers
            .lock()
            .unwrap()
            .values()
            .filter(|r| filter.id.is_empty() || r.id.starts_with(&filter.id))
            .filter(|r| {
                filter.pod_sandbox_id.is_empty() || r.sandbox_id.starts_with(&filter.pod_sandbox_id)
            })
            .filter(|r| labels_match(&r.config.labels, &filter.label_selector))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for record in records {
            let (state, r) = self.refresh(record)?;
            if filter
                .state
                .as_ref()
                .is_some_and(|s| s.state != state as i32)
            {
                continue;
            }
            out.push(cri::Container {
                id: r.id.clone(),
                pod_sandbox_id: r.sandbox_id.clone(),
                metadata: r.config.metadata.clone(),
                image: Some(cri::ImageSpec {
                    image: r.image.clone(),
                    ..Default::default()
                }),
                image_ref: r.image_id.clone(),
                image_id: r.image_id.clone(),
                state: state as i32,
                created_at: r.created_at,
                labels: r.config.labels.clone(),
                annotations: r.config.annotations.clone(),
            });
        }
        out.sort_by_key(|c| c.created_at);
        Ok(out)
    }

    pub fn update_container_resources(
        &self,
        id: &str,
        resources: Option<cri::LinuxContainerResources>,
    ) -> Result<(), CriError> {
        let mut record = self.container(id)?;
        let Some(resources) = resources else {
            return Ok(());
        };
        let mut oci = oci_spec::runtime::LinuxResources::default();
        spec::apply_resources(&mut oci, &resources);
        let layout = self.cgroups.as_ref().ok_or_else(|| CriError::Cgroup {
            path: record.cgroup.clone(),
            message: "no cgroup hierarchy on this machine".into(),
        })?;
        crate::cgroups::Cgroup::open(layout, &record.cgroup)
            .update(&oci)
            .map_err(|e| CriError::Cgroup {
                path: record.cgroup.clone(),
                message: e.to_string(),
            })?;
        let linux = record.config.linux.get_or_insert_with(Default::default);
        linux.resources = Some(resources);
        self.put(record)
    }
}

impl Cri {
    /// CRI ReopenContainerLog: the kubelet renamed the log file to rotate it; the container's
    /// output continues in a new file at the same path. Only for a running container
    /// (containerd answers "container is not running" otherwise).
    pub fn reopen_container_log(&self, id: &str) -> Result<(), CriError> {
        let record = self.container(id)?;
        if !matches!(self.backend.live(&record.id), Live::Running { .. }) {
            return Err(CriError::WrongState(format!(
                "container {} is not running: its log cannot be reopened",
                record.id
            )));
        }
        let Some(log) = &record.log_path else {
            return Err(CriError::WrongState(format!(
                "container {} has no log path to reopen",
                record.id
            )));
        };
        self.backend.reopen_log(&record.id, log)
    }
}

/// The CRI log path: the sandbox's LogDirectory joined with the container's LogPath.
fn log_path(dir: &str, file: &str) -> Option<PathBuf> {
    match (dir.is_empty(), file.is_empty()) {
        (_, true) => None,
        (true, false) => Some(PathBuf::from(file)),
        (false, false) => Some(PathBuf::from(dir).join(file)),
    }
}
