//! Which cgroup layout the host uses, and where each v1 hierarchy is mounted.
//!
//! Detection follows what runc and systemd do: the layout is v1 ("legacy" or "hybrid") as soon as
//! any v1 hierarchy carries a real controller, even if a cgroup2 is mounted too (systemd's hybrid
//! mode mounts a controller-less cgroup2 at `/sys/fs/cgroup/unified`). It is unified v2 only when
//! the controllers live on cgroup2.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{files, CgroupError};

/// The default place cgroup filesystems are mounted.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Controllers a v1 hierarchy can carry (Documentation/admin-guide/cgroup-v1). Mount options that
/// are not in this list (`rw`, `xattr`, `clone_children`, ...) are not controllers.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// The host's cgroup layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One hierarchy per controller (or co-mounted group) in directories under `root`.
    V1 { root: PathBuf },
    /// One unified cgroup2 hierarchy mounted at `root`.
    V2 { root: PathBuf },
}

/// One hierarchy: its directory and the v1 controllers it carries (`name=systemd` for a named
/// hierarchy). `unified` marks a cgroup2 hierarchy: the whole tree on v2, or on a hybrid v1 host
/// the controller-less cgroup2 at `<root>/unified`, which we manage too so a container's
/// processes are contained there as well (and `cgroup.kill` works).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    pub dir: PathBuf,
    pub controllers: Vec<String>,
    pub unified: bool,
}

impl Hierarchy {
    /// Whether this hierarchy carries `controller`.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// One cgroup mount from /proc/self/mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    pub mount_point: PathBuf,
    pub v2: bool,
    pub controllers: Vec<String>,
}

impl Layout {
    /// Detect the layout of this process's mount namespace from /proc/self/mountinfo.
    pub fn detect() -> Result<Layout, CgroupError> {
        Layout::from_mounts(cgroup_mounts()?).ok_or_else(|| CgroupError::NotMounted {
            path: PathBuf::from(MOUNTINFO),
        })
    }

    /// The layout these cgroup mounts make, `None` without any.
    fn from_mounts(mounts: &[CgroupMount]) -> Option<Layout> {
        if let Some(m) = mounts.iter().find(|m| !m.v2 && has_real_controller(m)) {
            let root = m.mount_point.parent().unwrap_or(Path::new("/"));
            return Some(Layout::V1 {
                root: root.to_path_buf(),
            });
        }
        mounts
            .iter()
            .filter(|m| m.v2)
            .max_by_key(|m| m.mount_point == Path::new(DEFAULT_ROOT))
            .map(|m| Layout::V2 {
                root: m.mount_point.clone(),
            })
    }

    /// Detect the layout of a tree rooted at `root`: a real cgroup mount or a test's fake tree of
    /// plain files. `root/cgroup.controllers` means v2; controller directories mean v1.
    pub fn detect_at(root: &Path) -> Result<Layout, CgroupError> {
        if root.join("cgroup.controllers").is_file() {
            return Ok(Layout::V2 {
                root: root.to_path_buf(),
            });
        }
        let v1 = Layout::V1 {
            root: root.to_path_buf(),
        };
        if v1
            .hierarchies()
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")))
        {
            return Ok(v1);
        }
        Err(CgroupError::NotMounted {
            path: root.to_path_buf(),
        })
    }

    /// The directory the layout is rooted at.
    pub fn root(&self) -> &Path {
        match self {
            Layout::V1 { root } | Layout::V2 { root } => root,
        }
    }

    /// Whether this is the unified (v2) layout.
    pub fn is_v2(&self) -> bool {
        matches!(self, Layout::V2 { .. })
    }

    /// The v1 hierarchies under the root, plus a hybrid host's cgroup2 (`unified: true`): from
    /// mountinfo when they are real mounts (so co-mounts like `cpu,cpuacct` are read, not
    /// guessed), else from the directory names (fake trees). Empty for v2.
    pub fn hierarchies(&self) -> Vec<Hierarchy> {
        let Layout::V1 { root } = self else {
            return Vec::new();
        };
        let mounted: Vec<Hierarchy> = cgroup_mounts()
            .unwrap_or_default()
            .iter()
            .filter(|m| m.mount_point.parent() == Some(root.as_path()))
            .map(|m| Hierarchy {
                dir: m.mount_point.clone(),
                controllers: m.controllers.clone(),
                unified: m.v2,
            })
            .collect();
        if !mounted.is_empty() {
            return mounted;
        }
        hierarchies_from_dirs(root)
    }
}

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// This process's cgroup mounts, read from mountinfo once. A node's mountinfo is long (an
/// overlay with its layer paths and the namespace files of every pod) and the kernel formats it
/// on every read, which made reading it per container a tenth of a 100-pod burst's CPU; the
/// cgroup mounts do not change under a running runtime, and a shim reads them before its
/// container has a mount namespace of its own.
fn cgroup_mounts() -> Result<&'static [CgroupMount], CgroupError> {
    static MOUNTS: OnceLock<Vec<CgroupMount>> = OnceLock::new();
    if let Some(mounts) = MOUNTS.get() {
        return Ok(mounts);
    }
    let mounts = parse_mountinfo(&files::read(Path::new(MOUNTINFO))?);
    Ok(MOUNTS.get_or_init(|| mounts))
}

