//! start, state, kill, wait, delete, run and list: the operations on an existing container.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use super::container_cgroup::ContainerCgroup;
use super::state::{ContainerState, ExitRecord, StateFile, Status, EXEC_FIFO, PAUSED};
use super::{validate_id, CreateOptions, OciError, Runtime};

impl Runtime {
    fn load(&self, id: &str) -> Result<(std::path::PathBuf, StateFile), OciError> {
        validate_id(id)?;
        let dir = self.container_dir(id);
        let state = StateFile::read(&dir, id)?;
        Ok((dir, state))
    }

    /// runc's `state`: the recorded state with the current status.
    pub fn state(&self, id: &str) -> Result<ContainerState, OciError> {
        let (dir, file) = self.load(id)?;
        let mut state = file.state.clone();
        state.status = file.status(&dir);
        Ok(state)
    }

    /// The pid of the container's shim (for monitoring, e.g. its memory use).
    pub fn shim_pid(&self, id: &str) -> Result<i32, OciError> {
        Ok(self.load(id)?.1.shim_pid)
    }

    /// Releases the init blocked on the exec fifo: it then execs the user process.
    pub fn start(&self, id: &str) -> Result<(), OciError> {
        let (dir, file) = self.load(id)?;
        let status = file.status(&dir);
        if !status.can_start() {
            return Err(OciError::WrongStatus {
                id: id.into(),
                status,
                what: "cannot start a container that is not created",
            });
        }
        let fifo = dir.join(EXEC_FIFO);
        // Non-blocking: with no reader (the init died) this fails with ENXIO instead of hanging.
        let fd = match open(
            &fifo,
            OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
            Err(nix::errno::Errno::ENXIO) => {
                return Err(OciError::Container(format!(
                    "container {id:?}: init is not running"
                )))
            }
            Err(e) => return Err(OciError::sys(format!("open {}", fifo.display()), e)),
        };
        nix::unistd::write(&fd, b"0")
            .map_err(|e| OciError::sys(format!("write {}", fifo.display()), e))?;
        let _ = std::fs::remove_file(&fifo);
        Ok(())
    }

