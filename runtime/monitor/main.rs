//! `minik8s-monitor`: the long-lived half of a container's shim.
//!
//! The shim (`runtime/src/shim`) sets the container up — cgroup, init cloned into its
//! namespaces, state recorded — and then execs this program in its own process, which stays the
//! init's parent: it copies the container's stdout and stderr into the CRI log, reopens the log
//! on SIGUSR1 (CRI ReopenContainerLog), reaps the init and any orphans (it is a child
//! subreaper), writes `exit.json` and exits. The exec drops everything the setup needed
//! (config.json parsing, mount and namespace code), so what stays resident for the container's
//! life is this small binary alone: std only, no crates, linked statically by the runtime's
//! build script (no dynamic loader, no shared libc text), like conmon beside runc.
//!
//! Usage (internal, positional): `minik8s-monitor STATE-DIR INIT-PID SYNC-FD LOG-PATH|-
//! STDOUT-FD|- STDERR-FD|- OOM-FILE|-`. The fds are inherited from the shim; so is the state
//! directory's flock, held until this process exits.

#[cfg(not(test))]
mod cri_log;
#[cfg(not(test))]
mod record;
// Tested as part of the runtime crate (`shim::monitor_program`), which has these two already.
#[cfg(test)]
use crate::shim::{log as cri_log, record};

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cri_log::{CriLog, Stream};

/// The few libc calls std does not wrap. Constants are the same on x86_64 and aarch64.
mod sys {
    use std::os::raw::{c_int, c_long, c_short, c_ulong};

    pub const SIGCHLD: c_int = 17;
    /// REOPEN_LOG_SIGNAL in runtime/src/shim.
    pub const SIGUSR1: c_int = 10;
    pub const SIG_BLOCK: c_int = 0;
    pub const SFD_NONBLOCK: c_int = 0o4000;
    pub const SFD_CLOEXEC: c_int = 0o2000000;
    pub const POLLIN: c_short = 1;
    pub const WNOHANG: c_int = 1;
    pub const F_GETFL: c_int = 3;
    pub const F_SETFL: c_int = 4;
    pub const O_NONBLOCK: c_int = 0o4000;
    pub const PR_SET_CHILD_SUBREAPER: c_int = 36;

    /// The kernel's sigset (glibc's sigset_t is 1024 bits, of which the kernel reads 64).
    #[repr(C)]
    pub struct SigSet(pub [c_ulong; 16]);

    impl SigSet {
        pub fn of(signals: &[c_int]) -> SigSet {
            let mut set = SigSet([0; 16]);
            for s in signals {
                set.0[0] |= 1 << (s - 1);
            }
            set
        }
    }

    #[repr(C)]
    pub struct PollFd {
        pub fd: c_int,
        pub events: c_short,
        pub revents: c_short,
    }

    extern "C" {
        pub fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
        pub fn signalfd(fd: c_int, mask: *const SigSet, flags: c_int) -> c_int;
        pub fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
        pub fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
        pub fn prctl(
            option: c_int,
            arg2: c_ulong,
            arg3: c_ulong,
            arg4: c_ulong,
            arg5: c_ulong,
        ) -> c_int;
        pub fn fcntl(fd: c_int, cmd: c_int, arg: c_long) -> c_int;
    }
}

