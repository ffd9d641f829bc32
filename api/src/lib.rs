//! The shared model every minik8s component builds on, on top of `k8s-openapi`:
//! which resources exist (group, version, kind, plural, scope), label and field
//! selectors, resource quantities, kubeconfig files, this host's addresses, a
//! reflector cache whose readiness many tasks can await, and the one TLS client that
//! skips certificate verification where Kubernetes does.

pub mod duration;
pub mod host;
pub mod kubeconfig;
pub mod quantity;
pub mod ready_store;
pub mod resource;
pub mod selector;
pub mod tls;
