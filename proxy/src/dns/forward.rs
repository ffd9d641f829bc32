//! Names outside the cluster zone go to upstream resolvers, as CoreDNS' `forward .
//! /etc/resolv.conf` does in a Kubernetes cluster: pods resolve `example.com` through the
//! cluster DNS like any other name.
//!
//! The query is relayed as the client sent it (same id, flags, EDNS), over UDP to each
//! upstream in turn until one answers; a truncated UDP answer is asked again over TCP, so
//! large answers arrive whole. An upstream that failed is asked last for a while (CoreDNS
//! marks a failing upstream down until its health check passes), so one dead resolver does
//! not cost every query its timeout. The sockets are the proxy's own, in its network namespace
//! (the node's host side), not the node namespace the listener is bound in.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one upstream gets before the next is asked (CoreDNS' forward waits 2 s per try).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an upstream that failed is asked only after the others.
const DOWN_FOR: Duration = Duration::from_secs(30);

/// The upstream resolvers; none means nothing is forwarded.
#[derive(Debug, Clone, Default)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    /// When each upstream that failed last failed (shared by the clones).
    failed: Arc<Mutex<HashMap<SocketAddr, Instant>>>,
}

/// The `nameserver` lines of a resolv.conf, as addresses on port 53.
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// An upstream written `IP` or `IP:PORT` (`[v6]:PORT` for IPv6 with a port).
pub fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("invalid DNS upstream {s:?}: expected IP or IP:PORT"))
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>) -> Forwarder {
        Forwarder {
            upstreams,
            failed: Arc::default(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.upstreams.is_empty()
    }

    /// The first upstream's answer to `query` (a whole DNS message whose id is `id`), or
    /// None when no upstream answered in time.
    pub async fn forward(&self, query: &[u8], id: u16) -> Option<Message> {
        for upstream in self.in_order() {
            let attempt = tokio::time::timeout(UPSTREAM_TIMEOUT, ask(upstream, query, id)).await;
            let failed = &mut *self.failed.lock().expect("dns upstream lock");
            match attempt {
                Ok(Ok(answer)) => {
                    failed.remove(&upstream);
                    return Some(answer);
                }
                Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "DNS upstream failed"),
                Err(_) => tracing::debug!(%upstream, "DNS upstream timed out"),
            }
            failed.insert(upstream, Instant::now());
        }
        None
    }

    /// The upstreams in their order, those that failed in the last [`DOWN_FOR`] after the
    /// others (still asked: they may be all there is).
    fn in_order(&self) -> Vec<SocketAddr> {
        let failed = self.failed.lock().expect("dns upstream lock");
        let down = |u: &SocketAddr| failed.get(u).is_some_and(|t| t.elapsed() < DOWN_FOR);
        let (mut order, last): (Vec<_>, Vec<_>) = self.upstreams.iter().partition(|u| !down(u));
        order.extend(last);
        order
    }
}

async fn ask(upstream: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Message> {
    let answer = ask_udp(upstream, query, id).await?;
    if answer.metadata.truncation {
        return ask_tcp(upstream, query).await;
    }
    Ok(answer)
}

fn bad_answer(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

async fn ask_udp(upstream: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Message> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = tokio::net::UdpSocket::bind(local).await?;
    sock.connect(upstream).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = sock.recv(&mut buf).await?;
        // A stray datagram (a late answer to someone else) is not ours: keep waiting.
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == id => return Ok(m),
            _ => continue,
        }
    }
}

async fn ask_tcp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Message> {
    let mut s = tokio::net::TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len()).map_err(bad_answer)?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(query).await?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await?;
    Message::from_vec(&buf).map_err(bad_answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_and_upstreams() {
        let conf = "# generated\nsearch example.org\nnameserver 10.255.255.53\nnameserver  ::1 \noptions ndots:2\nnameserver bogus\n";
        assert_eq!(
            nameservers(conf),
            [
                "10.255.255.53:53".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(
            parse_upstream("1.2.3.4").unwrap(),
            "1.2.3.4:53".parse().unwrap()
        );
        assert_eq!(
            parse_upstream("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_upstream("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
        assert!(parse_upstream("dns.example").is_err());
    }

    /// A UDP resolver on loopback that answers every query with an empty NOERROR answer of
    /// the same id; `silent` ones only count what they receive.
    async fn upstream(silent: bool) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if silent {
                    continue;
                }
                let query = Message::from_vec(&buf[..n]).unwrap();
                let mut answer = Message::new(
                    query.metadata.id,
                    hickory_proto::op::MessageType::Response,
                    hickory_proto::op::OpCode::Query,
                );
                answer.add_queries(query.queries.clone());
                let _ = sock.send_to(&answer.to_vec().unwrap(), from).await;
            }
        });
        (addr, seen)
    }

    fn query(id: u16) -> Vec<u8> {
        let mut q = Message::query();
        q.metadata.id = id;
        q.add_query(hickory_proto::op::Query::query(
            "example.com.".parse().unwrap(),
            hickory_proto::rr::RecordType::A,
        ));
        q.to_vec().unwrap()
    }

    #[tokio::test]
    async fn a_silent_upstream_is_asked_after_the_others_once_it_failed() {
        let (dead, dead_seen) = upstream(true).await;
        let (live, live_seen) = upstream(false).await;
        let f = Forwarder::new(vec![dead, live]);
        let answer = f
            .forward(&query(7), 7)
            .await
            .expect("the second upstream answers");
        assert_eq!(answer.metadata.id, 7);
        let answer = f.forward(&query(8), 8).await.expect("answered again");
        assert_eq!(answer.metadata.id, 8);
        let seen =
            |c: &Arc<std::sync::atomic::AtomicUsize>| c.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            seen(&dead_seen),
            1,
            "the dead upstream was not asked again first"
        );
        assert_eq!(seen(&live_seen), 2);
    }
}
