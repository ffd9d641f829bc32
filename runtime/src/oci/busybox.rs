//! Busybox bundles for tests and benchmarks (here and in the CRI server's tests), built from the
//! machine's `/bin/busybox` (Debian's busybox-static) with no image tooling: the binary, one
//! symlink per applet, a two-line /etc/passwd and /etc/group, and a config.json like
//! `runc spec` writes, made with `oci-spec`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder, LinuxResourcesBuilder,
    ProcessBuilder, RootBuilder, Spec,
};

/// Where Debian's busybox-static installs the binary.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// The default capability set of containerd/Docker (what a Kubernetes pod gets).
pub const DEFAULT_CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// A bundle directory: `<dir>/config.json` and `<dir>/rootfs`.
#[derive(Debug, Clone)]
pub struct BusyboxBundle {
    pub dir: PathBuf,
    pub spec: Spec,
}

impl BusyboxBundle {
    /// Builds the rootfs under `dir` and a default spec running `args`; call [`save`] after
    /// adjusting `spec`.
    ///
    /// [`save`]: BusyboxBundle::save
    pub fn create(dir: &Path, args: &[&str]) -> std::io::Result<BusyboxBundle> {
        build_rootfs(&dir.join("rootfs"))?;
        let bundle = BusyboxBundle {
            dir: dir.to_path_buf(),
            spec: default_spec(args),
        };
        bundle.save()?;
        Ok(bundle)
    }

    /// Writes `config.json`.
    pub fn save(&self) -> std::io::Result<()> {
        std::fs::write(self.dir.join("config.json"), self.config_json())
    }

    /// The spec as pretty JSON (tests edit it as text to write what the types cannot express).
    pub fn config_json(&self) -> String {
        serde_json::to_string_pretty(&self.spec).expect("spec serializes")
    }

    /// Replaces the process arguments and saves.
    pub fn set_args(&mut self, args: &[&str]) -> std::io::Result<()> {
        let mut process = self.spec.process().clone().unwrap_or_default();
        process.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
        self.spec.set_process(Some(process));
        self.save()
    }
}

/// `rootfs/bin/busybox`, a symlink per applet (`busybox --list-full`), /etc/passwd, /etc/group,
/// and the empty directories a container expects.
pub fn build_rootfs(rootfs: &Path) -> std::io::Result<()> {
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy(HOST_BUSYBOX, bin.join("busybox"))?;
    let out = std::process::Command::new(HOST_BUSYBOX)
        .arg("--list-full")
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other("busybox --list-full failed"));
    }
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        let link = rootfs.join(applet);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink("/bin/busybox", &link)?;
        }
    }
    for dir in ["etc", "proc", "sys", "dev", "tmp", "root", "var"] {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}

/// What `runc spec` writes (default mounts, namespaces, masked and read-only paths, NOFILE
/// rlimit, no_new_privs, read-only root), with the containerd default capabilities and no
/// terminal, running `args`.
pub fn default_spec(args: &[&str]) -> Spec {
    let caps: oci_spec::runtime::Capabilities = DEFAULT_CAPABILITIES.iter().copied().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .expect("capabilities build");
    let base = oci_spec::runtime::Process::default();
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(base.user().clone())
        .args(args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
        .env(base.env().clone().unwrap_or_default())
        .cwd("/")
        .capabilities(capabilities)
        .rlimits(base.rlimits().clone().unwrap_or_default())
        .no_new_privileges(true)
        .build()
        .expect("process build");
    let mut spec = Spec::default();
    spec.set_process(Some(process));
    spec.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(true)
            .build()
            .expect("root build"),
    ));
    spec.set_hostname(Some("minik8s".into()));
    // `runc spec`'s device rule: deny everything; the runtime adds the default devices after it.
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .expect("device rule build");
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_resources(Some(
        LinuxResourcesBuilder::default()
            .devices(vec![deny_all])
            .build()
            .expect("resources build"),
    ));
    spec.set_linux(Some(linux));
    spec
}