struct Args {
    state_dir: PathBuf,
    init: i32,
    sync: RawFd,
    log: Option<(PathBuf, RawFd, RawFd)>,
    oom_file: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Option<Args> {
    let [state_dir, init, sync, log, out, err, oom] = args else {
        return None;
    };
    fn opt(s: &str) -> Option<&str> {
        (s != "-").then_some(s)
    }
    let log = match (opt(log), opt(out), opt(err)) {
        (Some(path), Some(out), Some(err)) => {
            Some((path.into(), out.parse().ok()?, err.parse().ok()?))
        }
        (None, None, None) => None,
        _ => return None,
    };
    Some(Args {
        state_dir: state_dir.into(),
        init: init.parse().ok()?,
        sync: sync.parse().ok()?,
        log,
        oom_file: opt(oom).map(PathBuf::from),
    })
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(args) = parse_args(&argv) else {
        eprintln!("minik8s-monitor: internal command, started by the runtime's shim");
        std::process::exit(2);
    };
    // Already set by the shim (it survives exec); repeated so this program stands on its own.
    unsafe { sys::prctl(sys::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let (exit_code, signal) = match &args.log {
        Some((path, out, err)) => match CriLog::open(path) {
            Ok(log) => supervise_with_log(args.init, (log, path), *out, *err),
            Err(_) => reap_until(args.init),
        },
        None => reap_until(args.init),
    };
    let error = exec_error(args.sync);
    let oom_killed = args
        .oom_file
        .as_deref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|text| record::keyed_value(&text, "oom_kill"))
        .is_some_and(|n| n > 0);
    let now = record::rfc3339_nanos(SystemTime::now());
    let json = record::exit_json(exit_code, signal, oom_killed, &now, error.as_deref());
    if let Err(e) = write_atomic(&args.state_dir.join("exit.json"), json.as_bytes()) {
        eprintln!("minik8s-monitor: {e}");
        std::process::exit(1);
    }
}

/// What the init reported on its socket before it exited (an exec that failed after `start`).
fn exec_error(sync: RawFd) -> Option<String> {
    set_nonblocking(sync);
    let mut sock = unsafe { File::from_raw_fd(sync) };
    let mut buf = [0u8; 4096];
    let n = sock.read(&mut buf).ok()?;
    record::error_in_frame(&buf[..n])
}

/// `exit.tmp` renamed to `exit.json`: a reader sees the whole record or none.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("rename {}: {e}", path.display()))
}

fn set_nonblocking(fd: RawFd) {
    unsafe {
        let flags = sys::fcntl(fd, sys::F_GETFL, 0);
        if flags >= 0 {
            sys::fcntl(fd, sys::F_SETFL, (flags | sys::O_NONBLOCK).into());
        }
    }
}

/// A wait status as (exit code, signal): a signal death is 128 + signal, as shells and
/// containerd report it. Only exits and deaths are reported (no WUNTRACED/WCONTINUED).
fn decode(status: i32) -> (i32, Option<i32>) {
    match status & 0x7f {
        0 => ((status >> 8) & 0xff, None),
        sig => (128 + sig, Some(sig)),
    }
}

enum Reaped {
    /// One child was reaped: its pid and status.
    Child(i32, i32),
    /// No exited child is waiting (WNOHANG).
    None,
    /// No children at all (ECHILD) or an unexpected error.
    Gone,
}

fn reap(options: i32) -> Reaped {
    loop {
        let mut status = 0;
        let pid = unsafe { sys::waitpid(-1, &mut status, options) };
        match pid {
            0 => return Reaped::None,
            p if p > 0 => return Reaped::Child(p, status),
            _ if std::io::Error::last_os_error().kind() == ErrorKind::Interrupted => {}
            _ => return Reaped::Gone,
        }
    }
}

/// Blocking reap loop: returns the init's status; other children (orphans re-parented to the
/// subreaper) are reaped along the way.
fn reap_until(init: i32) -> (i32, Option<i32>) {
    loop {
        match reap(0) {
            Reaped::Child(pid, status) if pid == init => return decode(status),
            Reaped::Child(..) | Reaped::None => {}
            Reaped::Gone => return (255, None), // the init is unaccounted for
        }
    }
}

/// Non-blocking reap of everything that exited; the init's status if it was among them.
fn reap_ready(init: i32) -> Option<(i32, Option<i32>)> {
    let mut init_status = None;
    loop {
        match reap(sys::WNOHANG) {
            Reaped::Child(pid, status) if pid == init => init_status = Some(decode(status)),
            Reaped::Child(..) => {}
            Reaped::None => return init_status,
            Reaped::Gone => return init_status.or(Some((255, None))),
        }
    }
}

/// poll(2) over stdout, stderr and a signalfd for SIGCHLD and SIGUSR1 until the init has
/// exited; then the pipes are drained of what is already buffered (a daemon outside a pid
/// namespace may keep them open forever, so we do not wait for EOF after that).
fn supervise_with_log(
    init: i32,
    (mut log, log_path): (CriLog<File>, &Path),
    out: RawFd,
    err: RawFd,
) -> (i32, Option<i32>) {
    let mask = sys::SigSet::of(&[sys::SIGCHLD, sys::SIGUSR1]);
    let sfd = unsafe {
        sys::sigprocmask(sys::SIG_BLOCK, &mask, std::ptr::null_mut());
        sys::signalfd(-1, &mask, sys::SFD_CLOEXEC | sys::SFD_NONBLOCK)
    };
    if sfd < 0 {
        return reap_until(init);
    }
    let mut signals = unsafe { File::from_raw_fd(sfd) };
    let mut streams = unsafe {
        [
            (Some(File::from_raw_fd(out)), Stream::Stdout),
            (Some(File::from_raw_fd(err)), Stream::Stderr),
        ]
    };
    let mut buf = vec![0u8; 32 * 1024];
    let mut status = reap_ready(init);
    while status.is_none() {
        // Closed streams are left out: poll would report POLLHUP on them forever.
        let mut fds: Vec<sys::PollFd> = streams
            .iter()
            .map(|(f, _)| sys::PollFd {
                fd: f.as_ref().map_or(-1, |f| f.as_raw_fd()), // poll skips negative fds
                events: sys::POLLIN,
                revents: 0,
            })
            .collect();
        fds.push(sys::PollFd {
            fd: sfd,
            events: sys::POLLIN,
            revents: 0,
        });
        let n = unsafe { sys::poll(fds.as_mut_ptr(), fds.len() as _, -1) };
        if n < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
            return reap_until(init);
        }
        for (i, (file, stream)) in streams.iter_mut().enumerate() {
            if fds[i].revents != 0 {
                if let Some(f) = file {
                    if !copy_once(f, *stream, &mut log, &mut buf) {
                        *file = None;
                    }
                }
            }
        }
        if fds[2].revents != 0 {
            let mut reopen = false;
            let mut info = [0u8; 128]; // signalfd_siginfo; ssi_signo is its first u32
            while let Ok(128) = signals.read(&mut info) {
                reopen |=
                    u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) == sys::SIGUSR1 as u32;
            }
            if reopen {
                // What was read so far went to the old file; what follows goes to the new one.
                let _ = log.reopen(log_path);
            }
            status = reap_ready(init);
        }
    }
    for (file, stream) in &mut streams {
        if let Some(f) = file {
            set_nonblocking(f.as_raw_fd());
            while copy_once(f, *stream, &mut log, &mut buf) {}
        }
        let _ = log.finish(*stream, &now());
    }
    status.unwrap_or((255, None))
}

