//! Cluster DNS: a `hickory-server` [`Server`] on one address (UDP and TCP) answering from the
//! proxy's latest [`Snapshot`] (see [`records`] for what is answered).
//!
//! How pods reach it: pods' resolv.conf names the cluster DNS Service IP (the nodelet's
//! `--cluster-dns`, 10.96.0.10 by default, the IP kubeadm gives kube-dns). The proxy's nftables
//! `services` chain redirects that IP's port 53 (UDP and TCP) to this listener's port on the
//! node (`redirect to :<port>`: the address of the interface the packet came in on — the pod
//! bridge's gateway — or 127.0.0.1 for the node's own processes). So every node answers its
//! pods locally, no Service object or DNS pod is needed, and the listener binds 0.0.0.0:<port>.
//!
//! Names outside the zone are relayed to upstream resolvers ([`forward`]; the host's
//! resolv.conf by default), or refused when there are none.

pub mod forward;
pub mod records;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::model::Snapshot;
use forward::Forwarder;
use records::{Answer, Kind, TTL};

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("binding the cluster DNS listener {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
}

/// Answers queries from the latest snapshot.
pub struct Handler {
    zone: String,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    forwarder: Forwarder,
}

/// A response's sections besides the question.
#[derive(Default)]
struct Sections {
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl Handler {
    /// A handler that forwards nothing (see [`Handler::forwarding_to`]).
    pub fn new(zone: &str, snapshot: watch::Receiver<Arc<Snapshot>>) -> Handler {
        Handler {
            zone: zone.trim_end_matches('.').to_ascii_lowercase(),
            snapshot,
            forwarder: Forwarder::default(),
        }
    }

    /// Names outside the zone go to `forwarder`'s upstreams.
    pub fn forwarding_to(mut self, forwarder: Forwarder) -> Handler {
        self.forwarder = forwarder;
        self
    }

    /// The upstream's answer to a query outside the zone, relayed whole; SERVFAIL when no
    /// upstream answered.
    async fn relay(&self, request: &Request, metadata: &mut Metadata) -> Sections {
        let forwarded = self
            .forwarder
            .forward(request.as_slice(), request.metadata.id);
        let Some(m) = forwarded.await else {
            metadata.response_code = ResponseCode::ServFail;
            return Sections::default();
        };
        metadata.response_code = m.metadata.response_code;
        metadata.recursion_available = m.metadata.recursion_available;
        metadata.authentic_data = m.metadata.authentic_data;
        Sections {
            answers: m.answers,
            authorities: m.authorities,
            additionals: m.additionals,
        }
    }

    /// The answer records and response code for one query.
    fn lookup(&self, name: &Name, qtype: RecordType) -> (Vec<Record>, ResponseCode) {
        let kind = match qtype {
            RecordType::A => Kind::A,
            RecordType::SRV => Kind::Srv,
            _ => Kind::Other,
        };
        let snapshot = self.snapshot.borrow().clone();
        match records::answer(&snapshot, &self.zone, &name.to_ascii(), kind) {
            Answer::A(ips) => (
                ips.into_iter()
                    .map(|ip| Record::from_rdata(name.clone(), TTL, RData::A(A(ip))))
                    .collect(),
                ResponseCode::NoError,
            ),
            Answer::Srv(targets) => (
                targets
                    .into_iter()
                    .filter_map(|(port, target)| {
                        let target = Name::from_ascii(&target).ok()?;
                        let srv = SRV::new(0, 100, port, target);
                        Some(Record::from_rdata(name.clone(), TTL, RData::SRV(srv)))
                    })
                    .collect(),
                ResponseCode::NoError,
            ),
            Answer::NoData => (Vec::new(), ResponseCode::NoError),
            Answer::NxDomain => (Vec::new(), ResponseCode::NXDomain),
            Answer::Refused => (Vec::new(), ResponseCode::Refused),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let (answers, code) = match request.request_info() {
            Ok(info)
                if request.metadata.op_code == OpCode::Query
                    && request.metadata.message_type == MessageType::Query =>
            {
                metadata.authoritative = true;
                let name: Name = info.query.name().clone().into();
                self.lookup(&name, info.query.query_type())
            }
            Ok(_) => (Vec::new(), ResponseCode::NotImp),
            Err(_) => (Vec::new(), ResponseCode::FormErr),
        };
        metadata.response_code = code;
        let sections = if code == ResponseCode::Refused && self.forwarder.is_enabled() {
            metadata.authoritative = false;
            self.relay(request, &mut metadata).await
        } else {
            Sections {
                answers,
                ..Sections::default()
            }
        };
        let response = MessageResponseBuilder::from_message_request(request).build(
            metadata,
            sections.answers.iter(),
            sections.authorities.iter(),
            [],
            sections.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "sending a DNS response failed");
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// A bound DNS server; [`DnsServer::serve`] runs it until shutdown.
pub struct DnsServer {
    server: Server<Handler>,
    addr: SocketAddr,
}

fn bind_std(addr: SocketAddr) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let udp = std::net::UdpSocket::bind(addr)?;
    let tcp = std::net::TcpListener::bind(udp.local_addr()?)?;
    udp.set_nonblocking(true)?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

/// How long a TCP client may stay idle before its connection is closed.
const TCP_IDLE: Duration = Duration::from_secs(5);

impl DnsServer {
    /// Binds UDP and TCP on `addr` (port 0 picks one; TCP then takes the UDP socket's port),
    /// inside the network namespace at `netns` when given.
    pub async fn bind(
        addr: SocketAddr,
        netns: Option<&Path>,
        handler: Handler,
    ) -> Result<DnsServer, DnsError> {
        let bind_err = |source| DnsError::Bind { addr, source };
        let (udp, tcp) = match netns {
            Some(path) => crate::netns::run_in(path, move || bind_std(addr))?,
            None => bind_std(addr),
        }
        .map_err(bind_err)?;
        let udp = tokio::net::UdpSocket::from_std(udp).map_err(bind_err)?;
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(bind_err)?;
        let bound = udp.local_addr().map_err(bind_err)?;
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, 64 * 1024);
        Ok(DnsServer {
            server,
            addr: bound,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn serve(mut self, shutdown: CancellationToken) {
        tokio::select! {
            r = self.server.block_until_done() => {
                if let Err(e) = r {
                    tracing::warn!(addr = %self.addr, error = %e, "cluster DNS stopped");
                }
            }
            _ = shutdown.cancelled() => {
                let _ = self.server.shutdown_gracefully().await;
            }
        }
    }
}
