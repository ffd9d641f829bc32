//! `minik8s shim exec <state-dir> <process-json>`: runs one more process in a running container
//! (runc exec). A fresh single-threaded process: it joins the container's cgroup (while host
//! paths still resolve), then its namespaces through /proc/<init>/ns/*, forks once so the child
//! is inside the pid namespace, and the child becomes the process and execs. The parent waits
//! and exits with the child's status (128 + signal when killed), so callers simply wait for us.

use std::ffi::OsString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use oci_spec::runtime::Process;

use crate::oci::container_cgroup::ContainerCgroup;
use crate::oci::init::become_process;
use crate::oci::state::{process_alive, StateFile};

/// Namespaces joined, in order: the mount namespace last, as it changes path resolution.
const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Exit code when the exec could not happen (like runc's "exec failed" 255 for setup errors).
const SETUP_FAILED: i32 = 255;

pub fn main(args: &[OsString]) -> ! {
    let code = match args {
        [dir, process] => match run(Path::new(dir), process.as_encoded_bytes()) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("exec: {e}");
                SETUP_FAILED
            }
        },
        _ => {
            eprintln!("minik8s shim exec: internal command, started by the runtime");
            2
        }
    };
    std::process::exit(code)
}

fn run(dir: &Path, process_json: &[u8]) -> Result<i32, String> {
    let process: Process =
        serde_json::from_slice(process_json).map_err(|e| format!("invalid process: {e}"))?;
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let state = StateFile::read(dir, &id).map_err(|e| e.to_string())?;
    let pid = state.state.pid;
    if !process_alive(pid, state.init_start_time) {
        return Err(format!("container {id:?} is not running"));
    }
    let mut fds = Vec::new();
    for (name, flag) in NAMESPACES {
        let path = format!("/proc/{pid}/ns/{name}");
        let fd = open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("open {path}: {e}"))?;
        fds.push((path, *flag, unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    let cgroup = ContainerCgroup::open(state.cgroup_root.as_deref(), &state.cgroup_path)?;
    // setns(CLONE_NEWPID) only moves our future children: the forked child is the one inside.
    let pid_ns = fds
        .iter()
        .position(|(_, f, _)| *f == CloneFlags::CLONE_NEWPID)
        .expect("pid listed");
    let (path, flag, fd) = fds.remove(pid_ns);
    nix::sched::setns(fd, flag).map_err(|e| format!("setns {path}: {e}"))?;
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            // Only the child joins the cgroup (a kill of the container must hit the process, not
            // this waiter), before the mount namespace hides the host's cgroup filesystem. Its
            // pid is read and written in the container's pid namespace, which the kernel honours.
            let joined = cgroup
                .add_process(std::process::id() as i32)
                .and_then(|()| {
                    fds.into_iter().try_for_each(|(path, flag, fd)| {
                        nix::sched::setns(fd, flag).map_err(|e| format!("setns {path}: {e}"))
                    })
                });
            if let Err(e) = joined {
                eprintln!("exec: {e}");
                unsafe { libc::_exit(SETUP_FAILED) }
            }
            let err = match become_process(&process) {
                Ok(exec) => exec.exec(),
                Err(e) => e,
            };
            eprintln!("{err}");
            unsafe { libc::_exit(err.exit_code()) }
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("wait: {e}")),
            }
        },
    }
}
