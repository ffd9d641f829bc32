//! Cluster DNS against a real API server: the proxy runs for a test-made (empty) node network
//! namespace, its DNS listening on 127.0.0.1 there; queries are real DNS messages over UDP and
//! TCP sent from inside that namespace.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use serde_json::json;
use support::cluster::{within, Apiserver};
use support::netns::Netns;
use tokio_util::sync::CancellationToken;

/// What a query returned: the code, A addresses and SRV (port, target) pairs.
#[derive(Debug, Default)]
struct Reply {
    code: Option<ResponseCode>,
    a: Vec<Ipv4Addr>,
    srv: Vec<(u16, String)>,
}

fn encode(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m.metadata.recursion_desired = true;
    m.to_vec().unwrap()
}

fn decode(bytes: &[u8]) -> Reply {
    let m = Message::from_vec(bytes).expect("a DNS message");
    let mut r = Reply {
        code: Some(m.metadata.response_code),
        ..Default::default()
    };
    for rec in &m.answers {
        match &rec.data {
            RData::A(a) => r.a.push(a.0),
            RData::SRV(s) => r.srv.push((s.port, s.target.to_ascii())),
            _ => {}
        }
    }
    r.a.sort();
    r.srv.sort();
    r
}

/// How long a query waits for its answer: glibc's resolver default, longer than one silent
/// upstream's turn (2 s) before the forwarder asks the next.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

