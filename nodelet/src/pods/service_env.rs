//! The Service environment variables every container starts with (kubelet's `envvars`
//! package and `getServiceEnvVarMap`): for each Service with a ClusterIP,
//! `{NAME}_SERVICE_HOST`, `{NAME}_SERVICE_PORT`, `{NAME}_SERVICE_PORT_{PORTNAME}`, and the
//! Docker-link variables `{NAME}_PORT`, `{NAME}_PORT_{port}_{PROTO}[_PROTO|_PORT|_ADDR]`.
//!
//! Which Services: those of the pod's namespace (unless `enableServiceLinks: false`), plus
//! `kubernetes` in `default` always; a same-named Service of the pod's namespace wins. The
//! Services come from a watch-fed cache, as the kubelet's service informer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::Api;
use kube::runtime::reflector;
use kube::runtime::{watcher, WatchStreamExt};
use minik8s_api::ready_store::ReadyStore;

use super::spec;
use crate::Error;

/// The API server's own Service, given to every pod (kubelet's `masterServices`).
const MASTER_SERVICE: &str = "kubernetes";
/// How long a container start waits for the first list of Services.
const SYNC_WAIT: Duration = Duration::from_secs(5);

/// A cache of every Service, kept by a watch; the watch stops when this is dropped.
pub struct Services {
    /// Awaited by every pod worker at once, hence the ReadyStore.
    store: ReadyStore<Service>,
    task: tokio::task::AbortHandle,
}

impl Drop for Services {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Services {
    /// Starts the watch (needs a tokio runtime).
    pub fn spawn(client: kube::Client) -> Services {
        let (store, writer) = reflector::store();
        let api: Api<Service> = Api::all(client);
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .touched_objects();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(r) = stream.next().await {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "service watch; retrying");
                }
            }
        });
        Services {
            store: ReadyStore::new(store),
            task: task.abort_handle(),
        }
    }

    /// The variables for `pod`, once the cache has listed Services at least once.
    pub async fn env_for(&self, pod: &Pod) -> Result<Vec<(String, String)>, Error> {
        if tokio::time::timeout(SYNC_WAIT, self.store.wait_until_ready())
            .await
            .is_err()
        {
            return Err(Error::Pod {
                pod: format!("{}/{}", spec::namespace(pod), spec::name(pod)),
                // The kubelet's wording for the same condition.
                reason: "services have not yet been read at least once, cannot construct envvars"
                    .into(),
            });
        }
        let all = self.store.state();
        Ok(for_pod(pod, all.iter().map(Arc::as_ref)))
    }
}

/// Chooses the Services visible to `pod` and renders their variables, sorted by name.
pub fn for_pod<'a>(
    pod: &Pod,
    services: impl Iterator<Item = &'a Service>,
) -> Vec<(String, String)> {
    let ns = spec::namespace(pod);
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut chosen: BTreeMap<String, &Service> = BTreeMap::new();
    for svc in services {
        if cluster_ip(svc).is_none() {
            continue;
        }
        let name = svc.metadata.name.clone().unwrap_or_default();
        let svc_ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        if svc_ns == "default" && name == MASTER_SERVICE {
            chosen.entry(name).or_insert(svc);
        } else if svc_ns == ns && links {
            chosen.insert(name, svc);
        }
    }
    let mut out: Vec<(String, String)> = chosen.values().flat_map(|s| from_service(s)).collect();
    out.sort();
    out
}

/// The ClusterIP, unless the Service is headless (`None`) or has none yet.
fn cluster_ip(svc: &Service) -> Option<&str> {
    let ip = svc.spec.as_ref()?.cluster_ip.as_deref()?;
    (!ip.is_empty() && ip != "None").then_some(ip)
}

