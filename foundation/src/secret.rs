//! Secrets: challenges, device credentials, API tokens, passwords.
//!
//! A [`Secret`] never prints itself (`Debug` is redacted, there is no `Display`), is stored
//! only as its SHA-256 digest, and is compared in constant time. Secret files are read here
//! and nowhere else, so every service treats an empty file the same way: as a mistake, never
//! as a credential.

use std::fmt;
use std::path::{Path, PathBuf};

use openssl::hash::{MessageDigest, hash};
use openssl::memcmp;
use openssl::rand::rand_bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Random bytes in a challenge: 160 bits, above docs/decisions.md #4's floor of 128.
pub const CHALLENGE_BYTES: usize = 20;
/// Random bytes in a device credential or generated API token.
pub const TOKEN_BYTES: usize = 32;
/// Longest secret accepted from outside; anything longer is refused before hashing.
pub const MAX_SECRET_LEN: usize = 512;

/// A secret string. Redacted `Debug`; serialized only where it must travel (check-in payloads,
/// the remote policy client).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value received from outside.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// `n` random bytes from OpenSSL's CSPRNG as uppercase hex: only `[0-9A-F]`, so it fits a
    /// PrintableString challengePassword and every payload format without escaping.
    pub fn generate(n: usize) -> Result<Self, openssl::error::ErrorStack> {
        let mut buf = vec![0u8; n];
        rand_bytes(&mut buf)?;
        Ok(Self(hex::encode_upper(buf)))
    }

    /// The value itself, for the few places that must send it (payloads, HTTP clients).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the value: what stores keep and look up.
    pub fn digest(&self) -> Vec<u8> {
        sha256(self.0.as_bytes())
    }

    /// Constant-time equality (over the digests, so lengths leak nothing either).
    pub fn ct_eq(&self, other: &Self) -> bool {
        digests_equal(&self.digest(), &other.digest())
    }

    /// True for a well-formed challenge as [`Secret::generate`] makes them.
    pub fn is_challenge_shaped(&self) -> bool {
        self.0.len() == CHALLENGE_BYTES * 2
            && self
                .0
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() > MAX_SECRET_LEN {
            return Err(serde::de::Error::custom("secret too long"));
        }
        Ok(Self(s))
    }
}

/// The one comparison of secrets in the workspace (reliability P29): two SHA-256 digests, with
/// `CRYPTO_memcmp`, whose time depends on neither the secrets' lengths nor where they first
/// differ. Anything but two 32-byte digests is unequal, so a digest that failed (empty) never
/// matches another failed one, and `memcmp::eq` (which panics on different lengths) is never
/// reached with them.
pub fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    const LEN: usize = 32;
    a.len() == LEN && b.len() == LEN && memcmp::eq(a, b)
}

/// SHA-256 digest. OpenSSL's SHA-256 cannot fail on in-memory input short of a broken
/// library; the fallback is an empty digest, which matches nothing.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    hash(MessageDigest::sha256(), data)
        .map(|d| d.to_vec())
        .unwrap_or_default()
}

/// Lowercase hex SHA-256, the thumbprint spelling used across the workspace.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

/// A short, non-secret reference to a challenge for audit records: 48 bits of its digest.
pub fn challenge_ref(digest: &[u8]) -> String {
    hex::encode(digest.get(..6).unwrap_or(digest))
}

/// Why a secret file could not be used. Never carries the file's content.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The first line is empty: a configuration mistake, not a credential.
    #[error("{path}: empty secret")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads a secret from a file: its first line, trimmed. An empty first line is an error.
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretFileError> {
    let bytes = std::fs::read(path).map_err(|source| SecretFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let value = text.lines().next().unwrap_or("").trim();
    if value.is_empty() {
        return Err(SecretFileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn generated_challenges_are_long_hex_and_distinct() {
        let a = Secret::generate(CHALLENGE_BYTES).unwrap();
        let b = Secret::generate(CHALLENGE_BYTES).unwrap();
        assert!(a.is_challenge_shaped());
        assert!(!a.ct_eq(&b));
        assert!(a.ct_eq(&Secret::new(a.expose())));
    }

    #[test]
    fn secrets_of_any_length_compare_by_digest_without_panicking() {
        let a = Secret::new("s");
        for other in [
            "",
            "s ",
            "S",
            &"s".repeat(MAX_SECRET_LEN),
            &"x".repeat(100_000),
        ] {
            assert!(!a.ct_eq(&Secret::new(other)), "{}", other.len());
        }
        assert!(a.ct_eq(&Secret::new("s")));
        assert!(!digests_equal(b"", b""));
        assert!(!digests_equal(b"short", b"short"));
        assert!(!digests_equal(&[7; 32], &[7; 31]));
        assert!(!digests_equal(&[7; 33], &[7; 33]));
        assert!(digests_equal(&sha256(b"s"), &a.digest()));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2-value");
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert!(!format!("{:?}", Some(&s)).contains("hunter2"));
    }

    #[test]
    fn oversized_secret_is_refused_when_deserialized() {
        let long = format!("\"{}\"", "A".repeat(MAX_SECRET_LEN + 1));
        assert!(serde_json::from_str::<Secret>(&long).is_err());
    }

    #[test]
    fn secret_files_give_their_first_line_and_refuse_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("token");
        std::fs::write(&good, "  s3cret \nsecond line\n").unwrap();
        assert_eq!(read_secret_file(&good).unwrap().expose(), "s3cret");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n\n").unwrap();
        let err = read_secret_file(&empty).unwrap_err();
        assert!(matches!(err, SecretFileError::Empty { .. }));
        let missing = read_secret_file(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(missing, SecretFileError::Io { .. }));
        std::fs::write(&good, "hunter2\n").unwrap();
        let shown = format!("{:?} {}", read_secret_file(&empty).unwrap_err(), missing);
        assert!(!shown.contains("hunter2"));
    }
}
