//! Serving CRI on a unix socket, and a client connection to one (for tests and the nodelet).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tonic::transport::{Channel, Endpoint, Server};

use super::service::Service;
use super::{Cri, CriError};

/// Serves both CRI services on `socket` (replacing a stale socket file) until `shutdown`.
pub async fn serve(
    cri: Arc<Cri>,
    socket: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CriError> {
    let fail = |message: String| CriError::Serve {
        path: socket.into(),
        message,
    };
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| fail(format!("create {}: {e}", parent.display())))?;
    }
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(format!("remove stale socket: {e}"))),
    }
    let listener =
        tokio::net::UnixListener::bind(socket).map_err(|e| fail(format!("bind: {e}")))?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let service = Service(cri);
    let result = Server::builder()
        .add_service(RuntimeServiceServer::new(service.clone()))
        .add_service(ImageServiceServer::new(service))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| fail(e.to_string()));
    let _ = std::fs::remove_file(socket);
    result
}

/// True once a server accepts connections on `socket`. Its file appears at bind(2), a
/// moment before listen(2), and a connection in between is refused: so readiness is a
/// successful connection, never the file's existence.
pub fn accepting(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

/// A gRPC channel to the CRI server on `socket` (any CRI server: ours or containerd's).
pub async fn connect(socket: impl Into<PathBuf>) -> Result<Channel, tonic::transport::Error> {
    let socket: PathBuf = socket.into();
    // The URI is required by the API but unused: the connector dials the socket.
    Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
}
