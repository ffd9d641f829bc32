//! A connected session: the client, the namespace in effect, and the server's resources
//! (discovered once, on first use).

use kube::api::{Api, DynamicObject};
use tokio::sync::OnceCell;

use crate::cli::GlobalArgs;
use crate::discovery::{ResourceIndex, ResourceInfo};
use crate::error::Error;

pub struct Session {
    pub client: kube::Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// Whether `-n` was given (an object's own namespace must then agree with it).
    pub explicit_namespace: bool,
    pub all_namespaces: bool,
    server_url: String,
    index: OnceCell<ResourceIndex>,
}

impl Session {
    pub async fn connect(global: &GlobalArgs) -> Result<Self, Error> {
        let (client, ctx_ns, server_url) = crate::kubeconfig::client(global).await?;
        Ok(Session {
            client,
            namespace: global.namespace.clone().unwrap_or(ctx_ns),
            explicit_namespace: global.namespace.is_some(),
            all_namespaces: global.all_namespaces,
            server_url,
            index: OnceCell::new(),
        })
    }

    pub async fn index(&self) -> Result<&ResourceIndex, Error> {
        self.index
            .get_or_try_init(|| ResourceIndex::load(&self.client))
            .await
            .map_err(Error::from)
    }

    pub async fn resolve(&self, name: &str) -> Result<ResourceInfo, Error> {
        Ok(self.index().await?.resolve(name)?.clone())
    }

    /// The API for one resource in `ns` (namespaced kinds) or cluster-wide.
    pub fn api_in(&self, res: &ResourceInfo, ns: Option<&str>) -> Api<DynamicObject> {
        let ar = res.api_resource();
        match (res.namespaced, ns) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// The API for the session's scope: all namespaces with `-A`, else the namespace.
    pub fn api(&self, res: &ResourceInfo) -> Api<DynamicObject> {
        if self.all_namespaces {
            self.api_in(res, None)
        } else {
            self.api_in(res, Some(&self.namespace))
        }
    }

    /// `in default namespace` / `` for messages like kubectl's "No resources found".
    pub fn scope_phrase(&self) -> String {
        if self.all_namespaces {
            String::new()
        } else {
            format!(" in {} namespace", self.namespace)
        }
    }
}

impl Session {
    /// The server URL, for error messages.
    pub fn client_url(&self) -> String {
        self.server_url.clone()
    }
}
