//! `apply`, `create`, `replace`, `get` (tables, -A, all, -o yaml|json|name|jsonpath, -l,
//! --show-labels, -w) and bad manifests, against a real API server.

mod support;

use support::{manifests_dir, Lines, Server};

#[test]
fn apply_manifests_dir_then_reapply_and_change() {
    let srv = Server::start();
    let dir = manifests_dir();
    let r = srv.ok(&["apply", "-f", dir.to_str().unwrap()]);
    assert_eq!(
        r.stdout,
        "namespace/demo created\nconfigmap/web-content created\npod/web created\ndeployment.apps/web created\nservice/web created\n",
        "stderr: {}",
        r.stderr
    );
    let r = srv.ok(&["apply", "-f", dir.to_str().unwrap()]);
    assert_eq!(
        r.stdout,
        "namespace/demo unchanged\nconfigmap/web-content unchanged\npod/web unchanged\ndeployment.apps/web unchanged\nservice/web unchanged\n"
    );
    let changed = std::fs::read_to_string(dir.join("10-configmap.yaml"))
        .unwrap()
        .replace("Hello from", "Changed by");
    let f = srv.write("cm.yaml", &changed);
    let r = srv.ok(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(r.stdout, "configmap/web-content configured\n");
    let r = srv.ok(&[
        "get",
        "configmap",
        "web-content",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.index\\.html}",
    ]);
    // kubectl escapes dots in keys with a backslash, or uses the bracket form.
    assert_eq!(r.stdout, "<h1>Changed by minik8s</h1>\n");
    let r2 = srv.ok(&[
        "get",
        "cm/web-content",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data['index.html']}",
    ]);
    assert_eq!(r2.stdout, r.stdout);
}

