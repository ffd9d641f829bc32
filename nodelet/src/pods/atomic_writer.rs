//! Writes the files of a configMap or secret volume so a running container only ever sees a
//! whole projection, old or new: the kubelet's AtomicWriter layout.
//!
//! ```text
//! <volume>/..2025_01_02_03_04_05.123456789/key   the files of one projection
//! <volume>/..data -> ..2025_01_02_03_04_05.123456789
//! <volume>/key    -> ..data/key                  what the container reads
//! ```
//!
//! An update writes a fresh timestamped directory, points `..data_tmp` at it and renames that
//! over `..data` (rename(2) is atomic), then adds the links of new keys, removes those of keys
//! that are gone, and deletes the old directory. Nothing is written when the projection is
//! unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::Error;

/// The link to the current projection's directory.
const DATA_DIR: &str = "..data";
/// The link renamed over [`DATA_DIR`] to switch projections.
const DATA_DIR_TMP: &str = "..data_tmp";
/// Mode of projected files without defaultMode or an item mode (Kubernetes' 0644).
pub const DEFAULT_MODE: u32 = 0o644;

/// One file of a projection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// Relative path (`key`, or an item's `a/b`) → file.
pub type Payload = BTreeMap<String, File>;

/// Whether `path` may appear in a payload: relative, no `..` component, and not starting with
/// `..` (that prefix is the writer's own; Kubernetes' validation rejects the same).
pub fn valid_path(path: &str) -> bool {
    // Also no empty or `.` component: the path read back from disk must equal the key.
    !path.starts_with("..")
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Makes `dir` hold exactly `payload`; returns whether anything on disk changed.
pub fn write(dir: &Path, payload: &Payload) -> Result<bool, Error> {
    if let Some(bad) = payload.keys().find(|p| !valid_path(p)) {
        let e = std::io::Error::new(ErrorKind::InvalidInput, "invalid path in volume payload");
        return Err(Error::io("project volume file", dir.join(bad), e));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create volume dir", dir, e))?;
    let current = std::fs::read_link(dir.join(DATA_DIR)).ok();
    let unchanged = match &current {
        Some(ts) => read_projection(&dir.join(ts))?.as_ref() == Some(payload),
        None => false,
    };
    let mut changed = false;
    if !unchanged {
        let ts = write_projection(dir, payload)?;
        let tmp = dir.join(DATA_DIR_TMP);
        remove_entry(&tmp)?;
        std::os::unix::fs::symlink(&ts, &tmp)
            .map_err(|e| Error::io("link volume data", &tmp, e))?;
        std::fs::rename(&tmp, dir.join(DATA_DIR))
            .map_err(|e| Error::io("switch volume data", dir, e))?;
        changed = true;
    }
    changed |= sync_links(dir, payload)?;
    remove_stale_projections(dir)?;
    Ok(changed)
}

/// The files under a projection directory, or None when it is missing.
fn read_projection(root: &Path) -> Result<Option<Payload>, Error> {
    let mut out = Payload::new();
    let mut dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((d, prefix)) = dirs.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read volume dir", &d, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read volume dir", &d, e))?;
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| Error::io("stat volume file", &path, e))?;
            if meta.is_dir() {
                dirs.push((path, format!("{name}/")));
            } else {
                let data =
                    std::fs::read(&path).map_err(|e| Error::io("read volume file", &path, e))?;
                let mode = meta.permissions().mode() & 0o7777;
                out.insert(name, File { data, mode });
            }
        }
    }
    Ok(Some(out))
}

/// Writes the payload into a new `..<timestamp>` directory; returns its name.
fn write_projection(dir: &Path, payload: &Payload) -> Result<String, Error> {
    let stamp = chrono::Utc::now()
        .format("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let mut name = stamp.clone();
    let mut n = 0;
    // Unique even when two writes fall in the same nanosecond (or a crash left one behind).
    loop {
        match std::fs::create_dir(dir.join(&name)) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                n += 1;
                name = format!("{stamp}{n}");
            }
            Err(e) => return Err(Error::io("create volume data dir", dir.join(&name), e)),
        }
    }
    let root = dir.join(&name);
    for (rel, f) in payload {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("create volume dir", parent, e))?;
        }
        std::fs::write(&path, &f.data).map_err(|e| Error::io("write volume file", &path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))
            .map_err(|e| Error::io("chmod volume file", &path, e))?;
    }
    Ok(name)
}