fn ask_udp(server: SocketAddr, name: &str, rtype: RecordType) -> Reply {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    sock.send_to(&encode(name, rtype), server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("a UDP answer");
    decode(&buf[..n])
}

fn ask_tcp(server: SocketAddr, name: &str, rtype: RecordType) -> Reply {
    let mut s = std::net::TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    let msg = encode(name, rtype);
    s.write_all(&(msg.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&msg).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    decode(&buf)
}

/// Asks `server` from inside the network namespace at `path`, over TCP or UDP.
fn ask_in(
    path: std::path::PathBuf,
    server: SocketAddr,
    name: &'static str,
    rtype: RecordType,
    tcp: bool,
) -> tokio::task::JoinHandle<Reply> {
    tokio::task::spawn_blocking(move || {
        let ns = support::netns::NetnsThread(path);
        ns.run(move || {
            if tcp {
                ask_tcp(server, name, rtype)
            } else {
                ask_udp(server, name, rtype)
            }
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_a_srv_headless_and_refuses_other_zones() {
    within(
        "cluster DNS scenario (a hang means DNS never saw the Services)",
        60,
        async {
            let api = Apiserver::start().await;
            let services: Api<Service> = Api::namespaced(api.client.clone(), "default");
            let web: Service = serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"ports": [{"name": "http", "port": 80}]}
            }))
            .unwrap();
            let web = services.create(&PostParams::default(), &web).await.unwrap();
            let web_ip: Ipv4Addr = web.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
            let db: Service = serde_json::from_value(json!({
                "metadata": {"name": "db"},
                "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}
            }))
            .unwrap();
            services.create(&PostParams::default(), &db).await.unwrap();
            let slices: Api<EndpointSlice> = Api::namespaced(api.client.clone(), "default");
            let slice: EndpointSlice = serde_json::from_value(json!({
                "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
                "addressType": "IPv4",
                "endpoints": [
                    {"addresses": ["10.244.1.7"], "conditions": {"ready": true}},
                    {"addresses": ["10.244.2.8"]},
                    {"addresses": ["10.244.2.9"], "conditions": {"ready": false}}
                ],
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]
            }))
            .unwrap();
            slices.create(&PostParams::default(), &slice).await.unwrap();

            let ns = Netns::new("dns");
            let mut config = minik8s_proxy::Config::new(api.kubeconfig.clone(), &ns.name);
            config.netns = Some(ns.path());
            config.dns_bind = Some("127.0.0.1:0".parse().unwrap());
            let shutdown = CancellationToken::new();
            let running = minik8s_proxy::start(api.client.clone(), config, shutdown.clone())
                .await
                .expect("proxy starts");
            let server = running.dns_addr.expect("DNS enabled");
            let path = ns.path();
            let ask = move |name: &'static str, rtype: RecordType, tcp: bool| {
                ask_in(path.clone(), server, name, rtype, tcp)
            };

            let deadline = Instant::now() + Duration::from_secs(10);
            let web_name = "web.default.svc.cluster.local.";
            while ask(web_name, RecordType::A, false).await.unwrap().a != [web_ip] {
                assert!(Instant::now() < deadline, "web never resolved");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let r = ask(web_name, RecordType::A, true).await.unwrap();
            assert_eq!(r.a, [web_ip], "over TCP too");
            let r = ask("db.default.svc.cluster.local.", RecordType::A, false)
                .await
                .unwrap();
            assert_eq!(
                r.a,
                [
                    "10.244.1.7".parse::<Ipv4Addr>().unwrap(),
                    "10.244.2.8".parse().unwrap()
                ],
                "headless: ready pod IPs"
            );
            let r = ask(
                "_pg._tcp.db.default.svc.cluster.local.",
                RecordType::SRV,
                false,
            )
            .await
            .unwrap();
            assert_eq!(
                r.srv,
                [
                    (5432, "10-244-1-7.db.default.svc.cluster.local.".to_string()),
                    (5432, "10-244-2-8.db.default.svc.cluster.local.".to_string())
                ]
            );
            let r = ask(
                "_http._tcp.web.default.svc.cluster.local.",
                RecordType::SRV,
                false,
            )
            .await
            .unwrap();
            assert_eq!(r.srv, [(80, web_name.to_string())]);
            let r = ask(web_name, RecordType::AAAA, false).await.unwrap();
            assert_eq!(
                (r.code, r.a.len()),
                (Some(ResponseCode::NoError), 0),
                "no AAAA, but the name exists"
            );
            let r = ask("nope.default.svc.cluster.local.", RecordType::A, false)
                .await
                .unwrap();
            assert_eq!(r.code, Some(ResponseCode::NXDomain));
            let r = ask("example.com.", RecordType::A, false).await.unwrap();
            assert_eq!(
                r.code,
                Some(ResponseCode::Refused),
                "nothing outside the zone is forwarded"
            );

            // A deleted Service stops resolving within a second.
            services
                .delete("web", &DeleteParams::default())
                .await
                .unwrap();
            let gone = Instant::now();
            while ask(web_name, RecordType::A, false).await.unwrap().code
                != Some(ResponseCode::NXDomain)
            {
                assert!(
                    gone.elapsed() < Duration::from_secs(1),
                    "deleted Service still resolves"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            shutdown.cancel();
            running.task.await.unwrap().expect("proxy stops cleanly");
        },
    )
    .await;
}

/// A real DNS server on loopback standing in for the host's resolver: `example.com` has one
/// A record, `big.example.com` 60 (too many for a 512-byte UDP answer: over UDP it answers
/// truncated and empty, over TCP whole), names under cluster.local one, anything else is
/// NXDOMAIN. Counts the TCP queries.
struct Upstream {
    addr: SocketAddr,
    tcp_queries: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn upstream_answer(query: &[u8], over_tcp: bool) -> Vec<u8> {
    let q = Message::from_vec(query).expect("a query");
    let mut m = Message::response(q.metadata.id, q.metadata.op_code);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.add_queries(q.queries.clone());
    let name = q.queries[0].name().clone();
    let a = |i: u8| {
        hickory_proto::rr::Record::from_rdata(
            name.clone(),
            60,
            RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(192, 0, 2, i))),
        )
    };
    match name.to_ascii().as_str() {
        "example.com." => {
            m.add_answer(a(1));
        }
        "big.example.com." if over_tcp => {
            m.add_answers((1..=60).map(a));
        }
        "big.example.com." => m.metadata.truncation = true,
        // Were the cluster's names forwarded, they would get this answer.
        n if n.ends_with(".cluster.local.") => {
            m.add_answer(a(99));
        }
        _ => m.metadata.response_code = ResponseCode::NXDomain,
    }
    m.to_vec().unwrap()
}

impl Upstream {
    async fn start() -> Upstream {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
        let tcp_queries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                let _ = udp.send_to(&upstream_answer(&buf[..n], false), from).await;
            }
        });
        let count = tcp_queries.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = tcp.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).await.is_err() {
                    continue;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if s.read_exact(&mut q).await.is_err() {
                    continue;
                }
                let answer = upstream_answer(&q, true);
                let _ = s.write_all(&(answer.len() as u16).to_be_bytes()).await;
                let _ = s.write_all(&answer).await;
            }
        });
        Upstream { addr, tcp_queries }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_forwards_names_outside_the_zone_to_the_first_upstream_that_answers() {
    within(
        "DNS forwarding scenario (a hang means an answer never came back)",
        60,
        async {
            let api = Apiserver::start().await;
            let upstream = Upstream::start().await;
            // The first upstream never answers (a bound socket nobody reads): the query
            // moves on to the next one after its timeout.
            let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let ns = Netns::new("dnsfwd");
            let mut config = minik8s_proxy::Config::new(api.kubeconfig.clone(), &ns.name);
            config.netns = Some(ns.path());
            config.dns_bind = Some("127.0.0.1:0".parse().unwrap());
            config.dns_upstreams = vec![silent.local_addr().unwrap(), upstream.addr];
            let shutdown = CancellationToken::new();
            let running = minik8s_proxy::start(api.client.clone(), config, shutdown.clone())
                .await
                .expect("proxy starts");
            let server = running.dns_addr.expect("DNS enabled");
            let ask = |name, rtype, tcp| ask_in(ns.path(), server, name, rtype, tcp);

            let r = ask("example.com.", RecordType::A, false).await.unwrap();
            assert_eq!(
                (r.code, r.a),
                (
                    Some(ResponseCode::NoError),
                    vec![Ipv4Addr::new(192, 0, 2, 1)]
                ),
                "relayed from the upstream that answers"
            );
            let r = ask("example.com.", RecordType::A, true).await.unwrap();
            assert_eq!(r.a, [Ipv4Addr::new(192, 0, 2, 1)], "asked over TCP too");
            let r = ask("missing.example.com.", RecordType::A, false)
                .await
                .unwrap();
            assert_eq!(
                r.code,
                Some(ResponseCode::NXDomain),
                "the upstream's NXDOMAIN"
            );
            let before = upstream
                .tcp_queries
                .load(std::sync::atomic::Ordering::SeqCst);
            let r = ask("big.example.com.", RecordType::A, true).await.unwrap();
            assert_eq!(
                r.a.len(),
                60,
                "a truncated UDP answer is asked again over TCP"
            );
            assert!(
                upstream
                    .tcp_queries
                    .load(std::sync::atomic::Ordering::SeqCst)
                    > before
            );
            // The cluster's own names are still answered here, never forwarded.
            let r = ask("nope.default.svc.cluster.local.", RecordType::A, false)
                .await
                .unwrap();
            assert_eq!(r.code, Some(ResponseCode::NXDomain));
            shutdown.cancel();
            running.task.await.unwrap().expect("proxy stops cleanly");
        },
    )
    .await;
}
