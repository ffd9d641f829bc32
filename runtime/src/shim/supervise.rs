//! The shim's life after `create`: copy the container's output into the CRI log, reap children
//! (waitpid loop; a signal death is 128+signal, as shells and containerd report it), record the
//! init's end in `exit.json`, and exit.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::log::{CriLog, Stream};
use super::{ShimArgs, Started};
use crate::oci::channel::{self, Message};
use crate::oci::state::{now_rfc3339, ExitRecord};

pub fn run(args: &ShimArgs, started: Started) -> ! {
    let status = match (&args.log_path, &started.stdout, &started.stderr) {
        (Some(path), Some(out), Some(err)) => match CriLog::open(path) {
            Ok(log) => supervise_with_log(started.pid, (log, path), out, err),
            Err(_) => reap_until(started.pid),
        },
        _ => reap_until(started.pid),
    };
    let (exit_code, signal) = status;
    // An exec failure after `start` was reported by the init on its socket before it exited.
    let _ = nix::fcntl::fcntl(
        started.sync.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let error = match channel::recv(started.sync.as_fd()) {
        Ok(Some(Message::Error(e))) => Some(e),
        _ => None,
    };
    let record = ExitRecord {
        exit_code,
        signal,
        oom_killed: started.cgroup.oom_killed(),
        finished_at: now_rfc3339(),
        error,
    };
    let _ = record.write(&args.state_dir);
    std::process::exit(0)
}

fn decode(status: WaitStatus) -> Option<(i32, Option<i32>)> {
    match status {
        WaitStatus::Exited(_, code) => Some((code, None)),
        WaitStatus::Signaled(_, sig, _) => Some((128 + sig as i32, Some(sig as i32))),
        _ => None,
    }
}

/// Blocking reap loop: returns the init's status; other children (orphans re-parented to the
/// subreaper) are reaped along the way.
fn reap_until(init: i32) -> (i32, Option<i32>) {
    loop {
        match waitpid(None, None) {
            Ok(status) if status.pid() == Some(Pid::from_raw(init)) => {
                if let Some(s) = decode(status) {
                    return s;
                }
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return (255, None), // ECHILD: nothing left, the init is unaccounted for
        }
    }
}

/// Non-blocking reap of everything that exited; the init's status if it was among them.
fn reap_ready(init: i32) -> Option<(i32, Option<i32>)> {
    let mut init_status = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return init_status,
            Ok(status) => {
                if status.pid() == Some(Pid::from_raw(init)) {
                    init_status = decode(status).or(init_status);
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => return init_status.or(Some((255, None))),
        }
    }
}

/// The signal that asks the shim to reopen its log file (CRI ReopenContainerLog). It is
/// blocked from before the shim reports the container created, so it never kills the shim.
pub const REOPEN_LOG_SIGNAL: Signal = Signal::SIGUSR1;

/// poll(2) over stdout, stderr and a signalfd for SIGCHLD (and [`REOPEN_LOG_SIGNAL`]) until the
/// init has exited; then the pipes are drained of what is already buffered (a daemon outside a
/// pid namespace may keep them open forever, so we do not wait for EOF after that).
fn supervise_with_log(
    init: i32,
    (mut log, log_path): (CriLog<std::fs::File>, &std::path::Path),
    out: &OwnedFd,
    err: &OwnedFd,
) -> (i32, Option<i32>) {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(REOPEN_LOG_SIGNAL);
    let _ = mask.thread_block();
    let sfd = match SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
        Ok(sfd) => sfd,
        Err(_) => return reap_until(init),
    };
    let mut open = [true, true];
    let mut buf = vec![0u8; 32 * 1024];
    let mut status = reap_ready(init);
    while status.is_none() {
        // Closed streams are left out: poll would report POLLHUP on them forever.
        let streams: Vec<usize> = (0..2).filter(|i| open[*i]).collect();
        let mut fds: Vec<PollFd> = streams
            .iter()
            .map(|i| {
                PollFd::new(
                    if *i == 0 { out.as_fd() } else { err.as_fd() },
                    PollFlags::POLLIN,
                )
            })
            .collect();
        fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return reap_until(init),
        }
        let fired: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        let mut ready = [false; 3];
        for (slot, i) in streams.iter().enumerate() {
            ready[*i] = fired[slot];
        }
        ready[2] = fired[streams.len()];
        drop(fds);
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if open[i] && ready[i] {
                let fd = if i == 0 { out } else { err };
                open[i] = copy_once(fd, stream, &mut log, &mut buf);
            }
        }
        if ready[2] {
            let mut reopen = false;
            while let Ok(Some(info)) = sfd.read_signal() {
                reopen |= info.ssi_signo == REOPEN_LOG_SIGNAL as u32;
            }
            if reopen {
                // What was read so far went to the old file; what follows goes to the new one.
                let _ = log.reopen(log_path);
            }
            status = reap_ready(init);
        }
    }
    for (i, (fd, stream)) in [(out, Stream::Stdout), (err, Stream::Stderr)]
        .into_iter()
        .enumerate()
    {
        if open[i] {
            let _ = nix::fcntl::fcntl(
                fd.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            while copy_once(fd, stream, &mut log, &mut buf) {}
        }
        let _ = log.finish(stream, &now_rfc3339());
    }
    status.unwrap_or((255, None))
}

/// One read from a stream into the log; false at EOF, on error, or when nothing is buffered.
fn copy_once(
    fd: &OwnedFd,
    stream: Stream,
    log: &mut CriLog<std::fs::File>,
    buf: &mut [u8],
) -> bool {
    match nix::unistd::read(fd.as_raw_fd(), buf) {
        Ok(0) => false,
        Ok(n) => {
            let _ = log.feed(stream, &buf[..n], &now_rfc3339());
            true
        }
        Err(Errno::EINTR) => true,
        Err(_) => false,
    }
}
