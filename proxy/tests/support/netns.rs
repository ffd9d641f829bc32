//! Test-made networks: a "node" network namespace with a bridge (the pod network 10.244.<n>.0/24,
//! gateway .1) and a dummy uplink holding the node IP; "pods" are namespaces joined to the bridge
//! by veth pairs, serving HTTP with busybox httpd. Everything is removed on drop (processes
//! killed, namespaces deleted), on every path.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace that is deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("mk8sproxy-{}-{n}-{tag}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n <ns> <args>`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["ip", "-n", &self.name];
        all.extend_from_slice(args);
        sh(&all);
    }

    /// Runs a command inside the namespace and returns its output.
    pub fn exec(&self, cmd: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()
            .expect("running ip netns exec")
    }

    /// Starts a long-running command inside the namespace, killed on drop of the guard.
    pub fn spawn(&self, cmd: &[&str]) -> ChildGuard {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning in netns");
        ChildGuard(child)
    }

    /// Runs `f` on a thread inside the namespace (sockets it makes belong to the namespace).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        NetnsThread(self.path()).run(f)
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        let out = self.exec(&["sysctl", "-qw", &format!("{key}={value}")]);
        assert!(out.status.success(), "sysctl {key}: {out:?}");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A namespace known by path (its owner keeps it alive), for running closures inside it from
/// `spawn_blocking`.
pub struct NetnsThread(pub PathBuf);

impl NetnsThread {
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = std::fs::File::open(&self.0).expect("opening netns");
        std::thread::spawn(move || {
            // SAFETY: setns(2) on an fd we own; affects only this thread.
            assert_eq!(
                unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            f()
        })
        .join()
        .expect("netns thread panicked")
    }
}

/// Kills (and reaps) the child on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn sh(cmd: &[&str]) {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .expect("running a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One pod: its namespace, IP and web server.
pub struct Pod {
    pub name: String,
    pub ip: Ipv4Addr,
    // Field order: the server dies before its namespace goes.
    _httpd: Option<ChildGuard>,
    _dir: tempfile::TempDir,
    pub ns: Netns,
}

/// A node namespace with pods on its bridge.
pub struct Node {
    pub pods: Vec<Pod>,
    pub node_ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub ns: Netns,
}

pub const HTTP_PORT: u16 = 8080;

impl Node {
    /// A node with `pods` pods at 10.244.`subnet`.2.. serving HTTP on 8080 (body: the pod name).
    pub fn new(subnet: u8, pods: usize) -> Node {
        let ns = Netns::new("node");
        ns.sysctl("net.ipv4.ip_forward", "1");
        // Pod → Service → pod on the same bridge needs bridged replies to see conntrack, as
        // kube-proxy requires (br_netfilter; per-namespace since Linux 5.3).
        ns.sysctl("net.bridge.bridge-nf-call-iptables", "1");
        let gateway = Ipv4Addr::new(10, 244, subnet, 1);
        ns.ip(&["link", "add", "br0", "type", "bridge"]);
        ns.ip(&["addr", "add", &format!("{gateway}/24"), "dev", "br0"]);
        ns.ip(&["link", "set", "br0", "up"]);
        let node_ip = Ipv4Addr::new(172, 31, subnet, 1);
        // (A veth pair with both ends here: this kernel has no dummy driver.)
        ns.ip(&[
            "link", "add", "ext0", "type", "veth", "peer", "name", "ext1",
        ]);
        ns.ip(&["addr", "add", &format!("{node_ip}/24"), "dev", "ext0"]);
        ns.ip(&["link", "set", "ext0", "up"]);
        ns.ip(&["link", "set", "ext1", "up"]);
        // The node's uplink: Service IPs are routed like any off-node address until DNAT.
        ns.ip(&["route", "add", "default", "dev", "ext0"]);
        let mut node = Node {
            pods: Vec::new(),
            node_ip,
            gateway,
            ns,
        };
        for i in 0..pods {
            node.add_pod(i);
        }
        for pod in &node.pods {
            let addr = SocketAddr::from((pod.ip, HTTP_PORT));
            let deadline = Instant::now() + Duration::from_secs(10);
            while node.ns.run(move || http_get(addr)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "pod {} httpd did not start",
                    pod.name
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        node
    }

    fn add_pod(&mut self, i: usize) {
        let ns = Netns::new(&format!("p{i}"));
        let name = format!("pod-{i}");
        let ip = Ipv4Addr::new(10, 244, self.gateway.octets()[2], 2 + i as u8);
        let host_if = format!("v{i}");
        self.ns.ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ]);
        self.ns
            .ip(&["link", "set", &host_if, "master", "br0", "up"]);
        // As the CNI bridge plugin's hairpinMode does: a pod reaching itself through its Service
        // leaves and re-enters the bridge on the same port.
        self.ns.ip(&[
            "link",
            "set",
            &host_if,
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ]);
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns.ip(&["route", "add", "default", "via", &self.gateway.to_string()]);
        let dir = tempfile::tempdir().expect("httpd dir");
        std::fs::write(dir.path().join("index.html"), &name).expect("index.html");
        let root = dir.path().to_str().unwrap().to_string();
        let httpd = ns.spawn(&[
            "busybox",
            "httpd",
            "-f",
            "-p",
            &HTTP_PORT.to_string(),
            "-h",
            &root,
        ]);
        self.pods.push(Pod {
            name,
            ip,
            _httpd: Some(httpd),
            _dir: dir,
            ns,
        });
    }
}

/// GET / over HTTP/1.0; returns the body.
pub fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    match buf.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") =>
        {
            Ok(body.trim().to_string())
        }
        _ => Err(std::io::Error::other(format!("bad response: {buf:?}"))),
    }
}

/// A UDP server inside a namespace answering every datagram with `reply`; stopped on drop.
pub struct UdpEcho {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UdpEcho {
    pub fn start(ns: &Netns, port: u16, reply: &str) -> UdpEcho {
        let file = std::fs::File::open(ns.path()).expect("opening netns");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (flag, reply) = (stop.clone(), reply.to_string());
        let thread = std::thread::spawn(move || {
            // SAFETY: setns(2) on an fd we own; affects only this thread.
            assert_eq!(
                unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            let sock = std::net::UdpSocket::bind(("0.0.0.0", port)).expect("udp bind");
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((_, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(reply.as_bytes(), from);
                }
            }
        });
        ready_rx.recv().expect("udp echo started");
        UdpEcho {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One datagram to `addr` from a fresh socket (a fresh source port: a new conntrack entry);
/// returns the reply.
pub fn udp_ask(addr: SocketAddr) -> std::io::Result<String> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    sock.set_read_timeout(Some(Duration::from_secs(1)))?;
    sock.send_to(b"who", addr)?;
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}
