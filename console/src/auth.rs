//! Who may use the console: configured credentials (an admin token, a read-only token, users
//! with PBKDF2 password hashes), sessions in memory, and a CSRF token per session.
//!
//! Sessions are held by the SHA-256 of their cookie value, so a memory dump or a `Debug`
//! print shows no usable cookie; every comparison of a secret is constant-time
//! (`foundation::secret`). A restart logs everyone out, which suits a lab console.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use foundation::secret::{Secret, digests_equal, sha256_hex};
use foundation::token::BearerToken;

/// What a signed-in user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read every page and act (lifecycle actions).
    Admin,
    /// Read every page; every action is refused server-side.
    ReadOnly,
}

impl Role {
    /// For the page header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::ReadOnly => "read-only",
        }
    }

    /// From a configuration value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "read-only" | "readonly" => Some(Self::ReadOnly),
            _ => None,
        }
    }
}

/// PBKDF2-HMAC-SHA256 iterations for new hashes (OWASP's 2023 figure).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// The most iterations a configured hash may ask for (a login must not cost seconds).
const MAX_ITERATIONS: u32 = 5_000_000;

/// A password hash: `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>` (unpadded base64).
#[derive(Clone)]
pub struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

impl PasswordHash {
    /// Hash `password` with a fresh random salt.
    pub fn new(password: &str) -> Result<Self, openssl::error::ErrorStack> {
        let mut salt = vec![0u8; 16];
        openssl::rand::rand_bytes(&mut salt)?;
        let hash = derive(password, &salt, PBKDF2_ITERATIONS)?;
        Ok(Self {
            iterations: PBKDF2_ITERATIONS,
            salt,
            hash,
        })
    }

    /// The configuration form.
    pub fn encode(&self) -> String {
        format!(
            "pbkdf2-sha256${}${}${}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(&self.hash)
        )
    }

    /// From the configuration form.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('$');
        if parts.next()? != "pbkdf2-sha256" {
            return None;
        }
        let iterations: u32 = parts.next()?.parse().ok()?;
        let salt = B64.decode(parts.next()?).ok()?;
        let hash = B64.decode(parts.next()?).ok()?;
        let ok = parts.next().is_none()
            && (1..=MAX_ITERATIONS).contains(&iterations)
            && salt.len() >= 8
            && hash.len() == 32;
        ok.then_some(Self {
            iterations,
            salt,
            hash,
        })
    }

    /// Whether `password` is the one hashed (constant-time comparison).
    pub fn verify(&self, password: &str) -> bool {
        derive(password, &self.salt, self.iterations).is_ok_and(|h| digests_equal(&h, &self.hash))
    }
}

fn derive(
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let mut out = vec![0u8; 32];
    let iterations = usize::try_from(iterations).unwrap_or(usize::MAX);
    openssl::pkcs5::pbkdf2_hmac(
        password.as_bytes(),
        salt,
        iterations,
        openssl::hash::MessageDigest::sha256(),
        &mut out,
    )?;
    Ok(out)
}

/// A named user with a password.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub hash: PasswordHash,
}

/// Everything that can sign in.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Signs in as admin (the token alone, no user name).
    pub admin_token: Option<BearerToken>,
    /// Signs in read-only.
    pub read_only_token: Option<BearerToken>,
    pub users: Vec<User>,
}

impl Credentials {
    /// The role `user` (empty: a token login) and `secret` sign in as. Every configured user
    /// is a hash to check, so an unknown name costs what a wrong password costs.
    pub fn check(&self, user: &str, secret: &str) -> Option<Role> {
        if secret.is_empty() || secret.len() > foundation::secret::MAX_SECRET_LEN {
            return None;
        }
        if user.is_empty() {
            if self.admin_token.as_ref().is_some_and(|t| t.matches(secret)) {
                return Some(Role::Admin);
            }
            if self
                .read_only_token
                .as_ref()
                .is_some_and(|t| t.matches(secret))
            {
                return Some(Role::ReadOnly);
            }
            return None;
        }
        let mut found = None;
        for u in &self.users {
            if u.hash.verify(secret) && u.name == user {
                found = Some(u.role);
            }
        }
        found
    }
}

