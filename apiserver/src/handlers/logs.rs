//! `GET pods/{name}/log`: kube-apiserver's LogREST. The container is checked against the pod
//! spec, the pod's node is looked up for its address (InternalIP, else Hostname) and its
//! kubelet port (status.daemonEndpoints.kubeletEndpoint.Port), and the request is proxied to
//! that node's `/containerLogs/{ns}/{pod}/{container}`; the body streams back as it comes, so
//! `follow` works and ends when either side goes away.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::objects::Ctx;
use crate::status::{ApiError, Cause};

/// The default kubelet port when a node reports none.
const DEFAULT_KUBELET_PORT: u64 = 10250;
/// How long connecting to a node (TCP and TLS) may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The query parameters of PodLogOptions the kubelet understands, forwarded as given.
const FORWARDED: [&str; 7] = [
    "follow",
    "previous",
    "timestamps",
    "sinceSeconds",
    "sinceTime",
    "tailLines",
    "limitBytes",
];

pub async fn serve(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let name = ctx.rp.name.clone().unwrap_or_default();
    let pod = ctx.state.registry.get(ctx.rp.info, ctx.ns(), &name).await?;
    let pairs = crate::request::Query::raw_pairs(ctx.raw_query)?;
    validate(&name, &pairs)?;
    let asked = pairs
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.as_str());
    let container = container(&pod, &name, asked)?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        // kube-apiserver's exec/attach/portforward wording for a pod without a host. (Its
        // LogLocation answers an empty body instead; an error tells a user more.)
        return Err(ApiError::BadRequest(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let (host, port) = node_endpoint(&ctx, node).await?;
    let query: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| FORWARDED.contains(&k.as_str()))
        .collect();
    let path = format!(
        "/containerLogs/{}/{}/{}",
        ctx.ns().unwrap_or("default"),
        name,
        container
    );
    let token = ctx.state.tokens.first().cloned().unwrap_or_default();
    proxy(node, &host, port, &path, &query, &token, &name).await
}

/// PodLogOptions validation (Kubernetes' ValidatePodLogOptions).
fn validate(name: &str, pairs: &[(String, String)]) -> Result<(), ApiError> {
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut causes = Vec::new();
    let mut check = |field: &str, min: i64, msg: &str| {
        if let Some(v) = get(field) {
            match v.parse::<i64>() {
                Ok(n) if n >= min => {}
                Ok(n) => causes.push(cause(field, format!("Invalid value: {n}: {msg}"))),
                Err(_) => causes.push(cause(field, format!("Invalid value: {v:?}: {msg}"))),
            }
        }
    };
    check("tailLines", 0, "must be greater than or equal to 0");
    check("limitBytes", 1, "must be greater than 0");
    check("sinceSeconds", 1, "must be greater than 0");
    if get("sinceSeconds").is_some() && get("sinceTime").is_some() {
        causes.push(cause(
            "",
            "at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
        ));
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        group: String::new(),
        subject_kind: "PodLogOptions".into(),
        name: name.into(),
        causes,
    })
}

fn cause(field: &str, message: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message,
        field: field.into(),
    }
}

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect()
}

/// The container to read: the one asked for (which must exist), else the only one
/// (kube-apiserver's validateContainer, with its messages).
fn container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    let containers = names(pod, "containers");
    let inits = names(pod, "initContainers");
    let ephemeral = names(pod, "ephemeralContainers");
    match asked.filter(|c| !c.is_empty()) {
        Some(c)
            if containers
                .iter()
                .chain(&inits)
                .chain(&ephemeral)
                .any(|n| n == c) =>
        {
            Ok(c.to_string())
        }
        Some(c) => Err(ApiError::BadRequest(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None if containers.is_empty() => Err(ApiError::BadRequest(format!(
            "a container name must be specified for pod {name}"
        ))),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !inits.is_empty() {
                msg += &format!(" or one of the init containers: [{}]", inits.join(" "));
            }
            Err(ApiError::BadRequest(msg))
        }
    }
}

