//! Errors of the nodelet.

/// What failed while running the node agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("build a client from the kubeconfig: {0}")]
    Client(String),
    #[error("bad runtime endpoint {0:?}: want unix:///path")]
    Endpoint(String),
    #[error("connect to the CRI runtime at {path}: {source}")]
    Connect {
        path: String,
        source: tonic::transport::Error,
    },
    #[error("CRI {call}: {status}")]
    Cri {
        call: &'static str,
        status: Box<tonic::Status>,
    },
    #[error("API {what}: {source}")]
    Api {
        what: String,
        source: Box<kube::Error>,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("bad duration {0:?}: want e.g. 40s, 500ms, 1m")]
    Duration(String),
    #[error("pod {pod}: {reason}")]
    Pod { pod: String, reason: String },
}

impl Error {
    pub(crate) fn api(what: impl Into<String>, source: kube::Error) -> Error {
        Error::Api {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn io(
        what: &'static str,
        path: impl AsRef<std::path::Path>,
        e: std::io::Error,
    ) -> Error {
        Error::Io {
            what,
            path: path.as_ref().display().to_string(),
            source: e,
        }
    }

    /// Whether this is the API server's 404 (the object is gone).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api { source, .. } if matches!(&**source, kube::Error::Api(s) if s.code == 404))
    }
}