/// A signed-in browser.
#[derive(Clone)]
pub struct Session {
    pub role: Role,
    /// Who signed in (a user name, or `admin token` / `read-only token`), for the header.
    pub who: String,
    /// The CSRF token every state-changing form of this session carries.
    pub csrf: Secret,
    /// Unix seconds after which the session is gone.
    pub expires: i64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("who", &self.who)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant-time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| self.csrf.ct_eq(&Secret::new(p)))
    }
}

/// How long a session lasts (seconds).
pub const SESSION_SECS: i64 = 8 * 3600;
/// Most sessions held at once; past it the oldest-expiring is dropped.
const MAX_SESSIONS: usize = 4096;

/// The sessions, by the SHA-256 of their cookie value.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sessions(..)")
    }
}

impl Sessions {
    /// A new session for `role`; returns the cookie value.
    pub fn create(
        &self,
        role: Role,
        who: String,
        now: i64,
    ) -> Result<Secret, openssl::error::ErrorStack> {
        let id = Secret::generate(32)?;
        let session = Session {
            role,
            who,
            csrf: Secret::generate(32)?,
            expires: now + SESSION_SECS,
        };
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(sha256_hex(id.expose().as_bytes()), session);
        Ok(id)
    }

    /// The live session a cookie value names.
    pub fn get(&self, cookie: &str, now: i64) -> Option<Session> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&sha256_hex(cookie.as_bytes()))
            .filter(|s| s.expires > now)
            .cloned()
    }

    /// Ends a session (logout).
    pub fn remove(&self, cookie: &str) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(&sha256_hex(cookie.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn password_hashes_round_trip_and_refuse_others() {
        let mut h = PasswordHash::new("correct horse").unwrap();
        h.iterations = 1000; // fast test; the stored form carries the count
        h.hash = derive("correct horse", &h.salt, 1000).unwrap();
        let parsed = PasswordHash::parse(&h.encode()).unwrap();
        assert!(parsed.verify("correct horse"));
        assert!(!parsed.verify("correct hors"));
        assert!(PasswordHash::parse("pbkdf2-sha256$0$AAAAAAAAAAA$AA").is_none());
        assert!(PasswordHash::parse("scrypt$1$2$3").is_none());
        assert_eq!(format!("{parsed:?}"), "PasswordHash(..)");
        let creds = Credentials {
            admin_token: BearerToken::new("admin-token"),
            read_only_token: BearerToken::new("ro-token"),
            users: vec![User {
                name: "alice".into(),
                role: Role::ReadOnly,
                hash: parsed,
            }],
        };
        assert_eq!(creds.check("", "admin-token"), Some(Role::Admin));
        assert_eq!(creds.check("", "ro-token"), Some(Role::ReadOnly));
        assert_eq!(creds.check("alice", "correct horse"), Some(Role::ReadOnly));
        assert_eq!(creds.check("bob", "correct horse"), None);
        assert_eq!(creds.check("alice", "admin-token"), None);
        assert_eq!(creds.check("", ""), None);
    }

    #[test]
    fn sessions_expire_and_end() {
        let s = Sessions::default();
        let id = s.create(Role::Admin, "admin token".into(), 100).unwrap();
        assert!(s.get(id.expose(), 101).is_some());
        assert!(s.get(id.expose(), 100 + SESSION_SECS).is_none());
        assert!(s.get("other", 101).is_none());
        let session = s.get(id.expose(), 101).unwrap();
        assert!(session.csrf_matches(Some(session.csrf.expose())));
        assert!(!session.csrf_matches(Some("x")));
        assert!(!session.csrf_matches(None));
        s.remove(id.expose());
        assert!(s.get(id.expose(), 101).is_none());
    }
}
