//! The per-container shim: a mode of the minik8s binary (`minik8s shim ...`), started by
//! `oci::Runtime::create`. It daemonizes, creates the container (cgroup, init cloned into its
//! namespaces, state recorded), reports it created, and then execs the small static
//! `minik8s-monitor` in its place, which stays the init's parent: holds its stdio (writing CRI
//! logs), reaps it, records how it ended in the state directory, and exits. See
//! `runtime/ARCHITECTURE.md` for the whole process tree.
//!
//! The shim is exec'd fresh, so it is single-threaded and may fork and clone freely; it avoids
//! anything heavy (no async runtime, no logging setup) to stay small and quick to start.

mod exec;
#[path = "../../monitor/cri_log.rs"]
pub mod log;
pub mod monitor;
/// The monitor's program compiled once more here, so that its unit tests run and clippy reads
/// it (the build script's rustc does neither).
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../monitor/main.rs"]
mod monitor_program;
#[path = "../../monitor/record.rs"]
pub mod record;

pub use monitor::REOPEN_LOG_SIGNAL;

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxNamespaceType;

use crate::oci::channel::{self, Message};
use crate::oci::container_cgroup::ContainerCgroup;
use crate::oci::init::{self, InitContext};
use crate::oci::namespaces::Plan;
use crate::oci::state::{
    now_rfc3339, process_start_time, ContainerState, ExitRecord, StateFile, Status, EXEC_FIFO,
};
use crate::oci::Bundle;

/// The fd on which the shim reports `Created`/`Error` to whoever spawned it.
pub const REPLY_FD: RawFd = 3;

/// The shim's command line, positional to keep parsing trivial:
/// `shim <monitor> <state-dir> <bundle> <cgroup-path> <cgroup-root|-> <log-path|-> <start: 0|1>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShimArgs {
    /// The installed `minik8s-monitor` ([`monitor::install`]).
    pub monitor: PathBuf,
    pub state_dir: PathBuf,
    pub bundle: PathBuf,
    pub cgroup_path: String,
    pub cgroup_root: Option<PathBuf>,
    pub log_path: Option<PathBuf>,
    /// Start right away (`run`): no exec fifo, the init execs as soon as it is set up.
    pub start: bool,
}

impl ShimArgs {
    pub fn to_args(&self) -> Vec<OsString> {
        let opt = |p: &Option<PathBuf>| p.clone().map(OsString::from).unwrap_or_else(|| "-".into());
        vec![
            "shim".into(),
            self.monitor.clone().into(),
            self.state_dir.clone().into(),
            self.bundle.clone().into(),
            self.cgroup_path.clone().into(),
            opt(&self.cgroup_root),
            opt(&self.log_path),
            if self.start { "1" } else { "0" }.into(),
        ]
    }

    pub fn parse(args: &[OsString]) -> Option<ShimArgs> {
        let opt = |s: &OsString| (s != "-").then(|| PathBuf::from(s));
        match args {
            [monitor, state, bundle, cg, cg_root, log, start] => Some(ShimArgs {
                monitor: monitor.into(),
                state_dir: state.into(),
                bundle: bundle.into(),
                cgroup_path: cg.to_str()?.to_string(),
                cgroup_root: opt(cg_root),
                log_path: opt(log),
                start: start == "1",
            }),
            _ => None,
        }
    }
}

/// Entry point of `minik8s shim ARGS` (args after "shim"). Never returns.
pub fn main(args: &[OsString]) -> ! {
    if args.first().is_some_and(|a| a == "exec") {
        exec::main(&args[1..]);
    }
    let Some(args) = ShimArgs::parse(args) else {
        eprintln!("minik8s shim: internal command, started by the runtime");
        std::process::exit(2);
    };
    run(&args, true, None)
}

