//! Running the proxy for a node whose network lives in a named network namespace (several
//! nodes on one machine, each agent in its own namespace): `nft` is exec'd inside it and the DNS
//! sockets are created inside it, while the API connection stays in the caller's namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("opening network namespace {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("entering network namespace {path}: {source}")]
    Enter {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn open(path: &Path) -> Result<File, NetnsError> {
    File::open(path).map_err(|source| NetnsError::Open {
        path: path.display().to_string(),
        source,
    })
}

/// Makes `cmd` switch into the namespace at `path` between fork and exec.
pub fn exec_in(cmd: &mut Command, path: &Path) -> Result<(), NetnsError> {
    let file = open(path)?;
    // SAFETY: the closure only calls setns(2), which is async-signal-safe; `file` is moved in
    // and outlives the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Runs `f` on a fresh thread that first enters the namespace at `path` (setns affects only the
/// calling thread), e.g. to create sockets that belong to it.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<std::io::Result<T>, NetnsError> {
    let file = open(path)?;
    let shown = path.display().to_string();
    std::thread::spawn(move || {
        // SAFETY: plain syscall on an fd we own.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(NetnsError::Enter {
                path: shown,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(f())
    })
    .join()
    .expect("netns thread does not panic")
}

/// Kernel settings the Service paths rely on, as kube-proxy and the CNI bridge plugin set them:
/// forwarding (pods → ClusterIP → another pod is routed by the node), and bridged IPv4 through
/// netfilter (`br_netfilter`, per namespace since Linux 5.3), so a reply bridged straight from
/// one pod to another on the same bridge still meets conntrack and has its DNAT undone.
pub const SYSCTLS: [(&str, &str); 2] = [
    ("/proc/sys/net/ipv4/ip_forward", "1"),
    ("/proc/sys/net/bridge/bridge-nf-call-iptables", "1"),
];

/// Applies [`SYSCTLS`] in the namespace at `netns` (or the caller's); a missing file (no
/// br_netfilter module) or a refused write is logged, not fatal.
pub fn apply_sysctls(netns: Option<&Path>) {
    let apply = || -> std::io::Result<()> {
        for (path, value) in SYSCTLS {
            let current = std::fs::read_to_string(path).map(|v| v.trim().to_string());
            match current {
                Ok(v) if v == value => {}
                Ok(_) => {
                    if let Err(e) = std::fs::write(path, value) {
                        tracing::warn!(path, error = %e, "cannot set a sysctl Services need");
                    }
                }
                Err(e) => {
                    tracing::warn!(path, error = %e, "sysctl missing (is br_netfilter loaded?)")
                }
            }
        }
        Ok(())
    };
    let result = match netns {
        Some(path) => run_in(path, apply).map(|_| ()),
        None => {
            let _ = apply();
            Ok(())
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot apply the proxy's sysctls");
    }
}
