//! The crate's error, and how each one is shown to the user the way kubectl shows it:
//! `Error from server (NotFound): pods "x" not found`, one sentence for an unreachable
//! server or bad credentials, `error: ...` for everything else. Never a backtrace.

use std::sync::OnceLock;

use crate::discovery::ResolveError;
use crate::jsonpath::JsonPathError;
use crate::kubeconfig::KubeconfigError;
use crate::manifest::ManifestError;

/// The server URL of the current context, for the "connection refused" sentence.
static SERVER: OnceLock<String> = OnceLock::new();

pub fn remember_server(url: &str) {
    let _ = SERVER.set(url.to_string());
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    JsonPath(#[from] JsonPathError),
    /// Wrong arguments; the message says what to pass instead.
    #[error("{0}")]
    Usage(String),
    /// A verb could not finish; the message names the object.
    #[error("{0}")]
    Failed(String),
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// Every failure was already printed (e.g. apply's per-document errors); exit 1 quietly.
    #[error("errors were reported above")]
    Reported,
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

/// kubectl's `Error from server (Reason): message` for an API status.
pub fn server_error(status: &kube::core::Status) -> String {
    if status.code == 401 {
        return "error: You must be logged in to the server (Unauthorized)".to_string();
    }
    let message = if status.message.is_empty() {
        format!("the server responded with status {}", status.code)
    } else {
        status.message.clone()
    };
    if status.reason.is_empty() {
        format!("Error from server: {message}")
    } else {
        format!("Error from server ({}): {message}", status.reason)
    }
}

/// The message to print for an error (without a trailing newline).
pub fn render(err: &Error) -> String {
    match err {
        Error::Kube(e) => render_kube(e),
        other => format!("error: {other}"),
    }
}

pub fn render_kube(err: &kube::Error) -> String {
    if let kube::Error::Api(status) = err {
        return server_error(status);
    }
    if let kube::Error::Auth(e) = err {
        return format!("error: You must be logged in to the server ({e})");
    }
    let server = SERVER.get().map(String::as_str).unwrap_or("the server");
    let server = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut innermost = err.to_string();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return format!(
                    "The connection to the server {server} was refused - did you specify the right host or port?"
                );
            }
        }
        innermost = e.to_string();
        source = e.source();
    }
    format!("Unable to connect to the server: {innermost}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_reads_like_kubectl() {
        let s = kube::core::Status::failure("pods \"x\" not found", "NotFound").with_code(404);
        assert_eq!(
            server_error(&s),
            "Error from server (NotFound): pods \"x\" not found"
        );
        let e = Error::Kube(kube::Error::Api(Box::new(s)));
        assert_eq!(
            render(&e),
            "Error from server (NotFound): pods \"x\" not found"
        );
    }

    #[test]
    fn unauthorized_is_one_sentence() {
        let s = kube::core::Status::failure("Unauthorized", "Unauthorized").with_code(401);
        assert_eq!(
            server_error(&s),
            "error: You must be logged in to the server (Unauthorized)"
        );
    }
}