/// The shim proper, with the reply pipe on fd 3: after `main` parsed its arguments, or in a
/// child forked by a single-threaded caller (`ShimLaunch::Fork`).
///
/// With `daemonize` the process forks once more and the first one exits at once (the spawner
/// reaps it), so the shim is never a child of a long-lived caller; the short-lived CLI skips
/// that: its shim is re-parented when the CLI exits.
///
/// `bundle` is the caller's already loaded bundle when the shim is a fork of it (not re-read).
pub fn run(args: &ShimArgs, daemonize: bool, bundle: Option<Bundle>) -> ! {
    // A forked shim inherits the CLI's signal handlers (`run` forwards signals): not ours.
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    if daemonize {
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Parent { .. }) => unsafe { libc::_exit(0) },
            Ok(nix::unistd::ForkResult::Child) => {}
            Err(e) => report_and_exit(&format!("shim fork: {e}")),
        }
    }
    // Leave the caller's session and process group: a Ctrl-C at the caller's terminal must
    // not reach the shim.
    let _ = nix::unistd::setsid();
    // Orphans of the container (without a pid namespace) re-parent to us, and we reap them.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let reply = unsafe { OwnedFd::from_raw_fd(REPLY_FD) };
    // The container must not inherit the reply pipe.
    let _ = nix::fcntl::fcntl(
        REPLY_FD,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let started = match start_container(args, bundle) {
        Ok(started) => started,
        Err(e) => {
            let _ = channel::send(reply.as_fd(), &Message::Error(e));
            std::process::exit(1);
        }
    };
    // A ReopenContainerLog may arrive as soon as the caller hears of the container: block its
    // signal now (after the clone, so the container does not inherit the mask); the block
    // survives the exec and the monitor's signalfd picks it up.
    let mut reopen = nix::sys::signal::SigSet::empty();
    reopen.add(REOPEN_LOG_SIGNAL);
    let _ = reopen.thread_block();
    let created = Message::Created {
        pid: started.pid,
        shim: std::process::id() as i32,
    };
    let _ = channel::send(reply.as_fd(), &created);
    drop(reply);
    let e = monitor::exec(
        &args.monitor,
        &args.state_dir,
        args.log_path.as_deref(),
        &started,
    );
    // The runtime installed the program before starting us, so this is a broken host (the
    // file removed, a noexec mount): the container cannot be supervised, so it ends now and
    // says why.
    let pid = nix::unistd::Pid::from_raw(started.pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
    let record = ExitRecord {
        exit_code: 137,
        signal: Some(libc::SIGKILL),
        oom_killed: false,
        finished_at: now_rfc3339(),
        error: Some(format!("exec {}: {e}", args.monitor.display())),
    };
    let _ = record.write(&args.state_dir);
    std::process::exit(1)
}

fn report_and_exit(msg: &str) -> ! {
    let reply = unsafe { std::os::fd::BorrowedFd::borrow_raw(REPLY_FD) };
    let _ = channel::send(reply, &Message::Error(msg.to_string()));
    std::process::exit(1)
}

/// What the shim hands the monitor of a started container.
pub struct Started {
    pub pid: i32,
    pub cgroup: ContainerCgroup,
    /// The shim's end of the init socket: an exec failure after `start` arrives here.
    pub sync: OwnedFd,
    /// Read ends of the container's stdout and stderr, when logging.
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The state directory, flocked for the shim's life.
    pub lock: OwnedFd,
}

fn start_container(args: &ShimArgs, bundle: Option<Bundle>) -> Result<Started, String> {
    let lock = lock_state_dir(&args.state_dir)?;
    let bundle = match bundle {
        Some(b) => b,
        None => Bundle::load(&args.bundle).map_err(|e| e.to_string())?,
    };
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    let plan = Plan::new(linux.namespaces().as_deref().unwrap_or(&[]));
    if plan.has(LinuxNamespaceType::User) {
        return Err("user namespaces are not supported".into());
    }
    if plan.has(LinuxNamespaceType::Time) {
        return Err("time namespaces are not supported".into());
    }
    let cgroup = ContainerCgroup::create(
        args.cgroup_root.as_deref(),
        &args.cgroup_path,
        linux.resources().as_ref(),
    )?;
    let spawned = spawn_init(args, &bundle, &plan, &cgroup).and_then(|spawned| {
        // Recorded before anyone hears of the container: whatever happens to the caller from
        // now on, `list` and `delete` find it.
        match record_state(args, &bundle, spawned.0) {
            Ok(()) => Ok(spawned),
            Err(e) => {
                let pid = nix::unistd::Pid::from_raw(spawned.0);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(pid, None);
                Err(e)
            }
        }
    });
    match spawned {
        Ok((pid, sync, stdout, stderr)) => Ok(Started {
            pid,
            cgroup,
            sync,
            stdout,
            stderr,
            lock,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(args.state_dir.join(EXEC_FIFO));
            let _ = cgroup.remove();
            Err(e)
        }
    }
}

/// Writes `state.json` for the new container.
fn record_state(args: &ShimArgs, bundle: &Bundle, pid: i32) -> Result<(), String> {
    let id = args
        .state_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let state = StateFile {
        state: ContainerState {
            oci_version: bundle.spec.version().clone(),
            id,
            pid,
            status: Status::Created,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: now_rfc3339(),
            owner: String::new(),
            annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        },
        init_start_time: process_start_time(pid).map(|(t, _)| t).unwrap_or(0),
        shim_pid: std::process::id() as i32,
        cgroup_path: args.cgroup_path.clone(),
        cgroup_root: args.cgroup_root.clone(),
        log_path: args.log_path.clone(),
    };
    state.write(&args.state_dir).map_err(|e| e.to_string())
}

/// Opens the state directory and holds an exclusive flock on it until the shim exits:
/// `wait` takes a shared lock, which it gets exactly when the shim is gone.
fn lock_state_dir(dir: &Path) -> Result<OwnedFd, String> {
    let fd = open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open {}: {e}", dir.display()))?;
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) };
    nix::errno::Errno::result(r).map_err(|e| format!("flock {}: {e}", dir.display()))?;
    Ok(fd)
}