/// Upper case with `-` → `_` (kubelet's makeEnvVariableName).
fn env_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// The variables of one Service (kubelet's FromServices for one Service).
pub fn from_service(svc: &Service) -> Vec<(String, String)> {
    let (Some(ip), Some(ports)) = (
        cluster_ip(svc),
        svc.spec.as_ref().and_then(|s| s.ports.as_ref()),
    ) else {
        return Vec::new();
    };
    let Some(first) = ports.first() else {
        return Vec::new();
    };
    let prefix = env_name(svc.metadata.name.as_deref().unwrap_or_default());
    let mut out = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.to_string()),
        (format!("{prefix}_SERVICE_PORT"), first.port.to_string()),
    ];
    for p in ports {
        if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!("{prefix}_SERVICE_PORT_{}", env_name(n)),
                p.port.to_string(),
            ));
        }
    }
    // IPv6 ClusterIPs are bracketed, as Go's net.JoinHostPort does.
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        let url = format!("{}://{host}:{}", proto.to_lowercase(), p.port);
        if i == 0 {
            // Docker special-cases the first port.
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
        out.push((format!("{pp}_PROTO"), proto.to_lowercase()));
        out.push((format!("{pp}_PORT"), p.port.to_string()));
        out.push((format!("{pp}_ADDR"), ip.to_string()));
        out.push((pp, url));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports},
        }))
        .unwrap()
    }

    fn pod(ns: &str, links: Option<bool>) -> Pod {
        let mut spec = json!({"containers": [{"name": "c"}]});
        if let Some(l) = links {
            spec["enableServiceLinks"] = json!(l);
        }
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": ns}, "spec": spec}))
            .unwrap()
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn one_service_all_variables() {
        let s = svc(
            "default",
            "my-web",
            "10.96.0.20",
            json!([{"name": "http", "port": 80}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}]),
        );
        let env = from_service(&s);
        let want = [
            ("MY_WEB_SERVICE_HOST", "10.96.0.20"),
            ("MY_WEB_SERVICE_PORT", "80"),
            ("MY_WEB_SERVICE_PORT_HTTP", "80"),
            ("MY_WEB_SERVICE_PORT_DNS_UDP", "53"),
            ("MY_WEB_PORT", "tcp://10.96.0.20:80"),
            ("MY_WEB_PORT_80_TCP", "tcp://10.96.0.20:80"),
            ("MY_WEB_PORT_80_TCP_PROTO", "tcp"),
            ("MY_WEB_PORT_80_TCP_PORT", "80"),
            ("MY_WEB_PORT_80_TCP_ADDR", "10.96.0.20"),
            ("MY_WEB_PORT_53_UDP", "udp://10.96.0.20:53"),
            ("MY_WEB_PORT_53_UDP_PROTO", "udp"),
            ("MY_WEB_PORT_53_UDP_PORT", "53"),
            ("MY_WEB_PORT_53_UDP_ADDR", "10.96.0.20"),
        ];
        for (k, v) in want {
            assert_eq!(get(&env, k), Some(v), "{k} in {env:?}");
        }
        assert_eq!(env.len(), want.len(), "nothing else: {env:?}");
    }

    #[test]
    fn unnamed_first_port_and_ipv6() {
        let s = svc("default", "db", "fd00::10", json!([{"port": 5432}]));
        let env = from_service(&s);
        assert_eq!(get(&env, "DB_SERVICE_PORT"), Some("5432"));
        assert_eq!(get(&env, "DB_PORT"), Some("tcp://[fd00::10]:5432"));
        assert_eq!(get(&env, "DB_PORT_5432_TCP_ADDR"), Some("fd00::10"));
        assert!(!env.iter().any(|(k, _)| k.starts_with("DB_SERVICE_PORT_")));
    }

    #[test]
    fn headless_and_unallocated_services_give_nothing() {
        let p = json!([{"port": 80}]);
        assert!(from_service(&svc("default", "h", "None", p.clone())).is_empty());
        assert!(from_service(&svc("default", "h", "", p)).is_empty());
    }

    #[test]
    fn selection_by_namespace_and_service_links() {
        let p = json!([{"port": 443, "name": "https"}]);
        let services = [
            svc("default", "kubernetes", "10.96.0.1", p.clone()),
            svc("team", "api", "10.96.0.5", json!([{"port": 8080}])),
            svc("other", "elsewhere", "10.96.0.6", json!([{"port": 1}])),
            svc("team", "headless", "None", json!([{"port": 2}])),
        ];
        let env = for_pod(&pod("team", None), services.iter());
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get(&env, "API_SERVICE_HOST"), Some("10.96.0.5"));
        assert_eq!(get(&env, "ELSEWHERE_SERVICE_HOST"), None);
        assert_eq!(get(&env, "HEADLESS_SERVICE_HOST"), None);

        // enableServiceLinks: false keeps only the master service.
        let env = for_pod(&pod("team", Some(false)), services.iter());
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get(&env, "API_SERVICE_HOST"), None);
    }

    #[test]
    fn own_namespace_kubernetes_service_wins() {
        let services = [
            svc("team", "kubernetes", "10.96.0.99", json!([{"port": 1}])),
            svc("default", "kubernetes", "10.96.0.1", json!([{"port": 443}])),
        ];
        let env = for_pod(&pod("team", None), services.iter());
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.99"));
        let env = for_pod(&pod("team", None), services.iter().rev());
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.99"));
    }
}
