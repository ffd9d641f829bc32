//! `minik8s oci ...`: a thin runc-compatible command line over [`Runtime`].

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Parser, Subcommand, ValueEnum};
use nix::sys::signal::Signal;

use super::{CreateOptions, OciError, Runtime, DEFAULT_CGROUP_PARENT, DEFAULT_ROOT};

#[derive(Debug, Parser)]
#[command(about = "Low-level OCI runtime (runc-compatible commands)")]
pub struct Args {
    /// State directory of the containers.
    #[arg(long, default_value = DEFAULT_ROOT, global = true)]
    pub root: PathBuf,
    /// Parent cgroup of containers without linux.cgroupsPath.
    #[arg(long, default_value = DEFAULT_CGROUP_PARENT, global = true)]
    pub cgroup_parent: String,
    /// Accepted for runc compatibility (containerd passes them); errors go to stderr.
    #[arg(long, hide = true, global = true)]
    pub log: Option<PathBuf>,
    #[arg(long, hide = true, global = true)]
    pub log_format: Option<String>,
    #[arg(long, hide = true, global = true)]
    pub systemd_cgroup: bool,
    #[arg(long, hide = true, global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: OciCommand,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Bundle directory (config.json and rootfs).
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Terminals are not supported; given, the command fails.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write stdout/stderr to this CRI-format log file instead of inheriting our stdio.
    #[arg(long)]
    pub container_log: Option<PathBuf>,
    pub id: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum OciCommand {
    /// Create a container: set up, waiting for `start`.
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Print a container's state as JSON.
    State { id: String },
    /// Freeze all processes of a running container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Send a signal (default SIGTERM) to a container's init.
    Kill {
        /// Signal every process of the container.
        #[arg(long, short = 'a')]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a stopped container (running ones with --force).
    Delete {
        #[arg(long, short = 'f')]
        force: bool,
        id: String,
    },
    /// Create, start, wait for and delete a container; exits with its exit code.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return after start, leaving the container running.
        #[arg(long, short = 'd')]
        detach: bool,
    },
    /// List containers.
    List {
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Run a process in a running container; exits with its exit code.
    Exec {
        /// The process as JSON (runtime-spec `process`), instead of COMMAND.
        #[arg(long, short = 'p')]
        process: Option<PathBuf>,
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Extra environment, KEY=VALUE (repeatable).
        #[arg(long, short = 'e')]
        env: Vec<String>,
        /// Terminals are not supported; given, the command fails.
        #[arg(long, short = 't')]
        tty: bool,
        /// Do not wait for the process.
        #[arg(long, short = 'd')]
        detach: bool,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Show the processes of a container (host pids).
    Ps {
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
        id: String,
    },
}

/// Runs the command; returns the process exit code (errors are printed to stderr).
pub fn main(args: Args) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("minik8s oci: {e}");
            1
        }
    }
}

fn runtime(args: &Args) -> Result<Runtime, OciError> {
    let mut rt = Runtime::new(&args.root)?;
    rt.cgroup_parent = args.cgroup_parent.clone();
    // This CLI is single-threaded: the shim can be a plain fork of it, one exec fewer.
    rt.shim_launch = super::ShimLaunch::Fork;
    Ok(rt)
}

fn create_options(c: &CreateArgs) -> Result<CreateOptions, OciError> {
    if c.console_socket.is_some() {
        return Err(OciError::Unsupported(
            "a terminal (--console-socket)".into(),
        ));
    }
    Ok(CreateOptions {
        bundle: c.bundle.clone(),
        pid_file: c.pid_file.clone(),
        log_path: c.container_log.clone(),
        start: false,
    })
}

/// The init `run` forwards signals to (0: none yet).
static FORWARD_TO: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// A signal that arrived before the init's pid was known (0: none).
static PENDING: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = FORWARD_TO.load(std::sync::atomic::Ordering::SeqCst);
    if pid > 0 {
        // kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    } else {
        PENDING.store(sig, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `run` in the foreground: like runc, the signals a user sends to `run` (Ctrl-C, SIGTERM, ...)
/// go to the container's init; the exit code is the container's. If `run` itself is killed
/// (SIGKILL) the container lives on under its shim.
fn run_foreground(rt: &Runtime, id: &str, opts: &CreateOptions) -> Result<i32, OciError> {
    let opts = CreateOptions {
        start: true,
        ..opts.clone()
    };
    // Handlers first: the container starts during `create`, and a signal must not kill us
    // before we know whom to forward it to.
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = forward_signal as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
    let state = rt.create(id, &opts)?;
    FORWARD_TO.store(state.pid, std::sync::atomic::Ordering::SeqCst);
    let pending = PENDING.swap(0, std::sync::atomic::Ordering::SeqCst);
    if pending > 0 {
        unsafe { libc::kill(state.pid, pending) };
    }
    let result = rt.wait(id);
    let deleted = rt.delete(id, true);
    let exit = result?;
    deleted?;
    Ok(exit.exit_code)
}

pub fn parse_signal(s: &str) -> Result<Signal, OciError> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n)
            .map_err(|_| OciError::Container(format!("invalid signal {s:?}")));
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    Signal::from_str(&name).map_err(|_| OciError::Container(format!("invalid signal {s:?}")))
}

