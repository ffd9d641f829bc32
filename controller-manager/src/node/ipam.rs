//! Node IPAM (Kubernetes' range allocator): each node gets the next free subnet of the
//! cluster CIDR as `spec.podCIDR`/`podCIDRs`. The used set is rebuilt from the nodes that
//! exist, so a deleted node's subnet is free again and a restart loses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("invalid cluster CIDR {0:?} (expected an IPv4 a.b.c.d/n)")]
    ClusterCidr(String),
    #[error("node CIDR mask /{mask} does not fit in cluster CIDR {cidr}")]
    MaskSize { cidr: String, mask: u8 },
}

#[derive(Debug, Clone)]
pub struct RangeAllocator {
    base: u32,
    prefix: u8,
    mask: u8,
    /// Handed out but not yet seen on the node in the cache.
    pending: BTreeMap<String, String>,
}

impl RangeAllocator {
    pub fn new(cidr: &str, mask: u8) -> Result<RangeAllocator, IpamError> {
        let bad = || IpamError::ClusterCidr(cidr.to_string());
        let (ip, prefix) = cidr.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 || mask > 32 || mask < prefix || mask - prefix > 24 {
            return Err(IpamError::MaskSize {
                cidr: cidr.into(),
                mask,
            });
        }
        let net = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Ok(RangeAllocator {
            base: u32::from(ip) & net,
            prefix,
            mask,
            pending: BTreeMap::new(),
        })
    }

    fn subnet(&self, i: u32) -> String {
        let step = if self.mask == 32 {
            1
        } else {
            1u32 << (32 - self.mask)
        };
        format!("{}/{}", Ipv4Addr::from(self.base + i * step), self.mask)
    }

    /// Given every node and its current podCIDR, returns the CIDRs to assign to nodes that
    /// lack one (in name order), or None for a node when the range is exhausted.
    pub fn allocate(
        &mut self,
        nodes: &BTreeMap<String, Option<String>>,
    ) -> Vec<(String, Option<String>)> {
        self.pending
            .retain(|n, _| nodes.get(n).is_some_and(|c| c.is_none()));
        let mut used: BTreeSet<String> = nodes.values().flatten().cloned().collect();
        used.extend(self.pending.values().cloned());
        let count = 1u32 << (self.mask - self.prefix);
        let mut out = Vec::new();
        let mut next = 0;
        for (name, cidr) in nodes {
            if cidr.is_some() {
                continue;
            }
            if let Some(c) = self.pending.get(name) {
                out.push((name.clone(), Some(c.clone())));
                continue;
            }
            while next < count && used.contains(&self.subnet(next)) {
                next += 1;
            }
            if next == count {
                out.push((name.clone(), None));
                continue;
            }
            let c = self.subnet(next);
            used.insert(c.clone());
            self.pending.insert(name.clone(), c.clone());
            out.push((name.clone(), Some(c)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_free_subnets_and_reuses_freed_ones() {
        let mut a = RangeAllocator::new("10.244.0.0/16", 24).unwrap();
        let mut nodes: BTreeMap<String, Option<String>> = [
            ("a".into(), Some("10.244.0.0/24".into())),
            ("b".into(), None),
            ("c".into(), None),
        ]
        .into();
        let got = a.allocate(&nodes);
        assert_eq!(got[0], ("b".into(), Some("10.244.1.0/24".into())));
        assert_eq!(got[1], ("c".into(), Some("10.244.2.0/24".into())));
        // b's CIDR lands; a is deleted; a new node d gets a's old subnet.
        nodes.remove("a");
        nodes.insert("b".into(), Some("10.244.1.0/24".into()));
        nodes.insert("c".into(), Some("10.244.2.0/24".into()));
        nodes.insert("d".into(), None);
        assert_eq!(
            a.allocate(&nodes),
            vec![("d".into(), Some("10.244.0.0/24".into()))]
        );
        let mut tiny = RangeAllocator::new("10.0.0.0/31", 32).unwrap();
        let n: BTreeMap<String, Option<String>> =
            [("x".into(), None), ("y".into(), None), ("z".into(), None)].into();
        assert_eq!(tiny.allocate(&n)[2], ("z".into(), None));
        assert!(RangeAllocator::new("10.0.0.0/24", 16).is_err());
    }
}
