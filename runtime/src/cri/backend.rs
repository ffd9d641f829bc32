//! The OCI runtime that creates the containers from their bundles: the builtin one (the `oci`
//! module and its shim), or runc/crun (see [`external`](Backend::External)).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::monitor::{MonitorArgs, PID_FILE, STARTED_FILE};
use super::{Args, CriError, OciRuntimeKind};
use crate::oci::{self, CreateOptions, ExitRecord, OciError, Status};

/// What the OCI runtime says about a container now.
#[derive(Debug, Clone, PartialEq)]
pub enum Live {
    Created,
    Running {
        pid: i32,
    },
    Exited(ExitRecord),
    /// Stopped without an exit record (its shim died), or unknown to the OCI runtime.
    Lost,
}

pub enum Backend {
    Builtin(oci::Runtime),
    External(External),
}

/// runc or crun, each container watched by a [`monitor`](super::monitor) process.
pub struct External {
    /// The runc/crun binary.
    pub binary: PathBuf,
    /// Its `--root` (`<root>/runc` or `<root>/crun`).
    pub root: PathBuf,
    /// Monitor state dirs (`<root>/monitor/<id>`: pid, started, exit.json, runtime.log).
    pub state: PathBuf,
    /// The binary that runs `runtime-monitor`.
    pub monitor_binary: PathBuf,
}

impl Backend {
    pub fn new(args: &Args) -> Result<Backend, CriError> {
        let mut rt = oci::Runtime::new(args.root.join("oci"))?;
        if let Some(shim) = &args.shim_binary {
            rt = rt.with_shim_binary(shim);
        }
        rt.cgroup_parent = args.cgroup_parent.clone();
        let name = match args.oci_runtime {
            OciRuntimeKind::Builtin => return Ok(Backend::Builtin(rt)),
            OciRuntimeKind::Runc => "runc",
            OciRuntimeKind::Crun => "crun",
        };
        Ok(Backend::External(External {
            binary: which(name).ok_or_else(|| {
                CriError::InvalidArgument(format!("--oci-runtime {name}: {name} not found in PATH"))
            })?,
            root: args.root.join(name),
            state: args.root.join("monitor"),
            monitor_binary: rt.shim_binary.clone(),
        }))
    }

    /// Creates the container from the bundle in `bundle`; its init waits for [`start`].
    pub fn create(&self, id: &str, bundle: &Path, log: Option<&Path>) -> Result<(), CriError> {
        match self {
            Backend::Builtin(rt) => {
                rt.create(
                    id,
                    &CreateOptions {
                        bundle: bundle.into(),
                        pid_file: None,
                        log_path: log.map(Into::into),
                        // CRI starts in a separate StartContainer call.
                        start: false,
                    },
                )?;
                Ok(())
            }
            Backend::External(ext) => ext.create(id, bundle, log),
        }
    }

    pub fn start(&self, id: &str) -> Result<(), CriError> {
        match self {
            Backend::Builtin(rt) => Ok(rt.start(id)?),
            Backend::External(ext) => {
                ext.run("start", id, &[])?;
                let marker = ext.state.join(id).join(STARTED_FILE);
                std::fs::write(&marker, b"").map_err(|source| CriError::Io {
                    what: "write",
                    path: marker,
                    source,
                })
            }
        }
    }

    pub fn live(&self, id: &str) -> Live {
        match self {
            Backend::Builtin(rt) => match rt.state(id) {
                Ok(s) => match s.status {
                    Status::Creating | Status::Created => Live::Created,
                    // CRI has no paused state: a frozen container still runs.
                    Status::Running | Status::Paused => Live::Running { pid: s.pid },
                    Status::Stopped => match rt.exit_status(id) {
                        Ok(Some(rec)) => Live::Exited(rec),
                        _ => Live::Lost,
                    },
                },
                Err(_) => Live::Lost,
            },
            Backend::External(ext) => ext.live(id),
        }
    }

