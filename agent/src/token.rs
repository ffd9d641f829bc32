//! The join token, in k3s' format: `K10<sha256 of the CA bundle, hex>::<user>:<secret>`.
//!
//! The hash pins the cluster CA: an agent fetches the CA from the server without verifying
//! it (it has no trust anchor yet), then accepts it only if its sha256 matches the token. The
//! secret is the bearer token the agent then authenticates with. A plain secret (no `K10`
//! prefix) is accepted too, as k3s does, but then the CA is trusted on first use.

use sha2::{Digest, Sha256};

/// The prefix of a full token ("K10" in k3s: version 1 token, format 0).
const PREFIX: &str = "K10";
/// The user name a node token carries (k3s: `server:` for server tokens, `node:` for agents).
pub const NODE_USER: &str = "node";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the join token is empty")]
    Empty,
    #[error("malformed join token: {0} (expected K10<sha256 hex>::node:<secret>)")]
    Malformed(&'static str),
}

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Lower-case hex sha256 of the CA bundle; None for a plain (unpinned) token.
    pub ca_hash: Option<String>,
    /// The bearer secret.
    pub secret: String,
}

impl JoinToken {
    /// Parses a full `K10…::user:secret` token or a plain secret.
    pub fn parse(text: &str) -> Result<JoinToken, TokenError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TokenError::Empty);
        }
        let Some(rest) = text.strip_prefix(PREFIX) else {
            return Ok(JoinToken {
                ca_hash: None,
                secret: text.to_string(),
            });
        };
        let (hash, creds) = rest
            .split_once("::")
            .ok_or(TokenError::Malformed("no '::' after the CA hash"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::Malformed("the CA hash is not 64 hex digits"));
        }
        // k3s: `user:password`; a bare password after `::` is taken as the secret too.
        let secret = creds.split_once(':').map_or(creds, |(_, s)| s);
        if secret.is_empty() {
            return Err(TokenError::Malformed("the secret is empty"));
        }
        Ok(JoinToken {
            ca_hash: Some(hash.to_ascii_lowercase()),
            secret: secret.to_string(),
        })
    }

    /// The full token for a CA bundle and a node secret.
    pub fn format(ca_pem: &[u8], secret: &str) -> String {
        format!("{PREFIX}{}::{NODE_USER}:{secret}", ca_hash(ca_pem))
    }
}

/// Lower-case hex sha256 of the CA bundle exactly as `/cacerts` serves it.
pub fn ca_hash(ca_pem: &[u8]) -> String {
    Sha256::digest(ca_pem)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_token_round_trips() {
        let pem = b"-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n";
        let t = JoinToken::format(pem, "s3cret");
        assert!(t.starts_with("K10"));
        assert!(t.ends_with("::node:s3cret"));
        let parsed = JoinToken::parse(&t).unwrap();
        assert_eq!(parsed.ca_hash.as_deref(), Some(ca_hash(pem).as_str()));
        assert_eq!(parsed.secret, "s3cret");
    }

    #[test]
    fn known_hash() {
        // sha256("") is a fixed vector.
        assert_eq!(
            ca_hash(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn plain_secret_is_unpinned() {
        let t = JoinToken::parse(" abcdef \n").unwrap();
        assert_eq!(t.ca_hash, None);
        assert_eq!(t.secret, "abcdef");
    }

    #[test]
    fn malformed_tokens() {
        assert_eq!(JoinToken::parse(""), Err(TokenError::Empty));
        assert!(matches!(
            JoinToken::parse("K10abc::node:x"),
            Err(TokenError::Malformed(_))
        ));
        let hash = "a".repeat(64);
        assert!(matches!(
            JoinToken::parse(&format!("K10{hash}node:x")),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            JoinToken::parse(&format!("K10{hash}::node:")),
            Err(TokenError::Malformed(_))
        ));
        let upper = "A".repeat(64);
        let t = JoinToken::parse(&format!("K10{upper}::node:x")).unwrap();
        assert_eq!(t.ca_hash, Some(hash));
    }
}
