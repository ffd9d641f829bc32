//! The container's cgroup as the runtime uses it: its path (config-linux.md "cgroups path"),
//! creation with `linux.resources`, joining, OOM count, kill-all and removal — on top of
//! [`crate::cgroups`]. Errors become strings naming the cgroup, as they travel over pipes.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxResources, Spec,
};

use crate::cgroups::{Cgroup, Layout};

/// `linux.cgroupsPath` (leading '/' dropped: it is relative to each hierarchy's root) or
/// `<parent>/<id>`.
pub fn path_for(spec: &Spec, parent: &str, id: &str) -> String {
    let from_spec = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().trim_start_matches('/').to_string())
        .filter(|p| !p.is_empty());
    from_spec.unwrap_or_else(|| format!("{}/{}", parent.trim_matches('/'), id))
}

/// runc's default device rules, appended after the spec's own (libcontainer/specconv
/// `AllowedDevices`): mknod of anything, and use of the default /dev nodes and ptys. Without them
/// a spec that starts with "deny all" (as `runc spec` writes) leaves the container no /dev/null.
fn allowed_devices() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().expect("device rule builds")
    };
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"), // null
        rule(C, Some(1), Some(8), "rwm"), // random
        rule(C, Some(1), Some(7), "rwm"), // full
        rule(C, Some(5), Some(0), "rwm"), // tty
        rule(C, Some(1), Some(5), "rwm"), // zero
        rule(C, Some(1), Some(9), "rwm"), // urandom
        rule(C, Some(136), None, "rwm"),  // /dev/pts/*
        rule(C, Some(5), Some(2), "rwm"), // ptmx
    ]
}

/// The resources to apply: the spec's, with the default device rules after its own when it
/// has any (an empty list means no device cgroup rules at all).
pub fn effective_resources(resources: Option<&LinuxResources>) -> Option<LinuxResources> {
    let mut r = resources.cloned()?;
    if let Some(devices) = r.devices().as_ref().filter(|d| !d.is_empty()) {
        let mut devices = devices.clone();
        devices.extend(allowed_devices());
        r.set_devices(Some(devices));
    }
    Some(r)
}

fn layout(root: Option<&Path>) -> Result<Layout, String> {
    match root {
        Some(root) => Layout::detect_at(root),
        None => Layout::detect(),
    }
    .map_err(|e| format!("cgroup layout: {e}"))
}

/// A container's cgroup, created or reopened.
pub struct ContainerCgroup {
    pub cgroup: Cgroup,
}

impl ContainerCgroup {
    pub fn create(
        root: Option<&Path>,
        path: &str,
        resources: Option<&LinuxResources>,
    ) -> Result<ContainerCgroup, String> {
        let layout = layout(root)?;
        let resources = effective_resources(resources);
        let cgroup = Cgroup::create(&layout, path, resources.as_ref())
            .map_err(|e| format!("create cgroup {path}: {e}"))?;
        Ok(ContainerCgroup { cgroup })
    }

    pub fn open(root: Option<&Path>, path: &str) -> Result<ContainerCgroup, String> {
        Ok(ContainerCgroup {
            cgroup: Cgroup::open(&layout(root)?, path),
        })
    }

    pub fn add_process(&self, pid: i32) -> Result<(), String> {
        self.cgroup
            .add_process(pid)
            .map_err(|e| format!("join cgroup {}: {e}", self.cgroup.path()))
    }

    /// The file whose `oom_kill` line counts the kernel's OOM kills in this cgroup (Kubernetes'
    /// `OOMKilled`): read by the monitor when the container has exited.
    pub fn oom_events_file(&self) -> Option<PathBuf> {
        let file = match self.cgroup.layout() {
            Layout::V2 { .. } => "memory.events",
            Layout::V1 { .. } => "memory.oom_control",
        };
        self.cgroup.dir_for("memory").map(|d| d.join(file))
    }

    pub fn kill_all(&self, signal: i32) -> Result<(), String> {
        self.cgroup
            .kill_all(signal)
            .map_err(|e| format!("kill cgroup {}: {e}", self.cgroup.path()))
    }

    pub fn pids(&self) -> Result<Vec<i32>, String> {
        self.cgroup
            .pids()
            .map_err(|e| format!("list cgroup {}: {e}", self.cgroup.path()))
    }

    pub fn remove(&self) -> Result<(), String> {
        self.cgroup
            .remove()
            .map_err(|e| format!("remove cgroup {}: {e}", self.cgroup.path()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_comes_from_the_spec_or_parent_and_id() {
        let mut spec = Spec::default();
        assert_eq!(path_for(&spec, "/minik8s/", "c1"), "minik8s/c1");
        let mut linux = spec.linux().clone().unwrap();
        linux.set_cgroups_path(Some("/pods/p1/c1".into()));
        spec.set_linux(Some(linux));
        assert_eq!(path_for(&spec, "minik8s", "c1"), "pods/p1/c1");
    }

    #[test]
    fn default_devices_follow_a_deny_all_rule() {
        let deny = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap();
        let r = oci_spec::runtime::LinuxResourcesBuilder::default()
            .devices(vec![deny.clone()])
            .build()
            .unwrap();
        let devices = effective_resources(Some(&r))
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        assert_eq!(devices[0], deny);
        assert!(devices.len() > 5 && devices[1..].iter().all(|d| d.allow()));
        let none = LinuxResources::default();
        assert!(effective_resources(Some(&none))
            .unwrap()
            .devices()
            .as_ref()
            .is_none_or(|d| d.is_empty()));
    }
}
