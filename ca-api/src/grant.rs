//! Signed grants: the policy module's decision, in a form the CA can check without trusting
//! the caller that carries it (docs/decisions.md #10).
//!
//! The policy module signs a [`GrantStatement`] with an Ed25519 key that ndes-proxy never
//! holds; ndes-proxy forwards the [`SignedGrant`] with its CA call; the CA verifies the
//! signature against the public keys it was configured with and refuses any call that differs
//! from the statement in one field. A stolen NDES credential therefore buys nothing but the
//! issuance of certificates the policy module already granted, to the keys it granted them to.
//!
//! The token is `<key id>.<base64url payload>.<base64url signature>`, the payload the JSON of
//! the statement, the signature over a fixed context string followed by the payload bytes (so
//! a signature made for anything else with the same key never verifies as a grant).

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use foundation::names::{KeyUsage, NameAttr, San};
use foundation::secret::sha256;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::sign::{Signer, Verifier};
use serde::{Deserialize, Serialize};

/// What the signature covers before the payload: domain separation for the key.
const CONTEXT: &[u8] = b"scep-lab grant v1\0";
/// The only statement version.
const VERSION: u8 = 1;
/// Longest token accepted, before anything is decoded (a grant is well under 4 KiB).
const MAX_TOKEN: usize = 16 * 1024;
/// How far a statement's `issued_at` may lie in the verifier's future (clock skew).
const MAX_SKEW_SECS: i64 = 60;

/// What the policy module decided for one request: every field the certificate depends on,
/// bound to the request id and to the key it certifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantStatement {
    /// Statement format version (1).
    pub v: u8,
    /// The signing key's id ([`GrantKey::key_id`]), also outside the payload to pick the key.
    pub key_id: String,
    /// The CA's idempotency key for the request.
    pub request_id: String,
    /// Lowercase hex SHA-256 of the CSR's SubjectPublicKeyInfo (DER): the key certified.
    pub spki_sha256: String,
    /// CA template.
    pub template: String,
    /// Subject, in DN order.
    pub subject: Vec<NameAttr>,
    /// Subject alternative names.
    pub sans: Vec<San>,
    /// Key usage the profile asked for.
    pub key_usage: Vec<KeyUsage>,
    /// Extended key usages the profile asked for.
    pub extended_key_usages: Vec<String>,
    /// Validity in days.
    pub validity_days: u32,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; the CA refuses the grant from then on.
    pub expires_at: i64,
}

/// A signed [`GrantStatement`], as carried from the policy module through ndes-proxy to the
/// CA. Opaque to everyone but the CA.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SignedGrant(String);

impl SignedGrant {
    /// A token as received (the CA's HTTP layer).
    pub fn from_token(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SignedGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_id = self.0.split('.').next().unwrap_or("");
        write!(f, "SignedGrant(key {key_id:.16}, {} bytes)", self.0.len())
    }
}

/// Why a grant was not accepted. The texts name the field, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// No grant came with a call that needs one.
    #[error("no signed grant")]
    Missing,
    /// The token does not have the grant's shape, or its payload does not decode.
    #[error("malformed grant")]
    Malformed,
    /// Signed with a key this CA does not trust.
    #[error("grant signed by an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("grant signature does not verify")]
    BadSignature,
    /// Past its expiry, issued in the future, or valid for longer than the CA accepts.
    #[error("grant expired or not yet valid")]
    Expired,
    /// The call differs from the grant in this field.
    #[error("request does not match its grant: {0}")]
    Mismatch(&'static str),
    /// The signing key could not be read or used.
    #[error("grant key: {0}")]
    Key(String),
}

/// The policy module's signing key (Ed25519). Its Debug shows only the key id.
pub struct GrantKey {
    key: PKey<Private>,
    key_id: String,
}

impl fmt::Debug for GrantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GrantKey({})", self.key_id)
    }
}

/// The key id of an Ed25519 public key: the first 8 bytes of SHA-256 of its raw form, hex.
fn key_id_of<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> Result<String, GrantError> {
    let raw = key
        .raw_public_key()
        .map_err(|_| GrantError::Key("not an Ed25519 key".into()))?;
    let digest = sha256(&raw);
    Ok(hex::encode(digest.get(..8).unwrap_or(&digest)))
}

impl GrantKey {
    /// A fresh key.
    pub fn generate() -> Result<Self, GrantError> {
        let key = PKey::generate_ed25519().map_err(|e| GrantError::Key(e.to_string()))?;
        Self::from_key(key)
    }

    fn from_key(key: PKey<Private>) -> Result<Self, GrantError> {
        if key.id() != Id::ED25519 {
            return Err(GrantError::Key("not an Ed25519 key".into()));
        }
        let key_id = key_id_of(&key)?;
        Ok(Self { key, key_id })
    }

