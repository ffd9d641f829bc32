//! OCI distribution v2 pull (`auth`: token and basic auth; `client`: the HTTP conversation;
//! `pull`: `ImageStore::pull`).

mod auth;
mod client;
mod pull;

pub use auth::{parse_challenge, Challenge};

/// Credentials for a registry (CRI `AuthConfig`).
#[derive(Debug, Clone, Default)]
pub struct RegistryAuth {
    pub username: Option<String>,
    pub password: Option<String>,
    /// A bearer token sent as is (CRI `registry_token`).
    pub registry_token: Option<String>,
}

/// Pull settings.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `host:port` of registries spoken to over plain HTTP (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
}
