//! `exec` and `ps`: more processes in a running container, and the list of its processes.

use std::process::Command;

use oci_spec::runtime::Process;

use super::container_cgroup::ContainerCgroup;
use super::state::{StateFile, Status};
use super::{validate_id, Bundle, OciError, Runtime};

/// What to run with `exec`; unset fields come from the container's own process in config.json
/// (as runc exec does: same user, capabilities and no_new_privs unless told otherwise).
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// A whole process (runc's `--process file.json`); wins over the fields below.
    pub process: Option<Process>,
    pub args: Vec<String>,
    pub cwd: Option<std::path::PathBuf>,
    /// Extra `KEY=VALUE` entries, appended to the container's environment.
    pub env: Vec<String>,
}

impl Runtime {
    /// A command that runs the process inside the container when spawned (`<shim> shim exec`):
    /// the caller chooses its stdio and waits for it; its exit status is the process's (255 when
    /// it could not be started, 127 for a missing program).
    pub fn exec_command(&self, id: &str, opts: &ExecOptions) -> Result<Command, OciError> {
        validate_id(id)?;
        let dir = self.container_dir(id);
        let file = StateFile::read(&dir, id)?;
        let status = file.status(&dir);
        if status != Status::Running {
            return Err(OciError::WrongStatus {
                id: id.into(),
                status,
                what: "can only exec in a running container",
            });
        }
        let process = match &opts.process {
            Some(p) => p.clone(),
            None => {
                let bundle = Bundle::load(&file.state.bundle)?;
                let mut p = bundle.spec.process().clone().unwrap_or_default();
                if opts.args.is_empty() {
                    return Err(OciError::Container("exec: no command given".into()));
                }
                p.set_args(Some(opts.args.clone()));
                if let Some(cwd) = &opts.cwd {
                    p.set_cwd(cwd.clone());
                }
                let mut env = p.env().clone().unwrap_or_default();
                env.extend(opts.env.iter().cloned());
                p.set_env(Some(env));
                p.set_terminal(Some(false));
                p
            }
        };
        let json = serde_json::to_string(&process).expect("process serializes");
        let mut cmd = Command::new(&self.shim_binary);
        cmd.arg("shim").arg("exec").arg(&dir).arg(json);
        Ok(cmd)
    }

    /// Runs the process in the container with our stdio and returns its exit code.
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32, OciError> {
        let mut cmd = self.exec_command(id, opts)?;
        let status = cmd.status().map_err(|source| OciError::SpawnShim {
            binary: self.shim_binary.clone(),
            source,
        })?;
        Ok(status.code().unwrap_or(255))
    }

    /// Host pids of the container's processes: its cgroup's members, or (when the cgroup cannot
    /// tell) the init and its descendants.
    pub fn ps(&self, id: &str) -> Result<Vec<i32>, OciError> {
        validate_id(id)?;
        let dir = self.container_dir(id);
        let file = StateFile::read(&dir, id)?;
        if let Ok(cg) = ContainerCgroup::open(file.cgroup_root.as_deref(), &file.cgroup_path) {
            if let Ok(pids) = cg.pids() {
                if !pids.is_empty() {
                    return Ok(pids);
                }
            }
        }
        if !super::state::process_alive(file.state.pid, file.init_start_time) {
            return Ok(Vec::new());
        }
        Ok(descendants(file.state.pid))
    }
}

/// `root` and every process below it, from the ppid field of /proc/<pid>/stat.
fn descendants(root: i32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].split(' ').nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.sort_unstable();
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn descendants_include_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        let found = super::descendants(me);
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            found.contains(&me) && found.contains(&(child.id() as i32)),
            "{found:?}"
        );
    }
}