    /// Sends `signal` to the init, or with `all` to every process of the container's cgroup.
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<(), OciError> {
        let (dir, file) = self.load(id)?;
        let status = file.status(&dir);
        if !status.can_kill() {
            return Err(OciError::WrongStatus {
                id: id.into(),
                status,
                what: "container not running",
            });
        }
        if all {
            let cg = ContainerCgroup::open(file.cgroup_root.as_deref(), &file.cgroup_path)
                .map_err(OciError::Cgroup)?;
            cg.kill_all(signal as i32).map_err(OciError::Cgroup)?;
        }
        match kill(Pid::from_raw(file.state.pid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(OciError::sys(format!("kill {}", file.state.pid), e)),
        }
    }

    /// Makes the shim continue the container's log in a fresh file at its log path (CRI
    /// ReopenContainerLog: the kubelet renamed the old file to rotate it). Returns once the new
    /// file exists, so output written after the call lands in it.
    pub fn reopen_log(&self, id: &str) -> Result<(), OciError> {
        let (dir, file) = self.load(id)?;
        let status = file.status(&dir);
        if !matches!(status, Status::Created | Status::Running | Status::Paused) {
            return Err(OciError::WrongStatus {
                id: id.into(),
                status,
                what: "cannot reopen the log of a container that is not running",
            });
        }
        let Some(log) = &file.log_path else {
            return Err(OciError::Unsupported(format!(
                "reopening the log of container {id:?}, which has no log file,"
            )));
        };
        let signal = crate::shim::REOPEN_LOG_SIGNAL;
        kill(Pid::from_raw(file.shim_pid), signal)
            .map_err(|e| OciError::sys(format!("kill {} (shim)", file.shim_pid), e))?;
        // The shim opens the path with O_CREAT: its existence is the acknowledgement. If the
        // file was not moved away it exists already and the shim appends to it either way.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !log.exists() {
            if std::time::Instant::now() > deadline || file.status(&dir) == Status::Stopped {
                return Err(OciError::Container(format!(
                    "container {id:?}: the shim did not reopen {}",
                    log.display()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }

    /// Freezes every process of the container (its cgroup's freezer), like `runc pause`.
    pub fn pause(&self, id: &str) -> Result<(), OciError> {
        let (dir, file) = self.load(id)?;
        let status = file.status(&dir);
        if status != Status::Running {
            return Err(OciError::WrongStatus {
                id: id.into(),
                status,
                what: "can only pause a running container",
            });
        }
        let cg = ContainerCgroup::open(file.cgroup_root.as_deref(), &file.cgroup_path)
            .map_err(OciError::Cgroup)?;
        cg.cgroup
            .freeze()
            .map_err(|e| OciError::Cgroup(format!("freeze {}: {e}", file.cgroup_path)))?;
        std::fs::write(dir.join(PAUSED), b"")
            .map_err(|e| OciError::io(format!("write {}", dir.join(PAUSED).display()), e))
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<(), OciError> {
        let (dir, file) = self.load(id)?;
        let status = file.status(&dir);
        if status != Status::Paused {
            return Err(OciError::WrongStatus {
                id: id.into(),
                status,
                what: "can only resume a paused container",
            });
        }
        thaw(&dir, &file)
    }

    /// Blocks until the container's shim has exited and returns how the init ended.
    pub fn wait(&self, id: &str) -> Result<ExitRecord, OciError> {
        validate_id(id)?;
        let dir = self.container_dir(id);
        if !dir.is_dir() {
            return Err(OciError::NotFound(id.into()));
        }
        wait_for_shim(&dir)?;
        ExitRecord::read(&dir)?.ok_or_else(|| OciError::NoExitStatus(id.into()))
    }

    /// The recorded exit, if the container has stopped.
    pub fn exit_status(&self, id: &str) -> Result<Option<ExitRecord>, OciError> {
        validate_id(id)?;
        ExitRecord::read(&self.container_dir(id))
    }

    /// Removes a stopped (or, like runc, a created) container; a running one only with `force`,
    /// after SIGKILL to all its processes. Removes its cgroup and state directory.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), OciError> {
        let (dir, file) = match self.load(id) {
            Ok(loaded) => loaded,
            Err(OciError::NotFound(_)) if self.container_dir(id).is_dir() => {
                // A create that died before recording its state (e.g. the caller was killed):
                // wait out a shim that may still be failing, then remove the leftovers.
                let dir = self.container_dir(id);
                wait_for_shim(&dir)?;
                return std::fs::remove_dir_all(&dir)
                    .map_err(|e| OciError::io(format!("remove {}", dir.display()), e));
            }
            Err(e) => return Err(e),
        };
        let status = file.status(&dir);
        match status {
            Status::Running | Status::Paused if !force => {
                return Err(OciError::WrongStatus {
                    id: id.into(),
                    status,
                    what: "cannot delete a running container without --force",
                })
            }
            Status::Created | Status::Running | Status::Paused => {
                self.kill(id, Signal::SIGKILL, true).or_else(|e| match e {
                    OciError::WrongStatus { .. } => Ok(()), // exited meanwhile
                    e => Err(e),
                })?;
                if status == Status::Paused {
                    // Frozen tasks only die once thawed.
                    thaw(&dir, &file)?;
                }
            }
            Status::Stopped | Status::Creating => {}
        }
        wait_for_shim(&dir)?;
        let cg = ContainerCgroup::open(file.cgroup_root.as_deref(), &file.cgroup_path)
            .map_err(OciError::Cgroup)?;
        cg.remove().map_err(OciError::Cgroup)?;
        std::fs::remove_dir_all(&dir)
            .map_err(|e| OciError::io(format!("remove {}", dir.display()), e))
    }

    /// create + start + wait + delete (the start without an exec fifo round trip); returns how
    /// the container ended.
    pub fn run(&self, id: &str, opts: &CreateOptions) -> Result<ExitRecord, OciError> {
        let opts = CreateOptions {
            start: true,
            ..opts.clone()
        };
        self.create(id, &opts)?;
        let result = self.wait(id);
        let deleted = self.delete(id, true);
        let record = result?;
        deleted?;
        Ok(record)
    }

    /// All containers under the root, with their current status.
    pub fn list(&self) -> Result<Vec<ContainerState>, OciError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(OciError::io(format!("read {}", self.root.display()), e)),
        };
        let mut states: Vec<ContainerState> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter_map(|id| self.state(&id).ok())
            .collect();
        states.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(states)
    }
}

fn thaw(dir: &Path, file: &StateFile) -> Result<(), OciError> {
    let cg = ContainerCgroup::open(file.cgroup_root.as_deref(), &file.cgroup_path)
        .map_err(OciError::Cgroup)?;
    cg.cgroup
        .thaw()
        .map_err(|e| OciError::Cgroup(format!("thaw {}: {e}", file.cgroup_path)))?;
    let _ = std::fs::remove_file(dir.join(PAUSED));
    Ok(())
}

/// Waits for the shim to exit: it holds an exclusive flock on the state directory for its whole
/// life, so a shared lock is granted exactly then (or at once if it is already gone).
pub(crate) fn wait_for_shim(dir: &Path) -> Result<(), OciError> {
    let fd = open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| OciError::sys(format!("open {}", dir.display()), e))?;
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    loop {
        let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_SH) };
        match nix::errno::Errno::result(r) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(OciError::sys(format!("flock {}", dir.display()), e)),
        }
    }
}
