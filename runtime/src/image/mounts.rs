//! Which layer directories a mounted overlayfs still stacks (so collection keeps them).

use std::collections::HashSet;
use std::path::PathBuf;

/// Every `lowerdir=` path of the overlay mounts in `/proc/self/mountinfo`.
pub fn overlay_lowerdirs() -> HashSet<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| parse_lowerdirs(&s))
        .unwrap_or_default()
}

/// mountinfo(5): `... - overlay overlay rw,lowerdir=/a:/b,upperdir=...`; ':' separates layers.
fn parse_lowerdirs(mountinfo: &str) -> HashSet<PathBuf> {
    let mut out = HashSet::new();
    for line in mountinfo.lines() {
        let Some((_, after)) = line.split_once(" - ") else {
            continue;
        };
        let mut fields = after.split(' ');
        if fields.next() != Some("overlay") {
            continue;
        }
        let options = fields.nth(1).unwrap_or("");
        for opt in options.split(',') {
            if let Some(dirs) = opt.strip_prefix("lowerdir=") {
                // mountinfo escapes spaces etc. as octal; our layer paths have none.
                out.extend(dirs.split(':').filter(|d| !d.is_empty()).map(PathBuf::from));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdirs_of_overlay_mounts_are_found() {
        let info = "36 35 98:0 / /mnt rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    99 1 0:50 / /run/c1 rw - overlay overlay rw,lowerdir=/s/l/b:/s/l/a,upperdir=/u,workdir=/w\n";
        let dirs = parse_lowerdirs(info);
        assert_eq!(dirs.len(), 2);
        assert!(dirs.contains(&PathBuf::from("/s/l/a")));
    }
}
