//! ContainerStats and ListContainerStats from the containers' cgroups and writable layers.

use k8s_cri::v1 as cri;

use super::{now_ns, Cri, CriError};

impl Cri {
    pub fn container_stats(&self, id: &str) -> Result<cri::ContainerStats, CriError> {
        let r = self.container(id)?;
        let now = now_ns();
        let stats = self
            .cgroups
            .as_ref()
            .map(|layout| crate::cgroups::Cgroup::open(layout, &r.cgroup))
            .filter(|cg| cg.exists())
            .and_then(|cg| cg.stats().ok())
            .unwrap_or_default();
        let value = |v: u64| Some(cri::UInt64Value { value: v });
        let upper = self.container_dir(&r.id).join("upper");
        Ok(cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: r.id.clone(),
                metadata: r.config.metadata.clone(),
                labels: r.config.labels.clone(),
                annotations: r.config.annotations.clone(),
            }),
            cpu: stats.cpu.map(|c| cri::CpuUsage {
                timestamp: now,
                usage_core_nano_seconds: value(c.usage_total_ns),
                usage_nano_cores: None,
            }),
            memory: stats.memory.map(|m| cri::MemoryUsage {
                timestamp: now,
                working_set_bytes: value(m.working_set_bytes),
                available_bytes: m.limit_bytes.map(|l| cri::UInt64Value {
                    value: l.saturating_sub(m.working_set_bytes),
                }),
                usage_bytes: value(m.usage_bytes),
                rss_bytes: value(m.rss_bytes),
                page_faults: value(m.page_faults),
                major_page_faults: value(m.major_page_faults),
            }),
            writable_layer: Some(cri::FilesystemUsage {
                timestamp: now,
                fs_id: Some(cri::FilesystemIdentifier {
                    mountpoint: upper.display().to_string(),
                }),
                used_bytes: value(dir_usage(&upper)),
                inodes_used: None,
            }),
            swap: None,
        })
    }

    pub fn list_container_stats(
        &self,
        filter: Option<cri::ContainerStatsFilter>,
    ) -> Result<Vec<cri::ContainerStats>, CriError> {
        let filter = filter.unwrap_or_default();
        let ids: Vec<String> = self
            .list_containers(Some(cri::ContainerFilter {
                id: filter.id,
                pod_sandbox_id: filter.pod_sandbox_id,
                label_selector: filter.label_selector,
                state: None,
            }))?
            .into_iter()
            .filter(|c| c.state == cri::ContainerState::ContainerRunning as i32)
            .map(|c| c.id)
            .collect();
        ids.iter().map(|id| self.container_stats(id)).collect()
    }
}

/// Bytes in regular files under `dir` (the container's writable layer; usually tiny).
pub(crate) fn dir_usage(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}
