//! The gRPC probe: `grpc.health.v1.Health/Check` on the pod IP in plaintext, as the kubelet's
//! prober (pkg/probe/grpc) runs it: healthy only when the answer is SERVING; its failure
//! messages are the kubelet's, so `Unhealthy` events read the same.

use std::time::Duration;

use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Checks `service` ("" = the server as a whole) at `host:port` within `timeout`.
pub async fn check(host: &str, port: u16, service: &str, timeout: Duration) -> Result<(), String> {
    let addr = match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    };
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .and_then(|e| e.user_agent("kube-probe"))
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let unreachable = |detail: String| {
        format!("timeout: failed to connect service {addr:?} within {timeout:?}: {detail}")
    };
    let channel = tokio::time::timeout(timeout, endpoint.connect())
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(error_chain(&e)))?;
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    let answer = tokio::time::timeout(timeout, HealthClient::new(channel).check(request))
        .await
        .map_err(|_| format!("timeout: health rpc did not complete within {timeout:?}"))?;
    match answer {
        Ok(r) => match r.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!(
                "service unhealthy (responded with {:?})",
                other.as_str_name()
            )),
        },
        Err(s) if s.code() == tonic::Code::Unimplemented => Err(format!(
            "this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
            s.message()
        )),
        Err(s) if s.code() == tonic::Code::DeadlineExceeded => Err(format!(
            "timeout: health rpc did not complete within {timeout:?}"
        )),
        Err(s) => Err(format!(
            "error: health rpc probe failed: {:?}: {}",
            s.code(),
            s.message()
        )),
    }
}

/// A transport error with its causes ("transport error: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A real gRPC server for tests: tonic-health's Health service on 127.0.0.1:0 with the
/// server SERVING and "down" NOT_SERVING, or no service at all; it stops when the guard drops.
#[cfg(test)]
pub(crate) async fn test_server(with_health: bool) -> (u16, tokio_util::sync::DropGuard) {
    use tonic::transport::Server;
    use tonic_health::ServingStatus;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = tokio_util::sync::CancellationToken::new();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("down", ServingStatus::NotServing)
        .await;
    let mut builder = Server::builder();
    let router = match with_health {
        true => builder.add_service(health),
        // A server without the Health service answers Unimplemented.
        false => builder.add_optional_service(
            None::<
                tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>,
            >,
        ),
    };
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let cancelled = stop.clone().cancelled_owned();
    tokio::spawn(router.serve_with_incoming_shutdown(incoming, cancelled));
    (port, stop.drop_guard())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn serving_passes_and_everything_else_fails_with_the_kubelets_message() {
        let (port, _stop) = test_server(true).await;
        assert_eq!(check("127.0.0.1", port, "", TIMEOUT).await, Ok(()));
        let down = check("127.0.0.1", port, "down", TIMEOUT).await.unwrap_err();
        assert_eq!(down, "service unhealthy (responded with \"NOT_SERVING\")");
        let unknown = check("127.0.0.1", port, "nope", TIMEOUT).await.unwrap_err();
        assert!(
            unknown.starts_with("error: health rpc probe failed: NotFound"),
            "{unknown}"
        );
    }

    #[tokio::test]
    async fn a_server_without_the_health_service_or_without_a_listener_fails() {
        let (port, _stop) = test_server(false).await;
        let none = check("127.0.0.1", port, "", TIMEOUT).await.unwrap_err();
        assert!(
            none.starts_with("this server does not implement the grpc health protocol"),
            "{none}"
        );
        // A port nothing listens on: taken from the kernel, then released.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let refused = check("127.0.0.1", free, "", TIMEOUT).await.unwrap_err();
        assert!(
            refused.starts_with("timeout: failed to connect service \"127.0.0.1:"),
            "{refused}"
        );
    }
}