    /// Sends `signal` to the container (a stopped one is left alone): SIGKILL to every
    /// process of it, any other signal (the stop signal) to its init process only, as
    /// containerd's CRI StopContainer does (`task.Kill` without `WithKillAll`). The process
    /// decides how its children end — a server lets them finish their requests — until the
    /// SIGKILL at the end of the grace period.
    pub fn signal(&self, id: &str, signal: Signal) -> Result<(), CriError> {
        let all = signal == Signal::SIGKILL;
        match self {
            Backend::Builtin(rt) => match rt.kill(id, signal, all) {
                Ok(()) | Err(OciError::WrongStatus { .. }) | Err(OciError::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Backend::External(ext) => {
                if !matches!(ext.live(id), Live::Running { .. } | Live::Created) {
                    return Ok(());
                }
                let sig = (signal as i32).to_string();
                let args: &[&str] = if all { &["--all", &sig] } else { &[&sig] };
                match ext.run("kill", id, args) {
                    Ok(()) => Ok(()),
                    // Exited between the check and the kill.
                    Err(_) if !matches!(ext.live(id), Live::Running { .. } | Live::Created) => {
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// A command that runs `args` in the running container when spawned (caller sets stdio).
    pub fn exec_command(
        &self,
        id: &str,
        args: &[String],
    ) -> Result<std::process::Command, CriError> {
        match self {
            Backend::Builtin(rt) => Ok(rt.exec_command(
                id,
                &oci::ExecOptions {
                    args: args.to_vec(),
                    ..Default::default()
                },
            )?),
            Backend::External(ext) => {
                let mut cmd = std::process::Command::new(&ext.binary);
                super::monitor::hide_hybrid_cgroup2_from_crun(&mut cmd, &ext.binary);
                cmd.arg("--root")
                    .arg(&ext.root)
                    .arg("exec")
                    .arg(id)
                    .args(args);
                Ok(cmd)
            }
        }
    }

    /// Waits up to `timeout` for the container to exit; true when it did.
    pub fn wait_exit(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            if !matches!(self.live(id), Live::Running { .. } | Live::Created) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Has the container's shim (or monitor) continue its log in a fresh file at `log`.
    pub fn reopen_log(&self, id: &str, log: &Path) -> Result<(), CriError> {
        match self {
            Backend::Builtin(rt) => Ok(rt.reopen_log(id)?),
            Backend::External(ext) => ext.reopen_log(id, log),
        }
    }

    /// Kills (if needed) and forgets the container; unknown ids are fine.
    pub fn delete(&self, id: &str) -> Result<(), CriError> {
        match self {
            Backend::Builtin(rt) => match rt.delete(id, true) {
                Ok(()) | Err(OciError::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Backend::External(ext) => ext.delete(id),
        }
    }
}

impl External {
    fn reopen_log(&self, id: &str, log: &Path) -> Result<(), CriError> {
        if !matches!(self.live(id), Live::Running { .. } | Live::Created) {
            return Err(CriError::WrongState(format!(
                "container {id} is not running: its log cannot be reopened"
            )));
        }
        let pid_file = self.state.join(id).join(super::monitor::MONITOR_PID_FILE);
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .ok_or_else(|| {
                self.fail(
                    "reopen-log",
                    id,
                    format!("no monitor pid in {}", pid_file.display()),
                )
            })?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            super::monitor::REOPEN_LOG_SIGNAL,
        )
        .map_err(|e| self.fail("reopen-log", id, format!("signal monitor {pid}: {e}")))?;
        // The monitor creates the file again: that is its acknowledgement.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !log.exists() {
            if Instant::now() > deadline {
                return Err(self.fail(
                    "reopen-log",
                    id,
                    format!("the monitor did not reopen {}", log.display()),
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn fail(&self, command: &'static str, id: &str, message: String) -> CriError {
        CriError::External {
            binary: self.binary.display().to_string(),
            command,
            id: id.into(),
            message,
        }
    }

    /// `<binary> --root <root> <command> [args] <id>` (kill takes the signal after the id).
    fn run(&self, command: &'static str, id: &str, extra: &[&str]) -> Result<(), CriError> {
        let mut cmd = std::process::Command::new(&self.binary);
        super::monitor::hide_hybrid_cgroup2_from_crun(&mut cmd, &self.binary);
        cmd.arg("--root").arg(&self.root).arg(command);
        match command {
            "kill" => {
                let (flags, sig) = extra.split_at(extra.len().saturating_sub(1));
                cmd.args(flags).arg(id).args(sig);
            }
            _ => {
                cmd.args(extra).arg(id);
            }
        }
        let out = cmd
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| self.fail(command, id, e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.fail(
                command,
                id,
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }

    fn create(&self, id: &str, bundle: &Path, log: Option<&Path>) -> Result<(), CriError> {
        let dir = self.state.join(id);
        std::fs::create_dir_all(&dir).map_err(|source| CriError::Io {
            what: "create",
            path: dir.clone(),
            source,
        })?;
        let spec = oci::spec::Spec::load(bundle.join("config.json"))
            .map_err(|e| self.fail("create", id, format!("read config.json: {e}")))?;
        let cgroup = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .map(|p| p.display().to_string().trim_start_matches('/').to_string())
            .unwrap_or_default();
        let args = MonitorArgs {
            state_dir: dir.clone(),
            runtime: self.binary.clone(),
            runtime_root: self.root.clone(),
            bundle: bundle.into(),
            id: id.into(),
            cgroup,
            log: log.map(Into::into),
        };
        let out = std::process::Command::new(&self.monitor_binary)
            .args(args.to_args())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|e| self.fail("create", id, format!("start monitor: {e}")))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(self.fail(
                "create",
                id,
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(())
    }

    /// From the monitor's files only (no runtime exec: List calls this for every container).
    fn live(&self, id: &str) -> Live {
        let dir = self.state.join(id);
        if let Ok(Some(rec)) = ExitRecord::read(&dir) {
            return Live::Exited(rec);
        }
        let pid = std::fs::read_to_string(dir.join(PID_FILE))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        match pid {
            Some(pid)
                if crate::oci::state::process_start_time(pid)
                    .is_some_and(|(_, zombie)| !zombie) =>
            {
                if dir.join(STARTED_FILE).exists() {
                    Live::Running { pid }
                } else {
                    Live::Created
                }
            }
            // The init is gone; the monitor writes exit.json right after reaping it.
            Some(_) => {
                for _ in 0..100 {
                    std::thread::sleep(Duration::from_millis(2));
                    if let Ok(Some(rec)) = ExitRecord::read(&dir) {
                        return Live::Exited(rec);
                    }
                }
                Live::Lost
            }
            None => Live::Lost,
        }
    }

    fn delete(&self, id: &str) -> Result<(), CriError> {
        let dir = self.state.join(id);
        if !dir.exists() {
            return Ok(());
        }
        if let Err(e) = self.run("delete", id, &["--force"]) {
            let known = self.root.join(id).exists();
            if known {
                return Err(e);
            }
        }
        // The monitor exits right after recording; give it a moment so nothing is left.
        for _ in 0..500 {
            if ExitRecord::read(&dir).ok().flatten().is_some() || !dir.join(PID_FILE).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::fs::remove_dir_all(&dir).map_err(|source| CriError::Io {
            what: "remove",
            path: dir,
            source,
        })
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
