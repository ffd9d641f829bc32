//! The service proxy embedded in `minik8s agent` (k3s embeds kube-proxy the same way), with
//! the real binary: it writes its nftables table `ip minik8s-<node>` once it has synced, and
//! removes it when the agent is stopped with SIGTERM (issue #9: "removes its table on clean
//! shutdown"). Server and agent run inside a network namespace the test makes, so the
//! table, the DNS listener and every address stay in there; the host's ruleset is never
//! touched. A guard kills what the test started and removes the namespace, cgroups and
//! mounts on every path.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod agent_support;

const BIN: &str = env!("CARGO_BIN_EXE_minik8s");

/// What the test started: dropped (also on panic) it kills the processes, then removes their
/// cgroup parent, mounts under the state dir and the network namespace.
struct Netns {
    name: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
    cgroup_parent: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        agent_support::remove_cgroup_parent(&self.cgroup_parent);
        agent_support::unmount_under(self.dir.path());
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

impl Netns {
    fn new() -> Netns {
        let pid = std::process::id();
        let name = format!("mk8s-agentproxy-{pid}");
        let ns = Netns {
            name: name.clone(),
            // Short path: unix socket paths are limited to 108 bytes.
            dir: tempfile::Builder::new()
                .prefix("mk8s-ap")
                .tempdir_in("/tmp")
                .unwrap(),
            children: Vec::new(),
            cgroup_parent: format!("minik8s-agentproxy-{pid}"),
        };
        run(&["ip", "netns", "add", &name]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        // The node's InternalIP, on a veth pair with both ends in this namespace.
        ns.exec(&[
            "ip", "link", "add", "node0", "type", "veth", "peer", "name", "node0p",
        ]);
        ns.exec(&["ip", "link", "set", "node0p", "up"]);
        ns.exec(&["ip", "addr", "add", NODE_IP_CIDR, "dev", "node0"]);
        ns.exec(&["ip", "link", "set", "node0", "up"]);
        ns
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs a command inside the namespace; its output, or an error with its stderr.
    fn try_exec(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn exec(&self, args: &[&str]) -> String {
        self.try_exec(args)
            .unwrap_or_else(|e| panic!("{args:?} in {}: {e}", self.name))
    }

    /// Starts `minik8s ARGS` inside the namespace (setns before exec, so the PID is the
    /// process itself), stderr in `<dir>/<log>`; returns its index.
    fn spawn(&mut self, args: &[String], log: &str) -> usize {
        let ns = File::open(format!("/run/netns/{}", self.name)).expect("open the netns");
        let err = File::create(self.path(log)).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(err);
        let fd = ns.as_raw_fd();
        // SAFETY: only setns(2), async-signal-safe, between fork and exec; `ns` outlives spawn.
        unsafe {
            cmd.pre_exec(move || {
                if nix::libc::setns(fd, nix::libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.children.push(cmd.spawn().expect("minik8s starts"));
        drop(ns);
        self.children.len() - 1
    }

    fn log(&self, log: &str) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(self.path(log)) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// SIGTERM to a child and its exit status within `secs`.
    fn terminate(&mut self, idx: usize, secs: u64) -> ExitStatus {
        agent_support::terminate(&mut self.children[idx], secs)
    }
}

const NODE_IP: &str = "10.93.0.2";
const NODE_IP_CIDR: &str = "10.93.0.2/24";

fn run(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?} failed");
}

/// Polls `f` until Some, for at most `secs`; panics naming `what` (with `log()`).
fn wait<T>(secs: u64, what: &str, log: impl Fn() -> String, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {secs}s; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `minik8s server --disable-agent` in the namespace; (child index, URL, join token).
fn start_server(ns: &mut Netns) -> (usize, String, String) {
    let args: Vec<String> = vec![
        "server".into(),
        "--data-dir".into(),
        ns.path("server").display().to_string(),
        "--bind".into(),
        "127.0.0.1:0".into(),
        "--disable-agent".into(),
    ];
    let idx = ns.spawn(&args, "server.log");
    let (url, token) = wait(
        60,
        "the server prints the join command",
        || ns.log("server.log"),
        || {
            let log = ns.log("server.log");
            let line = log
                .lines()
                .find(|l| l.contains("minik8s agent --server "))?;
            let mut words = line.split_whitespace().skip_while(|w| *w != "--server");
            Some((words.nth(1)?.to_string(), words.nth(1)?.to_string()))
        },
    );
    (idx, url, token)
}

#[test]
fn agent_embedded_proxy_removes_its_table_on_sigterm() {
    let mut ns = Netns::new();
    let (server, url, token) = start_server(&mut ns);
    let node = format!("agentproxy-{}", std::process::id());
    let table = format!("minik8s-{node}");
    let args: Vec<String> = [
        "agent",
        "--server",
        &url,
        "--token",
        &token,
        "--data-dir",
        &ns.path("agent").display().to_string(),
        "--node-name",
        &node,
        "--node-ip",
        NODE_IP,
        "--cgroup-parent",
        &ns.cgroup_parent,
        "--lease-duration",
        "8s",
        // Tests send nothing beyond the machine: no outside names are forwarded.
        "--resolv-conf",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let agent = ns.spawn(&args, "agent.log");

    // The embedded proxy programs its table in the agent's namespace once it has synced the
    // Services (the API server's own `kubernetes` Service among them).
    let rules = wait(
        90,
        "the agent's proxy writes its table",
        || ns.log("agent.log"),
        || ns.try_exec(&["nft", "list", "table", "ip", &table]).ok(),
    );
    assert!(
        rules.contains("chain services"),
        "the proxy's table:\n{rules}"
    );
    let host = Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .unwrap();
    assert!(
        !host.status.success(),
        "the table must exist only in the agent's namespace, not the host's"
    );

    let status = ns.terminate(agent, 30);
    assert!(
        status.success(),
        "agent exit status {status:?}:\n{}",
        ns.log("agent.log")
    );
    let tables = ns.exec(&["nft", "list", "tables"]);
    assert!(
        !tables.contains(&table),
        "the table is left after SIGTERM: {tables}\n{}",
        ns.log("agent.log")
    );
    let status = ns.terminate(server, 30);
    assert!(status.success(), "server exit status {status:?}");
}
