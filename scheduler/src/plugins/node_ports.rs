//! Filter: the host ports a pod asks for are free on the node (kube-scheduler's `NodePorts`).
//! Two host ports conflict when protocol and port are equal and either IP is the wildcard
//! `0.0.0.0` or both IPs are equal.

use super::Reason;
use crate::pod_info::{HostPort, PodInfo};

pub const CONFLICT: &str = "node(s) didn't have free ports for the requested pod ports";

fn conflicts(a: &HostPort, b: &HostPort) -> bool {
    const ANY: &str = "0.0.0.0";
    a.port == b.port && a.protocol == b.protocol && (a.ip == b.ip || a.ip == ANY || b.ip == ANY)
}

pub fn fits(pod: &PodInfo, used: &[HostPort]) -> Result<(), Reason> {
    let clash = pod
        .host_ports
        .iter()
        .any(|wanted| used.iter().any(|u| conflicts(wanted, u)));
    if clash {
        Err(Reason::Borrowed(CONFLICT))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_info::fixture::pod;

    fn hp(protocol: &str, ip: &str, port: i32) -> HostPort {
        HostPort {
            protocol: protocol.into(),
            ip: ip.into(),
            port,
        }
    }

    #[test]
    fn table() {
        let cases = [
            ("nothing used", hp("TCP", "0.0.0.0", 80), vec![], true),
            (
                "same port",
                hp("TCP", "0.0.0.0", 80),
                vec![hp("TCP", "0.0.0.0", 80)],
                false,
            ),
            (
                "other port",
                hp("TCP", "0.0.0.0", 80),
                vec![hp("TCP", "0.0.0.0", 81)],
                true,
            ),
            (
                "other protocol",
                hp("UDP", "0.0.0.0", 80),
                vec![hp("TCP", "0.0.0.0", 80)],
                true,
            ),
            (
                "wildcard vs ip",
                hp("TCP", "10.0.0.1", 80),
                vec![hp("TCP", "0.0.0.0", 80)],
                false,
            ),
            (
                "same ip",
                hp("TCP", "10.0.0.1", 80),
                vec![hp("TCP", "10.0.0.1", 80)],
                false,
            ),
            (
                "different ips",
                hp("TCP", "10.0.0.1", 80),
                vec![hp("TCP", "10.0.0.2", 80)],
                true,
            ),
        ];
        for (name, wanted, used, want) in cases {
            let mut p = pod("p");
            p.host_ports = vec![wanted];
            assert_eq!(fits(&p, &used).is_ok(), want, "{name}");
        }
        assert!(fits(&pod("no-ports"), &[hp("TCP", "0.0.0.0", 80)]).is_ok());
    }
}
