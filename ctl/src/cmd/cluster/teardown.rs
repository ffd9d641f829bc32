//! `cluster down`: every trace of a cluster goes — node processes and containers, the
//! control plane, mounts under the state dir, the node namespaces, the bridge, the subnet
//! reservation and the state dir.

use std::path::Path;

use super::state::{self, ClusterState};
use super::{control_plane, netns, node};

pub fn down(state: &ClusterState) {
    // Stop the scheduler and controller-manager first, so nothing reschedules meanwhile.
    control_plane::stop(&ClusterState {
        control_plane: state
            .control_plane
            .iter()
            .filter(|p| p.component != "apiserver")
            .cloned()
            .collect(),
        ..state.clone()
    });
    for n in &state.nodes {
        // A partitioned node is reconnected first: its nodelet stops cleanly then.
        let _ = netns::set_link(&n.veth, true);
        node::destroy(n);
    }
    control_plane::stop(state);
    unmount_under(&state.dir());
    netns::delete_bridge(&state.bridge);
    state::release_index(state.index);
    state::remove_dir(&state.dir());
}

/// Unmounts (lazily, deepest first) whatever is still mounted below `dir`: overlay rootfs
/// and pinned namespaces of pods whose removal was cut short.
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort();
    points.dedup();
    for point in points.iter().rev() {
        let Ok(c) = std::ffi::CString::new(point.as_str()) else {
            continue;
        };
        // SAFETY: umount2(2) with a valid C string.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            tracing::warn!(mount = %point, "cannot unmount: {}", std::io::Error::last_os_error());
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as \ooo octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if let Some(Ok(v)) = field.get(i + 1..i + 4).map(|o| u8::from_str_radix(o, 8)) {
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
    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(super::unescape(r"/a\040b/c"), "/a b/c");
        assert_eq!(super::unescape("/plain"), "/plain");
    }
}
