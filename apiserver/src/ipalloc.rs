//! ClusterIP and NodePort allocation for Services.
//!
//! The allocations themselves are not stored separately: they are the `spec.clusterIP`
//! and `nodePort` fields of stored Services, read back on start (so a restart never hands
//! out an address twice), kept in memory while serving, taken before a create is written
//! and given back when a create fails or a Service is deleted.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocError {
    #[error("invalid service CIDR {0:?}: expected an IPv4 a.b.c.d/n with n between 8 and 30")]
    Cidr(String),
    #[error("provided IP {0} is not in the valid range {1}")]
    OutOfRange(String, String),
    #[error("provided IP {0} is already allocated")]
    IpTaken(String),
    #[error("provided port {0} is already allocated")]
    PortTaken(u16),
    #[error("provided port {0} is not in the valid range 30000-32767")]
    PortOutOfRange(u16),
    #[error("range is full")]
    Full,
}

/// An IPv4 CIDR such as `10.96.0.0/12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub base: u32,
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = AllocError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AllocError::Cidr(s.to_string());
        let (ip, len) = s.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr {
            base: u32::from(ip) & mask,
            prefix,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl Cidr {
    /// The first address after the network's, which Kubernetes gives the `kubernetes` Service.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }
}

/// The in-memory allocation state of ClusterIPs and NodePorts.
#[derive(Debug)]
pub struct Allocator {
    cidr: Cidr,
    ips: BTreeSet<u32>,
    ports: BTreeSet<u16>,
    next_ip: u32,
    next_port: u16,
}

pub const NODE_PORT_MIN: u16 = 30000;
const CLUSTER_DNS_OFFSET: u32 = 10;
pub const NODE_PORT_MAX: u16 = 32767;

impl Allocator {
    pub fn new(cidr: Cidr) -> Self {
        Self {
            cidr,
            ips: BTreeSet::new(),
            ports: BTreeSet::new(),
            // The first usable address (.1) is Kubernetes' `kubernetes` Service's; skip it.
            next_ip: 2,
            next_port: NODE_PORT_MIN,
        }
    }

    fn offset(&self, ip: &str) -> Result<u32, AllocError> {
        let out = || AllocError::OutOfRange(ip.to_string(), self.cidr.to_string());
        let addr: Ipv4Addr = ip.parse().map_err(|_| out())?;
        let off = u32::from(addr).wrapping_sub(self.cidr.base);
        // Network and broadcast addresses are never handed out.
        if u32::from(addr) < self.cidr.base || off == 0 || off >= self.cidr.size() - 1 {
            return Err(out());
        }
        Ok(off)
    }

    /// Takes a specific IP (a user-chosen clusterIP, or one read back on start).
    pub fn take_ip(&mut self, ip: &str) -> Result<(), AllocError> {
        let off = self.offset(ip)?;
        if !self.ips.insert(off) {
            return Err(AllocError::IpTaken(ip.to_string()));
        }
        Ok(())
    }

    /// Allocates the next free IP, round-robin so released addresses are not reused at once.
    pub fn allocate_ip(&mut self) -> Result<String, AllocError> {
        let usable = self.cidr.size() - 2;
        for _ in 0..usable {
            let off = self.next_ip;
            self.next_ip = if off >= usable { 1 } else { off + 1 };
            // .10 is the cluster DNS address (kubeadm's kube-dns, the nodelet's and proxy's
            // --cluster-dns default): given only to a Service that asks for it by name.
            if off == CLUSTER_DNS_OFFSET && usable > CLUSTER_DNS_OFFSET {
                continue;
            }
            if self.ips.insert(off) {
                return Ok(Ipv4Addr::from(self.cidr.base + off).to_string());
            }
        }
        Err(AllocError::Full)
    }

    pub fn release_ip(&mut self, ip: &str) {
        if let Ok(off) = self.offset(ip) {
            self.ips.remove(&off);
        }
    }

    pub fn take_port(&mut self, port: u16) -> Result<(), AllocError> {
        if !(NODE_PORT_MIN..=NODE_PORT_MAX).contains(&port) {
            return Err(AllocError::PortOutOfRange(port));
        }
        if !self.ports.insert(port) {
            return Err(AllocError::PortTaken(port));
        }
        Ok(())
    }

    pub fn allocate_port(&mut self) -> Result<u16, AllocError> {
        for _ in NODE_PORT_MIN..=NODE_PORT_MAX {
            let p = self.next_port;
            self.next_port = if p >= NODE_PORT_MAX {
                NODE_PORT_MIN
            } else {
                p + 1
            };
            if self.ports.insert(p) {
                return Ok(p);
            }
        }
        Err(AllocError::Full)
    }

    pub fn release_port(&mut self, port: u16) {
        self.ports.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_in_range_never_twice() {
        let mut a = Allocator::new("10.96.0.0/29".parse().unwrap());
        a.take_ip("10.96.0.3").unwrap();
        let mut got = BTreeSet::new();
        while let Ok(ip) = a.allocate_ip() {
            assert!(got.insert(ip));
        }
        // /29: 6 usable, one taken by hand.
        assert_eq!(got.len(), 5);
        assert!(!got.contains("10.96.0.3"));
        assert_eq!(
            a.take_ip("10.96.0.3"),
            Err(AllocError::IpTaken("10.96.0.3".into()))
        );
        assert!(a.take_ip("10.97.0.1").is_err());
        assert!(a.take_ip("10.96.0.7").is_err(), "broadcast is not usable");
        a.release_ip("10.96.0.4");
        assert_eq!(a.allocate_ip().unwrap(), "10.96.0.4");
    }

    #[test]
    fn the_cluster_dns_address_is_only_taken_by_name() {
        let mut a = Allocator::new("10.96.0.0/27".parse().unwrap());
        let mut got = Vec::new();
        while let Ok(ip) = a.allocate_ip() {
            got.push(ip);
        }
        assert!(!got.iter().any(|ip| ip == "10.96.0.10"), "{got:?}");
        assert_eq!(got.len(), 29);
        a.take_ip("10.96.0.10").unwrap();
    }

    #[test]
    fn node_ports_in_range() {
        let mut a = Allocator::new("10.96.0.0/12".parse().unwrap());
        assert_eq!(a.allocate_port().unwrap(), 30000);
        a.take_port(30001).unwrap();
        assert_eq!(a.allocate_port().unwrap(), 30002);
        assert_eq!(a.take_port(30001), Err(AllocError::PortTaken(30001)));
        assert_eq!(a.take_port(80), Err(AllocError::PortOutOfRange(80)));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    }
}