fn run(args: Args) -> Result<i32, OciError> {
    let rt = runtime(&args)?;
    match &args.command {
        OciCommand::Create(c) => {
            rt.create(&c.id, &create_options(c)?)?;
        }
        OciCommand::Start { id } => rt.start(id)?,
        OciCommand::Pause { id } => rt.pause(id)?,
        OciCommand::Resume { id } => rt.resume(id)?,
        OciCommand::State { id } => {
            let state = rt.state(id)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&state).expect("state serializes")
            );
        }
        OciCommand::Kill { all, id, signal } => rt.kill(id, parse_signal(signal)?, *all)?,
        OciCommand::Delete { force, id } => rt.delete(id, *force)?,
        OciCommand::Run { create, detach } => {
            let opts = create_options(create)?;
            if !*detach {
                return run_foreground(&rt, &create.id, &opts);
            }
            rt.create(
                &create.id,
                &CreateOptions {
                    start: true,
                    ..opts
                },
            )?;
        }
        OciCommand::List { format, quiet } => print_list(&rt.list()?, *format, *quiet),
        OciCommand::Exec { .. } => return exec(&rt, &args.command),
        OciCommand::Ps { format, id } => print_ps(&rt.ps(id)?, *format),
    }
    Ok(0)
}

/// runc's `list` table (or JSON array of states, or ids only).
fn print_list(states: &[super::ContainerState], format: Format, quiet: bool) {
    if quiet {
        states.iter().for_each(|s| println!("{}", s.id));
        return;
    }
    if let Format::Json = format {
        println!(
            "{}",
            serde_json::to_string(states).expect("states serialize")
        );
        return;
    }
    println!(
        "{:<24} {:<8} {:<10} {:<40} {:<32} OWNER",
        "ID", "PID", "STATUS", "BUNDLE", "CREATED"
    );
    for s in states {
        let pid = if s.status == super::Status::Stopped {
            0
        } else {
            s.pid
        };
        let owner = if s.owner.is_empty() { "root" } else { &s.owner };
        println!(
            "{:<24} {:<8} {:<10} {:<40} {:<32} {owner}",
            s.id,
            pid,
            s.status.to_string(),
            s.bundle.display(),
            s.created,
        );
    }
}

fn print_ps(pids: &[i32], format: Format) {
    if let Format::Json = format {
        println!("{}", serde_json::to_string(pids).expect("pids serialize"));
        return;
    }
    println!("{:<8} CMD", "PID");
    for pid in pids {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        println!("{pid:<8} {}", cmd.trim_end());
    }
}

fn exec(rt: &Runtime, command: &OciCommand) -> Result<i32, OciError> {
    let OciCommand::Exec {
        process,
        cwd,
        env,
        tty,
        detach,
        id,
        command,
    } = command
    else {
        unreachable!("exec is only called for the exec command");
    };
    if *tty {
        return Err(OciError::Unsupported("a terminal (--tty)".into()));
    }
    let process = match process {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| OciError::io(format!("read {}", path.display()), e))?;
            let process = serde_json::from_slice(&bytes).map_err(|e| {
                OciError::Container(format!("invalid process file {}: {e}", path.display()))
            })?;
            Some(process)
        }
        None => None,
    };
    let opts = super::ExecOptions {
        process,
        args: command.clone(),
        cwd: cwd.clone(),
        env: env.clone(),
    };
    if !*detach {
        return rt.exec(id, &opts);
    }
    let mut cmd = rt.exec_command(id, &opts)?;
    cmd.stdin(std::process::Stdio::null());
    cmd.spawn().map_err(|source| OciError::SpawnShim {
        binary: rt.shim_binary.clone(),
        source,
    })?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_runc() {
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert!(parse_signal("NOPE").is_err());
    }

    #[test]
    fn command_line_parses_runc_style() {
        let a = Args::try_parse_from([
            "oci",
            "--root",
            "/r",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "c1",
        ])
        .unwrap();
        assert_eq!(a.root, PathBuf::from("/r"));
        assert!(
            matches!(a.command, OciCommand::Create(ref c) if c.id == "c1" && c.bundle == std::path::Path::new("/b"))
        );
        let a = Args::try_parse_from(["oci", "kill", "--all", "c1", "KILL"]).unwrap();
        assert!(
            matches!(a.command, OciCommand::Kill { all: true, ref signal, .. } if signal == "KILL")
        );
    }
}
