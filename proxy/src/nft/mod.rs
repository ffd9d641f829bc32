//! The proxy's nftables table: rendering ([`render`]), transactions ([`script`]) and running
//! `nft -f -`. The proxy owns exactly one table, `ip <table>`, and never touches anything else
//! in the ruleset.

pub mod render;
pub mod script;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use render::{Options, Ruleset};

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("running nft for table {table}: {source}")]
    Spawn {
        table: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nft rejected the update of table {table}: {stderr}")]
    Rejected { table: String, stderr: String },
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
}

/// The table and what was last written to it.
#[derive(Debug)]
pub struct Table {
    name: String,
    /// The network namespace the table lives in (`None`: the proxy's own).
    netns: Option<PathBuf>,
    /// What the kernel holds after our last successful transaction; `None` until the first one
    /// and after a failure, which makes the next sync a full replacement.
    applied: Option<Ruleset>,
}

impl Table {
    pub fn new(name: impl Into<String>, netns: Option<PathBuf>) -> Table {
        Table {
            name: name.into(),
            netns,
            applied: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Brings the table to `rs`: an incremental transaction when we know what is there, a full
    /// replacement otherwise or when the incremental one fails (someone changed our table).
    /// Returns whether anything was sent to the kernel.
    pub fn sync(&mut self, rs: Ruleset) -> Result<bool, NftError> {
        if let Some(applied) = &self.applied {
            let update = script::update(&self.name, applied, &rs);
            if update.is_empty() {
                return Ok(false);
            }
            match run(&self.name, self.netns.as_deref(), &update) {
                Ok(()) => {
                    self.applied = Some(rs);
                    return Ok(true);
                }
                Err(e) => {
                    tracing::warn!(table = %self.name, error = %e, "incremental update failed; replacing the table")
                }
            }
        }
        self.applied = None;
        run(
            &self.name,
            self.netns.as_deref(),
            &script::full(&self.name, &rs),
        )?;
        self.applied = Some(rs);
        Ok(true)
    }

    /// Removes the table (clean shutdown); a missing table is not an error.
    pub fn delete(&mut self) -> Result<(), NftError> {
        self.applied = None;
        run(
            &self.name,
            self.netns.as_deref(),
            &format!("add table ip {0}\ndelete table ip {0}\n", self.name),
        )
    }
}

/// `nft -f -` with `script` on stdin: one atomic transaction.
pub fn run(table: &str, netns: Option<&Path>, script: &str) -> Result<(), NftError> {
    let spawn = |source| NftError::Spawn {
        table: table.into(),
        source,
    };
    let mut cmd = Command::new("nft");
    if let Some(path) = netns {
        crate::netns::exec_in(&mut cmd, path)?;
    }
    let mut child = cmd
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let written = stdin.write_all(script.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().map_err(spawn)?;
    written.map_err(spawn)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // nft prints the offending line and a caret; the first lines are enough to act on.
        let stderr: String = stderr.lines().take(6).collect::<Vec<_>>().join("\n");
        return Err(NftError::Rejected {
            table: table.into(),
            stderr,
        });
    }
    Ok(())
}
