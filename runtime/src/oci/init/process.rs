//! The process's identity and limits (runtime-spec config.md "process"): sysctls, rlimits,
//! oom_score_adj, user and groups, umask, cwd, and finally the execve(2) of the user program.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{AccessFlags, Gid, Uid};
use oci_spec::runtime::{Linux, PosixRlimitType, Process};

use super::InitError;

/// runc's PATH when the process has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Writes `linux.sysctl` to /proc/sys (the namespaced ones only make sense, as with runc).
pub fn apply_sysctl(linux: &Linux) -> Result<(), InitError> {
    for (key, value) in linux.sysctl().iter().flatten() {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value)
            .map_err(|e| InitError::io(format!("write sysctl {}", path.display()), e))?;
    }
    Ok(())
}

fn rlimit_resource(typ: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match typ {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn apply_rlimits(process: &Process) -> Result<(), InitError> {
    for rl in process.rlimits().iter().flatten() {
        let lim = libc::rlimit {
            rlim_cur: rl.soft(),
            rlim_max: rl.hard(),
        };
        let r = unsafe { libc::setrlimit(rlimit_resource(rl.typ()), &lim) };
        Errno::result(r).map_err(|e| InitError::sys(format!("setrlimit {:?}", rl.typ()), e))?;
    }
    Ok(())
}

/// Only non-negative values: lowering the score needs CAP_SYS_RESOURCE, which root on this
/// machine lacks, and the kubelet only asks for negative values for critical pods.
pub fn apply_oom_score_adj(process: &Process) -> Result<(), InitError> {
    match process.oom_score_adj() {
        Some(adj) if adj >= 0 => std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| InitError::io("write /proc/self/oom_score_adj", e)),
        _ => Ok(()),
    }
}

/// Groups, gid, uid and umask. Capabilities survive the uid change (PR_SET_KEEPCAPS) so that
/// `caps::apply` can then set exactly the spec's sets.
pub fn switch_user(process: &Process) -> Result<(), InitError> {
    let user = process.user();
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(|e| InitError::sys("setgroups", e))?;
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| InitError::sys("setresgid", e))?;
    if user.uid() != 0 {
        let r = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
        Errno::result(r).map_err(|e| InitError::sys("prctl keepcaps", e))?;
        let uid = Uid::from_raw(user.uid());
        nix::unistd::setresuid(uid, uid, uid).map_err(|e| InitError::sys("setresuid", e))?;
    }
    let umask = user.umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    Ok(())
}

/// The resolved program, argv and environment, ready for execve.
pub struct Exec {
    path: CString,
    display: String,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

impl Exec {
    /// Changes to the working directory and finds the program the way execvp would, so a missing
    /// program fails `create` (as runc's init checks before waiting on the fifo).
    pub fn resolve(process: &Process) -> Result<Exec, InitError> {
        let cwd = process.cwd();
        nix::unistd::chdir(cwd)
            .map_err(|e| InitError::sys(format!("chdir {}", cwd.display()), e))?;
        let args = process.args().as_deref().unwrap_or(&[]);
        let arg0 = args
            .first()
            .ok_or(InitError::Config("process.args is empty".into()))?;
        let env = process.env().as_deref().unwrap_or(&[]);
        let path = find_program(arg0, env)?;
        let cstr = |s: &[u8]| {
            CString::new(s).map_err(|_| {
                InitError::Config(format!("nul byte in {:?}", String::from_utf8_lossy(s)))
            })
        };
        Ok(Exec {
            path: cstr(path.as_os_str().as_bytes())?,
            display: path.display().to_string(),
            argv: args
                .iter()
                .map(|a| cstr(a.as_bytes()))
                .collect::<Result<_, _>>()?,
            envp: env
                .iter()
                .map(|e| cstr(e.as_bytes()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Restores the signal state the shim changed (a blocked SIGCHLD, an ignored SIGPIPE, both
    /// inherited across execve) and runs the program. Returns only on failure.
    pub fn exec(self) -> InitError {
        unsafe {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        match nix::unistd::execve(&self.path, &self.argv, &self.envp) {
            Err(Errno::ENOENT) => InitError::NoSuchExecutable(self.display),
            Err(Errno::EACCES) => InitError::NotExecutable(self.display),
            Err(source) => InitError::Exec {
                path: self.display,
                source,
            },
            Ok(never) => match never {},
        }
    }
}

fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf, InitError> {
    let check = |p: &Path| match nix::unistd::access(p, AccessFlags::X_OK) {
        Ok(()) if p.is_file() => Ok(()),
        Ok(()) => Err(InitError::NotExecutable(p.display().to_string())),
        Err(Errno::EACCES) => Err(InitError::NotExecutable(p.display().to_string())),
        Err(_) => Err(InitError::NoSuchExecutable(p.display().to_string())),
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return check(&p).map(|()| p);
    }
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(arg0);
        if check(&p).is_ok() {
            return Ok(p);
        }
    }
    Err(InitError::NoSuchExecutable(arg0.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_or_named() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(find_program("sh", &env).unwrap().ends_with("sh"));
        let err = find_program("/bin/nope-not-here", &env).unwrap_err();
        assert_eq!(err.to_string(), "exec: no such file: /bin/nope-not-here");
        assert_eq!(err.exit_code(), 127);
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let err = find_program(plain.to_str().unwrap(), &env).unwrap_err();
        assert!(matches!(err, InitError::NotExecutable(_)), "{err}");
        assert_eq!(err.exit_code(), 126);
    }
}