fn now() -> String {
    record::rfc3339_nanos(SystemTime::now())
}

/// One read from a stream into the log; false at EOF, on error, or when nothing is buffered.
fn copy_once(f: &mut File, stream: Stream, log: &mut CriLog<File>, buf: &mut [u8]) -> bool {
    match f.read(buf) {
        Ok(0) => false,
        Ok(n) => {
            let _ = log.feed(stream, &buf[..n], &now());
            true
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => true,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_decode_as_shells_report_them() {
        assert_eq!(decode(0), (0, None));
        assert_eq!(decode(3 << 8), (3, None));
        assert_eq!(decode(9), (137, Some(9)));
        assert_eq!(decode(15 | 0x80), (143, Some(15))); // core dumped
    }

    #[test]
    fn arguments_need_all_three_log_parts_or_none() {
        let args = |v: &[&str]| parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let a = args(&["/s", "42", "5", "/l", "6", "7", "-"]).unwrap();
        assert_eq!(a.init, 42);
        assert_eq!(a.log, Some(("/l".into(), 6, 7)));
        assert!(a.oom_file.is_none());
        assert!(args(&["/s", "42", "5", "-", "-", "-", "/o"])
            .unwrap()
            .log
            .is_none());
        assert!(args(&["/s", "42", "5", "/l", "-", "7", "-"]).is_none());
        assert!(args(&["/s", "x", "5", "-", "-", "-", "-"]).is_none());
        assert!(args(&["/s"]).is_none());
    }
}
