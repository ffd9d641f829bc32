//! describe, delete, scale, label, annotate, rollout, cordon/uncordon/drain, logs, edit,
//! version, cluster-info, api-resources and credential errors, against a real API server.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::{wait_exit, Lines, Server};

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: httpd\n        image: busybox\n        command: [httpd, -f, -p, \"8080\"]\n";
const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: single}\nspec:\n  containers:\n  - name: httpd\n    image: busybox\n    command: [httpd, -f, -p, \"8080\"]\n    ports:\n    - containerPort: 8080\n";

#[test]
fn describe_pod_with_events_and_other_kinds() {
    let srv = Server::start();
    srv.run_stdin(&["apply", "-f", "-"], POD);
    let client = srv.client();
    let pod = srv.ok(&["get", "pod", "web", "-o", "json"]).stdout;
    let pod: serde_json::Value = serde_json::from_str(&pod).unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": "web.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": uid, "apiVersion": "v1"},
        "reason": "Scheduled", "message": "Successfully assigned default/web to node-1", "type": "Normal",
        "source": {"component": "default-scheduler"}, "count": 1,
        "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z"
    }))
    .unwrap();
    srv.rt
        .block_on(
            Api::<Event>::namespaced(client, "default").create(&PostParams::default(), &event),
        )
        .expect("event created");
    let d = srv.ok(&["describe", "pod", "web"]).stdout;
    assert!(
        d.starts_with("Name:         web\nNamespace:    default\nNode:         <none>\n"),
        "{d}"
    );
    assert!(d.contains("\nLabels:       app=single\n"), "{d}");
    assert!(d.contains("\nContainers:\n  httpd:\n    Image:"), "{d}");
    assert!(d.contains("    Port:") && d.contains("8080/TCP\n"), "{d}");
    assert!(d.contains("\nEvents:\n  Type    Reason     Age"), "{d}");
    assert!(d.contains("  Normal  Scheduled  "), "{d}");
    assert!(
        d.trim_end()
            .ends_with("default-scheduler  Successfully assigned default/web to node-1"),
        "{d}"
    );

    srv.run_stdin(&["apply", "-f", "-"], DEPLOY);
    let d = srv.ok(&["describe", "deploy/web"]).stdout;
    assert!(d.contains("Replicas:               3 desired | 0 updated | 0 total | 0 available | 0 unavailable\n"), "{d}");
    assert!(d.contains("StrategyType:           RollingUpdate\n"), "{d}");
    assert!(d.contains("Pod Template:\n  Labels:  app=web\n"), "{d}");
    assert!(d.contains("Pod Template:\n  Labels:  app=web\n  Containers:\n   httpd:\n    Image:      busybox\n"), "{d}");
    assert!(!d.contains("NewReplicaSet:"), "no replica set yet: {d}");

    srv.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n---\napiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n  labels: {kubernetes.io/hostname: node-1}\n---\napiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: web-rs}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: rs}}\n  template:\n    metadata: {labels: {app: rs}}\n    spec:\n      containers: [{name: c, image: busybox}]\n",
    );
    let d = srv.ok(&["describe", "svc", "web"]).stdout;
    assert!(d.contains("Selector:                 app=web\n"), "{d}");
    assert!(
        d.contains("Port:                     http  80/TCP\nTargetPort:               8080/TCP\n"),
        "{d}"
    );
    assert!(d.contains("Type:                     ClusterIP\n"), "{d}");
    assert!(d.contains("Internal Traffic Policy:  Cluster\n"), "{d}");
    let d = srv.ok(&["describe", "node", "node-1"]).stdout;
    assert!(
        d.starts_with("Name:               node-1\nRoles:              <none>\n"),
        "{d}"
    );
    assert!(d.contains("Unschedulable:      false\n"), "{d}");
    let d = srv.ok(&["describe", "rs", "web-rs"]).stdout;
    assert!(
        d.contains("Pods Status:  0 Running / 0 Waiting / 0 Succeeded / 0 Failed\n"),
        "{d}"
    );
    let d = srv.ok(&["describe", "namespace", "default"]).stdout;
    assert!(d.starts_with("Name:         default\n"), "{d}");
    assert!(d.contains("Status:       Active\n"), "{d}");

    let r = srv.run(&["describe", "pod", "nope"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
}

#[test]
fn delete_by_name_file_label_and_all() {
    let srv = Server::start();
    let cms = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {tier: x}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, labels: {tier: x}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\n";
    srv.run_stdin(&["apply", "-f", "-"], cms);
    srv.run_stdin(&["apply", "-f", "-"], POD);

    let r = srv.ok(&["delete", "pod", "web"]);
    assert_eq!(r.stdout, "pod \"web\" deleted\n");
    assert_eq!(srv.ok(&["get", "pods", "-o", "name"]).stdout, "");

    let r = srv.ok(&["delete", "cm", "-l", "tier=x"]);
    assert_eq!(
        r.stdout,
        "configmap \"a\" deleted\nconfigmap \"b\" deleted\n"
    );
    let f = srv.write(
        "c.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    let r = srv.ok(&["delete", "-f", f.to_str().unwrap(), "--grace-period=0"]);
    assert_eq!(r.stdout, "configmap \"c\" deleted\n");
    let r = srv.ok(&["delete", "cm", "--all", "--wait=false"]);
    assert!(
        r.stdout.contains("configmap \"d\" deleted\n"),
        "{}",
        r.stdout
    );
    assert_eq!(
        srv.ok(&["get", "cm", "-l", "!kube-root", "-o", "name"])
            .stdout
            .matches("configmap/d")
            .count(),
        0
    );

    let r = srv.run(&["delete", "pod", "ghost"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error from server (NotFound): pods \"ghost\" not found\n"
    );
    let r = srv.ok(&["delete", "pod", "ghost", "--ignore-not-found"]);
    assert_eq!(r.stdout, "");
    let r = srv.run(&["delete", "pods"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "error: resource(s) were provided, but no name was specified\n"
    );
}

#[test]
fn scale_label_annotate_and_edit() {
    let srv = Server::start();
    srv.run_stdin(&["apply", "-f", "-"], DEPLOY);
    let r = srv.ok(&["scale", "deployment/web", "--replicas=5"]);
    assert_eq!(r.stdout, "deployment.apps/web scaled\n");
    assert_eq!(
        srv.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
            .stdout,
        "5"
    );

    assert_eq!(
        srv.ok(&["label", "deploy", "web", "tier=front"]).stdout,
        "deployment.apps/web labeled\n"
    );
    let r = srv.run(&["label", "deploy", "web", "tier=back"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr, "error: deployment.apps/web: 'tier' already has a value (front), and --overwrite is false\n");
    srv.ok(&["label", "deploy/web", "tier=back", "--overwrite"]);
    assert_eq!(
        srv.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.labels.tier}"
        ])
        .stdout,
        "back"
    );
    srv.ok(&["label", "deploy", "web", "tier-"]);
    assert_eq!(
        srv.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.labels.tier}"
        ])
        .stdout,
        ""
    );
    assert_eq!(
        srv.ok(&["get", "deploy", "-l", "app=web", "-o", "name"])
            .stdout,
        "deployment.apps/web\n"
    );

    assert_eq!(
        srv.ok(&["annotate", "deploy", "web", "note=hello world"])
            .stdout,
        "deployment.apps/web annotated\n"
    );
    assert_eq!(
        srv.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.note}"
        ])
        .stdout,
        "hello world"
    );
    srv.ok(&["annotate", "deploy", "web", "note-"]);
    assert_eq!(
        srv.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.note}"
        ])
        .stdout,
        ""
    );

    // edit: the editor is a sed script that changes the replica count.
    let r = support::Run::from(
        std::process::Command::new(env!("CARGO_BIN_EXE_minictl"))
            .args([
                "edit",
                "deployment",
                "web",
                "--kubeconfig",
                srv.kubeconfig.to_str().unwrap(),
            ])
            .env("EDITOR", "sed -i 's/^  replicas: 5$/  replicas: 2/'")
            .env_remove("KUBE_EDITOR")
            .output()
            .unwrap(),
    );
    assert_eq!(r.stdout, "deployment.apps/web edited\n", "{}", r.stderr);
    assert_eq!(
        srv.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
            .stdout,
        "2"
    );
    let r = support::Run::from(
        std::process::Command::new(env!("CARGO_BIN_EXE_minictl"))
            .args([
                "edit",
                "deploy/web",
                "--kubeconfig",
                srv.kubeconfig.to_str().unwrap(),
            ])
            .env("EDITOR", "true")
            .env_remove("KUBE_EDITOR")
            .output()
            .unwrap(),
    );
    assert_eq!(
        r.stdout, "Edit cancelled, no changes made.\n",
        "{}",
        r.stderr
    );
}

