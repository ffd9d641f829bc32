//! The long-lived half of the shim: `minik8s-monitor` (runtime/monitor), built statically by
//! the build script and embedded here. The runtime installs it once in its state root; every
//! shim, once the container is set up, execs it in place (same pid, so it stays the init's
//! parent and keeps the state directory's flock) and it supervises the container to the end.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use super::Started;

/// The program, as the build script linked it.
const PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/minik8s-monitor"));

/// Asks the monitor to reopen the container's log file (CRI ReopenContainerLog). The shim
/// blocks it before it reports the container created and the block survives the exec, so it
/// can never kill the shim or the monitor; the monitor reads it from a signalfd.
pub const REOPEN_LOG_SIGNAL: Signal = Signal::SIGUSR1;

/// Where the program goes when the state root is on a `noexec` mount (Debian's initramfs
/// mounts /run so, and /run/minik8s/oci is the CLI's default root): the data directory, like
/// k3s' extracted binaries under /var/lib/rancher/k3s/data.
pub const FALLBACK_DIR: &str = "/var/lib/minik8s/bin";

/// Where [`install_in`] puts the program in `dir`: named by its content hash, so runtimes of
/// different builds sharing a directory never replace a file a running monitor was exec'd from.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(concat!(".minik8s-monitor-", env!("MINIK8S_MONITOR_HASH")))
}

/// Installs the program beside the state `root`, or in [`FALLBACK_DIR`] when `root` is on a
/// mount that forbids exec.
pub fn install(root: &Path) -> Result<PathBuf, String> {
    install_in(&[root, Path::new(FALLBACK_DIR)])
}

/// Installs the program in the first of `dirs` whose filesystem allows exec (made if missing)
/// and returns its path.
pub fn install_in(dirs: &[&Path]) -> Result<PathBuf, String> {
    for dir in dirs {
        std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let flags = nix::sys::statvfs::statvfs(*dir)
            .map_err(|e| format!("statvfs {}: {e}", dir.display()))?
            .flags();
        if !flags.contains(nix::sys::statvfs::FsFlags::ST_NOEXEC) {
            return write_once(dir).map_err(|e| format!("install {}: {e}", path_in(dir).display()));
        }
    }
    let tried: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(format!(
        "cannot install the container monitor: {} mounted noexec",
        tried.join(" and ")
    ))
}

/// Writes the program in `dir` unless it is there already. Concurrent callers each write a
/// private temporary file and rename it into place.
fn write_once(dir: &Path) -> std::io::Result<PathBuf> {
    let path = path_in(dir);
    if path.is_file() {
        return Ok(path);
    }
    let tmp = dir.join(format!(
        ".minik8s-monitor.{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o755)
        .open(&tmp)
        .and_then(|mut f| f.write_all(PROGRAM))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| path)
}

/// Replaces this (single-threaded) shim with the monitor. Returns only if the exec failed.
pub fn exec(
    program: &Path,
    state_dir: &Path,
    log_path: Option<&Path>,
    started: &Started,
) -> nix::Error {
    // Everything the monitor uses or must hold crosses the exec: the init's socket, the log
    // pipes and the state directory's lock.
    let mut keep: Vec<RawFd> = vec![started.sync.as_raw_fd(), started.lock.as_raw_fd()];
    keep.extend(
        started
            .stdout
            .iter()
            .chain(&started.stderr)
            .map(|f| f.as_raw_fd()),
    );
    for fd in keep {
        if let Err(e) = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        ) {
            return e;
        }
    }
    let fd_arg = |fd: Option<&std::os::fd::OwnedFd>| {
        fd.map_or_else(|| "-".to_string(), |f| f.as_raw_fd().to_string())
    };
    let logging = log_path.filter(|_| started.stdout.is_some() && started.stderr.is_some());
    let args: Vec<Vec<u8>> = vec![
        program.as_os_str().as_bytes().to_vec(),
        state_dir.as_os_str().as_bytes().to_vec(),
        started.pid.to_string().into_bytes(),
        started.sync.as_raw_fd().to_string().into_bytes(),
        logging.map_or(b"-".to_vec(), |p| p.as_os_str().as_bytes().to_vec()),
        fd_arg(logging.and(started.stdout.as_ref())).into_bytes(),
        fd_arg(logging.and(started.stderr.as_ref())).into_bytes(),
        started
            .cgroup
            .oom_events_file()
            .map_or(b"-".to_vec(), |p| p.as_os_str().as_bytes().to_vec()),
    ];
    let args: Result<Vec<CString>, _> = args.into_iter().map(CString::new).collect();
    let Ok(args) = args else {
        return nix::Error::EINVAL;
    };
    // execv, not std's Command: it keeps the signal mask (the blocked REOPEN_LOG_SIGNAL).
    match nix::unistd::execv(&args[0], &args) {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_writes_the_program_once_and_executable() {
        let root = tempfile::tempdir().unwrap();
        let path = install_in(&[root.path()]).unwrap();
        assert_eq!(path, path_in(root.path()));
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), PROGRAM.len() as u64);
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111,
            0o111
        );
        assert_eq!(std::fs::read(&path).unwrap(), PROGRAM);
        let modified = meta.modified().unwrap();
        assert_eq!(install_in(&[root.path()]).unwrap(), path);
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified
        );
        // Only the program: no temporary file left beside it.
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_program_refuses_a_wrong_command_line() {
        let root = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(install_in(&[root.path()]).unwrap())
            .arg("x")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("internal command"));
    }

    /// A tmpfs mounted noexec on a temp dir, unmounted on drop (also when the test fails).
    struct NoexecMount(tempfile::TempDir);

    impl NoexecMount {
        fn new() -> NoexecMount {
            use nix::mount::{mount, MsFlags};
            let dir = tempfile::tempdir().unwrap();
            mount(
                Some("tmpfs"),
                dir.path(),
                Some("tmpfs"),
                MsFlags::MS_NOEXEC,
                Some("size=4m"),
            )
            .unwrap();
            NoexecMount(dir)
        }
    }

    impl Drop for NoexecMount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }

    #[test]
    fn a_noexec_state_root_installs_the_program_in_the_next_directory() {
        let noexec = NoexecMount::new();
        let fallback = tempfile::tempdir().unwrap();
        let path = install_in(&[noexec.0.path(), fallback.path()]).unwrap();
        assert_eq!(path, path_in(fallback.path()));
        assert_eq!(std::fs::read_dir(noexec.0.path()).unwrap().count(), 0);
        let out = std::process::Command::new(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "the installed program runs");

        let err = install_in(&[noexec.0.path()]).unwrap_err();
        assert!(err.contains("mounted noexec"), "{err}");
        assert!(
            err.contains(&noexec.0.path().display().to_string()),
            "{err}"
        );
    }
}
