//! `GET /containerLogs/{namespace}/{pod}/{container}`: the kubelet's log endpoint. The pod
//! must exist in the API and be bound to this node; the container comes from CRI (labels set
//! by the pod workers), the newest instance or, with `previous`, the one before it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::{header, StatusCode};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

use super::crilog::LogOptions;
use super::reader::{self, Source};
use super::AppState;
use crate::cri::{self, Cri, LABEL_CONTAINER_NAME, LABEL_POD_UID};

/// A plain-text error, as the kubelet writes them.
fn fail(code: StatusCode, msg: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

pub async fn container_logs(
    State(state): State<Arc<AppState>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let opts = match options(query.as_deref()) {
        Ok(o) => o,
        Err(msg) => return fail(StatusCode::BAD_REQUEST, msg),
    };
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &ns);
    let p = match api.get_opt(&pod).await {
        Ok(Some(p)) if bound_here(&p, &state.node) => p,
        Ok(_) => {
            return fail(
                StatusCode::NOT_FOUND,
                format!("pod {pod:?} does not exist\n"),
            )
        }
        Err(e) => {
            let msg = format!("get pod {ns}/{pod}: {e}");
            return fail(StatusCode::INTERNAL_SERVER_ERROR, msg);
        }
    };
    if !in_spec(&p, &container) {
        let msg = format!("container {container:?} not found in pod {pod:?}\n");
        return fail(StatusCode::NOT_FOUND, msg);
    }
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let mut rt = state.cri.clone();
    let found = match instance(&mut rt, &uid, &container, opts.previous).await {
        Ok(f) => f,
        Err(e) => return fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some(status) = found else {
        let msg = if opts.previous {
            format!("previous terminated container {container:?} in pod {pod:?} not found")
        } else {
            let reason = waiting_reason(&p, &container);
            format!("container {container:?} in pod {pod:?} is waiting to start: {reason}")
        };
        return fail(StatusCode::BAD_REQUEST, msg);
    };
    if status.log_path.is_empty() {
        let msg = format!("container {container:?} in pod {pod:?} has no log path");
        return fail(StatusCode::INTERNAL_SERVER_ERROR, msg);
    }
    respond(rt, status, opts)
}

/// Starts the reader task and returns the streaming body; the task ends when the client goes.
fn respond(rt: Cri, status: cri::types::ContainerStatus, opts: LogOptions) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let id = status.id.clone();
    let src = Source {
        path: status.log_path.into(),
        running: move || {
            let mut rt = rt.clone();
            let id = id.clone();
            async move {
                rt.container_status(&id).await.is_ok_and(|s| {
                    s.state == cri::types::ContainerState::ContainerRunning as i32
                        || s.state == cri::types::ContainerState::ContainerCreated as i32
                })
            }
        },
    };
    tokio::spawn(reader::stream(src, opts, tx));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, std::io::Error>(chunk), rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(body),
    )
        .into_response()
}

fn bound_here(p: &Pod, node: &str) -> bool {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
}

fn in_spec(p: &Pod, name: &str) -> bool {
    p.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|c| c.name == name)
            || s.init_containers.iter().flatten().any(|c| c.name == name)
    })
}

/// The waiting reason the pod's status reports for the container (ContainerCreating if none).
fn waiting_reason(p: &Pod, name: &str) -> String {
    let st = p.status.as_ref();
    st.into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .find(|c| c.name == name)
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .unwrap_or_else(|| "ContainerCreating".into())
}

/// The status of the newest instance of the container (or of the one before it).
async fn instance(
    rt: &mut Cri,
    uid: &str,
    name: &str,
    previous: bool,
) -> Result<Option<cri::types::ContainerStatus>, crate::Error> {
    let mut list: Vec<_> = rt
        .containers(Some(uid))
        .await?
        .into_iter()
        .filter(|c| {
            c.labels.get(LABEL_CONTAINER_NAME).map(String::as_str) == Some(name)
                && c.labels.get(LABEL_POD_UID).map(String::as_str) == Some(uid)
        })
        .collect();
    list.sort_by_key(|c| {
        let attempt = c.metadata.as_ref().map_or(0, |m| m.attempt);
        std::cmp::Reverse((attempt, c.created_at))
    });
    match list.get(usize::from(previous)) {
        Some(c) => Ok(Some(rt.container_status(&c.id).await?)),
        None => Ok(None),
    }
}

/// Parses the kubelet's log query parameters.
pub fn options(query: Option<&str>) -> Result<LogOptions, String> {
    let uri: http::Uri = format!("/?{}", query.unwrap_or(""))
        .parse()
        .map_err(|e| format!("malformed query: {e}"))?;
    let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map_err(|e| format!("malformed query: {e}"))?
        .0;
    let mut o = LogOptions::default();
    for (k, v) in &pairs {
        match k.as_str() {
            "follow" => o.follow = go_bool(k, v)?,
            "previous" => o.previous = go_bool(k, v)?,
            "timestamps" => o.timestamps = go_bool(k, v)?,
            "tailLines" => o.tail_lines = Some(non_negative(k, v)? as usize),
            "limitBytes" => o.limit_bytes = Some(positive(k, v)? as usize),
            "sinceSeconds" => {
                let secs = positive(k, v)?;
                o.since = Some(Utc::now() - chrono::Duration::seconds(secs));
            }
            "sinceTime" => {
                let t = DateTime::parse_from_rfc3339(v)
                    .map_err(|e| format!("sinceTime {v:?} is not RFC3339: {e}"))?;
                o.since = Some(t.with_timezone(&Utc));
            }
            _ => {}
        }
    }
    Ok(o)
}

/// Go's strconv.ParseBool, which the kubelet's query decoding uses.
fn go_bool(k: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" | "" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{k}: invalid boolean {v:?}")),
    }
}

fn non_negative(k: &str, v: &str) -> Result<i64, String> {
    match v.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(format!("{k}: must be a non-negative integer, not {v:?}")),
    }
}

fn positive(k: &str, v: &str) -> Result<i64, String> {
    match v.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{k}: must be a positive integer, not {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_options() {
        let o = options(Some("follow=true&tailLines=3&timestamps=1&limitBytes=9")).unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(3));
        assert_eq!(o.limit_bytes, Some(9));
        let o = options(Some("sinceSeconds=60")).unwrap();
        assert!(o.since.unwrap() < Utc::now());
        assert!(options(Some("tailLines=-1")).is_err());
        assert!(options(Some("follow=yes")).is_err());
        assert!(options(Some("limitBytes=0")).is_err());
        assert!(options(None).unwrap().tail_lines.is_none());
    }
}
