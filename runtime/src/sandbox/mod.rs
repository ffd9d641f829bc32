//! A pod sandbox's shared namespaces and files.
//!
//! No "pause" process: the pod's network, UTS and IPC namespaces are created by a short-lived
//! thread (`unshare(2)`), which sets the hostname and brings `lo` up, and are kept alive by
//! bind-mounting `/proc/thread-self/ns/{net,uts,ipc}` onto files in the sandbox directory — what
//! `ip netns add` does for network namespaces. Every container of the pod joins them through
//! `linux.namespaces[].path` in its OCI spec; CNI plugins get the `net` file as `CNI_NETNS`.
//! Because the namespaces are held by mounts and not by a process, they outlive a restart of the
//! runtime and are released only by [`remove_namespaces`].
//!
//! The sandbox also owns `hostname`, `hosts` and `resolv.conf`, which every container
//! bind-mounts (as the kubelet and containerd do).

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// The namespaces a pod shares, as files under its directory.
pub const SHARED_NAMESPACES: [&str; 3] = ["net", "uts", "ipc"];

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{syscall} for sandbox namespaces in {dir}: {source}")]
    Namespace {
        syscall: &'static str,
        dir: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{what} {path}: {source}")]
    Mount {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("namespace thread for {0} panicked")]
    ThreadPanicked(PathBuf),
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SandboxError + 'a {
    move |source| SandboxError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The path of namespace `kind` ("net", "uts", "ipc") of the sandbox in `ns_dir`.
pub fn namespace_path(ns_dir: &Path, kind: &str) -> PathBuf {
    ns_dir.join(kind)
}

/// Creates new network, UTS and IPC namespaces pinned under `ns_dir`, with `hostname` set and
/// the loopback interface up. On failure nothing stays mounted.
pub fn create_namespaces(ns_dir: &Path, hostname: &str) -> Result<(), SandboxError> {
    std::fs::create_dir_all(ns_dir).map_err(io_err("create", ns_dir))?;
    let dir = ns_dir.to_path_buf();
    let hostname = hostname.to_string();
    // unshare(2) of these namespaces affects only the calling thread; a fresh thread keeps the
    // runtime's own threads in the host namespaces.
    let result = std::thread::spawn(move || pin_new_namespaces(&dir, &hostname))
        .join()
        .map_err(|_| SandboxError::ThreadPanicked(ns_dir.to_path_buf()))?;
    if result.is_err() {
        remove_namespaces(ns_dir);
    }
    result
}

fn pin_new_namespaces(dir: &Path, hostname: &str) -> Result<(), SandboxError> {
    let ns_err = |syscall| {
        move |source| SandboxError::Namespace {
            syscall,
            dir: dir.to_path_buf(),
            source,
        }
    };
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)
        .map_err(ns_err("unshare"))?;
    nix::unistd::sethostname(hostname).map_err(ns_err("sethostname"))?;
    loopback_up().map_err(ns_err("bring lo up"))?;
    for kind in SHARED_NAMESPACES {
        let target = namespace_path(dir, kind);
        std::fs::File::create(&target).map_err(io_err("create", &target))?;
        let source = format!("/proc/thread-self/ns/{kind}");
        mount(
            Some(source.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(ns_err("bind mount namespace"))?;
    }
    Ok(())
}

/// `ip link set lo up` in the calling thread's network namespace (what the CNI loopback plugin
/// does), by SIOCSIFFLAGS on a throwaway socket: no plugin exec on the pod start path.
fn loopback_up() -> Result<(), nix::Error> {
    use std::os::fd::AsRawFd;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    let fd = sock.as_raw_fd();
    nix::errno::Errno::result(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) })?;
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    nix::errno::Errno::result(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

/// Unmounts and removes the namespace files under `ns_dir` (idempotent; errors are ignored
/// because there is nothing more to release once the mount is gone).
pub fn remove_namespaces(ns_dir: &Path) {
    for kind in SHARED_NAMESPACES {
        let path = namespace_path(ns_dir, kind);
        let _ = umount2(&path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&path);
    }
    let _ = std::fs::remove_dir(ns_dir);
}

/// Whether the namespace files are still pinned (after a restart: the sandbox's network is up).
pub fn namespaces_pinned(ns_dir: &Path) -> bool {
    // A pinned namespace file is on nsfs (NSFS_MAGIC); an unpinned one is a plain empty file.
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    nix::sys::statfs::statfs(&namespace_path(ns_dir, "net"))
        .map(|s| s.filesystem_type() == nix::sys::statfs::FsType(NSFS_MAGIC as _))
        .unwrap_or(false)
}

/// The pod's /dev/shm: one tmpfs per sandbox under `dir`, bind-mounted into every container of
/// the pod, because they share the sandbox's IPC namespace and POSIX shared memory lives in
/// /dev/shm (containerd's `getSandboxDevShm`; 64 MiB, nosuid,nodev,noexec, mode 1777 as there).
pub fn shm_path(dir: &Path) -> PathBuf {
    dir.join("shm")
}

/// Mounts the sandbox's /dev/shm tmpfs at [`shm_path`] (idempotent across a runtime restart:
/// an existing mount is kept).
pub fn create_shm(dir: &Path) -> Result<(), SandboxError> {
    let path = shm_path(dir);
    if shm_mounted(dir) {
        return Ok(());
    }
    std::fs::create_dir_all(&path).map_err(io_err("create", &path))?;
    mount(
        Some("shm"),
        &path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|source| SandboxError::Mount {
        what: "mount the pod's /dev/shm tmpfs on",
        path: path.clone(),
        source,
    })
}

/// Whether the sandbox's /dev/shm tmpfs is mounted: a mount point has another device than
/// the directory holding it.
pub fn shm_mounted(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(dir), std::fs::metadata(shm_path(dir))) {
        (Ok(d), Ok(s)) => d.dev() != s.dev(),
        _ => false,
    }
}

/// Unmounts and removes the sandbox's /dev/shm (idempotent). Containers still holding it in
/// their mount namespace keep it until they exit (lazy unmount).
pub fn remove_shm(dir: &Path) {
    let path = shm_path(dir);
    let _ = umount2(&path, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(&path);
}

/// DNS settings for `resolv.conf` (CRI `DNSConfig`).
#[derive(Debug, Default, Clone)]
pub struct Dns {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Writes `hostname`, `hosts` and `resolv.conf` into `dir` for the containers to bind-mount.
/// Without DNS settings, resolv.conf is the host's, as containerd does for a nil DNSConfig.
pub fn write_files(dir: &Path, hostname: &str, dns: Option<&Dns>) -> Result<(), SandboxError> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io_err("write", &path))
    };
    write("hostname", format!("{hostname}\n"))?;
    write(
        "hosts",
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string(),
    )?;
    let resolv = match dns {
        Some(dns) => resolv_conf(dns),
        None => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    };
    write("resolv.conf", resolv)
}

/// Appends `ip hostname` to the sandbox's hosts file once the pod IP is known (the kubelet's
/// managed /etc/hosts has the same line).
pub fn add_host_entry(dir: &Path, ip: &str, hostname: &str) -> Result<(), SandboxError> {
    let path = dir.join("hosts");
    let mut text = std::fs::read_to_string(&path).map_err(io_err("read", &path))?;
    text.push_str(&format!("{ip}\t{hostname}\n"));
    std::fs::write(&path, text).map_err(io_err("write", &path))
}

/// resolv.conf(5) text: `nameserver` lines, one `search` line, one `options` line.
pub fn resolv_conf(dns: &Dns) -> String {
    let mut out = String::new();
    for server in &dns.servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_has_servers_search_and_options() {
        let dns = Dns {
            servers: vec!["10.96.0.10".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(&dns),
            "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n"
        );
    }
}