    /// From PKCS#8 PEM.
    pub fn from_pem(pem: &[u8]) -> Result<Self, GrantError> {
        let key = PKey::private_key_from_pem(pem)
            .map_err(|_| GrantError::Key("not a PEM private key".into()))?;
        Self::from_key(key)
    }

    /// Reads a PKCS#8 PEM file.
    pub fn load(path: &Path) -> Result<Self, GrantError> {
        let pem = std::fs::read(path)
            .map_err(|e| GrantError::Key(format!("{}: {}", path.display(), e.kind())))?;
        Self::from_pem(&pem)
    }

    /// The private key as PKCS#8 PEM (for the key file; never logged).
    pub fn to_pem(&self) -> Result<Vec<u8>, GrantError> {
        self.key
            .private_key_to_pem_pkcs8()
            .map_err(|e| GrantError::Key(e.to_string()))
    }

    /// The public key as SubjectPublicKeyInfo PEM: what the CA is configured with.
    pub fn public_pem(&self) -> Result<Vec<u8>, GrantError> {
        self.key
            .public_key_to_pem()
            .map_err(|e| GrantError::Key(e.to_string()))
    }

    /// The key id a statement names.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs `statement`, setting its `v` and `key_id`.
    pub fn sign(&self, mut statement: GrantStatement) -> Result<SignedGrant, GrantError> {
        statement.v = VERSION;
        statement.key_id.clone_from(&self.key_id);
        let payload = serde_json::to_vec(&statement).map_err(|_| GrantError::Malformed)?;
        let mut message = CONTEXT.to_vec();
        message.extend_from_slice(&payload);
        let signature = Signer::new_without_digest(&self.key)
            .and_then(|mut s| s.sign_oneshot_to_vec(&message))
            .map_err(|e| GrantError::Key(e.to_string()))?;
        Ok(SignedGrant(format!(
            "{}.{}.{}",
            self.key_id,
            B64URL.encode(&payload),
            B64URL.encode(&signature)
        )))
    }
}

/// The public keys a CA accepts grants from, and the longest grant lifetime it accepts.
#[derive(Clone)]
pub struct GrantVerifier {
    keys: Vec<(String, PKey<Public>)>,
    max_lifetime_secs: i64,
}

impl fmt::Debug for GrantVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("GrantVerifier")
            .field("keys", &ids)
            .field("max_lifetime_secs", &self.max_lifetime_secs)
            .finish()
    }
}

impl GrantVerifier {
    /// Trusts these public keys (SubjectPublicKeyInfo PEM, Ed25519) for grants that live at
    /// most `max_lifetime_secs`.
    pub fn from_pems<'a>(
        pems: impl IntoIterator<Item = &'a [u8]>,
        max_lifetime_secs: i64,
    ) -> Result<Self, GrantError> {
        let mut keys = Vec::new();
        for pem in pems {
            let key = PKey::public_key_from_pem(pem)
                .map_err(|_| GrantError::Key("not a PEM public key".into()))?;
            if key.id() != Id::ED25519 {
                return Err(GrantError::Key("not an Ed25519 key".into()));
            }
            keys.push((key_id_of(&key)?, key));
        }
        Ok(Self {
            keys,
            max_lifetime_secs,
        })
    }

    /// Trusts no key: every grant is refused.
    pub fn none() -> Self {
        Self {
            keys: Vec::new(),
            max_lifetime_secs: 0,
        }
    }

    /// Trusts the public half of `key` (a process holding both, in tests and one-process labs).
    pub fn of_key(key: &GrantKey, max_lifetime_secs: i64) -> Result<Self, GrantError> {
        let pem = key.public_pem()?;
        Self::from_pems([pem.as_slice()], max_lifetime_secs)
    }

    /// Whether any key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The statement inside `grant`, if a trusted key signed it and it is current at `now`.
    pub fn verify(&self, grant: &SignedGrant, now: i64) -> Result<GrantStatement, GrantError> {
        let token = grant.as_str();
        if token.len() > MAX_TOKEN {
            return Err(GrantError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(key_id), Some(payload_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(GrantError::Malformed);
        };
        let key = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id)
            .map(|(_, k)| k)
            .ok_or(GrantError::UnknownKey)?;
        let payload = B64URL
            .decode(payload_b64)
            .map_err(|_| GrantError::Malformed)?;
        let signature = B64URL.decode(sig_b64).map_err(|_| GrantError::Malformed)?;
        let mut message = CONTEXT.to_vec();
        message.extend_from_slice(&payload);
        let verified = Verifier::new_without_digest(key)
            .and_then(|mut v| v.verify_oneshot(&signature, &message))
            .unwrap_or(false);
        if !verified {
            return Err(GrantError::BadSignature);
        }
        let statement: GrantStatement =
            serde_json::from_slice(&payload).map_err(|_| GrantError::Malformed)?;
        if statement.v != VERSION || statement.key_id != key_id {
            return Err(GrantError::Malformed);
        }
        let lifetime = statement.expires_at.saturating_sub(statement.issued_at);
        if now >= statement.expires_at
            || statement.issued_at > now.saturating_add(MAX_SKEW_SECS)
            || !(1..=self.max_lifetime_secs).contains(&lifetime)
        {
            return Err(GrantError::Expired);
        }
        Ok(statement)
    }
}

