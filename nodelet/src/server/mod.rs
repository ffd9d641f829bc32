//! The nodelet's HTTPS server on `--port` (the kubelet's port 10250): `/healthz` and
//! `/containerLogs/{namespace}/{pod}/{container}`, which the API server's pods/log
//! subresource proxies to. Requests other than /healthz need a bearer token the API server
//! accepts (a TokenReview, see auth.rs).

pub mod auth;
pub mod crilog;
pub mod logs;
pub mod reader;
pub mod tail;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::cri::Cri;
use crate::Config;
use auth::{Authenticator, Outcome};

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What failed while starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("generate the serving certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("build the TLS config: {0}")]
    Tls(#[from] rustls::Error),
    #[error("write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What the handlers share.
pub struct AppState {
    pub client: kube::Client,
    pub cri: Cri,
    pub node: String,
    pub auth: Authenticator,
}

/// A started server.
pub struct Serving {
    /// The bound address (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `<node-ip>:<port>` and serves until `shutdown` is cancelled.
pub async fn start(
    config: &Config,
    client: kube::Client,
    cri: Cri,
    shutdown: CancellationToken,
) -> Result<Serving, ServerError> {
    let tls = tls::server_config(&config.root_dir, config.node_ip, &config.node_name)?;
    let want = SocketAddr::new(config.node_ip.into(), config.port);
    let bind_err = |source| ServerError::Bind { addr: want, source };
    let listener = TcpListener::bind(want).await.map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    let state = Arc::new(AppState {
        auth: Authenticator::new(client.clone()),
        client,
        cri,
        node: config.node_name.clone(),
    });
    let task = tokio::spawn(serve(
        listener,
        TlsAcceptor::from(tls),
        router(state),
        shutdown,
    ));
    tracing::info!(%addr, "nodelet server listening");
    Ok(Serving { addr, task })
}

/// The routes; everything but /healthz behind the bearer-token check.
pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(protected)
        .with_state(state)
}

async fn authenticate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    use http::StatusCode;
    match state.auth.authenticate(req.headers()).await {
        Outcome::User(user) => {
            tracing::debug!(%user, path = %req.uri().path(), "authenticated");
            next.run(req).await
        }
        Outcome::Missing | Outcome::Rejected => {
            (StatusCode::UNAUTHORIZED, "Unauthorized").into_response()
        }
        Outcome::Failed(e) => {
            tracing::warn!(error = %e, "token review failed");
            let msg = format!("authentication failed: token review: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, msg).into_response()
        }
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    shutdown: CancellationToken,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
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
        let (acceptor, app, stop) = (acceptor.clone(), app.clone(), shutdown.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let service = TowerToHyperService::new(app);
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            // Followers never end on their own: a stopping nodelet closes them.
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                _ = stop.cancelled() => {}
            }
        });
    }
}