#[test]
fn get_tables_names_yaml_and_selectors() {
    let srv = Server::start();
    srv.ok(&["apply", "-f", manifests_dir().to_str().unwrap()]);

    // The columns are the server's (its Table); the layout is kubectl's: 3 spaces after the
    // widest cell of each column, the last column unpadded.
    let r = srv.ok(&["get", "pods", "-n", "demo"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(lines[0].starts_with("NAME   "), "{}", r.stdout);
    assert!(lines[1].starts_with("web    "), "{}", r.stdout);
    assert_eq!(
        column_starts(lines[0]),
        column_starts(lines[1]),
        "{}",
        r.stdout
    );

    // Short name, -A adds NAMESPACE, --show-labels adds LABELS.
    let r = srv.ok(&["get", "po", "-A", "--show-labels"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE   NAME   "), "{}", r.stdout);
    assert!(lines[0].ends_with("   LABELS"), "{}", r.stdout);
    assert!(lines[1].starts_with("demo        web    "), "{}", r.stdout);
    assert!(lines[1].ends_with("   app=web-single"), "{}", r.stdout);
    assert_eq!(
        column_starts(lines[0]),
        column_starts(lines[1]),
        "{}",
        r.stdout
    );

    // Two kinds: one table each, names prefixed with the type.
    let r = srv.ok(&["get", "deploy,svc", "-n", "demo"]);
    assert!(r.stdout.contains("deployment.apps/web"), "{}", r.stdout);
    assert!(
        r.stdout.contains("\n\nNAME "),
        "tables separated by a blank line: {}",
        r.stdout
    );
    assert!(r.stdout.contains("service/web"), "{}", r.stdout);

    let r = srv.ok(&["get", "all", "-n", "demo"]);
    assert!(r.stdout.contains("pod/web"), "{}", r.stdout);
    assert!(r.stdout.contains("service/web"), "{}", r.stdout);
    assert!(r.stdout.contains("deployment.apps/web"), "{}", r.stdout);

    let r = srv.ok(&["get", "pods,cm", "-n", "demo", "-o", "name"]);
    assert_eq!(r.stdout, "pod/web\nconfigmap/web-content\n");

    let r = srv.ok(&[
        "get",
        "pods",
        "-n",
        "demo",
        "-l",
        "app=web-single",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert_eq!(r.stdout, "web");
    let r = srv.ok(&["get", "pods", "-n", "demo", "-l", "app=nothing"]);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, "No resources found in demo namespace.\n");
    let r = srv.ok(&[
        "get",
        "pods",
        "-n",
        "demo",
        "--field-selector",
        "metadata.name=web",
        "-o",
        "name",
    ]);
    assert_eq!(r.stdout, "pod/web\n");

    let r = srv.ok(&["get", "ns", "demo", "-o", "wide"]);
    assert!(
        r.stdout
            .starts_with("NAME   STATUS   AGE\ndemo   Active   "),
        "{}",
        r.stdout
    );
    let r = srv.ok(&["get", "svc", "-n", "demo"]);
    assert!(r.stdout.starts_with("NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE\nweb    ClusterIP   10.96."), "{}", r.stdout);

    // yaml round trip: what get prints, apply accepts, and nothing changes.
    let r = srv.ok(&["get", "deployment", "web", "-n", "demo", "-o", "yaml"]);
    let v: serde_yaml::Value = serde_yaml::from_str(&r.stdout).unwrap();
    assert_eq!(v["kind"].as_str(), Some("Deployment"));
    assert_eq!(v["spec"]["replicas"].as_i64(), Some(2));
    // As with server-side apply in Kubernetes: the first re-apply makes minictl the owner of
    // every printed field (a managedFields write, so "configured"), changing nothing else;
    // the now stale resourceVersion in that file is a conflict; the fresh output applies
    // unchanged.
    let printed = srv.write("web-as-printed.yaml", &r.stdout);
    let again = srv.ok(&["apply", "-f", printed.to_str().unwrap()]);
    assert_eq!(again.stdout, "deployment.apps/web configured\n");
    let after = srv.ok(&["get", "deployment", "web", "-n", "demo", "-o", "yaml"]);
    let without_rv = |y: &str| {
        y.lines()
            .filter(|l| !l.trim_start().starts_with("resourceVersion:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_rv(&after.stdout), without_rv(&r.stdout));
    let stale = srv.run(&["apply", "-f", printed.to_str().unwrap()]);
    assert_eq!(stale.code, 1);
    assert!(
        stale.stderr.starts_with("Error from server (Conflict): "),
        "{}",
        stale.stderr
    );
    let fresh = srv.write("web-fresh.yaml", &after.stdout);
    let r2 = srv.ok(&["apply", "-f", fresh.to_str().unwrap()]);
    assert_eq!(r2.stdout, "deployment.apps/web unchanged\n");
    let r = srv.ok(&["get", "svc", "web", "-n", "demo", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["spec"]["ports"][0]["port"], 80);
    assert!(
        r.stdout.starts_with("{\n    \"apiVersion\""),
        "{}",
        r.stdout
    );
    let r = srv.ok(&["get", "cm", "-n", "demo", "-o", "yaml"]);
    let v: serde_yaml::Value = serde_yaml::from_str(&r.stdout).unwrap();
    assert_eq!(v["kind"].as_str(), Some("List"));

    let r = srv.run(&["get", "pod", "nope", "-n", "demo"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let r = srv.run(&["get", "widgets"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "error: the server doesn't have a resource type \"widgets\"\n"
    );
}

#[test]
fn bad_documents_are_each_reported_and_store_nothing() {
    let srv = Server::start();
    let f = srv.write(
        "mixed.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good-one\n---\n\
apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: syntax\n   bad: indent\n---\n\
apiVersion: v1\nkind: Widget\nmetadata:\n  name: unknown-kind\n---\n\
apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n---\n\
apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: wrong-type\nspec:\n  replicas: three\n---\n\
apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unknown-field\ndatta:\n  a: b\n---\n\
apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good-two\n",
    );
    let path = f.to_str().unwrap();
    let r = srv.run(&["apply", "-f", path]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "configmap/good-one created\nconfigmap/good-two created\n"
    );
    let err: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(err.len(), 5, "{}", r.stderr);
    assert!(
        err[0].starts_with(&format!(
            "error: error parsing {path}: document 2 (line 10): "
        )),
        "{}",
        err[0]
    );
    assert_eq!(
        err[1],
        format!(
            "error: {path}: document 3 (line 12): no matches for kind \"Widget\" in version \"v1\""
        )
    );
    assert_eq!(
        err[2],
        format!("error: {path}: document 4 (line 17): ConfigMap has no metadata.name: resource name may not be empty")
    );
    assert!(
        err[3].starts_with(&format!(
            "error: error validating {path}: document 5 (line 22): spec.replicas: invalid type"
        )),
        "{}",
        err[3]
    );
    assert!(err[3].ends_with("at line 27"), "{}", err[3]);
    assert_eq!(
        err[4],
        format!("error: error validating {path}: document 6 (line 29): strict decoding error: unknown field \"datta\" at line 33")
    );

    let r = srv.ok(&["get", "cm", "-o", "name"]);
    assert_eq!(
        r.stdout, "configmap/good-one\nconfigmap/good-two\n",
        "bad documents must store nothing"
    );
    let r = srv.ok(&["get", "deploy", "-o", "name"]);
    assert_eq!(r.stdout, "");
}

#[test]
fn create_replace_dry_run_and_stdin() {
    let srv = Server::start();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c1\ndata:\n  k: v1\n";
    let r = srv.run_stdin(&["apply", "--dry-run=server", "-f", "-"], cm);
    assert_eq!(
        r.stdout, "configmap/c1 created (server dry run)\n",
        "{}",
        r.stderr
    );
    assert_eq!(
        srv.ok(&["get", "cm", "-o", "name"]).stdout,
        "",
        "dry run stores nothing"
    );

    let r = srv.run_stdin(&["create", "-f", "-"], cm);
    assert_eq!(r.stdout, "configmap/c1 created\n", "{}", r.stderr);
    let r = srv.run_stdin(&["create", "-f", "-"], cm);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with(
            "Error from server (AlreadyExists): error when creating STDIN: document 1: "
        ),
        "{}",
        r.stderr
    );
    let r = srv.run_stdin(
        &["replace", "-f", "-"],
        &cm.replace("v1\n", "v2\n")
            .replacen("apiVersion: v2", "apiVersion: v1", 1),
    );
    assert_eq!(r.stdout, "configmap/c1 replaced\n", "{}", r.stderr);
    let r = srv.ok(&["get", "cm", "c1", "-o", "jsonpath={.data.k}"]);
    assert_eq!(r.stdout, "v2");

    // -R reads nested folders; without it only the top level.
    let top = srv.dir.path().join("tree");
    std::fs::create_dir_all(top.join("nested")).unwrap();
    std::fs::write(
        top.join("a.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: top}\n",
    )
    .unwrap();
    std::fs::write(
        top.join("nested/b.yml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\n",
    )
    .unwrap();
    std::fs::write(top.join("nested/notes.txt"), "not a manifest").unwrap();
    let tree = top.to_str().unwrap();
    assert_eq!(
        srv.ok(&["apply", "-f", tree]).stdout,
        "configmap/top created\n"
    );
    assert_eq!(
        srv.ok(&["apply", "-R", "-f", tree]).stdout,
        "configmap/top unchanged\nconfigmap/deep created\n"
    );
    // get -f names the objects of a file.
    let r = srv.ok(&[
        "get",
        "-f",
        top.join("nested/b.yml").to_str().unwrap(),
        "-o",
        "name",
    ]);
    assert_eq!(r.stdout, "configmap/deep\n");

    // Kinds minictl has no type for are checked by the server's strict field validation.
    let lease = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: l1}\nspec:\n  holderIdentity: me\n  bogus: 1\n";
    let r = srv.run_stdin(&["apply", "-f", "-"], lease);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("Error from server (BadRequest): error when applying STDIN: document 1: "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(".spec.bogus: field not declared in schema"),
        "{}",
        r.stderr
    );
    assert_eq!(srv.ok(&["get", "leases", "-o", "name"]).stdout, "");

    // JSON input and a List kind.
    let list = r#"{"apiVersion":"v1","kind":"List","items":[
        {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j1"}},
        {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j2"}}]}"#;
    let r = srv.run_stdin(&["apply", "-f", "-"], list);
    assert_eq!(
        r.stdout, "configmap/j1 created\nconfigmap/j2 created\n",
        "{}",
        r.stderr
    );
}

#[test]
fn get_watch_prints_a_row_for_a_change() {
    let srv = Server::start();
    srv.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first\n",
    );
    let mut child = srv.spawn(&["get", "configmaps", "-w"]);
    let mut lines = Lines::new(&mut child);
    lines.expect_line("header", |l| l.starts_with("NAME"));
    lines.expect_line("existing row", |l| l.starts_with("first "));
    let r = srv.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: second\ndata: {a: b}\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let row = lines.expect_line("row for the new configmap", |l| l.starts_with("second "));
    assert!(
        row.starts_with("second   1      "),
        "DATA column counts 1 key: {row:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Where each column starts (after a run of 3+ spaces), to compare header and row layout.
fn column_starts(line: &str) -> Vec<usize> {
    let b = line.as_bytes();
    (1..b.len())
        .filter(|&i| b[i] != b' ' && i >= 3 && b[i - 3..i] == *b"   ")
        .collect()
}
