//! Caller identities for the authenticated API: bearer tokens kept only as SHA-256 hashes,
//! compared in constant time, each entitled to some templates and operations.

use std::fmt;

use foundation::BearerToken;
use serde::{Deserialize, Serialize};

use crate::entitlement::IssueRight;
use crate::error::CaError;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Issue certificates (the NDES enrollment agent).
    Issue,
    /// Read certificate records.
    Read,
    /// Revoke and release (the policy module).
    Revoke,
}

/// One caller identity.
#[derive(Clone)]
pub struct Caller {
    /// Name used in the audit log.
    pub name: String,
    token: BearerToken,
    /// Template names it may use; `*` means all.
    pub templates: Vec<String>,
    /// Operations it may call.
    pub operations: Vec<Operation>,
    /// Plain mode's entitlement: issue without a signed grant (docs/decisions.md #10).
    pub issue_without_grant: bool,
    /// SHA-256 (hex) of the client certificates that are this caller under mutual TLS.
    certificates: Vec<String>,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("name", &self.name)
            .field("templates", &self.templates)
            .field("operations", &self.operations)
            .field("issue_without_grant", &self.issue_without_grant)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a token, lowercase hex: what a config file stores.
pub fn hash_token(token: &str) -> String {
    foundation::secret::sha256_hex(token.trim().as_bytes())
}

impl Caller {
    /// A caller whose token has the given SHA-256 (hex).
    pub fn new(
        name: impl Into<String>,
        token_sha256_hex: &str,
        templates: Vec<String>,
        operations: Vec<Operation>,
    ) -> Result<Self, CaError> {
        let name = name.into();
        let token = BearerToken::from_sha256_hex(token_sha256_hex).ok_or_else(|| {
            CaError::Config(format!(
                "caller {name:?}: token_sha256 is not 64 hex digits"
            ))
        })?;
        Ok(Self {
            name,
            token,
            templates,
            operations,
            issue_without_grant: false,
            certificates: Vec::new(),
        })
    }

    /// This caller with plain mode's entitlement: it issues without a signed grant, and
    /// without SANs (docs/decisions.md #10). For a standalone NDES with a static challenge.
    pub fn plain_mode(mut self) -> Self {
        self.issue_without_grant = true;
        self
    }

    /// The right its issuance calls are made under.
    pub fn issue_right(&self) -> IssueRight {
        if self.issue_without_grant {
            IssueRight::PlainMode
        } else {
            IssueRight::Granted
        }
    }

    /// May this caller do `op`?
    pub fn may(&self, op: Operation) -> bool {
        self.operations.contains(&op)
    }

    /// May this caller use (or act on certificates of) `template`?
    pub fn may_use(&self, template: &str) -> bool {
        self.templates.iter().any(|t| t == "*" || t == template)
    }
}

/// The configured callers, and how they prove who they are.
#[derive(Debug, Clone, Default)]
pub struct Callers {
    callers: Vec<Caller>,
    certificates: bool,
}

impl Callers {
    /// From a list; names must be unique.
    pub fn new(callers: Vec<Caller>) -> Result<Self, CaError> {
        let mut names: Vec<_> = callers.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(CaError::Config("caller names must be unique".into()));
        }
        Ok(Self {
            callers,
            certificates: false,
        })
    }

    /// Callers authenticate with client certificates (mutual TLS) instead of bearer tokens:
    /// `pins` gives (caller name, certificate SHA-256 hex); a verified certificate is a
    /// caller when it carries the caller's name AND is one pinned to it, so another
    /// certificate from the same CA with that name (a device's, say) is not. A token is no
    /// longer accepted (docs/decisions.md #18). A pin naming no caller is an error.
    pub fn require_certificates(mut self, pins: &[(String, String)]) -> Result<Self, CaError> {
        for (name, sha256) in pins {
            let caller = self
                .callers
                .iter_mut()
                .find(|c| c.name == *name)
                .ok_or_else(|| CaError::Config(format!("no caller {name:?} to pin")))?;
            caller.certificates.push(sha256.to_ascii_lowercase());
        }
        self.certificates = true;
        Ok(self)
    }

    /// Whether [`Self::require_certificates`] is on.
    pub fn certificates_required(&self) -> bool {
        self.certificates
    }

    /// The caller named by a verified client certificate pinned to it, if any (and only when
    /// certificates are required: otherwise a certificate proves nothing here).
    pub fn by_certificate(&self, peer: &foundation::tls::PeerIdentity) -> Option<&Caller> {
        if !self.certificates || peer.name.is_empty() {
            return None;
        }
        self.callers
            .iter()
            .find(|c| c.name == peer.name && c.certificates.contains(&peer.sha256_hex))
    }

    /// The caller holding `token`, if any. Every caller's hash is compared so timing does not
    /// reveal which (if any) matched.
    pub fn authenticate(&self, token: &str) -> Option<&Caller> {
        let mut found = None;
        for c in &self.callers {
            if c.token.matches(token) && found.is_none() {
                found = Some(c);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn tokens_authenticate_by_hash_and_debug_hides_them() {
        let c = Caller::new(
            "ndes",
            &hash_token("tok-1"),
            vec!["*".into()],
            vec![Operation::Issue],
        )
        .unwrap();
        let callers = Callers::new(vec![c]).unwrap();
        assert_eq!(callers.authenticate("tok-1").unwrap().name, "ndes");
        assert!(callers.authenticate("tok-2").is_none());
        assert!(callers.authenticate("").is_none());
        // Any length is hashed first, then compared as two 32-byte digests: no panic, no
        // match (reliability P29).
        for presented in ["t", "tok-1 ", "tok-10", &"x".repeat(64 * 1024)] {
            assert!(
                callers.authenticate(presented).is_none(),
                "{}",
                presented.len()
            );
        }
        let dbg = format!("{callers:?}");
        assert!(!dbg.contains(&hash_token("tok-1")), "{dbg}");
        assert!(Caller::new("x", "abcd", vec![], vec![]).is_err());
    }

    #[test]
    fn certificates_name_a_caller_only_when_required() {
        let c = Caller::new(
            "ndes-proxy",
            &hash_token("tok-1"),
            vec!["*".into()],
            vec![Operation::Issue],
        )
        .unwrap();
        let pinned = "ab".repeat(32);
        let peer = |name: &str, sha: &str| foundation::tls::PeerIdentity {
            name: name.into(),
            sha256_hex: sha.into(),
        };
        let tokens = Callers::new(vec![c]).unwrap();
        assert!(!tokens.certificates_required());
        assert!(
            tokens
                .by_certificate(&peer("ndes-proxy", &pinned))
                .is_none()
        );
        let pins = [("ndes-proxy".to_owned(), pinned.to_uppercase())];
        let certs = tokens.clone().require_certificates(&pins).unwrap();
        assert!(certs.certificates_required());
        assert_eq!(
            certs
                .by_certificate(&peer("ndes-proxy", &pinned))
                .unwrap()
                .name,
            "ndes-proxy"
        );
        for unknown in ["", "ndes", "NDES-PROXY", "ndes-proxy "] {
            assert!(
                certs.by_certificate(&peer(unknown, &pinned)).is_none(),
                "{unknown:?}"
            );
        }
        // The caller's name on a certificate not pinned to it is no one.
        let other = "cd".repeat(32);
        assert!(certs.by_certificate(&peer("ndes-proxy", &other)).is_none());
        let stranger = [("nobody".to_owned(), other)];
        assert!(tokens.require_certificates(&stranger).is_err());
    }
}
