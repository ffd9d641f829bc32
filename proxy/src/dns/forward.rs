//! Names outside the cluster zone go to upstream resolvers, as CoreDNS' `forward .
//! /etc/resolv.conf` does in a Kubernetes cluster: pods resolve `example.com` through the
//! cluster DNS like any other name.
//!
//! The query is relayed as the client sent it (same id, flags, EDNS), over UDP to each
//! upstream in turn until one answers; a truncated UDP answer is asked again over TCP, so
//! large answers arrive whole. The sockets are the proxy's own, in its network namespace
//! (the node's host side), not the node namespace the listener is bound in.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one upstream gets before the next is asked (CoreDNS' forward waits 2 s per try).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The upstream resolvers; none means nothing is forwarded.
#[derive(Debug, Clone, Default)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
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
        Forwarder { upstreams }
    }

    pub fn is_enabled(&self) -> bool {
        !self.upstreams.is_empty()
    }

    /// The first upstream's answer to `query` (a whole DNS message whose id is `id`), or
    /// None when no upstream answered in time.
    pub async fn forward(&self, query: &[u8], id: u16) -> Option<Message> {
        for upstream in &self.upstreams {
            let attempt = tokio::time::timeout(UPSTREAM_TIMEOUT, ask(*upstream, query, id)).await;
            match attempt {
                Ok(Ok(answer)) => return Some(answer),
                Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "DNS upstream failed"),
                Err(_) => tracing::debug!(%upstream, "DNS upstream timed out"),
            }
        }
        None
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
}
