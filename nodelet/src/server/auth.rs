//! Bearer-token authentication of the nodelet's server, delegated to the API server with a
//! TokenReview (the kubelet's `--authentication-token-webhook`). Positive answers are cached
//! for a while (the kubelet's authenticationTokenWebhookCacheTTL, 2 minutes by default;
//! shorter here); negative answers are not cached, so a new token works at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};

/// How long an accepted token is trusted without asking again.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Most tokens remembered; the cache is cleared when full (a handful is normal).
const CACHE_MAX: usize = 256;

/// Who a request comes from, when authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    User(String),
    /// No bearer token in the request.
    Missing,
    /// The API server did not accept the token.
    Rejected,
    /// The API server could not be asked.
    Failed(String),
}

pub struct Authenticator {
    client: kube::Client,
    cache: Mutex<HashMap<String, (String, Instant)>>,
}

/// The bearer token of a request's Authorization header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl Authenticator {
    pub fn new(client: kube::Client) -> Authenticator {
        Authenticator {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn authenticate(&self, headers: &HeaderMap) -> Outcome {
        let Some(token) = bearer(headers) else {
            return Outcome::Missing;
        };
        if let Some((user, at)) = self.cache.lock().expect("cache lock").get(token) {
            if at.elapsed() < CACHE_TTL {
                return Outcome::User(user.clone());
            }
        }
        let outcome = self.review(token).await;
        if let Outcome::User(user) = &outcome {
            let mut cache = self.cache.lock().expect("cache lock");
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(token.to_string(), (user.clone(), Instant::now()));
        }
        outcome
    }

    async fn review(&self, token: &str) -> Outcome {
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: None,
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &review).await {
            Ok(r) => {
                let status = r.status.unwrap_or_default();
                match (status.authenticated, status.user.and_then(|u| u.username)) {
                    (Some(true), Some(user)) => Outcome::User(user),
                    _ => Outcome::Rejected,
                }
            }
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(http::header::AUTHORIZATION, "bearer  xyz ".parse().unwrap());
        assert_eq!(bearer(&h), Some("xyz"));
        h.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