/// Makes the exec fifo and opens it read-write (an open that never blocks), for the init.
fn exec_fifo(state_dir: &Path) -> Result<OwnedFd, String> {
    let path = state_dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o622))
        .map_err(|e| format!("mkfifo {}: {e}", path.display()))?;
    let fd = open(&path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

type Spawned = (i32, OwnedFd, Option<OwnedFd>, Option<OwnedFd>);

/// Clones the init into its namespaces and waits until it is set up (or failed).
fn spawn_init(
    args: &ShimArgs,
    bundle: &Bundle,
    plan: &Plan,
    cgroup: &ContainerCgroup,
) -> Result<Spawned, String> {
    let fifo = if args.start {
        None
    } else {
        Some(exec_fifo(&args.state_dir)?)
    };
    let (shim_end, init_end) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| format!("socketpair: {e}"))?;
    let pipes = match args.log_path {
        Some(_) => Some((pipe()?, pipe()?)),
        None => None,
    };
    join_pid_namespace(plan)?;

    let flags = plan.clone_flags as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // A fork-like clone (no new stack, no CLONE_VM): the child continues here with a copy of
    // this single-threaded process, so it may allocate and use everything above.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        return Err(format!("clone: {}", nix::errno::Errno::last()));
    }
    if pid == 0 {
        drop(shim_end);
        if let Some(((_, out_w), (_, err_w))) = &pipes {
            redirect_stdio(out_w.as_raw_fd(), err_w.as_raw_fd());
        }
        init::run(InitContext {
            spec: &bundle.spec,
            rootfs: &bundle.rootfs,
            plan,
            sync: init_end,
            fifo,
            cgroup: &cgroup.cgroup,
        });
    }
    let pid = pid as i32;
    drop(init_end);
    drop(fifo); // only the init may hold the fifo: `start` detects a dead init by ENXIO
    let (stdout, stderr) = match pipes {
        Some(((out_r, _), (err_r, _))) => (Some(out_r), Some(err_r)),
        None => (None, None),
    };
    let fail = |msg: String| {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        msg
    };
    match channel::recv(shim_end.as_fd()) {
        Ok(Some(Message::Ready)) => Ok((pid, shim_end, stdout, stderr)),
        Ok(Some(Message::Error(e))) => Err(fail(e)),
        Ok(_) => Err(fail("container init exited during setup".into())),
        Err(e) => Err(fail(format!("read from container init: {e}"))),
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// In the init: stdin from /dev/null, stdout and stderr into the shim's log pipes.
fn redirect_stdio(out: RawFd, err: RawFd) {
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
        libc::dup2(out, 1);
        libc::dup2(err, 2);
    }
}

/// setns(CLONE_NEWPID) only affects children, so the shim joins a given pid namespace itself
/// just before cloning the init into it.
fn join_pid_namespace(plan: &Plan) -> Result<(), String> {
    for (typ, path) in &plan.join {
        if *typ == LinuxNamespaceType::Pid {
            let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| format!("open namespace {}: {e}", path.display()))?;
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWPID)
                .map_err(|e| format!("setns {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = ShimArgs {
            monitor: "/run/x/.minik8s-monitor-0".into(),
            state_dir: "/run/x/c1".into(),
            bundle: "/b".into(),
            cgroup_path: "minik8s/c1".into(),
            cgroup_root: None,
            log_path: Some("/var/log/c1.log".into()),
            start: true,
        };
        let argv = a.to_args();
        assert_eq!(argv[0], "shim");
        assert_eq!(ShimArgs::parse(&argv[1..]), Some(a));
    }
}
