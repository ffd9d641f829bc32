//! The OCI runtime spec (config.json) of a CRI container: the image's defaults merged with the
//! CRI ContainerConfig the way the kubelet and containerd do, joined to its pod's namespaces.

use std::path::Path;

use k8s_cri::v1 as cri;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResources, Mount, MountBuilder, Spec, UserBuilder,
};

use super::images::ImageInfo;
use super::CriError;
use crate::oci::busybox::default_spec;
use crate::sandbox;

/// Everything the spec is built from.
pub struct SpecInput<'a> {
    pub config: &'a cri::ContainerConfig,
    pub image: &'a ImageInfo,
    /// The mounted rootfs (to look users up in its /etc/passwd).
    pub rootfs: &'a Path,
    pub sandbox_dir: &'a Path,
    pub hostname: &'a str,
    pub cgroup_path: &'a str,
}

/// Kubernetes' rule (k8s.io/kubernetes/pkg/kubelet/kuberuntime, "Notes on command and args"):
/// a command replaces the image's Entrypoint and drops its Cmd; args alone replace the Cmd.
pub fn process_args(config: &cri::ContainerConfig, image: &ImageInfo) -> Vec<String> {
    if !config.command.is_empty() {
        let mut v = config.command.clone();
        v.extend(config.args.iter().cloned());
        v
    } else if !config.args.is_empty() {
        let mut v = image.entrypoint.clone();
        v.extend(config.args.iter().cloned());
        v
    } else {
        let mut v = image.entrypoint.clone();
        v.extend(image.cmd.iter().cloned());
        v
    }
}

/// Image env first, CRI envs override by name (containerd's order).
pub fn environment(config: &cri::ContainerConfig, image: &ImageInfo) -> Vec<String> {
    let mut env: Vec<String> = image.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    for kv in &config.envs {
        let prefix = format!("{}=", kv.key);
        env.retain(|e| !e.starts_with(&prefix));
        env.push(format!("{}={}", kv.key, kv.value));
    }
    env
}

pub fn build(input: &SpecInput) -> Result<Spec, CriError> {
    let config = input.config;
    let args = process_args(config, input.image);
    if args.is_empty() {
        return Err(CriError::InvalidArgument(format!(
            "container {:?}: no command and the image has no entrypoint or cmd",
            config
                .metadata
                .as_ref()
                .map(|m| m.name.as_str())
                .unwrap_or("")
        )));
    }
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut spec = default_spec(&arg_refs);
    let security = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.clone());
    let security = security.unwrap_or_default();

    let mut process = spec.process().clone().unwrap_or_default();
    process.set_env(Some(environment(config, input.image)));
    let cwd = if !config.working_dir.is_empty() {
        config.working_dir.clone()
    } else if !input.image.working_dir.is_empty() {
        input.image.working_dir.clone()
    } else {
        "/".into()
    };
    process.set_cwd(cwd.into());
    let (uid, gid) = resolve_user(input, &security)?;
    process.set_user(
        UserBuilder::default()
            .uid(uid)
            .gid(gid)
            .additional_gids(
                security
                    .supplemental_groups
                    .iter()
                    .map(|g| *g as u32)
                    .collect::<Vec<_>>(),
            )
            .build()
            .expect("user builds"),
    );
    process.set_no_new_privileges(Some(security.no_new_privs));
    process.set_capabilities(Some(capabilities(
        process.capabilities().clone().unwrap_or_default(),
        &security,
    )?));
    spec.set_process(Some(process));
    if security.privileged {
        privileged(&mut spec);
    }

    let mut root = spec.root().clone().unwrap_or_default();
    root.set_readonly(Some(security.readonly_rootfs));
    spec.set_root(Some(root));
    spec.set_hostname(Some(input.hostname.to_string()));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    let pod_mounts = sandbox_mounts(input.sandbox_dir);
    mounts.retain(|x| {
        pod_mounts
            .iter()
            .all(|p| p.destination() != x.destination())
    });
    mounts.extend(pod_mounts);
    for m in &config.mounts {
        mounts.retain(|x| x.destination() != Path::new(&m.container_path));
        mounts.push(bind_mount(&m.container_path, &m.host_path, m.readonly));
    }
    spec.set_mounts(Some(mounts));

    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_namespaces(Some(namespaces(input.sandbox_dir)));
    linux.set_cgroups_path(Some(format!("/{}", input.cgroup_path).into()));
    let mut resources = linux.resources().clone().unwrap_or_default();
    if let Some(r) = config.linux.as_ref().and_then(|l| l.resources.as_ref()) {
        apply_resources(&mut resources, r);
    }
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// The pod's shared namespaces by path; a new mount, PID and cgroup namespace per container
/// (Kubernetes' default: no shareProcessNamespace).
fn namespaces(sandbox_dir: &Path) -> Vec<LinuxNamespace> {
    let ns_dir = sandbox_dir.join("ns");
    let shared = |typ, kind| {
        LinuxNamespaceBuilder::default()
            .typ(typ)
            .path(sandbox::namespace_path(&ns_dir, kind))
            .build()
            .expect("namespace builds")
    };
    let own = |typ| {
        LinuxNamespaceBuilder::default()
            .typ(typ)
            .build()
            .expect("namespace builds")
    };
    vec![
        own(LinuxNamespaceType::Pid),
        own(LinuxNamespaceType::Mount),
        shared(LinuxNamespaceType::Network, "net"),
        shared(LinuxNamespaceType::Uts, "uts"),
        shared(LinuxNamespaceType::Ipc, "ipc"),
    ]
}

