//! ExecSync: a process in a running container (the OCI runtime's exec: `shim exec` for the
//! builtin runtime, `runc exec` / `crun exec`), with its stdout and stderr captured (capped at
//! 16 MiB each, as the CRI asks) and a timeout. The exec runs in its own process group so a
//! timeout kills the exec helper and the process both.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

use super::backend::Live;
use super::{Cri, CriError};

const OUTPUT_CAP: u64 = 16 << 20;

impl Cri {
    pub fn exec_sync(&self, req: cri::ExecSyncRequest) -> Result<cri::ExecSyncResponse, CriError> {
        let record = self.container(&req.container_id)?;
        if !matches!(self.backend.live(&record.id), Live::Running { .. }) {
            return Err(CriError::WrongState(format!(
                "container {} is not running",
                record.id
            )));
        }
        if req.cmd.is_empty() {
            return Err(CriError::InvalidArgument(
                "ExecSync without a command".into(),
            ));
        }
        let fail = |message: String| CriError::Exec {
            id: record.id.clone(),
            message,
        };
        let mut cmd = self.backend.exec_command(&record.id, &req.cmd)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| fail(format!("spawn exec: {e}")))?;
        let out = reader(child.stdout.take());
        let err = reader(child.stderr.take());
        let deadline =
            (req.timeout > 0).then(|| Instant::now() + Duration::from_secs(req.timeout as u64));
        let mut pause = Duration::from_millis(1);
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| fail(format!("wait: {e}")))? {
                break status;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = child.wait();
                return Err(CriError::ExecTimeout {
                    id: record.id.clone(),
                    seconds: req.timeout,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        };
        let exit_code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1);
        Ok(cri::ExecSyncResponse {
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
            exit_code,
        })
    }
}

/// Reads a pipe to its end, keeping the first 16 MiB (the rest is drained and dropped so the
/// process never blocks on a full pipe).
fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = (&mut pipe).take(OUTPUT_CAP).read_to_end(&mut buf);
            let _ = std::io::copy(&mut pipe, &mut std::io::sink());
        }
        buf
    })
}
