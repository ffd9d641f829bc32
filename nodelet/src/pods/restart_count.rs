//! The restart count of a container the runtime has no instance of in the pod's sandbox: its
//! instance was removed behind the nodelet's back, or the sandbox was recreated. The kubelet
//! keeps counting then, so a restart there shows as one more restart, never as a reset to 0.

use std::path::Path;

use k8s_openapi::api::core::v1::ContainerStatus;

/// The attempt number (the restartCount) of a new instance of a container with none in the
/// sandbox: 0 for its first start, else one more than the last instance. The last one is
/// known from the status the nodelet wrote (a containerID there means an instance ran) and,
/// as the kubelet's calcRestartCountByLogDir does when the runtime lost its containers, from
/// the newest `<attempt>.log` in the container's log directory.
pub fn fresh_attempt(old: Option<&ContainerStatus>, log_names: &[String]) -> u32 {
    let from_status = old.map_or(0, |s| {
        let count = s.restart_count.max(0) as u32;
        if s.container_id.is_some() {
            count + 1
        } else {
            count
        }
    });
    let from_logs = log_names
        .iter()
        .filter_map(|n| n.strip_suffix(".log")?.parse::<u32>().ok())
        .max()
        .map_or(0, |n| n + 1);
    from_status.max(from_logs)
}

/// The file names in a container's log directory (none when it does not exist).
pub fn log_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(restarts: i32, id: Option<&str>) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            restart_count: restarts,
            container_id: id.map(String::from),
            ..Default::default()
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fresh_attempt_keeps_counting() {
        let ran = status(2, Some("minik8s://abc"));
        let never_ran = status(0, None);
        let cases: [(&str, Option<&ContainerStatus>, Vec<String>, u32); 7] = [
            ("a new pod starts at 0", None, names(&[]), 0),
            (
                "a status without an instance",
                Some(&never_ran),
                names(&[]),
                0,
            ),
            ("an instance ran: one more", Some(&ran), names(&[]), 3),
            (
                "logs alone (status lost)",
                None,
                names(&["0.log", "1.log", "4.log"]),
                5,
            ),
            ("the higher of both", Some(&ran), names(&["5.log"]), 6),
            ("status ahead of the logs", Some(&ran), names(&["0.log"]), 3),
            (
                "other files are ignored",
                None,
                names(&["x.log", "3.log.tmp", "a"]),
                0,
            ),
        ];
        for (what, old, logs, want) in cases {
            assert_eq!(fresh_attempt(old, &logs), want, "{what}");
        }
    }

    #[test]
    fn log_names_of_a_missing_dir_are_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(log_names(&tmp.path().join("missing")).is_empty());
        std::fs::write(tmp.path().join("2.log"), "").unwrap();
        assert_eq!(log_names(tmp.path()), ["2.log"]);
    }
}
