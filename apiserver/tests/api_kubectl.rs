//! The installed kubectl against a real server: apply (create, then a changed apply, which
//! kubectl sends as a strategic merge patch), get (tables, -o yaml, -l, -A), describe,
//! scale, delete, strict field validation. Skips, saying so, only where kubectl is absent.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use support::{within, TestServer};

const KUBECTL: &str = "/usr/bin/kubectl";

struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    /// Runs kubectl; returns (success, stdout + stderr).
    async fn run(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("kubectl runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Runs kubectl, which must succeed with output containing every `want`.
    async fn ok(&self, args: &[&str], want: &[&str]) -> String {
        let (ok, text) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed:\n{text}");
        for w in want {
            assert!(
                text.contains(w),
                "kubectl {args:?}: {w:?} not in output:\n{text}"
            );
        }
        text
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: [sleep, '3600']
";

fn stack(replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 8080
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_describe_scale_delete() {
    if !Path::new(KUBECTL).exists() {
        eprintln!("SKIPPED: {KUBECTL} is not installed");
        return;
    }
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let k = Kubectl {
        kubeconfig: s.kubeconfig(),
        cache: tmp.path().join("cache"),
    };
    within(180, "a kubectl command hung against the server", async {
        let pod = write(tmp.path(), "pod.yaml", POD);
        let st = write(tmp.path(), "stack.yaml", &stack(2, "busybox:1.36"));
        k.ok(&["version"], &["Server Version: v1.32"]).await;
        k.ok(
            &["api-resources"],
            &["deploy", "po ", "svc", "coordination.k8s.io/v1"],
        )
        .await;
        k.ok(&["apply", "-f", &pod], &["pod/web created"]).await;
        k.ok(
            &["apply", "-f", &st],
            &["deployment.apps/web created", "service/web created"],
        )
        .await;

        // A changed apply is a strategic merge patch of the deployment.
        let st2 = write(tmp.path(), "stack2.yaml", &stack(3, "busybox:1.37"));
        k.ok(
            &["apply", "-f", &st2],
            &["deployment.apps/web configured", "service/web unchanged"],
        )
        .await;
        let deploys: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
        let d = deploys.get("web").await.unwrap();
        assert_eq!(d.spec.replicas, Some(3));
        let image = d.spec.template.spec.as_ref().unwrap().containers[0]
            .image
            .clone();
        assert_eq!(image.as_deref(), Some("busybox:1.37"));
        assert_eq!(d.metadata.generation, Some(2));

        // Tables with kubectl's columns.
        let pods = k
            .ok(
                &["get", "pods"],
                &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            )
            .await;
        assert!(
            pods.lines()
                .any(|l| l.starts_with("web") && l.contains("Pending")),
            "{pods}"
        );
        k.ok(&["get", "deploy"], &["UP-TO-DATE", "AVAILABLE", "web"])
            .await;
        k.ok(&["get", "svc", "web"], &["CLUSTER-IP", "10.96.", "80/TCP"])
            .await;
        k.ok(&["get", "pods", "-A"], &["NAMESPACE", "default"])
            .await;
        k.ok(&["get", "ns"], &["kube-system", "Active"]).await;
        k.ok(&["get", "pods", "-l", "app=web"], &["web"]).await;
        k.ok(&["get", "pods", "-l", "app=nope"], &["No resources found"])
            .await;
        k.ok(
            &["get", "all"],
            &["pod/web", "deployment.apps/web", "service/web"],
        )
        .await;
        k.ok(
            &["get", "pod", "web", "-o", "yaml"],
            &[
                "kind: Pod",
                "imagePullPolicy: IfNotPresent",
                "restartPolicy: Always",
            ],
        )
        .await;
        k.ok(
            &["describe", "deployment", "web"],
            &["Replicas:", "3 desired", "RollingUpdate", "busybox:1.37"],
        )
        .await;
        k.ok(
            &["describe", "pod", "web"],
            &["Status:", "Pending", "QoS Class:"],
        )
        .await;

        k.ok(
            &["scale", "deployment", "web", "--replicas=5"],
            &["deployment.apps/web scaled"],
        )
        .await;
        assert_eq!(deploys.get("web").await.unwrap().spec.replicas, Some(5));

        // Strict field validation (kubectl's default) rejects a misspelt field.
        let bad = write(
            tmp.path(),
            "bad.yaml",
            &POD.replace("name: web", "name: bad")
                .replace("image:", "imagee:"),
        );
        let (ok, text) = k.run(&["apply", "-f", &bad]).await;
        assert!(!ok && text.contains("unknown field"), "{text}");

        k.ok(
            &["delete", "-f", &st2],
            &["deployment.apps \"web\" deleted", "service \"web\" deleted"],
        )
        .await;
        k.ok(&["delete", "pod", "web"], &["pod \"web\" deleted"])
            .await;
        k.ok(&["get", "all"], &["No resources found"]).await;

        // kubectl's create generators send protobuf bodies.
        k.ok(&["create", "namespace", "team"], &["namespace/team created"]).await;
        let n = ["-n", "team"];
        let create = |args: &'static [&'static str]| [args, &n[..]].concat();
        k.ok(
            &create(&["create", "deployment", "nginx", "--image=nginx:1.25", "--replicas=2", "--port=80"]),
            &["deployment.apps/nginx created"],
        )
        .await;
        k.ok(&create(&["create", "configmap", "c1", "--from-literal=a=b"]), &["configmap/c1 created"])
            .await;
        k.ok(&create(&["create", "secret", "generic", "s1", "--from-literal=p=q"]), &["secret/s1 created"])
            .await;
        k.ok(&create(&["create", "serviceaccount", "robot"]), &["serviceaccount/robot created"]).await;
        k.ok(&create(&["create", "service", "clusterip", "svc1", "--tcp=80:8080"]), &["service/svc1 created"])
            .await;
        k.ok(
            &create(&["expose", "deployment", "nginx", "--port=8080", "--target-port=80", "--name=web2"]),
            &["service/web2 exposed"],
        )
        .await;
        k.ok(&create(&["get", "deploy", "nginx", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].ports[0].containerPort}"]), &["2 80"]).await;
        k.ok(&create(&["get", "secret", "s1", "-o", "jsonpath={.data.p}"]), &["cQ=="]).await;
        k.ok(&create(&["get", "cm", "c1", "-o", "jsonpath={.data.a}"]), &["b"]).await;
        // No namespace controller runs here to empty it: do not wait for it to go.
        k.ok(&["delete", "namespace", "team", "--wait=false"], &["namespace \"team\" deleted"])
            .await;
    })
    .await;
}

/// The Python `kubernetes` client: CRUD, selectors, watch, patch, scale subresource, 404s.
const PYTHON_CLIENT: &str = r#"
import sys
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
v1, apps = client.CoreV1Api(), client.AppsV1Api()
assert "kube-system" in [n.metadata.name for n in v1.list_namespace().items]
pod = client.V1Pod(metadata=client.V1ObjectMeta(name="py", labels={"app": "py"}),
                   spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]))
p = v1.create_namespaced_pod("default", pod)
assert p.spec.restart_policy == "Always" and p.status.phase == "Pending"
assert len(v1.list_namespaced_pod("default", label_selector="app=py").items) == 1
assert len(v1.list_namespaced_pod("default", label_selector="app!=py").items) == 0
v1.patch_namespaced_pod("py", "default", {"metadata": {"labels": {"x": "y"}}})
w = watch.Watch()
seen = [ev["type"] for ev in w.stream(v1.list_namespaced_pod, "default", timeout_seconds=2)]
assert seen == ["ADDED"], seen
dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pyd"},
       "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
       "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}
d = apps.create_namespaced_deployment("default", dep)
assert d.spec.replicas == 1 and d.spec.strategy.type == "RollingUpdate"
assert apps.patch_namespaced_deployment_scale("pyd", "default", {"spec": {"replicas": 4}}).spec.replicas == 4
try:
    v1.read_namespaced_pod("nope", "default")
    raise SystemExit("expected 404")
except client.exceptions.ApiException as e:
    assert e.status == 404, e.status
v1.delete_namespaced_pod("py", "default")
print("python client ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_kubernetes_client_works() {
    let has_module = Command::new("python3")
        .args(["-c", "import kubernetes"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_module {
        eprintln!(
            "SKIPPED: the Python `kubernetes` package is not installed (pip install kubernetes)"
        );
        return;
    }
    let s = TestServer::start().await;
    let kubeconfig = s.kubeconfig();
    within(
        120,
        "the Python client hung against the server",
        async move {
            let out = tokio::task::spawn_blocking(move || {
                Command::new("python3")
                    .args(["-c", PYTHON_CLIENT])
                    .arg(&kubeconfig)
                    .output()
            })
            .await
            .unwrap()
            .expect("python3 runs");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && text.contains("python client ok"),
                "{text}"
            );
        },
    )
    .await;
}
