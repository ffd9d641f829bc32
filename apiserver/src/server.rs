//! Startup (store, PKI, tokens, system namespaces, kubeconfig), the TLS accept loop, and
//! graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use futures::FutureExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use minik8s_api::kubeconfig::{self, KubeconfigSpec};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::handlers::{self, AppState};
use crate::ipalloc::Allocator;
use crate::registry::Registry;
use crate::status::ApiError;
use crate::storage::{SledStorage, Storage};
use crate::{tls, Config, Error};

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests before closing connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A started server.
pub struct Running {
    /// The address actually bound (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    /// `<data-dir>/admin.kubeconfig`, written once the server accepts connections.
    pub kubeconfig: PathBuf,
    /// The CA certificate (PEM) clients must trust.
    pub ca_pem: String,
    /// The admin bearer token.
    pub token: String,
    /// Ends after `shutdown` is cancelled and connections have drained.
    pub handle: JoinHandle<Result<(), Error>>,
}

/// Runs the server until `shutdown` is cancelled (the binary's entry point).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let running = start(config, shutdown).await?;
    tracing::info!(addr = %running.addr, kubeconfig = %running.kubeconfig.display(), "apiserver ready");
    running
        .handle
        .await
        .unwrap_or_else(|e| Err(Error::Config(format!("server task failed: {e}"))))
}

fn open_store(dir: PathBuf) -> Result<Arc<dyn Storage>, Error> {
    Ok(Arc::new(SledStorage::open(&dir)?))
}

/// Starts the server: returns once it is bound and its kubeconfig is written.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, Error> {
    let dir = config.data_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|source| Error::DataDir {
        path: dir.clone(),
        source,
    })?;
    let store_dir = dir.join("store");
    let store = tokio::task::spawn_blocking(move || open_store(store_dir))
        .await
        .map_err(|e| Error::Config(format!("opening the store panicked: {e}")))??;
    let registry = Arc::new(Registry::new(
        store,
        config.defaults,
        Allocator::new(config.service_cidr),
    ));
    registry.ensure_system_namespaces().await?;
    registry.load_allocations().await?;

    // Build the OpenAPI documents now, not on kubectl's first request.
    tokio::task::spawn_blocking(crate::openapi::warm_up);

    let admin_token = tls::load_or_create_token(&dir.join("admin-token"))?;
    let node_token = tls::load_or_create_token(&dir.join("node-token"))?;
    let sans = tls::serving_names(
        config.bind,
        Some(config.service_cidr.first_ip().into()),
        &config.tls_sans,
    );
    let pki = tls::load_or_create(&dir, sans)?;

    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|source| Error::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.bind,
        source,
    })?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let server_address = format!("{host}:{}", addr.port());
    let state = Arc::new(AppState {
        registry,
        tokens: vec![admin_token.clone(), node_token],
        shutdown: shutdown.clone(),
        server_address: server_address.clone(),
    });
    let acceptor = TlsAcceptor::from(pki.server_config.clone());
    let ca: Arc<str> = pki.ca_pem.as_str().into();
    let handle = tokio::spawn(serve(listener, acceptor, state, ca, shutdown));

    let kubeconfig_path = dir.join("admin.kubeconfig");
    let server_url = format!("https://{server_address}");
    kubeconfig::write(
        &kubeconfig_path,
        &KubeconfigSpec {
            name: "minik8s",
            server: &server_url,
            ca_pem: pki.ca_pem.as_bytes(),
            token: &admin_token,
            namespace: None,
        },
    )?;
    Ok(Running {
        addr,
        kubeconfig: kubeconfig_path,
        ca_pem: pki.ca_pem,
        token: admin_token,
        handle,
    })
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    ca_pem: Arc<str>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let ca_pem = ca_pem.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let state = state.clone();
                let ca_pem = ca_pem.clone();
                async move {
                    if let Some(r) = cacerts(&req, &ca_pem) {
                        return Ok::<_, Infallible>(r);
                    }
                    Ok::<_, Infallible>(guarded(state, req).await)
                }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("connections still open after drain timeout"),
    }
    tracing::info!("apiserver stopped");
    Ok(())
}

/// `GET /cacerts`: the CA certificate (PEM), unauthenticated, as k3s serves it. A joining
/// agent fetches it without verifying the server and pins it by the hash in its join token.
fn cacerts(req: &hyper::Request<Incoming>, ca_pem: &str) -> Option<axum::response::Response> {
    if req.uri().path() != "/cacerts" || req.method() != hyper::Method::GET {
        return None;
    }
    let mut r = axum::response::Response::new(Body::from(ca_pem.to_string()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-pem-file"),
    );
    Some(r)
}

/// Runs a request; a panic in a handler becomes a 500 Status instead of a dropped
/// connection (bad input must never take the server down).
async fn guarded(state: Arc<AppState>, req: hyper::Request<Incoming>) -> axum::response::Response {
    let fut = handlers::handle(state, req.map(Body::new));
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!("request handler panicked");
            axum::response::IntoResponse::into_response(ApiError::Internal(
                "the request handler failed unexpectedly".into(),
            ))
        }
    }
}
