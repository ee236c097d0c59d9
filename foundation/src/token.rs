//! Bearer tokens of the authenticated APIs, held only as their SHA-256 digests and compared
//! in constant time, so neither the length nor a prefix of a token leaks through timing and
//! `Debug` shows nothing of it.

use std::fmt;

use crate::secret::{Secret, digests_equal, sha256};

/// A bearer token (held as its digest).
#[derive(Clone)]
pub struct BearerToken(Vec<u8>);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    /// A token; `None` if it is empty (an empty token file must not open an API).
    pub fn new(token: &str) -> Option<Self> {
        let t = token.trim();
        (!t.is_empty()).then(|| Self(sha256(t.as_bytes())))
    }

    /// The token a secret holds.
    pub fn from_secret(secret: &Secret) -> Option<Self> {
        Self::new(secret.expose())
    }

    /// A token whose SHA-256 is `hex` (a configuration that stores only the hash).
    pub fn from_sha256_hex(hex_digest: &str) -> Option<Self> {
        hex::decode(hex_digest.trim())
            .ok()
            .filter(|d| d.len() == 32)
            .map(Self)
    }

    /// Whether `presented` is this token.
    pub fn matches(&self, presented: &str) -> bool {
        digests_equal(&self.0, &sha256(presented.as_bytes()))
    }

    /// Whether an `Authorization` header value is `Bearer <this token>` (scheme
    /// case-insensitive).
    pub fn authorizes_header(&self, authorization: Option<&str>) -> bool {
        authorization
            .and_then(|v| credentials(v, "Bearer"))
            .is_some_and(|t| self.matches(t))
    }
}

/// The credentials of an `Authorization: <scheme> <credentials>` value, if the scheme
/// matches (case-insensitively).
pub fn credentials<'v>(authorization: &'v str, scheme: &str) -> Option<&'v str> {
    let (s, rest) = authorization.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest.trim())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bearer_tokens_match_exactly() {
        let t = BearerToken::new("s3cret-token\n").unwrap();
        assert!(t.authorizes_header(Some("Bearer s3cret-token")));
        assert!(t.authorizes_header(Some("bearer s3cret-token")));
        assert!(!t.authorizes_header(Some("Bearer s3cret-toke")));
        assert!(!t.authorizes_header(Some("Basic s3cret-token")));
        assert!(!t.authorizes_header(None));
        assert!(BearerToken::new("  ").is_none());
        assert_eq!(format!("{t:?}"), "BearerToken(..)");
    }

    #[test]
    fn tokens_of_any_length_are_refused_without_panicking() {
        let t = BearerToken::new("s3cret-token").unwrap();
        let long = "x".repeat(64 * 1024);
        for presented in ["", "s", "s3cret-token ", "s3cret-tokens", long.as_str()] {
            assert!(!t.matches(presented), "{}", presented.len());
        }
        assert!(t.matches("s3cret-token"));
        let hashed = BearerToken::from_sha256_hex(&hex::encode(sha256(b"s3cret-token"))).unwrap();
        assert!(hashed.matches("s3cret-token"));
        assert!(BearerToken::from_sha256_hex("abcd").is_none());
    }
}