fn bind_mount(dest: &str, source: &str, readonly: bool) -> Mount {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    options.push(if readonly { "ro" } else { "rw" }.into());
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(options)
        .build()
        .expect("mount builds")
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf from the sandbox (as containerd does), and
/// the pod's /dev/shm in place of a tmpfs per container: the pod's containers share its IPC
/// namespace, so they must share its POSIX shared memory too (containerd's sandbox dev shm).
fn sandbox_mounts(sandbox_dir: &Path) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = ["hostname", "hosts", "resolv.conf"]
        .iter()
        .map(|f| {
            bind_mount(
                &format!("/etc/{f}"),
                &sandbox_dir.join(f).display().to_string(),
                false,
            )
        })
        .collect();
    mounts.push(bind_mount(
        "/dev/shm",
        &sandbox::shm_path(sandbox_dir).display().to_string(),
        false,
    ));
    mounts
}

/// run_as_user, else run_as_username / the image's USER, looked up in the image's /etc/passwd.
fn resolve_user(
    input: &SpecInput,
    security: &cri::LinuxContainerSecurityContext,
) -> Result<(u32, u32), CriError> {
    let group = security.run_as_group.as_ref().map(|g| g.value as u32);
    if let Some(uid) = &security.run_as_user {
        let gid = group.unwrap_or_else(|| primary_gid(input.rootfs, uid.value as u32).unwrap_or(0));
        return Ok((uid.value as u32, gid));
    }
    let name = if !security.run_as_username.is_empty() {
        security.run_as_username.clone()
    } else {
        input.image.user.clone()
    };
    if name.is_empty() {
        return Ok((0, group.unwrap_or(0)));
    }
    let (user, explicit_group) = match name.split_once(':') {
        Some((u, g)) => (u.to_string(), g.parse::<u32>().ok()),
        None => (name.clone(), None),
    };
    let uid = match user.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => lookup_passwd(input.rootfs, |fields| fields[0] == user)
            .map(|(uid, _)| uid)
            .ok_or_else(|| {
                CriError::InvalidArgument(format!(
                    "user {user:?} not found in the image's /etc/passwd"
                ))
            })?,
    };
    let gid = group
        .or(explicit_group)
        .or_else(|| primary_gid(input.rootfs, uid))
        .unwrap_or(0);
    Ok((uid, gid))
}

fn primary_gid(rootfs: &Path, uid: u32) -> Option<u32> {
    lookup_passwd(rootfs, |f| f[2].parse() == Ok(uid)).map(|(_, gid)| gid)
}

/// The (uid, gid) of the first passwd(5) entry matching `pred` (fields split on ':').
fn lookup_passwd(rootfs: &Path, pred: impl Fn(&[&str]) -> bool) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(rootfs.join("etc/passwd")).ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 4 || !pred(&fields) {
            return None;
        }
        Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
    })
}

/// CRI LinuxContainerResources → OCI linux.resources (zero means unset, as in the CRI).
pub fn apply_resources(out: &mut LinuxResources, r: &cri::LinuxContainerResources) {
    let mut cpu = LinuxCpuBuilder::default();
    if r.cpu_shares > 0 {
        cpu = cpu.shares(r.cpu_shares as u64);
    }
    if r.cpu_quota > 0 {
        cpu = cpu.quota(r.cpu_quota);
    }
    if r.cpu_period > 0 {
        cpu = cpu.period(r.cpu_period as u64);
    }
    if !r.cpuset_cpus.is_empty() {
        cpu = cpu.cpus(r.cpuset_cpus.clone());
    }
    if !r.cpuset_mems.is_empty() {
        cpu = cpu.mems(r.cpuset_mems.clone());
    }
    out.set_cpu(Some(cpu.build().expect("cpu builds")));
    if r.memory_limit_in_bytes > 0 {
        let mut mem = LinuxMemoryBuilder::default().limit(r.memory_limit_in_bytes);
        if r.memory_swap_limit_in_bytes > 0 {
            mem = mem.swap(r.memory_swap_limit_in_bytes);
        }
        out.set_memory(Some(mem.build().expect("memory builds")));
    }
    if !r.unified.is_empty() {
        out.set_unified(Some(r.unified.clone()));
    }
}

