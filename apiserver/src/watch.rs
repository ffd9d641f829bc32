//! Watch: newline-delimited `{"type","object"}` events from a resourceVersion on.
//!
//! Semantics follow Kubernetes' watch cache: without a resourceVersion (or with "0") the
//! current objects come first as synthetic ADDED events; selectors turn an object that
//! stops matching into DELETED and one that starts matching into ADDED; a compacted
//! resourceVersion is reported, once the stream has started, as an ERROR event carrying a
//! 410 Expired Status (what client-go and kube-rs' watcher look for to relist); BOOKMARK
//! events carry progress when `allowWatchBookmarks` is set.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, StatusCode};
use minik8s_api::resource::ResourceInfo;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::registry::list::ListQuery;
use crate::registry::{decode, set_resource_version, Registry};
use crate::request::Query;
use crate::status::ApiError;
use crate::storage::{Event, KeyValue};
use crate::table::{self, IncludeObject};

/// Kubernetes picks a random watch timeout between 30 and 60 minutes; one fixed value
/// is enough here, since clients re-watch from their last resourceVersion anyway.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often progress bookmarks go out when asked for.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);
/// Lines buffered per watcher before the writer waits for the client.
const CHANNEL_DEPTH: usize = 256;

/// What one watch request asks for.
pub struct WatchRequest {
    pub info: &'static ResourceInfo,
    /// Events carry one-row Tables instead of objects (`kubectl get -w`).
    pub table: Option<IncludeObject>,
    pub namespace: Option<String>,
    /// A watch on one object's path (`.../pods/<name>?watch=1`).
    pub name: Option<String>,
    pub query: Query,
}

impl WatchRequest {
    fn matches(&self, obj: &Value) -> bool {
        let name_ok = self
            .name
            .as_deref()
            .is_none_or(|n| obj.pointer("/metadata/name").and_then(Value::as_str) == Some(n));
        let q = ListQuery {
            labels: &self.query.label_selector,
            fields: &self.query.field_selector,
            limit: 0,
            continue_token: None,
        };
        name_ok && q.matches(self.info.kind, obj)
    }
}

/// Encodes events for one stream; with tables, only the first carries column definitions,
/// as kube-apiserver does.
struct Encoder {
    table: Option<IncludeObject>,
    plural: &'static str,
    headers_sent: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, object: &Value) -> Bytes {
        let Some(include) = self.table else {
            return line(kind, object);
        };
        let rv = object.pointer("/metadata/resourceVersion").cloned();
        let meta = rv.map(|rv| json!({"resourceVersion": rv}));
        let mut t = table::to_table(self.plural, std::slice::from_ref(object), include, meta);
        if self.headers_sent {
            table::without_headers(&mut t);
        }
        self.headers_sent = true;
        line(kind, &t)
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark(info: &ResourceInfo, rev: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta}),
    )
}

/// Starts a watch; errors found before streaming (a malformed resourceVersion) are
/// returned as ordinary error responses.
pub fn start(
    registry: Arc<Registry>,
    req: WatchRequest,
    shutdown: CancellationToken,
) -> Result<Response, ApiError> {
    let from = match req.query.resource_version.as_deref() {
        None | Some("0") => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "invalid resourceVersion {rv:?}: expected an integer"
            ))
        })?),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    tokio::spawn(async move {
        let timeout = req
            .query
            .timeout_seconds
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TIMEOUT);
        tokio::select! {
            _ = run(&registry, &req, from, &tx) => {}
            _ = tokio::time::sleep(timeout) => {}
            _ = shutdown.cancelled() => {}
            _ = tx.closed() => {}
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Sends the initial objects (when no resourceVersion was given) and then live events
/// until the store's stream ends or the client goes away.
async fn run(registry: &Registry, req: &WatchRequest, from: Option<u64>, tx: &mpsc::Sender<Bytes>) {
    let ns = req.namespace.as_deref();
    let mut enc = Encoder {
        table: req.table,
        plural: req.info.plural,
        headers_sent: false,
    };
    let start = match from {
        Some(rv) => rv,
        None => {
            let q = ListQuery {
                labels: &req.query.label_selector,
                fields: &req.query.field_selector,
                limit: 0,
                continue_token: None,
            };
            let listed = match registry.list(req.info, ns, &q).await {
                Ok(l) => l,
                Err(e) => return send_error(tx, &e).await,
            };
            for obj in listed.items.iter().filter(|o| req.matches(o)) {
                if tx.send(enc.event("ADDED", obj)).await.is_err() {
                    return;
                }
            }
            if req.query.send_initial_events {
                let _ = tx.send(bookmark(req.info, listed.revision, true)).await;
            }
            listed.revision
        }
    };
    let prefix = req.info.key_prefix_in(ns);
    let mut events = match registry.store.watch(&prefix, start).await {
        Ok(s) => s,
        Err(e) => return send_error(tx, &ApiError::from_storage(e, Default::default())).await,
    };
    let mut seen = start;
    let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
    ticker.tick().await;
    let mut bookmarked = start;
    loop {
        tokio::select! {
            ev = events.next() => {
                let ev = match ev {
                    None => return,
                    Some(Err(e)) => {
                        return send_error(tx, &ApiError::from_storage(e, Default::default())).await
                    }
                    Some(Ok(ev)) => ev,
                };
                seen = ev.revision();
                if let Some(out) = translate(req, &ev, &mut enc) {
                    if tx.send(out).await.is_err() {
                        return;
                    }
                }
            }
            _ = ticker.tick(), if req.query.allow_watch_bookmarks => {
                if seen > bookmarked {
                    bookmarked = seen;
                    if tx.send(bookmark(req.info, seen, false)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn decoded(kv: &KeyValue) -> Option<Value> {
    decode(kv).ok()
}

/// Turns a store event into the watch event this watcher sees, applying selectors.
fn translate(req: &WatchRequest, ev: &Event, enc: &mut Encoder) -> Option<Bytes> {
    match ev {
        Event::Put { kv, prev } => {
            let new = decoded(kv)?;
            let now = req.matches(&new);
            let old = prev.as_ref().and_then(decoded).filter(|o| req.matches(o));
            match (old, now) {
                (Some(_), true) => Some(enc.event("MODIFIED", &new)),
                (None, true) => Some(enc.event("ADDED", &new)),
                // Like Kubernetes' watch cache: the last state that matched, at the
                // revision where it stopped matching.
                (Some(mut old), false) => {
                    set_resource_version(&mut old, kv.mod_revision);
                    Some(enc.event("DELETED", &old))
                }
                (None, false) => None,
            }
        }
        Event::Delete { prev, revision } => {
            let mut old = decoded(prev)?;
            if !req.matches(&old) {
                return None;
            }
            set_resource_version(&mut old, *revision);
            Some(enc.event("DELETED", &old))
        }
    }
}

async fn send_error(tx: &mpsc::Sender<Bytes>, err: &ApiError) {
    let _ = tx.send(line("ERROR", &err.to_status())).await;
}
