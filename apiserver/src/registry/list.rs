//! List with label and field selectors and `limit`/`continue` paging.
//!
//! The continue token is opaque to clients: base64 of `{"rv": R, "start": "<last key>"}`.
//! Selectors filter after the read, so a page may scan more keys than it returns; it keeps
//! reading until it has `limit` matches or the keys run out, as Kubernetes' etcd3 store does.

use base64::Engine;
use minik8s_api::resource::ResourceInfo;
use minik8s_api::selector::{FieldSelector, LabelSelector};
use serde_json::{json, Value};

use super::{decode, subject, Registry};
use crate::status::ApiError;
use crate::storage::ListOptions;

/// One page of a list.
pub struct ListResult {
    pub items: Vec<Value>,
    pub revision: u64,
    pub continue_token: Option<String>,
}

/// Keys read per store call when selectors filter (bounded so one list never holds the
/// whole store twice).
const SCAN_CHUNK: usize = 500;

pub fn encode_continue(rv: u64, start: &str) -> String {
    let raw = json!({"rv": rv, "start": start}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes a continue token; a malformed one, or one for another prefix, is a 400 as in
/// Kubernetes (`invalid continue token`).
pub fn decode_continue(token: &str, prefix: &str) -> Result<(u64, String), ApiError> {
    let bad = |why: &str| ApiError::BadRequest(format!("invalid continue token: {why}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad("not base64"))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad("not JSON"))?;
    let rv = v["rv"].as_u64().ok_or_else(|| bad("no resource version"))?;
    let start = v["start"].as_str().ok_or_else(|| bad("no start key"))?;
    if !start.starts_with(prefix) {
        return Err(bad("the token belongs to another list"));
    }
    Ok((rv, start.to_string()))
}

pub struct ListQuery<'a> {
    pub labels: &'a LabelSelector,
    pub fields: &'a FieldSelector,
    pub limit: usize,
    pub continue_token: Option<&'a str>,
}

impl ListQuery<'_> {
    pub fn matches(&self, kind: &str, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches_object(kind, obj)
    }
}

impl Registry {
    pub async fn list(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        q: &ListQuery<'_>,
    ) -> Result<ListResult, ApiError> {
        let prefix = info.key_prefix_in(ns);
        let (token_rv, mut start) = match q.continue_token {
            Some(t) => {
                let (rv, start) = decode_continue(t, &prefix)?;
                (Some(rv), Some(start))
            }
            None => (None, None),
        };
        let filtering = !q.labels.is_empty() || !q.fields.is_empty();
        let mut items = Vec::new();
        let mut revision = None;
        loop {
            let want = if q.limit == 0 {
                0
            } else if filtering {
                SCAN_CHUNK.max(q.limit)
            } else {
                q.limit - items.len()
            };
            let page = self
                .store
                .list(ListOptions {
                    prefix: &prefix,
                    start_after: start.as_deref(),
                    limit: want,
                })
                .await
                .map_err(|e| ApiError::from_storage(e, subject(info, "")))?;
            revision.get_or_insert(page.revision);
            let mut last_key = None;
            let mut cut = false;
            for kv in &page.items {
                let obj = decode(kv)?;
                last_key = Some(kv.key.clone());
                if q.matches(info.kind, &obj) {
                    items.push(obj);
                    if q.limit > 0 && items.len() == q.limit {
                        cut = kv.key
                            != page.items.last().map(|k| k.key.clone()).unwrap_or_default()
                            || page.more;
                        break;
                    }
                }
            }
            let rv = token_rv.unwrap_or(revision.unwrap_or(0));
            if cut {
                let token = last_key.map(|k| encode_continue(rv, &k));
                return Ok(ListResult {
                    items,
                    revision: rv,
                    continue_token: token,
                });
            }
            if !page.more || page.items.is_empty() {
                return Ok(ListResult {
                    items,
                    revision: rv,
                    continue_token: None,
                });
            }
            start = last_key;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "/registry/pods/default/b");
        assert_eq!(
            decode_continue(&t, "/registry/pods/").unwrap(),
            (42, "/registry/pods/default/b".to_string())
        );
        assert!(decode_continue("garbage!", "/registry/pods/").is_err());
        assert!(decode_continue(&t, "/registry/services/").is_err());
    }
}