/// Writes the Deployment's status the way the deployment controller would.
fn set_status(srv: &Server, replicas: i32, updated: i32, available: i32) {
    let api: Api<Deployment> = Api::namespaced(srv.client(), "default");
    srv.rt.block_on(async {
        let mut d = api.get("web").await.unwrap();
        d.status = Some(
            serde_json::from_value(json!({
                "observedGeneration": d.metadata.generation,
                "replicas": replicas, "updatedReplicas": updated,
                "availableReplicas": available, "readyReplicas": available
            }))
            .unwrap(),
        );
        api.replace_status("web", &PostParams::default(), &d)
            .await
            .expect("status written");
    });
}

#[test]
fn rollout_status_follows_the_deployment_status_until_complete() {
    let srv = Server::start();
    srv.run_stdin(&["apply", "-f", "-"], DEPLOY);
    set_status(&srv, 3, 1, 0);
    let mut child = srv.spawn(&["rollout", "status", "deployment/web"]);
    let mut lines = Lines::new(&mut child);
    lines.expect_line("first progress line", |l| {
        l == "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."
    });
    set_status(&srv, 3, 3, 1);
    lines.expect_line("availability line", |l| {
        l == "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available..."
    });
    set_status(&srv, 3, 3, 3);
    lines.expect_line("completion", |l| {
        l == "deployment \"web\" successfully rolled out"
    });
    let status = wait_exit(
        &mut child,
        Duration::from_secs(20),
        "rollout status did not exit after completing",
    );
    assert!(status.success());
    // Already complete: one line and exit.
    assert_eq!(
        srv.ok(&["rollout", "status", "deploy/web"]).stdout,
        "deployment \"web\" successfully rolled out\n"
    );
}

