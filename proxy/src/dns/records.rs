//! Cluster DNS answers, following the Kubernetes DNS-based service discovery spec
//! (github.com/kubernetes/dns/blob/master/docs/specification.md):
//!
//! - `A <svc>.<ns>.svc.<zone>` → the ClusterIP; for a headless Service, every ready endpoint IP.
//! - `SRV _<port>._<proto>.<svc>.<ns>.svc.<zone>` for named ports → `0 100 <port>
//!   <svc>.<ns>.svc.<zone>.`; for headless Services one record per ready endpoint, its target
//!   `<a-b-c-d>.<svc>.<ns>.svc.<zone>.` (the spec's generated hostname), whose A answers too.
//! - A name of the zone that exists with another type (AAAA for an IPv4 Service, or the zone's
//!   inner nodes `<ns>.svc.<zone>`) → NOERROR without records, so resolvers asking A and AAAA
//!   together do not give up; anything else in the zone → NXDOMAIN.
//! - Names outside the zone → REFUSED, which the handler turns into a forwarded query when it
//!   has upstreams (`dns::forward`).
//!
//! Pure over a [`Snapshot`], so every case is a unit test.

use std::net::Ipv4Addr;

use crate::model::{Protocol, ServiceInfo, Snapshot};

/// TTL of every answer: CoreDNS' kubernetes plugin default, short so moved pods are found soon.
pub const TTL: u32 = 5;

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    A(Vec<Ipv4Addr>),
    /// `(port, target FQDN with trailing dot)`.
    Srv(Vec<(u16, String)>),
    /// The name exists, but has no record of the asked type.
    NoData,
    NxDomain,
    Refused,
}

/// The record types this server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    A,
    Srv,
    Other,
}

/// Answers `name` (any case, with or without the trailing dot) in `zone` (e.g. `cluster.local`).
pub fn answer(snapshot: &Snapshot, zone: &str, name: &str, kind: Kind) -> Answer {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let zone = zone.trim_end_matches('.');
    let Some(rel) = name
        .strip_suffix(zone)
        .filter(|r| r.is_empty() || r.ends_with('.'))
    else {
        return Answer::Refused;
    };
    let labels: Vec<&str> = rel
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .collect();
    // Labels from the zone inwards: [..., svc, ns, "svc"].
    match labels.as_slice() {
        [] | ["svc"] => Answer::NoData,
        [ns, "svc"] => exists_or_nx(snapshot.services.iter().any(|s| s.namespace == *ns)),
        [svc, ns, "svc"] => match find(snapshot, ns, svc) {
            None => Answer::NxDomain,
            Some(s) => match kind {
                Kind::A if s.headless => Answer::A(s.ready_ips.clone()),
                Kind::A => s
                    .cluster_ip
                    .map(|ip| Answer::A(vec![ip]))
                    .unwrap_or(Answer::NoData),
                _ => Answer::NoData,
            },
        },
        [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
            let Some(s) = find(snapshot, ns, svc) else {
                return Answer::NxDomain;
            };
            srv(s, &port[1..], &proto[1..], zone, kind)
        }
        [host, svc, ns, "svc"] => {
            let Some(s) = find(snapshot, ns, svc).filter(|s| s.headless) else {
                return Answer::NxDomain;
            };
            let ip = s.ready_ips.iter().find(|ip| dashed(**ip) == *host);
            match (ip, kind) {
                (None, _) => Answer::NxDomain,
                (Some(ip), Kind::A) => Answer::A(vec![*ip]),
                (Some(_), _) => Answer::NoData,
            }
        }
        _ => Answer::NxDomain,
    }
}

fn exists_or_nx(exists: bool) -> Answer {
    if exists {
        Answer::NoData
    } else {
        Answer::NxDomain
    }
}

fn find<'a>(snapshot: &'a Snapshot, ns: &str, name: &str) -> Option<&'a ServiceInfo> {
    snapshot
        .services
        .iter()
        .find(|s| s.namespace == ns && s.name == name)
}

/// `10.244.1.5` → `10-244-1-5`, the hostname the spec gives endpoints without one.
pub fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

