//! `create`: make the state directory, start the shim, and record the state once the shim says
//! the init is set up and waiting on the exec fifo.

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::channel::{self, Message};
use super::container_cgroup::{self, ContainerCgroup};
use super::state::{ContainerState, StateFile};
use super::{validate_id, Bundle, OciError, Runtime, ShimLaunch};
use crate::shim::{ShimArgs, REPLY_FD};

/// Options of `create` beyond the bundle.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    /// Where to write the init's pid (runc's `--pid-file`).
    pub pid_file: Option<PathBuf>,
    /// CRI log file for the container's stdout/stderr. Without it the container inherits the
    /// caller's stdio, like runc's detached mode.
    pub log_path: Option<PathBuf>,
    /// Start as soon as it is created, without waiting for [`Runtime::start`] (what `run` does;
    /// no exec fifo is made).
    pub start: bool,
}

impl Runtime {
    /// Creates the container: afterwards its init exists, set up, blocked until [`Runtime::start`].
    /// On failure nothing is left: no state directory, cgroup, mount or process.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<ContainerState, OciError> {
        validate_id(id)?;
        std::fs::create_dir_all(&self.root)
            .map_err(|e| OciError::io(format!("mkdir {}", self.root.display()), e))?;
        let dir = self.container_dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(OciError::AlreadyExists(id.to_string()))
            }
            Err(e) => return Err(OciError::io(format!("mkdir {}", dir.display()), e)),
        }
        let result = self.create_in(id, &dir, opts);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    fn create_in(
        &self,
        id: &str,
        dir: &Path,
        opts: &CreateOptions,
    ) -> Result<ContainerState, OciError> {
        let bundle = Bundle::load(&opts.bundle)?;
        let cgroup_path = container_cgroup::path_for(&bundle.spec, &self.cgroup_parent, id);
        let log_path = opts
            .log_path
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
        let monitor = crate::shim::monitor::install(&self.root).map_err(OciError::Container)?;
        let args = ShimArgs {
            monitor,
            state_dir: dir.to_path_buf(),
            bundle: bundle.dir.clone(),
            cgroup_path: cgroup_path.clone(),
            cgroup_root: self.cgroup_root.clone(),
            log_path,
            start: opts.start,
        };
        let (pid, _shim_pid) = match self.shim_launch {
            ShimLaunch::Exec => spawn_shim(&self.shim_binary, &args, id)?,
            ShimLaunch::Fork => fork_shim(&args, &bundle, id)?,
        };
        // The shim recorded the state; only the pid file is ours.
        let state = StateFile::read(dir, id)?;
        if let Some(f) = &opts.pid_file {
            if let Err(e) = std::fs::write(f, pid.to_string()) {
                // The caller asked for a pid file and cannot have it: take the container down.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
                let _ = super::lifecycle::wait_for_shim(dir);
                if let Ok(cg) = ContainerCgroup::open(self.cgroup_root.as_deref(), &cgroup_path) {
                    let _ = cg.remove();
                }
                return Err(OciError::io(format!("write pid file {}", f.display()), e));
            }
        }
        Ok(state.state)
    }
}

/// Forks the (single-threaded) caller; the child puts the reply pipe on fd 3 and runs the shim.
fn fork_shim(args: &ShimArgs, bundle: &Bundle, id: &str) -> Result<(i32, i32), OciError> {
    let (reply_r, reply_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| OciError::sys("pipe", e))?;
    match unsafe { nix::unistd::fork() }.map_err(|e| OciError::sys("fork shim", e))? {
        nix::unistd::ForkResult::Child => {
            drop(reply_r);
            unsafe {
                libc::dup2(reply_w.as_raw_fd(), REPLY_FD);
                if args.log_path.is_some() {
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                    for fd in 0..3 {
                        libc::dup2(null, fd);
                    }
                }
            }
            crate::shim::run(args, false, Some(bundle.clone()))
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(reply_w);
            // The child is the shim itself: it stays our child until we exit.
            let _ = child;
            await_shim(None, reply_r, id)
        }
    }
}

/// Reads the shim's one message and reaps the first shim process, when there is one (it exits
/// once it has forked the daemon).
fn await_shim(
    first: Option<i32>,
    reply: std::os::fd::OwnedFd,
    id: &str,
) -> Result<(i32, i32), OciError> {
    let msg = channel::recv(reply.as_fd());
    if let Some(first) = first {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(first), None);
    }
    match msg {
        Ok(Some(Message::Created { pid, shim })) => Ok((pid, shim)),
        Ok(Some(Message::Error(e))) => Err(OciError::Container(e)),
        _ => Err(OciError::ShimVanished(id.to_string())),
    }
}

/// posix_spawn(3)s `<binary> shim ARGS` with the reply pipe on fd 3 (no fork of the caller,
/// which may be a big multi-threaded server), and waits for its one message.
fn spawn_shim(binary: &Path, args: &ShimArgs, id: &str) -> Result<(i32, i32), OciError> {
    let spawn_err = |source| OciError::SpawnShim {
        binary: binary.to_path_buf(),
        source,
    };
    let (reply_r, reply_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| OciError::sys("pipe", e))?;
    let cstr =
        |s: &[u8]| CString::new(s).map_err(|_| spawn_err(std::io::ErrorKind::InvalidInput.into()));
    let path = cstr(binary.as_os_str().as_bytes())?;
    let mut argv_os: Vec<OsString> = vec![binary.as_os_str().to_owned()];
    argv_os.extend(args.to_args());
    let argv: Vec<CString> = argv_os
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).ok()
        })
        .collect();
    let mut argv_ptrs: Vec<*mut libc::c_char> = argv.iter().map(|a| a.as_ptr() as *mut _).collect();
    argv_ptrs.push(std::ptr::null_mut());
    let mut envp_ptrs: Vec<*mut libc::c_char> = envp.iter().map(|a| a.as_ptr() as *mut _).collect();
    envp_ptrs.push(std::ptr::null_mut());

    let mut pid: libc::pid_t = 0;
    let rc = unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut actions);
        libc::posix_spawn_file_actions_adddup2(&mut actions, reply_w.as_raw_fd(), REPLY_FD);
        if args.log_path.is_some() {
            // Logging: the shim and container must not hold the caller's stdio (a caller
            // reading our output would otherwise wait for the container to exit).
            let null = c"/dev/null".as_ptr();
            libc::posix_spawn_file_actions_addopen(&mut actions, 0, null, libc::O_RDONLY, 0);
            libc::posix_spawn_file_actions_addopen(&mut actions, 1, null, libc::O_WRONLY, 0);
            libc::posix_spawn_file_actions_addopen(&mut actions, 2, null, libc::O_WRONLY, 0);
        }
        let rc = libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            &actions,
            std::ptr::null(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
        );
        libc::posix_spawn_file_actions_destroy(&mut actions);
        rc
    };
    drop(reply_w);
    if rc != 0 {
        return Err(spawn_err(std::io::Error::from_raw_os_error(rc)));
    }
    await_shim(Some(pid), reply_r, id)
}