/// Points `<top> -> ..data/<top>` for each top-level name of the payload and removes every
/// other user-visible entry (keys that are gone, or plain files an older nodelet wrote).
fn sync_links(dir: &Path, payload: &Payload) -> Result<bool, Error> {
    let want: BTreeSet<&str> = payload.keys().filter_map(|p| p.split('/').next()).collect();
    let mut changed = false;
    let mut present = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("read volume dir", dir, e))? {
        let entry = entry.map_err(|e| Error::io("read volume dir", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            continue;
        }
        let target = Path::new(DATA_DIR).join(&name);
        let path = entry.path();
        if want.contains(name.as_str()) && std::fs::read_link(&path).ok() == Some(target) {
            present.insert(name);
            continue;
        }
        remove_entry(&path)?;
        changed = true;
    }
    for top in want.iter().filter(|t| !present.contains(**t)) {
        let link = dir.join(top);
        std::os::unix::fs::symlink(Path::new(DATA_DIR).join(top), &link)
            .map_err(|e| Error::io("link volume file", &link, e))?;
        changed = true;
    }
    Ok(changed)
}

/// Removes projection directories other than the current one (the one just replaced, or
/// leftovers of a write a crash interrupted).
fn remove_stale_projections(dir: &Path) -> Result<(), Error> {
    let current = std::fs::read_link(dir.join(DATA_DIR)).ok();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("read volume dir", dir, e))? {
        let entry = entry.map_err(|e| Error::io("read volume dir", dir, e))?;
        let name = entry.file_name();
        let stale = name.to_string_lossy().starts_with("..")
            && name != DATA_DIR
            && current.as_deref() != Some(Path::new(&name));
        if stale {
            remove_entry(&entry.path())?;
        }
    }
    Ok(())
}

/// Removes a file, link or directory tree; a missing one is fine.
fn remove_entry(path: &Path) -> Result<(), Error> {
    let r = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    r.map_err(|e| Error::io("remove volume entry", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(files: &[(&str, &str)]) -> Payload {
        files
            .iter()
            .map(|(k, v)| {
                let f = File {
                    data: v.as_bytes().to_vec(),
                    mode: DEFAULT_MODE,
                };
                (k.to_string(), f)
            })
            .collect()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn keys_are_links_into_the_current_projection() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        assert!(write(&dir, &payload(&[("a", "1"), ("b", "2")])).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(
            std::fs::read_link(dir.join("b")).unwrap(),
            Path::new("..data/b")
        );
        let ts = std::fs::read_link(dir.join("..data")).unwrap();
        assert!(ts.to_string_lossy().starts_with("..20"), "{ts:?}");
        let mode = std::fs::metadata(dir.join("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn an_unchanged_payload_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let p = payload(&[("a", "1")]);
        assert!(write(tmp.path(), &p).unwrap());
        let before = std::fs::read_link(tmp.path().join("..data")).unwrap();
        assert!(!write(tmp.path(), &p).unwrap());
        assert_eq!(
            std::fs::read_link(tmp.path().join("..data")).unwrap(),
            before
        );
    }

    #[test]
    fn an_update_switches_data_and_drops_removed_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(dir, &payload(&[("a", "1"), ("gone", "x"), ("d/e", "3")])).unwrap();
        let old = std::fs::read_link(dir.join("..data")).unwrap();
        assert!(write(dir, &payload(&[("a", "2"), ("d/e", "3"), ("new", "n")])).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "2");
        assert_eq!(std::fs::read_to_string(dir.join("d/e")).unwrap(), "3");
        assert_eq!(std::fs::read_to_string(dir.join("new")).unwrap(), "n");
        let current = std::fs::read_link(dir.join("..data")).unwrap();
        assert_ne!(current, old);
        // Only the current projection and the links remain.
        let cur = current.to_string_lossy().into_owned();
        assert_eq!(
            entries(dir),
            vec![cur, "..data".into(), "a".into(), "d".into(), "new".into()]
        );
    }

    #[test]
    fn a_mode_change_alone_is_an_update() {
        let tmp = tempfile::tempdir().unwrap();
        let mut p = payload(&[("a", "1")]);
        write(tmp.path(), &p).unwrap();
        p.get_mut("a").unwrap().mode = 0o400;
        assert!(write(tmp.path(), &p).unwrap());
        let mode = std::fs::metadata(tmp.path().join("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
    }

    #[test]
    fn plain_files_of_an_older_layout_become_links() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a"), "old").unwrap();
        std::fs::write(tmp.path().join("stale"), "old").unwrap();
        write(tmp.path(), &payload(&[("a", "new")])).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("a")).unwrap(),
            "new"
        );
        assert!(!tmp.path().join("stale").exists());
    }

    #[test]
    fn paths_escaping_the_volume_are_refused() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "..data",
            "",
            "a//b",
            "./a",
            "a/",
        ] {
            assert!(!valid_path(bad), "{bad:?}");
        }
        assert!(valid_path("a/b.conf"));
        let tmp = tempfile::tempdir().unwrap();
        assert!(write(tmp.path(), &payload(&[("../x", "1")])).is_err());
    }
}
