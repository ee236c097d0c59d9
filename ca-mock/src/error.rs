//! One error type for the CA; `api` maps it to a status and a short code in one place.

use crate::store::StoreError;

/// Why a CA operation did not happen. Variants carrying text carry only what the caller sent or a
/// fixed phrase, never library internals: `Crypto`, `Io` and `Store` details go to logs only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// No template of that name is loaded.
    #[error("unknown template")]
    UnknownTemplate,
    /// The caller is authenticated but not entitled to the template or operation.
    #[error("not entitled to this template or operation")]
    Forbidden,
    /// The call has no signed grant from a trusted policy module, or differs from it.
    #[error("{0}")]
    Grant(#[from] ca_api::GrantError),
    /// The CSR did not decode or its self-signature does not verify.
    #[error("invalid CSR: {0}")]
    InvalidCsr(&'static str),
    /// The CSR's public key is not one the template accepts.
    #[error("key not allowed by the template: {0}")]
    KeyNotAllowed(String),
    /// A subject attribute is unknown, malformed or not allowed by the template.
    #[error("subject not allowed: {0}")]
    SubjectNotAllowed(String),
    /// A subject alternative name is malformed or not allowed by the template.
    #[error("subject alternative name not allowed: {0}")]
    SanNotAllowed(String),
    /// The template narrows usages to the request's and none of them is allowed.
    #[error("usage not allowed by the template: {0}")]
    UsageNotAllowed(String),
    /// The request asked for a validity the template does not give.
    #[error("invalid validity: {0}")]
    InvalidValidity(String),
    /// The request id is already bound to a different request.
    #[error("request_id already used with a different request")]
    RequestIdConflict,
    /// Some other malformed field.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A serial that is not well-formed hex of a positive integer of at most 20 octets.
    #[error("invalid serial")]
    InvalidSerial,
    /// A well-formed serial this CA never issued.
    #[error("unknown serial")]
    UnknownSerial,
    /// Release was asked for a certificate revoked with a final reason.
    #[error("certificate is revoked with a final reason, not on hold")]
    NotOnHold,
    /// The store failed.
    #[error("store error")]
    Store(#[from] StoreError),
    /// OpenSSL or DER encoding failed.
    #[error("crypto error: {0}")]
    Crypto(String),
    /// A certificate this CA built failed its RFC 5280 profile lint; it was not issued.
    #[error("certificate failed the profile lint: {0}")]
    ProfileViolation(String),
    /// A file could not be read or written.
    #[error("i/o error: {0}")]
    Io(String),
    /// Configuration or CA material is unusable.
    #[error("configuration error: {0}")]
    Config(String),
}

impl CaError {
    /// The wire code of this error (`ErrorBody::error`), also the label of refusals in
    /// `/metrics`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownTemplate => "unknown_template",
            Self::Forbidden => "forbidden",
            Self::Grant(_) => "grant_refused",
            Self::InvalidCsr(_) => "invalid_csr",
            Self::KeyNotAllowed(_) => "key_not_allowed",
            Self::SubjectNotAllowed(_) => "subject_not_allowed",
            Self::SanNotAllowed(_) => "san_not_allowed",
            Self::InvalidValidity(_) => "invalid_validity",
            Self::UsageNotAllowed(_) => "usage_not_allowed",
            Self::RequestIdConflict => "request_id_conflict",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidSerial => "invalid_serial",
            Self::UnknownSerial => "unknown_serial",
            Self::NotOnHold => "not_on_hold",
            Self::Store(_) => "unavailable",
            _ => "internal_error",
        }
    }
}

impl From<foundation::serial::InvalidSerial> for CaError {
    fn from(_: foundation::serial::InvalidSerial) -> Self {
        Self::InvalidSerial
    }
}

impl From<openssl::error::ErrorStack> for CaError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self::crypto(e)
    }
}

impl CaError {
    /// Wraps an OpenSSL or DER failure.
    pub(crate) fn crypto(e: impl std::fmt::Display) -> Self {
        Self::Crypto(e.to_string())
    }

    /// Wraps an I/O failure with the path it concerns.
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self::Io(format!("{}: {e}", path.display()))
    }
}
