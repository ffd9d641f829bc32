//! Reading and writing cgroup control files, and making and removing cgroup directories.
//!
//! Writes open with `O_WRONLY|O_TRUNC` and never `O_CREAT` (like runc): on cgroupfs a missing file
//! means a missing controller or feature, and in a fake test tree it must mean the same thing.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CgroupError;

/// How long `remove` keeps retrying an rmdir that fails with EBUSY: tasks that were just killed
/// leave the cgroup asynchronously (exit, then css release), which takes a few milliseconds.
const REMOVE_GRACE: Duration = Duration::from_secs(2);
/// Pause between rmdir retries.
const REMOVE_RETRY: Duration = Duration::from_millis(5);

/// Write `value` to `path` in a single write(2), as the kernel expects for control files.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let err = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(err)?;
    file.write_all(value.as_bytes()).map_err(err)
}

/// Read a control file to a string.
pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Read a control file, `None` when it does not exist (a feature this kernel lacks).
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parse a single number; `max` (v2) is `u64::MAX`.
pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64, CgroupError> {
    let t = text.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        reason: format!("expected a number, found {t:?}"),
    })
}

/// Read a file holding one number.
pub(crate) fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    parse_u64(path, &read(path)?)
}

/// Find `key value` in a flat-keyed file (cpu.stat, memory.stat, memory.events, oom_control).
pub(crate) fn keyed(path: &Path, text: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if parts.next() == Some(key) {
            let value = parts.next().unwrap_or("");
            return parse_u64(path, value).map(Some);
        }
    }
    Ok(None)
}

/// The pids listed in a `cgroup.procs` file.
pub(crate) fn read_procs(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let path = dir.join("cgroup.procs");
    let text = read(&path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim().parse().map_err(|_| CgroupError::Parse {
                path: path.clone(),
                reason: format!("expected a pid, found {l:?}"),
            })
        })
        .collect()
}

/// `dir` and every cgroup directory below it, parents before children.
pub(crate) fn walk(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let entries = std::fs::read_dir(&out[i]).map_err(|source| CgroupError::Read {
            path: out[i].clone(),
            source,
        })?;
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.push(entry.path());
            }
        }
        i += 1;
    }
    Ok(out)
}

/// mkdir, accepting an existing directory.
pub(crate) fn make_dir(path: &Path) -> Result<bool, CgroupError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(CgroupError::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Remove a cgroup directory and all cgroups below it, children first, retrying EBUSY for a
/// short grace period. A directory that is already gone is fine.
pub(crate) fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let dirs = match walk(dir) {
        Ok(d) => d,
        Err(CgroupError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    let deadline = Instant::now() + REMOVE_GRACE;
    for d in dirs.iter().rev() {
        remove_one(d, deadline)?;
    }
    Ok(())
}

/// rmdir a shared parent unless something else is in it (EBUSY on cgroupfs, ENOTEMPTY on a plain
/// directory) or it is already gone.
pub(crate) fn remove_if_unused(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => Ok(()),
        Err(source) => Err(CgroupError::Remove {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn remove_one(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            // A plain directory (a test's fake tree) still holds its control files.
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && !is_cgroupfs(dir) => {
                return std::fs::remove_dir_all(dir).map_err(|source| CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                tracing::debug!(path = %dir.display(), "cgroup busy, retrying rmdir");
                std::thread::sleep(REMOVE_RETRY);
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Whether `path` lives on a cgroup v1 or v2 filesystem.
pub(crate) fn is_cgroupfs(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    match statfs(path) {
        Ok(st) => [CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC].contains(&st.filesystem_type()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_finds_values_and_max() {
        let p = Path::new("x");
        let text = "usage_usec 12\nuser_usec 7\nlimit max\n";
        assert_eq!(keyed(p, text, "user_usec").unwrap(), Some(7));
        assert_eq!(keyed(p, text, "limit").unwrap(), Some(u64::MAX));
        assert_eq!(keyed(p, text, "absent").unwrap(), None);
        assert!(keyed(p, "k nope", "k").is_err());
    }

    #[test]
    fn write_never_creates_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = write(&dir.path().join("pids.max"), "10").unwrap_err();
        match err {
            CgroupError::Write { path, value, .. } => {
                assert!(path.ends_with("pids.max"));
                assert_eq!(value, "10");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn remove_tree_of_fake_tree_and_missing_dir() {
        let dir = tempfile::tempdir().unwrap();
        let cg = dir.path().join("a");
        std::fs::create_dir_all(cg.join("b")).unwrap();
        std::fs::write(cg.join("b/cgroup.procs"), "").unwrap();
        remove_tree(&cg).unwrap();
        assert!(!cg.exists());
        remove_tree(&cg).unwrap();
    }
}
