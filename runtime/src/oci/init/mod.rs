//! The container's init: runs in the child the shim clone(2)d into the new namespaces, still the
//! shim's (single-threaded) program. It joins namespaces given by path, waits for the shim to put
//! it in its cgroup, builds the root filesystem, applies the process's identity and limits, tells
//! the shim it is ready, blocks on the exec fifo until `start`, then execve(2)s the user process.
//! Any failure is sent to the shim as a message and the init exits (127 for a missing program).

mod caps;
mod devices;
pub mod process;
mod rootfs;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use super::channel::{self, Message};
use super::namespaces::Plan;

/// Everything the init needs, borrowed from the shim's memory (the clone copied it).
pub struct InitContext<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub plan: &'a Plan,
    /// The init's end of the shim socketpair.
    pub sync: OwnedFd,
    /// The exec fifo, opened read-write (so opening never blocks); `start` writes one byte to it.
    /// `None` when the container starts at once (`run`).
    pub fifo: Option<OwnedFd>,
    /// The container's cgroup (already created by the shim), for mounting /sys/fs/cgroup.
    pub cgroup: &'a crate::cgroups::Cgroup,
}

/// Failures of the init, sent verbatim to the shim and on to `create`/`start`.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("setns {path}: {source}")]
    Setns {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("open namespace {path}: {source}")]
    OpenNamespace {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{syscall}: {source}")]
    Sys {
        syscall: String,
        #[source]
        source: nix::Error,
    },
    #[error("mount {source_path} on {target} ({fstype}): {source}")]
    Mount {
        source_path: String,
        target: PathBuf,
        fstype: String,
        #[source]
        source: nix::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("exec: no such file: {0}")]
    NoSuchExecutable(String),
    #[error("exec: permission denied: {0}")]
    NotExecutable(String),
    #[error("exec {path}: {source}")]
    Exec {
        path: String,
        #[source]
        source: nix::Error,
    },
    #[error("invalid config: {0}")]
    Config(String),
    #[error("shim went away before the container was set up")]
    ShimGone,
}

impl InitError {
    pub(crate) fn sys(syscall: impl std::fmt::Display, source: nix::Error) -> InitError {
        InitError::Sys {
            syscall: syscall.to_string(),
            source,
        }
    }
    pub(crate) fn io(what: impl std::fmt::Display, source: std::io::Error) -> InitError {
        InitError::Io {
            what: what.to_string(),
            source,
        }
    }
    /// Exit code of the init for this failure: 127 like a shell for a missing program, 126 for
    /// one it may not run, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            InitError::NoSuchExecutable(_) => 127,
            InitError::NotExecutable(_) => 126,
            _ => 1,
        }
    }
}

/// The init's whole life; never returns.
pub fn run(ctx: InitContext<'_>) -> ! {
    let err = match setup_and_exec(&ctx) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = channel::send(ctx.sync.as_fd(), &Message::Error(err.to_string()));
    unsafe { libc::_exit(err.exit_code()) }
}

fn setup_and_exec(ctx: &InitContext<'_>) -> Result<std::convert::Infallible, InitError> {
    let spec = ctx.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or(InitError::Config("no process".into()))?;
    let linux = spec.linux().clone().unwrap_or_default();

    join_namespaces(ctx.plan)?;
    // Join the container's cgroup first thing ("0" in cgroup.procs is the writer itself, as
    // the kernel reads pids in the writer's pid namespace), while the host's cgroup filesystem is
    // still visible; a cgroup namespace made after that is rooted at it (runc's order).
    ctx.cgroup
        .add_process(0)
        .map_err(|e| InitError::Config(format!("join cgroup {}: {e}", ctx.cgroup.path())))?;
    if ctx.plan.new_cgroup_ns {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| InitError::sys("unshare cgroup namespace", e))?;
    }
    if !ctx.plan.is_new(LinuxNamespaceType::Mount) && !ctx.plan.has(LinuxNamespaceType::Mount) {
        return Err(InitError::Config("a mount namespace is required".into()));
    }
    if ctx.plan.is_new(LinuxNamespaceType::Mount) {
        let view = rootfs::CgroupView {
            cgroup: ctx.cgroup,
            namespaced: ctx.plan.new_cgroup_ns,
        };
        rootfs::prepare(spec, ctx.rootfs, &linux, &view)?;
    }
    set_hostname(spec, ctx.plan)?;
    process::apply_sysctl(&linux)?;
    let exec = become_process(process)?;
    channel::send(ctx.sync.as_fd(), &Message::Ready).map_err(|e| InitError::io("send ready", e))?;
    if let Some(fifo) = &ctx.fifo {
        wait_for_start(fifo.as_raw_fd())?;
    }
    Err(exec.exec())
}

/// The last steps shared by the init and `exec`'d processes: limits, the program, bounding set,
/// user and groups, capabilities, no_new_privs. What is left is the execve itself.
pub fn become_process(process: &Process) -> Result<process::Exec, InitError> {
    process::apply_rlimits(process)?;
    process::apply_oom_score_adj(process)?;
    let exec = process::Exec::resolve(process)?;
    caps::drop_bounding(process)?;
    process::switch_user(process)?;
    caps::apply(process)?;
    if process.no_new_privileges().unwrap_or(false) {
        nix::sys::prctl::set_no_new_privs().map_err(|e| InitError::sys("prctl no_new_privs", e))?;
    }
    Ok(exec)
}

/// Joins the namespaces given by path. All are opened first: after joining a mount namespace the
/// other paths might not resolve any more, so it is joined last.
fn join_namespaces(plan: &Plan) -> Result<(), InitError> {
    use nix::fcntl::{open, OFlag};
    let mut fds = Vec::new();
    for (typ, path) in &plan.join {
        if matches!(typ, LinuxNamespaceType::Pid | LinuxNamespaceType::User) {
            continue; // pid: joined by the shim before clone; user: refused earlier
        }
        let fd = open(
            path,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|source| InitError::OpenNamespace {
            path: path.clone(),
            source,
        })?;
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        fds.push((*typ, path, fd));
    }
    fds.sort_by_key(|(typ, _, _)| *typ == LinuxNamespaceType::Mount);
    for (typ, path, fd) in fds {
        let flag = nix::sched::CloneFlags::from_bits_truncate(super::namespaces::clone_flag(typ));
        nix::sched::setns(fd, flag).map_err(|source| InitError::Setns {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

fn set_hostname(spec: &Spec, plan: &Plan) -> Result<(), InitError> {
    let uts = plan.has(LinuxNamespaceType::Uts);
    if let Some(name) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        if !uts {
            return Err(InitError::Config("hostname needs a uts namespace".into()));
        }
        nix::unistd::sethostname(name).map_err(|e| InitError::sys("sethostname", e))?;
    }
    if let Some(name) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        nix::errno::Errno::result(r).map_err(|e| InitError::sys("setdomainname", e))?;
    }
    Ok(())
}

/// Blocks until `start` writes its byte into the exec fifo (runc's create/start split).
fn wait_for_start(fifo: i32) -> Result<(), InitError> {
    let mut byte = [0u8; 1];
    loop {
        let n = unsafe { libc::read(fifo, byte.as_mut_ptr().cast(), 1) };
        if n == 1 {
            return Ok(());
        }
        let err = nix::errno::Errno::last();
        if n < 0 && err == nix::errno::Errno::EINTR {
            continue;
        }
        return Err(InitError::sys("read exec fifo", err));
    }
}
