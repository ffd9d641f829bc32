//! The CNI conf dir as containerd treats it: the pod network is the dir's first config file,
//! re-read when that choice or the file changes. A node agent writes the network for its
//! Node's podCIDR only after the runtime has started (the nodelet's `--cni-conf-dir`), and the
//! next sandbox must use it without a runtime restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::{first_config, Cni, CniError, DefaultNetwork};

pub struct ConfDir {
    bin_dir: PathBuf,
    dir: PathBuf,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    path: PathBuf,
    modified: Option<SystemTime>,
    cni: Arc<Cni>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ConfDir {
    /// Loads the dir's first network, writing `default` first when the dir holds none.
    pub fn open(bin_dir: &Path, dir: &Path, default: &DefaultNetwork) -> Result<ConfDir, CniError> {
        let cni = Cni::load_or_default(bin_dir, dir, default)?;
        let path = cni.conf_path.clone();
        Ok(ConfDir {
            bin_dir: bin_dir.into(),
            dir: dir.into(),
            loaded: Mutex::new(Loaded {
                modified: modified(&path),
                path,
                cni: Arc::new(cni),
            }),
        })
    }

    /// The network to use now: reloaded when the dir's first file is another one or was
    /// rewritten; the last good one when the dir is empty or the new file does not parse.
    pub fn current(&self) -> Result<Arc<Cni>, CniError> {
        let mut loaded = self.loaded.lock().expect("cni conf lock");
        let path = first_config(&self.dir)?.unwrap_or_else(|| loaded.path.clone());
        let stamp = modified(&path);
        if path != loaded.path || stamp != loaded.modified {
            let cni = Cni::load(&self.bin_dir, &path)?;
            tracing::info!(conf = %path.display(), "cni network (re)loaded");
            *loaded = Loaded {
                path,
                modified: stamp,
                cni: Arc::new(cni),
            };
        }
        Ok(loaded.cni.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflist(name: &str) -> String {
        format!(r#"{{"cniVersion": "1.0.0", "name": "{name}", "plugins": [{{"type": "bridge"}}]}}"#)
    }

    #[test]
    fn a_network_written_after_start_is_used_next() {
        let dir = tempfile::tempdir().unwrap();
        let default = DefaultNetwork {
            name: "default-net".into(),
            bridge: "mk8st0".into(),
            subnet: "10.99.0.0/24".into(),
            ipam_dir: dir.path().join("ipam"),
        };
        let conf = ConfDir::open(Path::new("/usr/lib/cni"), dir.path(), &default).unwrap();
        assert_eq!(
            conf.current().unwrap().conf_path,
            dir.path().join("10-default-net.conflist")
        );
        // The node agent's network sorts first and wins, as in containerd.
        let node = dir.path().join("00-node.conflist");
        std::fs::write(&node, conflist("node-a")).unwrap();
        assert_eq!(conf.current().unwrap().conf_path, node);
        // Rewritten in place (a new podCIDR): reloaded, seen by the mtime.
        let before = conf.current().unwrap();
        std::fs::write(&node, conflist("node-b")).unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(2);
        std::fs::File::options()
            .write(true)
            .open(&node)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(!Arc::ptr_eq(&before, &conf.current().unwrap()));
        // A broken file is an error, not a silent fallback to a stale network.
        std::fs::write(&node, "{").unwrap();
        assert!(conf.current().is_err());
    }
}
