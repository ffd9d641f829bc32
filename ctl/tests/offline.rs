//! minictl verbs that need no API server: kubeconfig handling, completion, and the one-line
//! errors for an unreachable server. Each runs the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn minictl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_minictl"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("minictl runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("config");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: admin\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n- name: other\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: admin\n  context:\n    cluster: local\n    user: admin\n    namespace: team\n- name: second\n  context:\n    cluster: other\n    user: admin\nusers:\n- name: admin\n  user:\n    token: s3cret-token\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn config_view_current_context_and_use_context() {
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), "https://127.0.0.1:6443");
    let kc = kc.to_str().unwrap();

    let out = minictl(&["config", "view", "--kubeconfig", kc]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let view = text(&out.stdout);
    assert!(view.contains("token: REDACTED"), "{view}");
    assert!(!view.contains("s3cret-token"), "{view}");
    let raw = text(&minictl(&["config", "view", "--raw", "--kubeconfig", kc]).stdout);
    assert!(raw.contains("s3cret-token"), "{raw}");

    let out = minictl(&["config", "current-context", "--kubeconfig", kc]);
    assert_eq!(text(&out.stdout), "admin\n");

    let out = minictl(&["config", "use-context", "second", "--kubeconfig", kc]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Switched to context \"second\".\n");
    let out = minictl(&["config", "current-context", "--kubeconfig", kc]);
    assert_eq!(text(&out.stdout), "second\n");

    let out = minictl(&["config", "use-context", "nope", "--kubeconfig", kc]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: no context exists with the name: \"nope\"\n"
    );

    let out = minictl(&["get", "pods", "--context", "nope", "--kubeconfig", kc]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: no context exists with the name: \"nope\"\n"
    );

    let out = minictl(&["config", "get-contexts", "--kubeconfig", kc]);
    let table = text(&out.stdout);
    assert!(
        table.starts_with("CURRENT   NAME     CLUSTER   AUTHINFO   NAMESPACE\n"),
        "{table}"
    );
    assert!(
        table.contains("*         second   other     admin"),
        "{table}"
    );
}

#[test]
fn kubeconfig_env_is_used_when_no_flag() {
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), "https://127.0.0.1:6443");
    let out = Command::new(env!("CARGO_BIN_EXE_minictl"))
        .args(["config", "current-context"])
        .env(
            "KUBECONFIG",
            format!("{}:{}", dir.path().join("missing").display(), kc.display()),
        )
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "admin\n", "{}", text(&out.stderr));
}

#[test]
fn completion_scripts_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_minictl()"),
        ("zsh", "#compdef minictl"),
        ("fish", "complete -c minictl"),
    ] {
        let out = minictl(&["completion", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell} script lacks {marker:?}");
        assert!(
            script.contains("rollout"),
            "{shell} script lacks subcommands"
        );
    }
}

#[test]
fn unreachable_server_is_one_sentence_and_exit_1() {
    // A port nothing listens on: bind, learn it, close it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), &format!("https://127.0.0.1:{port}"));
    for args in [
        vec!["get", "pods"],
        vec!["apply", "-f", "-"],
        vec!["version"],
    ] {
        let mut full = args.clone();
        full.extend(["--kubeconfig", kc.to_str().unwrap()]);
        let out = Command::new(env!("CARGO_BIN_EXE_minictl"))
            .args(&full)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        if args[0] == "apply" {
            assert_eq!(err, "error: no objects passed to apply\n");
            continue;
        }
        assert_eq!(
            err,
            format!("The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?\n"),
            "{args:?}"
        );
    }
}

#[test]
fn missing_manifest_path_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), "https://127.0.0.1:1");
    let out = minictl(&[
        "apply",
        "-f",
        "/nonexistent/pod.yaml",
        "--kubeconfig",
        kc.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: the path \"/nonexistent/pod.yaml\" does not exist\n"
    );
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let out = minictl(&["scale", "deploy/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--replicas"),
        "{}",
        text(&out.stderr)
    );
    let out = minictl(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("apply"));
    let out = minictl(&["get", "--kubeconfig", "/dev/null"]);
    assert_eq!(out.status.code(), Some(1));
}