#[test]
fn rollout_history_undo_restart_pause_resume() {
    let srv = Server::start();
    srv.run_stdin(&["apply", "-f", "-"], DEPLOY);
    let d = srv.ok(&["get", "deploy", "web", "-o", "json"]).stdout;
    let d: serde_json::Value = serde_json::from_str(&d).unwrap();
    let uid = d["metadata"]["uid"].as_str().unwrap();
    // Two revisions, as the deployment controller would have recorded them.
    for (rev, image) in [(1, "busybox:old"), (2, "busybox")] {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("web-{rev}"), "labels": {"app": "web", "pod-template-hash": format!("h{rev}")},
                "annotations": {"deployment.kubernetes.io/revision": rev.to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid, "controller": true}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web", "pod-template-hash": format!("h{rev}")}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": format!("h{rev}")}},
                    "spec": {"containers": [{"name": "httpd", "image": image, "command": ["httpd", "-f", "-p", "8080"]}]}}}});
        let r = srv.run_stdin(&["create", "-f", "-"], &rs.to_string());
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = srv.ok(&["rollout", "history", "deployment/web"]);
    assert_eq!(
        r.stdout,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n"
    );

    let r = srv.ok(&["rollout", "undo", "deployment/web"]);
    assert_eq!(r.stdout, "deployment.apps/web rolled back\n");
    let image = srv
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .stdout;
    assert_eq!(image, "busybox:old");
    let labels = srv
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.metadata.labels}",
        ])
        .stdout;
    assert!(!labels.contains("pod-template-hash"), "{labels}");
    let r = srv.run(&["rollout", "undo", "deployment/web", "--to-revision=7"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "error: unable to find specified revision 7 in history\n"
    );

    assert_eq!(
        srv.ok(&["rollout", "restart", "deployment/web"]).stdout,
        "deployment.apps/web restarted\n"
    );
    let at = srv
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.metadata.annotations['kubectl.kubernetes.io/restartedAt']}",
        ])
        .stdout;
    assert!(at.starts_with("20"), "restartedAt timestamp: {at:?}");

    assert_eq!(
        srv.ok(&["rollout", "pause", "deployment/web"]).stdout,
        "deployment.apps/web paused\n"
    );
    assert_eq!(
        srv.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.paused}"])
            .stdout,
        "true"
    );
    assert_eq!(
        srv.ok(&["rollout", "pause", "deployment/web"]).stdout,
        "deployment.apps/web already paused\n"
    );
    assert_eq!(
        srv.ok(&["rollout", "resume", "deployment/web"]).stdout,
        "deployment.apps/web resumed\n"
    );
    assert_eq!(
        srv.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.paused}"])
            .stdout,
        "false"
    );
}

#[test]
fn cordon_uncordon_and_drain() {
    let srv = Server::start();
    srv.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n",
    );
    assert_eq!(srv.ok(&["cordon", "n1"]).stdout, "node/n1 cordoned\n");
    assert_eq!(
        srv.ok(&["get", "node", "n1", "-o", "jsonpath={.spec.unschedulable}"])
            .stdout,
        "true"
    );
    assert_eq!(
        srv.ok(&["cordon", "n1"]).stdout,
        "node/n1 already cordoned\n"
    );
    assert_eq!(srv.ok(&["uncordon", "n1"]).stdout, "node/n1 uncordoned\n");

    // A bare pod bound to n1: drain refuses without --force, then removes it.
    let bound = POD.replace("spec:\n", "spec:\n  nodeName: n1\n");
    srv.run_stdin(&["apply", "-f", "-"], &bound);
    let r = srv.run(&["drain", "n1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(
            "cannot delete Pods that declare no controller (use --force to override): default/web"
        ),
        "{}",
        r.stderr
    );
    let r = srv.ok(&["drain", "n1", "--force", "--grace-period=0", "--timeout=30"]);
    assert!(
        r.stdout.starts_with("node/n1 already cordoned\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("evicting pod default/web\npod/web evicted\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.ends_with("node/n1 drained\n"), "{}", r.stdout);
    assert_eq!(srv.ok(&["get", "pods", "-o", "name"]).stdout, "");
}

