//! Facts about this machine that several components need: its IPv4 addresses (the node's
//! InternalIP, the API server certificate's names, the join URL the server prints).

use std::net::Ipv4Addr;

/// The IPv4 addresses of this network namespace's up interfaces, loopback excluded, in the
/// order the kernel lists the interfaces.
pub fn ipv4_addrs() -> Vec<Ipv4Addr> {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below.
    if unsafe { libc::getifaddrs(&mut addrs) } != 0 {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut cur = addrs;
    while !cur.is_null() {
        // SAFETY: cur walks the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        // SAFETY: ifa_addr is checked for null before its family is read.
        let inet =
            !ifa.ifa_addr.is_null() && unsafe { (*ifa.ifa_addr).sa_family } as i32 == libc::AF_INET;
        if inet && ifa.ifa_flags & libc::IFF_UP as u32 != 0 {
            // SAFETY: the family says this is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            if !ip.is_loopback() && !found.contains(&ip) {
                found.push(ip);
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: addrs came from getifaddrs.
    unsafe { libc::freeifaddrs(addrs) };
    found
}

/// The first of `ipv4_addrs`, or 127.0.0.1 on a machine with no other address.
pub fn first_ipv4() -> Ipv4Addr {
    ipv4_addrs().first().copied().unwrap_or(Ipv4Addr::LOCALHOST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_up_and_not_loopback() {
        for ip in ipv4_addrs() {
            assert!(!ip.is_loopback(), "{ip}");
        }
        let first = first_ipv4();
        assert!(first.is_loopback() || ipv4_addrs().contains(&first));
    }
}
