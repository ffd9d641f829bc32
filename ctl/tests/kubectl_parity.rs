//! minictl prints what the real kubectl prints for the same objects on the same server:
//! tables (-A, `all`, wide, labels), yaml, and describe. Runs where kubectl is installed.

mod support;

use std::process::Command;

use support::{manifests_dir, Server};

fn kubectl_present() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn minictl_output_matches_kubectl() {
    if !kubectl_present() {
        eprintln!("kubectl not installed: parity with kubectl not checked");
        return;
    }
    let srv = Server::start();
    srv.ok(&["apply", "-f", manifests_dir().to_str().unwrap()]);
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s1, namespace: demo}\nstringData: {password: hunter2}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: empty, namespace: demo}\n";
    let r = srv.run_stdin(&["create", "-f", "-"], secret);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let kc = srv.kubeconfig.to_str().unwrap().to_string();
    let kubectl = |args: &[&str]| {
        let o = Command::new("kubectl")
            .args(args)
            .arg("--kubeconfig")
            .arg(&kc)
            .output()
            .expect("kubectl runs");
        assert!(
            o.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    for args in [
        &["get", "pods", "-A"][..],
        &["get", "all", "-n", "demo"],
        &["get", "pods", "-n", "demo", "-o", "wide", "--show-labels"],
        &["get", "ns"],
        &["get", "deploy", "web", "-n", "demo", "-o", "yaml"],
        &["get", "cm", "web-content", "-n", "demo", "-o", "yaml"],
        &["get", "svc", "-n", "demo", "-o", "json"],
        &["get", "pods,cm", "-A", "-o", "name"],
        &[
            "get",
            "pods",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
        ],
        &["get", "nodes,ns", "-o", "wide"],
        &["api-resources"],
        &["describe", "pod", "web", "-n", "demo"],
        &["describe", "deploy", "web", "-n", "demo"],
        &["describe", "svc", "web", "-n", "demo"],
        &["describe", "ns", "demo"],
        &["describe", "cm", "web-content", "-n", "demo"],
        &["describe", "cm", "empty", "-n", "demo"],
        &["describe", "secret", "s1", "-n", "demo"],
    ] {
        // AGE cells tick between the two runs; one retry absorbs a second boundary.
        let mut same = false;
        let (mut ours, mut theirs) = (String::new(), String::new());
        for _ in 0..3 {
            ours = srv.ok(args).stdout;
            theirs = kubectl(args);
            if ours == theirs {
                same = true;
                break;
            }
        }
        assert!(
            same,
            "minictl {args:?} differs from kubectl:\n--- minictl\n{ours}--- kubectl\n{theirs}"
        );
    }
    // Errors and empty results read the same too (stderr, exit code 1 / 0).
    for args in [
        &["get", "pod", "nope", "-n", "demo"][..],
        &["get", "widgets"],
        &["get", "pods", "-n", "kube-public"],
        &["describe", "svc", "nope", "-n", "demo"],
    ] {
        let ours = srv.run(args);
        let theirs = Command::new("kubectl")
            .args(args)
            .arg("--kubeconfig")
            .arg(&kc)
            .output()
            .unwrap();
        assert_eq!(
            ours.stderr,
            String::from_utf8_lossy(&theirs.stderr),
            "stderr of {args:?}"
        );
        assert_eq!(
            Some(ours.code),
            theirs.status.code(),
            "exit code of {args:?}"
        );
    }
}
