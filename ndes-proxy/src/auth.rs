//! Credentials of the authenticated pages (`/admin/v1/...`, `/certsrv/mscep_admin/`): bearer
//! tokens (the foundation's [`BearerToken`]) and HTTP Basic users, read from files named in the
//! configuration.
//!
//! Only SHA-256 digests are kept in memory and compared with `CRYPTO_memcmp`, so neither the
//! length nor the prefix of a secret leaks through timing, and `Debug` shows no secret.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
pub use foundation::BearerToken;
use foundation::http::authorization;
use foundation::secret::{digests_equal as ct_eq, sha256 as digest};

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::{HeaderValue, header};

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
        let users = BasicUsers::parse("bob:hunter2\n").unwrap();
        assert_eq!(users.0[0].1, digest(b"hunter2"));
        assert!(!ct_eq(b"", b""));
        let d = digest(b"hunter2");
        assert!(!ct_eq(&d, &d[..31]));
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