/// The node's address and kubelet port from its status.
async fn node_endpoint(ctx: &Ctx<'_>, node: &str) -> Result<(String, u64), ApiError> {
    let info = minik8s_api::resource::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::Internal("the nodes resource is not registered".into()))?;
    let obj = ctx.state.registry.get(info, None, node).await?;
    let addresses = obj
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let address = |t: &str| {
        addresses
            .iter()
            .find(|a| a["type"] == t)
            .and_then(|a| a["address"].as_str())
            .map(String::from)
    };
    let host = address("InternalIP")
        .or_else(|| address("Hostname"))
        .ok_or_else(|| {
            ApiError::ServiceUnavailable(format!(
                "node {node:?} reports no InternalIP or Hostname address to reach it at"
            ))
        })?;
    let port = obj
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok((host, port))
}

fn text_response(code: StatusCode, body: Body) -> Response {
    let mut r = (code, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// Sends the request to the node and streams its answer back; errors become Status.
async fn proxy(
    node: &str,
    host: &str,
    port: u64,
    path: &str,
    query: &[(String, String)],
    token: &str,
    pod: &str,
) -> Result<Response, ApiError> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut uri = path.to_string();
    if !query.is_empty() {
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        uri = format!("{uri}?{}", q.join("&"));
    }
    let unreachable = |e: String| {
        ApiError::Internal(format!(
            "cannot reach the node agent of node {node:?} at https://{authority}: {e}"
        ))
    };
    let mut sender = connect(host, &authority)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let req = http::Request::get(uri)
        .header(header::HOST, &authority)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::Internal(format!("build the node request: {e}")))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(text_response(StatusCode::OK, Body::new(resp.into_body())));
    }
    // Kubernetes' GenericHttpResponseChecker: the node's text becomes the Status message.
    let body = resp.into_body().collect().await.map(|b| b.to_bytes());
    let text = body
        .map(|b| {
            String::from_utf8_lossy(&b[..b.len().min(4096)])
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    Err(match status {
        StatusCode::BAD_REQUEST => ApiError::BadRequest(text),
        StatusCode::NOT_FOUND => ApiError::Other {
            code: 404,
            reason: "NotFound",
            message: format!("{text} ( pods/log {pod})"),
        },
        StatusCode::UNAUTHORIZED => ApiError::Other {
            code: 401,
            reason: "Unauthorized",
            message: format!(
                "the node agent of node {node:?} refused the API server's token: {text}"
            ),
        },
        s => ApiError::Other {
            code: s.as_u16(),
            reason: "InternalError",
            message: format!("the node agent of node {node:?} answered {s}: {text}"),
        },
    })
}

/// Percent-encodes a query value (sinceTime carries ':' and '+').
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What failed while connecting to a node.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("bad server name {0:?}")]
    Name(String),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
}

/// An HTTP/1.1 connection over TLS to the node. The node's serving certificate is not
/// verified: kube-apiserver does the same unless --kubelet-certificate-authority is set, and
/// nodelets make self-signed certificates (the bearer token is what the node checks).
async fn connect(
    host: &str,
    authority: &str,
) -> Result<
    hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    ConnectError,
> {
    let fut = async {
        let tcp = tokio::net::TcpStream::connect(authority).await?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| ConnectError::Name(host.into()))?;
        let tls = tokio_rustls::TlsConnector::from(client_config()?)
            .connect(name, tcp)
            .await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "node connection ended");
            }
        });
        Ok(sender)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .map_err(|_| ConnectError::Timeout(CONNECT_TIMEOUT))?
}

fn client_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    Ok(Arc::new(minik8s_api::tls::unverified_client_config()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_choice_follows_kube_apiserver() {
        let one = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(container(&one, "p", None).unwrap(), "a");
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "i"}]}});
        assert_eq!(
            container(&two, "p", None).unwrap_err().to_string(),
            "a container name must be specified for pod p, choose one of: [a b] \
             or one of the init containers: [i]"
        );
        assert_eq!(container(&two, "p", Some("i")).unwrap(), "i");
        assert_eq!(
            container(&two, "p", Some("x")).unwrap_err().to_string(),
            "container x is not valid for pod p"
        );
    }

    #[test]
    fn log_options_are_validated() {
        let p = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(validate("p", &p("tailLines", "0")).is_ok());
        assert!(validate("p", &p("tailLines", "-1")).is_err());
        assert!(validate("p", &p("limitBytes", "0")).is_err());
        let mut both = p("sinceSeconds", "5");
        both.extend(p("sinceTime", "2024-01-01T00:00:00Z"));
        assert!(validate("p", &both).is_err());
        assert_eq!(
            encode("2024-01-01T00:00:00+01:00"),
            "2024-01-01T00%3A00%3A00%2B01%3A00"
        );
    }
}
