//! The minik8s container runtime.
//!
//! - [`oci`]: the low-level runtime: an OCI bundle in, a process in its own namespaces,
//!   cgroups and root filesystem out (what runc does), plus its runc-compatible CLI.
//! - [`image`]: the image store (content by digest, unpacked layers, import, registry pull).
//! - [`cgroups`]: cgroup v1 and v2 behind one API (create, limit, join, stats, freeze, kill, remove).
//! - [`shim`]: the per-container supervisor that holds stdio, writes CRI logs and reaps.

pub mod cgroups;
pub mod cni;
pub mod cri;
pub mod image;
pub mod oci;
pub mod sandbox;
pub mod shim;
pub mod snapshot;