impl GrantStatement {
    /// The CSR's key must be the key granted (`spki_sha256_hex` as the CA computed it).
    pub fn check_key(&self, spki_sha256_hex: &str) -> Result<(), GrantError> {
        if self.spki_sha256.eq_ignore_ascii_case(spki_sha256_hex) {
            Ok(())
        } else {
            Err(GrantError::Mismatch("public key"))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use foundation::names::SubjectAttr;

    fn statement(now: i64) -> GrantStatement {
        GrantStatement {
            v: 0,
            key_id: String::new(),
            request_id: "tx-1".into(),
            spki_sha256: "ab".repeat(32),
            template: "IPSECIntermediateOffline".into(),
            subject: vec![NameAttr {
                attr: SubjectAttr::CN,
                value: "dev-1".into(),
            }],
            sans: Vec::new(),
            key_usage: vec![KeyUsage::DigitalSignature],
            extended_key_usages: vec!["clientAuth".into()],
            validity_days: 30,
            issued_at: now,
            expires_at: now + 300,
        }
    }

    #[test]
    fn a_grant_verifies_only_with_its_key_unaltered_and_in_time() {
        let now = 1_800_000_000;
        let key = GrantKey::generate().unwrap();
        let verifier = GrantVerifier::of_key(&key, 900).unwrap();
        let signed = key.sign(statement(now)).unwrap();
        let got = verifier.verify(&signed, now + 10).unwrap();
        assert_eq!(got.key_id, key.key_id());
        assert_eq!(got.request_id, "tx-1");
        got.check_key(&"AB".repeat(32)).unwrap();
        assert_eq!(
            got.check_key(&"cd".repeat(32)),
            Err(GrantError::Mismatch("public key"))
        );

        // Expired, and issued too far in the future.
        assert_eq!(
            verifier.verify(&signed, now + 300),
            Err(GrantError::Expired)
        );
        assert_eq!(verifier.verify(&signed, now - 61), Err(GrantError::Expired));
        // Longer-lived than the CA accepts.
        let mut long = statement(now);
        long.expires_at = now + 901;
        let long = key.sign(long).unwrap();
        assert_eq!(verifier.verify(&long, now), Err(GrantError::Expired));

        // Another key, even with this key's id in front, is not trusted.
        let other = GrantKey::generate().unwrap();
        let forged = other.sign(statement(now)).unwrap();
        assert_eq!(verifier.verify(&forged, now), Err(GrantError::UnknownKey));
        let relabelled = forged.as_str().replacen(other.key_id(), key.key_id(), 1);
        assert_eq!(
            verifier.verify(&SignedGrant::from_token(relabelled), now),
            Err(GrantError::BadSignature)
        );

        // A payload edited after signing (subject swapped) fails the signature.
        let mut parts: Vec<String> = signed.as_str().split('.').map(str::to_owned).collect();
        let payload = String::from_utf8(B64URL.decode(&parts[1]).unwrap()).unwrap();
        parts[1] = B64URL.encode(payload.replace("dev-1", "Administrator"));
        assert_eq!(
            verifier.verify(&SignedGrant::from_token(parts.join(".")), now),
            Err(GrantError::BadSignature)
        );

        for junk in ["", "a.b", "a.b.c.d", &"x".repeat(MAX_TOKEN + 1)] {
            let e = verifier
                .verify(&SignedGrant::from_token(junk), now)
                .unwrap_err();
            assert!(
                matches!(e, GrantError::Malformed | GrantError::UnknownKey),
                "{e:?}"
            );
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = GrantKey::generate().unwrap();
        let pem = String::from_utf8(key.to_pem().unwrap()).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let dbg = format!("{key:?}");
        assert!(!dbg.contains(&body), "{dbg}");
        assert_eq!(dbg, format!("GrantKey({})", key.key_id()));
        let reread = GrantKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(reread.key_id(), key.key_id());
    }
}
