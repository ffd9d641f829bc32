//! Starting and stopping the cluster's `minik8s` processes. All process launching lives here,
//! so switching a node to one `minik8s agent` process changes this module only.
//!
//! Each process gets its own session (setsid, so a terminal's Ctrl-C after `cluster up` does
//! not reach it) and, for node processes, the node's network namespace: setns(2) before exec,
//! rather than `ip netns exec`, which would also give it a private mount namespace — the
//! runtime's overlay and pinned-namespace mounts must stay visible to a restarted runtime and
//! to `cluster down`.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::state::Proc;
use super::ClusterError;

/// The `minik8s` binary: `$MINIK8S_BIN`, else next to this executable.
pub fn minik8s_bin() -> Result<PathBuf, ClusterError> {
    if let Some(bin) = std::env::var_os("MINIK8S_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().map_err(|source| ClusterError::Io {
        what: "locate",
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    // Test binaries live in target/debug/deps; the binaries one level up.
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    for _ in 0..2 {
        let candidate = dir.join("minik8s");
        if candidate.is_file() {
            return Ok(candidate);
        }
        if !dir.pop() {
            break;
        }
    }
    Err(ClusterError::NoBinary(exe))
}

/// One `minik8s <args…>` to start.
pub struct Launch<'a> {
    pub component: &'a str,
    pub args: Vec<OsString>,
    /// `/run/netns/<name>` to enter, for node processes.
    pub netns: Option<PathBuf>,
    /// stdout and stderr are appended here.
    pub log: PathBuf,
}

/// Starts the process and records its PID and start time. It is not waited for: it outlives
/// this `minictl`, and `cluster down` stops it by the recorded PID.
pub fn spawn(launch: Launch<'_>) -> Result<Proc, ClusterError> {
    let bin = minik8s_bin()?;
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)
            .map_err(|source| ClusterError::io("open", &launch.log, source))
    };
    let (out, err) = (open_log()?, open_log()?);
    let netns = match &launch.netns {
        Some(path) => {
            Some(File::open(path).map_err(|source| ClusterError::io("open", path, source))?)
        }
        None => None,
    };
    let mut cmd = Command::new(&bin);
    cmd.args(&launch.args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let netns_fd = netns.as_ref().map(|f| f.as_raw_fd());
    // SAFETY: only async-signal-safe calls (setsid, setns) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = netns_fd {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| ClusterError::Spawn {
        component: launch.component.to_string(),
        source,
    })?;
    let pid = child.id() as i32;
    // The child is deliberately not waited for (it is reparented when we exit).
    std::mem::forget(child);
    let start_time = start_time(pid).unwrap_or(0);
    tracing::info!(component = launch.component, pid, "started");
    Ok(Proc {
        component: launch.component.to_string(),
        pid,
        start_time,
    })
}

/// Field 22 of /proc/PID/stat (start time in clock ticks since boot), and the state letter.
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after its closing paren are plain.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((state, fields.get(19)?.parse().ok()?))
}

pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, t)| t)
}

/// True while the recorded process runs (not a zombie, not a reused PID).
pub fn alive(proc: &Proc) -> bool {
    matches!(stat(proc.pid), Some((state, t)) if state != 'Z' && state != 'X' && t == proc.start_time)
}

pub fn signal(proc: &Proc, sig: i32) {
    // A zombie main thread may still have live threads, so only a reused PID is skipped.
    if start_time(proc.pid) == Some(proc.start_time) {
        // SAFETY: kill(2) on a PID we started and just checked.
        unsafe { libc::kill(proc.pid, sig) };
    }
}

/// SIGTERM, then SIGKILL if it still runs after `grace` (the components shut down cleanly
/// on SIGTERM: the API server flushes its store, the nodelet leaves its containers).
pub fn stop(proc: &Proc, grace: Duration) {
    if !alive(proc) {
        return;
    }
    signal(proc, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while !exited(proc) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if !exited(proc) {
        tracing::warn!(component = %proc.component, pid = proc.pid, "did not stop on SIGTERM, killing");
        signal(proc, libc::SIGKILL);
        wait_gone(proc, Duration::from_secs(5));
    }
}

pub fn kill(proc: &Proc) {
    signal(proc, libc::SIGKILL);
    // A process in an fsync on a busy disk dies only when the call returns; until then it
    // holds its files (the API server's store lock), so a restart must wait it out.
    wait_gone(proc, Duration::from_secs(30));
}

/// True once every thread of the process has exited. A multi-threaded process's main thread
/// turns zombie ('Z') as soon as it exits, while another thread may still be finishing a
/// syscall and holding the shared file table, and with it the API server's sled lock; so
/// this counts /proc/PID/task, where exited non-leader threads vanish at once.
fn exited(proc: &Proc) -> bool {
    if alive(proc) {
        return false;
    }
    match std::fs::read_dir(format!("/proc/{}/task", proc.pid)) {
        Ok(tasks) => start_time(proc.pid) != Some(proc.start_time) || tasks.count() <= 1,
        Err(_) => true,
    }
}

fn wait_gone(proc: &Proc, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !exited(proc) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident set size of a process in bytes (VmRSS of /proc/PID/status).
pub fn rss_bytes(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Proportional set size in bytes (Pss of /proc/PID/smaps_rollup): shared pages, such as the
/// one `minik8s` binary's text mapped by every component, are divided among their users, so
/// the PSS of all processes adds up to the memory they really take together.
pub fn pss_bytes(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Pss:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// Regression: `restart-apiserver` started the new API server while the killed one's
    /// main thread was a zombie but another thread still held the store's lock.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn a_zombie_main_thread_with_a_live_thread_has_not_exited() {
        // The main thread leaves with a bare exit(2) (SYS_exit, 60 on x86_64: this thread
        // only), while a second thread sleeps on: the shape of a killed process one of whose
        // threads is still in a syscall.
        let script = "import ctypes, threading, time, sys\n\
            threading.Thread(target=time.sleep, args=(30,)).start()\n\
            print('ready', flush=True)\n\
            ctypes.CDLL(None).syscall(60, 0)\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut ready,
        )
        .unwrap();
        let pid = child.id() as i32;
        let proc = Proc {
            component: "test".into(),
            pid,
            start_time: start_time(pid).expect("the child's stat"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(&proc) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let main_thread_gone = !alive(&proc);
        let exited_early = exited(&proc);
        kill(&proc);
        let exited_after_kill = exited(&proc);
        let _ = child.wait();
        assert!(main_thread_gone, "the main thread never exited");
        assert!(
            !exited_early,
            "a live thread was taken for an exited process"
        );
        assert!(exited_after_kill, "kill did not wait for every thread");
    }
}