/// Every capability a privileged container gets (capabilities(7), up to CAP_CHECKPOINT_RESTORE).
const ALL_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

fn parse_capability(name: &str) -> Result<oci_spec::runtime::Capability, CriError> {
    let upper = name.to_uppercase();
    upper
        .trim_start_matches("CAP_")
        .parse()
        .map_err(|_| CriError::InvalidArgument(format!("unknown capability {name:?}")))
}

/// The default set with the CRI's add/drop applied ("ALL" allowed in both, as containerd
/// accepts); privileged containers get every capability.
fn capabilities(
    mut caps: oci_spec::runtime::LinuxCapabilities,
    security: &cri::LinuxContainerSecurityContext,
) -> Result<oci_spec::runtime::LinuxCapabilities, CriError> {
    let mut set: oci_spec::runtime::Capabilities = caps.bounding().clone().unwrap_or_default();
    let requested = security.capabilities.clone().unwrap_or_default();
    let all = || -> Result<oci_spec::runtime::Capabilities, CriError> {
        ALL_CAPABILITIES
            .iter()
            .map(|c| parse_capability(c))
            .collect()
    };
    if security.privileged {
        set = all()?;
    } else {
        for name in &requested.drop_capabilities {
            if name.eq_ignore_ascii_case("ALL") {
                set.clear();
            } else {
                set.remove(&parse_capability(name)?);
            }
        }
        for name in &requested.add_capabilities {
            if name.eq_ignore_ascii_case("ALL") {
                set = all()?;
            } else {
                set.insert(parse_capability(name)?);
            }
        }
    }
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    Ok(caps)
}

/// A privileged container: no masked or read-only paths, /sys writable, no device cgroup
/// restriction (what containerd does for `privileged: true`).
fn privileged(spec: &mut Spec) {
    if let Some(mut linux) = spec.linux().clone() {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
        if let Some(mut r) = linux.resources().clone() {
            r.set_devices(Some(vec![
                oci_spec::runtime::LinuxDeviceCgroupBuilder::default()
                    .allow(true)
                    .access("rwm")
                    .build()
                    .expect("device rule builds"),
            ]));
            linux.set_resources(Some(r));
        }
        spec.set_linux(Some(linux));
    }
    if let Some(mounts) = spec.mounts().clone() {
        let mounts = mounts
            .into_iter()
            .map(|mut m| {
                if m.destination() == Path::new("/sys") {
                    let opts: Vec<String> = m
                        .options()
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|o| o != "ro")
                        .collect();
                    m.set_options(Some(opts));
                }
                m
            })
            .collect();
        spec.set_mounts(Some(mounts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageInfo {
        ImageInfo {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            env: vec!["PATH=/bin".into(), "A=image".into()],
            ..Default::default()
        }
    }

    #[test]
    fn command_and_args_follow_kubernetes() {
        let mut c = cri::ContainerConfig::default();
        assert_eq!(process_args(&c, &image()), ["/entry", "default"]);
        c.args = vec!["x".into()];
        assert_eq!(process_args(&c, &image()), ["/entry", "x"]);
        c.command = vec!["/cmd".into()];
        assert_eq!(process_args(&c, &image()), ["/cmd", "x"]);
        c.args.clear();
        assert_eq!(process_args(&c, &image()), ["/cmd"]);
    }

    #[test]
    fn capabilities_add_and_drop() {
        let base = default_spec(&["true"]).process().clone().unwrap();
        let mut sc = cri::LinuxContainerSecurityContext {
            capabilities: Some(cri::Capability {
                add_capabilities: vec!["NET_ADMIN".into()],
                drop_capabilities: vec!["CAP_KILL".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let caps = capabilities(base.capabilities().clone().unwrap(), &sc).unwrap();
        let set = caps.effective().clone().unwrap();
        assert!(set.contains(&oci_spec::runtime::Capability::NetAdmin));
        assert!(!set.contains(&oci_spec::runtime::Capability::Kill));
        sc.privileged = true;
        let caps = capabilities(base.capabilities().clone().unwrap(), &sc).unwrap();
        assert_eq!(
            caps.bounding().as_ref().unwrap().len(),
            ALL_CAPABILITIES.len()
        );
        sc.privileged = false;
        sc.capabilities.as_mut().unwrap().add_capabilities = vec!["BOGUS".into()];
        assert!(capabilities(base.capabilities().clone().unwrap(), &sc).is_err());
    }

    #[test]
    fn cri_env_overrides_image_env() {
        let c = cri::ContainerConfig {
            envs: vec![cri::KeyValue {
                key: "A".into(),
                value: "cri".into(),
            }],
            ..Default::default()
        };
        assert_eq!(environment(&c, &image()), ["PATH=/bin", "A=cri"]);
    }
}