fn srv(s: &ServiceInfo, port: &str, proto: &str, zone: &str, kind: Kind) -> Answer {
    let protocol = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return Answer::NxDomain,
    };
    let Some(p) = s
        .ports
        .iter()
        .find(|p| !p.name.is_empty() && p.name == port && p.protocol == protocol)
    else {
        return Answer::NxDomain;
    };
    if kind != Kind::Srv {
        return Answer::NoData;
    }
    let base = format!("{}.{}.svc.{zone}.", s.name, s.namespace);
    if s.headless {
        let mut out: Vec<(u16, String)> = p
            .backends
            .iter()
            .map(|b| (b.port, format!("{}.{base}", dashed(b.ip))))
            .collect();
        out.dedup();
        Answer::Srv(out)
    } else {
        Answer::Srv(vec![(p.port, base)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::build;
    use crate::model::fixtures::{service, slice};
    use serde_json::json;

    fn snap() -> Snapshot {
        let web = service(
            "default",
            "web",
            "10.96.0.5",
            json!([{"name": "http", "port": 80}]),
        );
        let db = service(
            "data",
            "db",
            "None",
            json!([{"name": "pg", "port": 5432}, {"name": "m", "port": 9, "protocol": "UDP"}]),
        );
        let sl = slice(
            "data",
            "db",
            &[
                ("10.244.1.7", None),
                ("10.244.2.8", Some(true)),
                ("10.244.2.9", Some(false)),
            ],
            &[("pg", 5432, "TCP")],
        );
        build([&web, &db], [&sl])
    }

    #[test]
    fn a_records_for_cluster_ip_and_headless_services() {
        let s = snap();
        let z = "cluster.local";
        let web = "web.default.svc.cluster.local.";
        assert_eq!(
            answer(&s, z, web, Kind::A),
            Answer::A(vec!["10.96.0.5".parse().unwrap()])
        );
        assert_eq!(
            answer(&s, z, "WEB.Default.svc.cluster.local", Kind::A),
            answer(&s, z, web, Kind::A)
        );
        assert_eq!(
            answer(&s, z, "db.data.svc.cluster.local", Kind::A),
            Answer::A(vec![
                "10.244.1.7".parse().unwrap(),
                "10.244.2.8".parse().unwrap()
            ]),
            "headless: ready pod IPs only"
        );
        assert_eq!(
            answer(&s, z, "10-244-2-8.db.data.svc.cluster.local", Kind::A),
            Answer::A(vec!["10.244.2.8".parse().unwrap()])
        );
        assert_eq!(
            answer(&s, z, "10-244-2-9.db.data.svc.cluster.local", Kind::A),
            Answer::NxDomain
        );
    }

    #[test]
    fn srv_for_named_ports() {
        let s = snap();
        let z = "cluster.local";
        assert_eq!(
            answer(&s, z, "_http._tcp.web.default.svc.cluster.local", Kind::Srv),
            Answer::Srv(vec![(80, "web.default.svc.cluster.local.".into())])
        );
        assert_eq!(
            answer(&s, z, "_pg._tcp.db.data.svc.cluster.local", Kind::Srv),
            Answer::Srv(vec![
                (5432, "10-244-1-7.db.data.svc.cluster.local.".into()),
                (5432, "10-244-2-8.db.data.svc.cluster.local.".into()),
            ])
        );
        assert_eq!(
            answer(&s, z, "_pg._udp.db.data.svc.cluster.local", Kind::Srv),
            Answer::NxDomain
        );
        assert_eq!(
            answer(&s, z, "_x._tcp.web.default.svc.cluster.local", Kind::Srv),
            Answer::NxDomain
        );
    }

    #[test]
    fn unknown_names_nxdomain_other_types_nodata_outside_refused() {
        let s = snap();
        let z = "cluster.local";
        assert_eq!(
            answer(&s, z, "nope.default.svc.cluster.local", Kind::A),
            Answer::NxDomain
        );
        assert_eq!(
            answer(&s, z, "web.default.svc.cluster.local", Kind::Other),
            Answer::NoData
        );
        assert_eq!(
            answer(&s, z, "default.svc.cluster.local", Kind::A),
            Answer::NoData
        );
        assert_eq!(
            answer(&s, z, "ghost.svc.cluster.local", Kind::A),
            Answer::NxDomain
        );
        assert_eq!(answer(&s, z, "example.com", Kind::A), Answer::Refused);
        assert_eq!(answer(&s, z, "notcluster.local", Kind::A), Answer::Refused);
        assert_eq!(
            answer(&s, z, "a.b.c.d.e.f.cluster.local", Kind::A),
            Answer::NxDomain
        );
    }
}