#[test]
fn logs_without_nodes_prints_the_server_message() {
    let srv = Server::start();
    srv.run_stdin(&["apply", "-f", "-"], POD);
    let r = srv.run(&["logs", "web", "--tail", "10"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr, "Error from server (BadRequest): pod web does not have a host assigned\n",
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let r = srv.run(&["logs", "nope"]);
    assert_eq!(
        r.stderr,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
}

#[test]
fn version_cluster_info_api_resources_and_bad_credentials() {
    let srv = Server::start();
    let r = srv.ok(&["version"]);
    assert!(
        r.stdout.starts_with(&format!(
            "Client Version: v{}\nServer Version: v",
            env!("CARGO_PKG_VERSION")
        )),
        "{}",
        r.stdout
    );
    let r = srv.ok(&["cluster-info"]);
    assert!(
        r.stdout
            .starts_with("Kubernetes control plane is running at https://127.0.0.1:"),
        "{}",
        r.stdout
    );
    // cluster-info points at `get --raw`, so it must work: raw JSON and plain text.
    let r = srv.ok(&["get", "--raw", "/api/v1/namespaces/default"]);
    let ns: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(ns["metadata"]["name"], "default");
    assert_eq!(srv.ok(&["get", "--raw", "/healthz"]).stdout, "ok\n");
    let r = srv.run(&["get", "--raw", "/api/v1/namespaces/nope"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error from server (NotFound): namespaces \"nope\" not found\n"
    );
    let r = srv.ok(&["api-resources"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("SHORTNAMES")
            && lines[0].ends_with("KIND"),
        "{}",
        r.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("pods ") && l.contains(" po ") && l.ends_with(" Pod")),
        "{}",
        r.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("deployments ") && l.contains("apps/v1")),
        "{}",
        r.stdout
    );
    let r = srv.ok(&["api-resources", "-o", "name", "--namespaced=false"]);
    assert!(r.stdout.lines().any(|l| l == "nodes"), "{}", r.stdout);
    assert!(!r.stdout.lines().any(|l| l == "pods"), "{}", r.stdout);

    let kc = std::fs::read_to_string(&srv.kubeconfig).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&kc).unwrap();
    let token = v["users"][0]["user"]["token"]
        .as_str()
        .expect("admin kubeconfig has a token")
        .to_string();
    let bad = srv.write("bad.kubeconfig", &kc.replace(&token, "not-the-token"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_minictl"))
        .args(["get", "pods", "--kubeconfig", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let r = support::Run::from(out);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "error: You must be logged in to the server (Unauthorized)\n"
    );
}

#[test]
fn delete_waits_until_a_graceful_pod_is_gone() {
    let srv = Server::start();
    srv.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n",
    );
    let bound = POD.replace("spec:\n", "spec:\n  nodeName: n1\n");
    srv.run_stdin(&["apply", "-f", "-"], &bound);
    srv.run_stdin(
        &["apply", "-f", "-"],
        &bound.replace("name: web", "name: web2"),
    );

    // A bound pod gets its grace period: delete --wait keeps waiting meanwhile.
    let mut child = srv.spawn(&["delete", "pod", "web"]);
    let mut lines = Lines::new(&mut child);
    lines.expect_line("deleted line", |l| l == "pod \"web\" deleted");
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        child.try_wait().unwrap().is_none(),
        "delete returned while the pod still exists"
    );
    let term = srv
        .ok(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .stdout;
    assert!(!term.is_empty(), "pod is terminating");
    // Shortening the grace period to 0 removes it; the waiting delete then returns.
    let r = srv.ok(&["delete", "pod", "web", "--grace-period=0", "--wait=false"]);
    assert_eq!(r.stdout, "pod \"web\" deleted\n");
    let status = wait_exit(
        &mut child,
        Duration::from_secs(20),
        "delete --wait did not return once the pod was gone",
    );
    assert!(status.success());

    let r = srv.run(&["delete", "pod", "web2", "--timeout=1"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "pod \"web2\" deleted\n");
    assert_eq!(r.stderr, "error: timed out waiting for the condition\n");
}
