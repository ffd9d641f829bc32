//! A pod's resolv.conf, handed to the runtime as the CRI `DNSConfig`, following the kubelet
//! (pkg/kubelet/network/dns):
//!
//! - `ClusterFirst` (the default): the cluster DNS Service IP, searches `<ns>.svc.<domain>
//!   svc.<domain> <domain>`, `ndots:5`. With `hostNetwork` it falls back to `Default`.
//! - `ClusterFirstWithHostNet`: the cluster DNS even with `hostNetwork`.
//! - `Default`: no config from us; the runtime uses the node's resolv.conf.
//! - `None`: only what `spec.dnsConfig` says.
//!
//! `spec.dnsConfig` is merged on top: its nameservers and searches are appended (duplicates
//! dropped; at most 3 nameservers and 32 searches, the kubelet's limits) and its options
//! override ours by name.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;

use crate::cri::types as cri;

/// The kubelet's limits (validation.MaxDNSNameservers, MaxDNSSearchPaths).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

/// The DNSConfig for `pod`, or `None` to let the runtime use the node's resolv.conf.
pub fn dns_config(cluster_dns: Ipv4Addr, domain: &str, pod: &Pod) -> Option<cri::DnsConfig> {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut config = match spec.and_then(|s| s.dns_policy.as_deref()) {
        Some("Default") => return None,
        Some("None") => cri::DnsConfig::default(),
        Some("ClusterFirst") | None if host_network => return None,
        _ => cri::DnsConfig {
            servers: vec![cluster_dns.to_string()],
            searches: vec![
                format!("{ns}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_string(),
            ],
            options: vec!["ndots:5".into()],
        },
    };
    if let Some(extra) = spec.and_then(|s| s.dns_config.as_ref()) {
        for server in extra.nameservers.iter().flatten() {
            if !config.servers.contains(server) {
                config.servers.push(server.clone());
            }
        }
        for search in extra.searches.iter().flatten() {
            if !config.searches.contains(search) {
                config.searches.push(search.clone());
            }
        }
        for opt in extra.options.iter().flatten() {
            let Some(name) = opt.name.as_deref() else {
                continue;
            };
            config.options.retain(|o| o.split(':').next() != Some(name));
            config.options.push(match &opt.value {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            });
        }
    }
    config.servers.truncate(MAX_NAMESERVERS);
    config.searches.truncate(MAX_SEARCHES);
    Some(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": spec}),
        )
        .unwrap()
    }

    const DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

    #[test]
    fn cluster_first_points_at_the_cluster_dns_with_the_namespace_search_path() {
        let c = dns_config(DNS, "cluster.local", &pod(json!({"containers": []}))).unwrap();
        assert_eq!(c.servers, ["10.96.0.10"]);
        assert_eq!(
            c.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert_eq!(c.options, ["ndots:5"]);
    }

    #[test]
    fn policies_follow_the_kubelet() {
        let host = pod(json!({"containers": [], "hostNetwork": true}));
        assert!(
            dns_config(DNS, "cluster.local", &host).is_none(),
            "hostNetwork ClusterFirst → Default"
        );
        let host = pod(
            json!({"containers": [], "hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
        );
        assert_eq!(
            dns_config(DNS, "cluster.local", &host).unwrap().servers,
            ["10.96.0.10"]
        );
        let default = pod(json!({"containers": [], "dnsPolicy": "Default"}));
        assert!(dns_config(DNS, "cluster.local", &default).is_none());
        let none = pod(json!({"containers": [], "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.example"],
                          "options": [{"name": "edns0"}]}}));
        let c = dns_config(DNS, "cluster.local", &none).unwrap();
        assert_eq!(
            (c.servers, c.searches, c.options),
            (
                vec!["1.1.1.1".to_string()],
                vec!["a.example".to_string()],
                vec!["edns0".to_string()]
            )
        );
    }

    #[test]
    fn dns_config_merges_on_top_of_cluster_first() {
        let p = pod(json!({"containers": [], "dnsConfig": {
            "nameservers": ["10.96.0.10", "9.9.9.9"],
            "searches": ["corp.example"],
            "options": [{"name": "ndots", "value": "2"}]}}));
        let c = dns_config(DNS, "cluster.local", &p).unwrap();
        assert_eq!(c.servers, ["10.96.0.10", "9.9.9.9"]);
        assert_eq!(c.searches.last().unwrap(), "corp.example");
        assert_eq!(c.options, ["ndots:2"], "options override by name");
    }
}
