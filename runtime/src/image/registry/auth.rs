//! Registry authentication as Docker Hub does it (distribution's "Token Authentication
//! Specification"): a 401 carries `WWW-Authenticate: Bearer realm=…,service=…,scope=…`; the
//! client asks the realm for a token (with basic credentials when it has them) and retries with
//! `Authorization: Bearer <token>`. A `Basic realm=…` challenge is answered with the credentials.

use std::collections::HashMap;

use base64::Engine as _;

use super::RegistryAuth;
use crate::image::error::ImageError;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    Basic,
}

/// Parses the first challenge we can answer from a `WWW-Authenticate` value (RFC 7235:
/// `scheme param="value", param=token`; values may hold commas inside quotes).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        "basic" => Some(Challenge::Basic),
        _ => None,
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars
                .by_ref()
                .take_while(|c| *c != ',')
                .collect::<String>()
                .trim()
                .to_string();
        }
        out.insert(key, value);
    }
}

/// `Basic <base64(user:password)>` when `auth` has a username.
pub fn basic_header(auth: Option<&RegistryAuth>) -> Option<String> {
    let auth = auth?;
    let user = auth.username.as_deref()?;
    let pass = auth.password.as_deref().unwrap_or("");
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    ))
}

/// Asks the token server `realm` for a pull token for `scope`.
pub async fn fetch_token(
    http: &reqwest::Client,
    realm: &str,
    service: Option<&str>,
    scope: &str,
    auth: Option<&RegistryAuth>,
) -> Result<String, ImageError> {
    let failed = |message: String| ImageError::TokenRequest {
        realm: realm.to_string(),
        message,
    };
    let mut query = vec![("scope", scope)];
    if let Some(s) = service {
        query.push(("service", s));
    }
    let mut req = http.get(realm).query(&query);
    if let Some(basic) = basic_header(auth) {
        req = req.header(reqwest::header::AUTHORIZATION, basic);
    }
    let resp = req.send().await.map_err(|e| failed(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(failed(format!("status {status}: {}", body.trim())));
    }
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        token: Option<String>,
        access_token: Option<String>,
    }
    let body: TokenResponse = resp
        .json()
        .await
        .map_err(|e| failed(format!("bad token response: {e}")))?;
    body.token
        .or(body.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| failed("response has neither token nor access_token".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_bearer_challenge_parses() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        assert_eq!(
            parse_challenge(h),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
    }

    #[test]
    fn quoted_commas_unquoted_values_and_basic() {
        let h = r#"bearer realm=http://127.0.0.1:1/t, scope="repository:a/b:pull,push",error="insufficient_scope""#;
        let Some(Challenge::Bearer {
            realm,
            service,
            scope,
        }) = parse_challenge(h)
        else {
            panic!("bearer")
        };
        assert_eq!(realm, "http://127.0.0.1:1/t");
        assert_eq!(service, None);
        assert_eq!(scope.as_deref(), Some("repository:a/b:pull,push"));
        assert_eq!(
            parse_challenge(r#"Basic realm="registry""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge("Bearer service=x"),
            None,
            "bearer without realm"
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn basic_header_encodes_user_and_password() {
        let auth = RegistryAuth {
            username: Some("u".into()),
            password: Some("p".into()),
            ..Default::default()
        };
        assert_eq!(basic_header(Some(&auth)).as_deref(), Some("Basic dTpw"));
        assert_eq!(basic_header(Some(&RegistryAuth::default())), None);
    }
}
