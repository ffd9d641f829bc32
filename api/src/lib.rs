//! The shared model every minik8s component builds on, on top of `k8s-openapi`:
//! which resources exist (group, version, kind, plural, scope), label and field
//! selectors, resource quantities, kubeconfig files, and this host's addresses.

pub mod duration;
pub mod host;
pub mod kubeconfig;
pub mod quantity;
pub mod resource;
pub mod selector;
