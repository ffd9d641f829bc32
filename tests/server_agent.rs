//! End to end with the real `minik8s` binary: `minik8s server` (control plane + local agent in
//! one process) runs a scheduled pod whose containers see the Service environment variables,
//! its nodelet rejects pods that do not fit (OutOfcpu, NodePorts, NodeAffinity), and SIGTERM
//! stops it cleanly; `minik8s agent` joins a `--disable-agent` server with the printed token,
//! and refuses a token whose CA hash does not match. Driven with `kubectl`.
//!
//! Every name that must be unique on the machine (node, cgroup parent, bridge, CNI network,
//! pod subnet) carries the test's PID; a guard kills what the test started and removes its
//! cgroups, bridge, mounts and state on every path.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod agent_support;

const KUBECTL: &str = "kubectl";

/// What one test started; dropped (also on panic) it stops the processes and removes every
/// trace: processes in the cgroup parent, cgroups, bridge, mounts under the state dir.
struct Cluster {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    cgroup_parent: String,
    bridge: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        agent_support::remove_cgroup_parent(&self.cgroup_parent);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        agent_support::unmount_under(self.dir.path());
    }
}

impl Cluster {
    fn new(tag: &str) -> Cluster {
        let n = std::process::id();
        // Short path: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix(&format!("mk8s-{tag}"))
            .tempdir_in("/tmp")
            .unwrap();
        Cluster {
            dir,
            children: Vec::new(),
            cgroup_parent: format!("minik8s-{tag}-{n}"),
            // Bridge names are at most 15 characters.
            bridge: format!("mk{}{:x}", &tag[..2], n % 0xfffff),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Starts `minik8s ARGS` with stderr in `<dir>/<log>`; returns its index.
    fn spawn(&mut self, args: &[String], log: &str) -> usize {
        let err = std::fs::File::create(self.path(log)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_minik8s"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("minik8s starts");
        self.children.push(child);
        self.children.len() - 1
    }

    fn log(&self, log: &str) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.path(log)) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Agent flags that keep this test's node apart from every other on the machine.
    fn node_flags(&self, tag: &str) -> Vec<String> {
        let n = std::process::id();
        vec![
            "--cgroup-parent".into(),
            self.cgroup_parent.clone(),
            "--cni-bridge".into(),
            self.bridge.clone(),
            "--cni-network".into(),
            format!("{tag}-{n}"),
            "--pod-cidr".into(),
            format!("10.91.{}.0/24", n % 250),
            "--status-update".into(),
            "2s".into(),
            "--lease-duration".into(),
            "8s".into(),
            // The service proxy programs the host's nftables and binds DNS on :10053; the
            // proxy has its own tests in network namespaces.
            "--disable-proxy".into(),
        ]
    }

    fn kubeconfig(&self) -> PathBuf {
        self.path("server/admin.kubeconfig")
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        let mut cmd = Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    fn apply(&self, yaml: &str) {
        let (ok, out) = self.kubectl(&["apply", "-f", "-"], Some(yaml));
        assert!(ok, "kubectl apply: {out}");
    }

    fn jsonpath(&self, what: &[&str], path: &str) -> String {
        let arg = format!("jsonpath={path}");
        let mut args = what.to_vec();
        args.extend(["-o", &arg]);
        self.kubectl(&args, None).1
    }

    /// Polls `f` until it returns Some, for at most `secs`; panics naming `what`.
    fn wait<T>(&self, secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not reached within {secs}s; server log:\n{}",
                self.log("server.log")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM to a child and its exit status within `secs`.
    fn terminate(&mut self, idx: usize, secs: u64) -> ExitStatus {
        agent_support::terminate(&mut self.children[idx], secs)
    }

    /// Starts `minik8s server` and waits for its join command; returns (child index, server
    /// URL, token).
    fn start_server(&mut self, extra: &[String]) -> (usize, String, String) {
        let mut args: Vec<String> = vec![
            "server".into(),
            "--data-dir".into(),
            self.path("server").display().to_string(),
            "--bind".into(),
            "127.0.0.1:0".into(),
            // Node podCIDRs (and so pod IPs on this test's bridge) apart from other tests'.
            "--cluster-cidr".into(),
            format!("10.{}.0.0/16", 150 + std::process::id() % 50),
        ];
        args.extend_from_slice(extra);
        let idx = self.spawn(&args, "server.log");
        let (url, token) = self.wait(60, "server prints the join command", || {
            let log = self.log("server.log");
            let line = log
                .lines()
                .find(|l| l.contains("minik8s agent --server "))?;
            let mut words = line.split_whitespace().skip_while(|w| *w != "--server");
            let url = words.nth(1)?.to_string();
            let token = words.nth(1)?.to_string();
            Some((url, token))
        });
        (idx, url, token)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

fn kubectl_present() -> bool {
    Command::new(KUBECTL)
        .arg("version")
        .arg("--client")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn pod_yaml(
    name: &str,
    node: Option<&str>,
    cpu: &str,
    host_port: Option<u16>,
    script: &str,
) -> String {
    let node = node.map_or(String::new(), |n| format!("  nodeName: {n}\n"));
    let ports = host_port.map_or(String::new(), |p| {
        format!("    ports: [{{containerPort: 8080, hostPort: {p}}}]\n")
    });
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default}}\nspec:\n{node}  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    \
         imagePullPolicy: IfNotPresent\n    command: [sh, -c, '{script}']\n    \
         resources: {{requests: {{cpu: '{cpu}'}}}}\n{ports}"
    )
}

#[test]
fn server_runs_pods_with_service_env_rejects_misfits_and_stops_on_sigterm() {
    if !kubectl_present() {
        eprintln!("SKIPPED: kubectl is not installed");
        return;
    }
    let mut c = Cluster::new("srv");
    let images = c.path("server/agent/images");
    std::fs::create_dir_all(&images).unwrap();
    let built = Command::new(env!("CARGO_BIN_EXE_minik8s"))
        .args(["images", "build-busybox"])
        .arg(images.join("busybox.tar"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(built.success(), "building the busybox image");
    let node = format!("srv-{}", std::process::id());
    let mut extra = vec![
        "--node-name".to_string(),
        node.clone(),
        "--nodelet-port".into(),
        free_port().to_string(),
    ];
    extra.extend(c.node_flags("srv"));
    let (server, url, token) = c.start_server(&extra);
    assert!(url.starts_with("https://127.0.0.1:"), "join URL {url}");
    assert!(
        token.starts_with("K10") && token.contains("::node:"),
        "token {token}"
    );
    let saved = std::fs::read_to_string(c.path("server/join-token")).unwrap();
    assert_eq!(saved.trim(), token, "the printed token is the saved one");

    c.wait(60, "the local node Ready", || {
        let s = c.jsonpath(
            &["get", "node", &node],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        );
        (s == "True").then_some(())
    });

    // A Service first, so the pod's container starts with its variables.
    c.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web-svc, namespace: default}\nspec:\n  \
         selector: {app: none}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n",
    );
    let cluster_ip = c.jsonpath(&["get", "service", "web-svc"], "{.spec.clusterIP}");
    assert!(cluster_ip.starts_with("10."), "ClusterIP {cluster_ip:?}");
    let host_port = 20000 + (std::process::id() % 20000) as u16;
    // Scheduled by the in-process scheduler (no nodeName).
    c.apply(&pod_yaml(
        "envpod",
        None,
        "100m",
        Some(host_port),
        "env; sleep 3600",
    ));
    c.wait(60, "envpod Running", || {
        (c.jsonpath(&["get", "pod", "envpod"], "{.status.phase}") == "Running").then_some(())
    });
    let uid = c.jsonpath(&["get", "pod", "envpod"], "{.metadata.uid}");
    let log = c.path(&format!(
        "server/agent/nodelet/logs/default_envpod_{uid}/c/0.log"
    ));
    let text = c.wait(20, "envpod's env in its log", || {
        let t = std::fs::read_to_string(&log).ok()?;
        t.contains("WEB_SVC_PORT_80_TCP_ADDR").then_some(t)
    });
    for want in [
        format!("WEB_SVC_SERVICE_HOST={cluster_ip}"),
        "WEB_SVC_SERVICE_PORT=80".into(),
        "WEB_SVC_SERVICE_PORT_HTTP=80".into(),
        format!("WEB_SVC_PORT=tcp://{cluster_ip}:80"),
        format!("WEB_SVC_PORT_80_TCP=tcp://{cluster_ip}:80"),
        "WEB_SVC_PORT_80_TCP_PROTO=tcp".into(),
        "WEB_SVC_PORT_80_TCP_PORT=80".into(),
        format!("WEB_SVC_PORT_80_TCP_ADDR={cluster_ip}"),
    ] {
        assert!(
            text.contains(&want),
            "{want} missing from the container's env:\n{text}"
        );
    }

    // Bound straight to the node (as the scheduler would not place them): the nodelet's
    // admission rejects them and starts nothing.
    c.apply(&pod_yaml("huge", Some(&node), "1000", None, "sleep 3600"));
    c.apply(&pod_yaml(
        "porty",
        Some(&node),
        "10m",
        Some(host_port),
        "sleep 3600",
    ));
    let mut picky = pod_yaml("picky", Some(&node), "10m", None, "sleep 3600");
    picky = picky.replace("spec:\n", "spec:\n  nodeSelector: {disk: nvme}\n");
    c.apply(&picky);
    for (pod, reason, message) in [
        (
            "huge",
            "OutOfcpu",
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 1000000, used: 100, capacity: ",
        ),
        ("porty", "NodePorts", "Pod was rejected: Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"),
        ("picky", "NodeAffinity", "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"),
    ] {
        let got = c.wait(30, &format!("{pod} rejected"), || {
            let s = c.jsonpath(&["get", "pod", pod], "{.status.phase}|{.status.reason}|{.status.message}");
            s.starts_with("Failed|").then_some(s)
        });
        assert!(
            got.starts_with(&format!("Failed|{reason}|{message}")),
            "{pod}: {got}"
        );
        let cs = c.jsonpath(&["get", "pod", pod], "{.status.containerStatuses}");
        assert!(cs.is_empty(), "{pod}: no container may start: {cs}");
        let uid = c.jsonpath(&["get", "pod", pod], "{.metadata.uid}");
        assert!(
            !c.path(&format!("server/agent/nodelet/logs/default_{pod}_{uid}")).exists(),
            "{pod}: no sandbox was made"
        );
    }
    let reasons = c.jsonpath(&["get", "events"], "{.items[*].reason}");
    for r in ["OutOfcpu", "NodePorts", "NodeAffinity"] {
        assert!(reasons.contains(r), "event {r} missing: {reasons}");
    }

    // Pods away first (their containers would survive the server, as with k3s), then SIGTERM.
    let (ok, out) = c.kubectl(
        &[
            "delete",
            "pod",
            "envpod",
            "huge",
            "porty",
            "picky",
            "--wait=true",
            "--timeout=60s",
        ],
        None,
    );
    assert!(ok, "delete pods: {out}");
    let status = c.terminate(server, 30);
    assert!(
        status.success(),
        "server exit status {status:?}; log:\n{}",
        c.log("server.log")
    );
    std::net::TcpListener::bind(("127.0.0.1", port_of(&url)))
        .expect("the API server's port is released after SIGTERM");
}

#[test]
fn agent_joins_with_the_token_and_a_wrong_ca_hash_is_refused() {
    if !kubectl_present() {
        eprintln!("SKIPPED: kubectl is not installed");
        return;
    }
    let mut c = Cluster::new("join");
    let (server, url, token) = c.start_server(&["--disable-agent".to_string()]);
    let secret = token.rsplit(':').next().unwrap().to_string();

    // A token pinning another CA: refused, exit 1, nothing written.
    let bad_dir = c.path("bad-agent");
    let bad_token = format!("K10{}::node:{secret}", "0".repeat(64));
    let args = vec![
        "agent".to_string(),
        "--server".into(),
        url.clone(),
        "--token".into(),
        bad_token,
        "--data-dir".into(),
        bad_dir.display().to_string(),
        "--node-name".into(),
        "never-joins".into(),
    ];
    let bad = c.spawn(&args, "bad-agent.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = c.children[bad].try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the agent with a wrong CA hash never exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1), "exit status of a refused join");
    let log = c.log("bad-agent.log");
    assert!(
        log.contains("but the join token pins 0000") && log.contains("refusing to join"),
        "a clear error: {log}"
    );
    assert!(!bad_dir.exists(), "a refused agent writes nothing");

    // The printed token joins: the node registers and turns Ready.
    let node = format!("joined-{}", std::process::id());
    let mut args = vec![
        "agent".to_string(),
        "--server".into(),
        url.clone(),
        "--token".into(),
        token.clone(),
        "--data-dir".into(),
        c.path("agent").display().to_string(),
        "--node-name".into(),
        node.clone(),
        "--port".into(),
        free_port().to_string(),
    ];
    args.extend(c.node_flags("join"));
    let agent = c.spawn(&args, "agent.log");
    c.wait(60, "the joined node Ready", || {
        let s = c.jsonpath(
            &["get", "node", &node],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        );
        (s == "True").then_some(())
    });
    let kc = std::fs::read_to_string(c.path("agent/kubeconfig")).unwrap();
    assert!(
        kc.contains(&url) && kc.contains(&secret),
        "agent kubeconfig: {kc}"
    );

    let status = c.terminate(agent, 30);
    assert!(
        status.success(),
        "agent exit status {status:?}: {}",
        c.log("agent.log")
    );
    let status = c.terminate(server, 30);
    assert!(status.success(), "server exit status {status:?}");
    std::net::TcpListener::bind(("127.0.0.1", port_of(&url)))
        .expect("the API server's port is released after SIGTERM");
}
