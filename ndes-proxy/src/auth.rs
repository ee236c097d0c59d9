//! Credentials of the authenticated pages (`/admin/v1/...`, `/certsrv/mscep_admin/`): bearer
//! tokens and HTTP Basic users, read from files named in the configuration.
//!
//! Only SHA-256 digests are kept in memory and compared with `CRYPTO_memcmp`, so neither the
//! length nor the prefix of a secret leaks through timing, and `Debug` shows no secret.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use openssl::hash::{MessageDigest, hash};

fn digest(bytes: &[u8]) -> Vec<u8> {
    // SHA-256 cannot fail for in-memory input short of an allocation failure; an empty digest
    // then matches nothing (memcmp of different lengths is false), so this fails closed.
    hash(MessageDigest::sha256(), bytes)
        .map(|d| d.to_vec())
        .unwrap_or_default()
}

/// Two SHA-256 digests, compared with `CRYPTO_memcmp` (reliability P29); anything else is
/// unequal (an empty digest from a failed hash matches nothing; `memcmp::eq` would panic on
/// different lengths).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    policy_module::secret::digests_equal(a, b)
}

/// A bearer token (held as its digest).
#[derive(Clone)]
pub struct BearerToken(Vec<u8>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    /// A token; `None` if it is empty (an empty token file must not open the API).
    pub fn new(token: &str) -> Option<Self> {
        let t = token.trim();
        (!t.is_empty()).then(|| Self(digest(t.as_bytes())))
    }

    /// Whether `presented` is this token.
    pub fn matches(&self, presented: &str) -> bool {
        ct_eq(&self.0, &digest(presented.as_bytes()))
    }

    /// Whether the request carries `Authorization: Bearer <this token>`.
    pub fn authorizes(&self, headers: &HeaderMap) -> bool {
        bearer(headers).is_some_and(|t| self.matches(t))
    }
}

/// HTTP Basic users and their passwords (held as digests).
#[derive(Clone, Default)]
pub struct BasicUsers(Vec<(String, Vec<u8>)>);

impl std::fmt::Debug for BasicUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(u, _)| u))
            .finish()
    }
}

impl BasicUsers {
    /// Parse `user:password` lines (blank lines and `#` comments skipped). `Err` names the
    /// first bad line by number, never its content.
    pub fn parse(text: &str) -> Result<Self, usize> {
        let mut users = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                    users.push((user.to_owned(), digest(password.as_bytes())));
                }
                _ => return Err(i + 1),
            }
        }
        Ok(Self(users))
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The user name if `Authorization: Basic` carries valid credentials. Every entry is
    /// compared, so the time does not depend on which user matched.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<String> {
        let encoded = authorization(headers, "Basic")?;
        let decoded = B64.decode(encoded.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        let presented = digest(password.as_bytes());
        let mut found = None;
        for (name, pw) in &self.0 {
            let user_ok = ct_eq(&digest(name.as_bytes()), &digest(user.as_bytes()));
            if user_ok & ct_eq(pw, &presented) {
                found = Some(name.clone());
            }
        }
        found
    }
}

/// The credentials of `Authorization: <scheme> <credentials>` (scheme case-insensitive).
fn authorization<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest.trim())
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    authorization(headers, "Bearer")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn bearer_tokens_match_exactly() {
        let t = BearerToken::new("s3cret-token\n").unwrap();
        assert!(t.authorizes(&with_auth("Bearer s3cret-token")));
        assert!(t.authorizes(&with_auth("bearer s3cret-token")));
        assert!(!t.authorizes(&with_auth("Bearer s3cret-toke")));
        assert!(!t.authorizes(&with_auth("Basic s3cret-token")));
        assert!(!t.authorizes(&HeaderMap::new()));
        assert!(BearerToken::new("  ").is_none());
        assert_eq!(format!("{t:?}"), "BearerToken(..)");
    }

    #[test]
    fn only_digests_are_held_and_compared() {
        let t = BearerToken::new("s3cret-token").unwrap();
        assert_eq!(t.0, digest(b"s3cret-token"));
        assert_eq!(t.0.len(), 32);
        let users = BasicUsers::parse("bob:hunter2\n").unwrap();
        assert_eq!(users.0[0].1, digest(b"hunter2"));
        assert!(!ct_eq(b"", b""));
        assert!(!ct_eq(&t.0, &t.0[..31]));
    }

    #[test]
    fn tokens_and_passwords_of_any_length_are_refused_without_panicking() {
        let t = BearerToken::new("s3cret-token").unwrap();
        let users = BasicUsers::parse("bob:hunter2\n").unwrap();
        let long = "x".repeat(64 * 1024);
        for presented in ["", "s", "s3cret-token ", "s3cret-tokens", long.as_str()] {
            assert!(!t.matches(presented), "{}", presented.len());
            let basic = with_auth(&format!("Basic {}", B64.encode(format!("bob:{presented}"))));
            assert_eq!(users.authenticate(&basic), None, "{}", presented.len());
        }
        assert!(t.matches("s3cret-token"));
    }

    #[test]
    fn basic_users_authenticate_and_never_show_passwords() {
        let users = BasicUsers::parse("# admins\nalice:pa:ss\n\nbob:hunter2\n").unwrap();
        let basic = |s: &str| with_auth(&format!("Basic {}", B64.encode(s)));
        assert_eq!(
            users.authenticate(&basic("alice:pa:ss")).as_deref(),
            Some("alice")
        );
        assert_eq!(
            users.authenticate(&basic("bob:hunter2")).as_deref(),
            Some("bob")
        );
        assert_eq!(users.authenticate(&basic("bob:hunter3")), None);
        assert_eq!(users.authenticate(&basic("carol:hunter2")), None);
        assert_eq!(users.authenticate(&with_auth("Basic !!!")), None);
        assert!(!format!("{users:?}").contains("hunter2"));
        assert_eq!(BasicUsers::parse("ok:1\nnocolon\n").err(), Some(2));
    }
}