fn has_real_controller(m: &CgroupMount) -> bool {
    m.controllers.iter().any(|c| !c.starts_with("name="))
}

/// Read hierarchies from directory names: `cpu,cpuacct` carries both; `systemd` is the named
/// hierarchy. Symlinks to a co-mounted directory (`cpu -> cpu,cpuacct`) are skipped.
fn hierarchies_from_dirs(root: &Path) -> Vec<Hierarchy> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<Hierarchy> = Vec::new();
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        if !ft.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().join("cgroup.controllers").is_file() {
            out.push(Hierarchy {
                dir: entry.path(),
                controllers: Vec::new(),
                unified: true,
            });
            continue;
        }
        let controllers: Vec<String> = if name == "systemd" {
            vec!["name=systemd".to_string()]
        } else {
            name.split(',')
                .filter(|c| V1_CONTROLLERS.contains(c))
                .map(str::to_string)
                .collect()
        };
        if !controllers.is_empty() {
            out.push(Hierarchy {
                dir: entry.path(),
                controllers,
                unified: false,
            });
        }
    }
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    out
}

/// Parse the cgroup mounts out of a mountinfo text (proc(5)): fields up to a lone `-`, then
/// filesystem type, source and super options.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(mount_point), Some(fstype), Some(super_opts)) =
            (fields.get(4), fields.get(sep + 1), fields.get(sep + 3))
        else {
            continue;
        };
        let v2 = match *fstype {
            "cgroup" => false,
            "cgroup2" => true,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            super_opts
                .split(',')
                .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                .map(str::to_string)
                .collect()
        };
        out.push(CgroupMount {
            mount_point: PathBuf::from(unescape(mount_point)),
            v2,
            controllers,
        });
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn mountinfo_reads_co_mounted_controllers_and_cgroup2() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(m[1].controllers, vec!["memory"]);
        assert_eq!(m[2].controllers, vec!["name=systemd"]);
        assert!(m[3].v2 && m[3].controllers.is_empty());
    }

    #[test]
    fn hybrid_is_v1_and_unified_alone_is_v2() {
        let v1 = Layout::from_mounts(&parse_mountinfo(HYBRID)).unwrap();
        assert_eq!(
            v1,
            Layout::V1 {
                root: DEFAULT_ROOT.into()
            }
        );
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n\
                  31 23 0:27 / /run/x rw - cgroup cgroup rw,xattr,name=systemd\n";
        assert_eq!(
            Layout::from_mounts(&parse_mountinfo(v2)).unwrap(),
            Layout::V2 {
                root: DEFAULT_ROOT.into()
            }
        );
        assert_eq!(
            Layout::from_mounts(&parse_mountinfo("1 2 0:1 / / rw - ext4 /dev/sda rw\n")),
            None
        );
    }

    #[test]
    fn mountinfo_unescapes_spaces() {
        let m = parse_mountinfo("1 2 0:1 / /a\\040b rw - cgroup2 cgroup2 rw\n");
        assert_eq!(m[0].mount_point, Path::new("/a b"));
    }

    #[test]
    fn detect_at_fake_v2_and_v1_trees() {
        let v2 = tempfile::tempdir().unwrap();
        std::fs::write(v2.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        assert!(Layout::detect_at(v2.path()).unwrap().is_v2());

        let v1 = tempfile::tempdir().unwrap();
        for d in ["cpu,cpuacct", "memory", "systemd", "unified"] {
            std::fs::create_dir(v1.path().join(d)).unwrap();
        }
        std::os::unix::fs::symlink("cpu,cpuacct", v1.path().join("cpu")).unwrap();
        let layout = Layout::detect_at(v1.path()).unwrap();
        assert!(!layout.is_v2());
        let h = layout.hierarchies();
        let names: Vec<Vec<String>> = h.iter().map(|h| h.controllers.clone()).collect();
        assert_eq!(
            names,
            vec![vec!["cpu", "cpuacct"], vec!["memory"], vec!["name=systemd"]]
        );

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            Layout::detect_at(empty.path()),
            Err(CgroupError::NotMounted { .. })
        ));
    }

    #[test]
    fn detect_on_this_host_finds_a_layout() {
        // Hybrid hosts (v1 controllers + controller-less cgroup2 at unified) must be V1.
        let layout = Layout::detect().unwrap();
        let mounts = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
        if mounts.iter().any(|m| !m.v2 && has_real_controller(m)) {
            assert!(!layout.is_v2(), "{layout:?}");
            assert!(layout.hierarchies().iter().any(|h| h.has("memory")));
        } else {
            assert!(layout.is_v2());
        }
    }
}
