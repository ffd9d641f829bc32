//! The container monitor used with `--oci-runtime runc|crun`: what containerd's runc shim does.
//!
//! `minik8s runtime-monitor <state-dir> <runtime> <runtime-root> <bundle> <id> <cgroup> <log|->`
//! forks; the child (setsid, PR_SET_CHILD_SUBREAPER) runs `<runtime> create` with the
//! container's stdout/stderr on pipes it owns, and reports success or the runtime's error to
//! the parent, which exits with it (so the CRI server's `create` returns the error). Because
//! the monitor is a subreaper, the container's init is re-parented to it when `runc create`
//! exits: it copies the output into the CRI log, reaps the init, and writes `exit.json` (exit
//! code or 128+signal, OOM from the cgroup, finish time) into its state dir, then exits. The
//! CRI server only reads files, so a restart of the server loses nothing.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::oci::state::{now_rfc3339, ExitRecord};
use crate::shim::log::{CriLog, Stream};

pub const ARG: &str = "runtime-monitor";
pub const PID_FILE: &str = "pid";
pub const STARTED_FILE: &str = "started";
/// The monitor's own pid, for ReopenContainerLog's signal.
pub const MONITOR_PID_FILE: &str = "monitor.pid";
/// Asks the monitor to reopen the container's log file (same as the builtin shim's).
pub const REOPEN_LOG_SIGNAL: nix::sys::signal::Signal = crate::shim::REOPEN_LOG_SIGNAL;

/// The monitor's command-line arguments.
#[derive(Debug, Clone)]
pub struct MonitorArgs {
    pub state_dir: PathBuf,
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    pub bundle: PathBuf,
    pub id: String,
    pub cgroup: String,
    pub log: Option<PathBuf>,
}

impl MonitorArgs {
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        vec![
            ARG.into(),
            self.state_dir.clone().into(),
            self.runtime.clone().into(),
            self.runtime_root.clone().into(),
            self.bundle.clone().into(),
            self.id.clone().into(),
            self.cgroup.clone().into(),
            self.log
                .clone()
                .map(Into::into)
                .unwrap_or_else(|| "-".into()),
        ]
    }

    fn parse(args: &[std::ffi::OsString]) -> Option<MonitorArgs> {
        match args {
            [state, runtime, root, bundle, id, cgroup, log] => Some(MonitorArgs {
                state_dir: state.into(),
                runtime: runtime.into(),
                runtime_root: root.into(),
                bundle: bundle.into(),
                id: id.to_str()?.into(),
                cgroup: cgroup.to_str()?.into(),
                log: (log != "-").then(|| PathBuf::from(log)),
            }),
            _ => None,
        }
    }
}

/// Entry point (`args` after `runtime-monitor`). Exits 0 once the container is created, or 1
/// with the error on stderr.
pub fn main(args: &[std::ffi::OsString]) -> ! {
    let Some(args) = MonitorArgs::parse(args) else {
        eprintln!(
            "usage: minik8s {ARG} <state-dir> <runtime> <root> <bundle> <id> <cgroup> <log|->"
        );
        std::process::exit(2);
    };
    // Close-on-exec: crun's container init is a clone of `crun create` that keeps inherited fds
    // until its exec, so a leaked write end would hold this read open until StartContainer.
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    // Single-threaded here (dispatched before anything else in main), so fork is safe.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => {
            drop(write);
            let mut msg = String::new();
            let _ = std::fs::File::from(read).read_to_string(&mut msg);
            if msg == "ok" {
                std::process::exit(0);
            }
            eprint!("{msg}");
            std::process::exit(1);
        }
        Ok(ForkResult::Child) => {
            drop(read);
            let _ = nix::unistd::setsid();
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
            monitor(&args, write)
        }
        Err(e) => {
            eprintln!("fork monitor: {e}");
            std::process::exit(1);
        }
    }
}

/// crun refuses a hybrid cgroup host whose cgroup2 hierarchy has any controller available
/// (libcrun `libcrun_cgroup_enter`: "cgroups in hybrid mode not supported, drop all controllers
/// from cgroupv2"), whatever its cgroup manager. This machine's `/sys/fs/cgroup/unified` offers
/// `hugetlb` (not mounted as a v1 hierarchy), so crun is run in a mount namespace of its own
/// without that mount: it then detects the legacy v1 layout (which we use anyway) and works.
/// Nothing changes for runc, or for crun on a pure v1 or v2 host.
pub(crate) fn hide_hybrid_cgroup2_from_crun(cmd: &mut Command, runtime: &Path) {
    use std::os::unix::process::CommandExt;
    const UNIFIED: &str = "/sys/fs/cgroup/unified";
    let is_crun = runtime.file_name().is_some_and(|n| n == "crun");
    let controllers = std::fs::read_to_string(format!("{UNIFIED}/cgroup.controllers"));
    if !is_crun || controllers.map(|c| c.trim().is_empty()).unwrap_or(true) {
        return;
    }
    // Only async-signal-safe syscalls between fork and exec (the caller may be threaded).
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Private first, or the unmount would propagate back to the host.
            let none = std::ptr::null();
            if libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                none as _,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::umount2(c"/sys/fs/cgroup/unified".as_ptr(), libc::MNT_DETACH) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn monitor(args: &MonitorArgs, reply: OwnedFd) -> ! {
    let mut reply = std::fs::File::from(reply);
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let runtime_log = args.state_dir.join("runtime.log");
    let pid_file = args.state_dir.join(PID_FILE);
    let mut create = Command::new(&args.runtime);
    hide_hybrid_cgroup2_from_crun(&mut create, &args.runtime);
    // `create` owns our copies of the pipes' write ends: it is consumed by this statement so
    // they are closed once the runtime is spawned (else the copy threads never see EOF).
    let created = { create }
        .arg("--root")
        .arg(&args.runtime_root)
        .arg("--log")
        .arg(&runtime_log)
        .args(["create", "--bundle"])
        .arg(&args.bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&args.id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        .status();
    let init = match created {
        Ok(s) if s.success() => std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok()),
        Ok(s) => {
            let why = std::fs::read_to_string(&runtime_log).unwrap_or_default();
            let _ = write!(
                reply,
                "{} create exited with {s}: {}",
                args.runtime.display(),
                why.trim()
            );
            std::process::exit(1);
        }
        Err(e) => {
            let _ = write!(reply, "exec {}: {e}", args.runtime.display());
            std::process::exit(1);
        }
    };
    let Some(init) = init else {
        let _ = write!(reply, "{} create wrote no pid file", args.runtime.display());
        std::process::exit(1);
    };
    // Blocked before anyone hears of the container (so a reopen request cannot kill us) and
    // before the copy threads start (they inherit the mask); `reopen_on_signal` takes it.
    let mut reopen = nix::sys::signal::SigSet::empty();
    reopen.add(REOPEN_LOG_SIGNAL);
    let _ = reopen.thread_block();
    let _ = std::fs::write(
        args.state_dir.join(MONITOR_PID_FILE),
        std::process::id().to_string(),
    );
    let _ = reply.write_all(b"ok");
    drop(reply);
    // Nothing of the caller's stays open: stdio goes to /dev/null.
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let log = args
        .log
        .as_deref()
        .and_then(|p| CriLog::open(p).ok())
        .map(|l| Arc::new(Mutex::new(l)));
    if let (Some(log), Some(path)) = (&log, &args.log) {
        let (log, path) = (log.clone(), path.clone());
        std::thread::spawn(move || reopen_on_signal(reopen, &log, &path));
    }
    let readers = [(out_r, Stream::Stdout), (err_r, Stream::Stderr)].map(|(fd, stream)| {
        let log = log.clone();
        std::thread::spawn(move || copy(fd, stream, log))
    });
    let (exit_code, signal) = reap(init);
    for r in readers {
        let _ = r.join();
    }
    let record = ExitRecord {
        exit_code,
        signal,
        oom_killed: oom_killed(&args.cgroup),
        finished_at: now_rfc3339(),
        error: None,
    };
    let _ = write_exit(&args.state_dir, &record);
    std::process::exit(0);
}

/// ReopenContainerLog: a fresh file at the log path for everything copied from now on.
fn reopen_on_signal(
    mask: nix::sys::signal::SigSet,
    log: &Mutex<CriLog<std::fs::File>>,
    path: &Path,
) {
    while mask.wait().is_ok() {
        let _ = log.lock().unwrap().reopen(path);
    }
}

fn copy(fd: OwnedFd, stream: Stream, log: Option<Arc<Mutex<CriLog<std::fs::File>>>>) {
    let mut pipe = unsafe { std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)) };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(log) = &log {
                    let _ = log.lock().unwrap().feed(stream, &buf[..n], &now_rfc3339());
                }
            }
        }
    }
    if let Some(log) = &log {
        let _ = log.lock().unwrap().finish(stream, &now_rfc3339());
    }
}

/// Reaps everything until the init is gone; its exit code (128+signal when killed).
fn reap(init: i32) -> (i32, Option<i32>) {
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == Pid::from_raw(init) => return (code, None),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == Pid::from_raw(init) => {
                return (128 + sig as i32, Some(sig as i32))
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return (255, None),
        }
    }
}

fn oom_killed(cgroup: &str) -> bool {
    crate::cgroups::Layout::detect()
        .map(|layout| crate::cgroups::Cgroup::open(&layout, cgroup))
        .and_then(|cg| cg.oom_kill_count())
        .map(|n| n > 0)
        .unwrap_or(false)
}

fn write_exit(dir: &Path, record: &ExitRecord) -> std::io::Result<()> {
    let tmp = dir.join(".exit.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(record).expect("record serializes"))?;
    std::fs::rename(tmp, dir.join(crate::oci::state::EXIT_FILE))
}
