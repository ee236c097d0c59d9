//! One error type for the agent. Variants name what went wrong without carrying secrets: no
//! key bytes, no challenge, no credential ever reaches a message or a `Debug`.

use scep::FailInfo;

/// Why an enrollment, renewal, check-in or state operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not be reached or the connection broke.
    #[error("transport: {0}")]
    Transport(String),
    /// The server answered with an HTTP status we do not proceed on.
    #[error("HTTP {status} from {operation}")]
    Http {
        /// Which request (`GetCACaps`, `PKIOperation`, `checkin`, ...).
        operation: &'static str,
        /// The status code.
        status: u16,
        /// `Retry-After` in seconds, when the server sent one (503).
        retry_after: Option<u64>,
    },
    /// GetCACaps offers no digest or cipher we accept (MD5 and single DES are never used).
    #[error("no common algorithm: {0}")]
    NoCommonAlgorithm(&'static str),
    /// GetCACert did not contain the certificate the profile pins.
    #[error("CA certificate does not match the pinned thumbprint")]
    CaNotPinned,
    /// GetCACert answer or CertRep could not be decoded or verified.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server answered CertRep FAILURE.
    #[error("refused by the server: {fail_info:?}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Refused {
        /// failInfo.
        fail_info: FailInfo,
        /// failInfoText, if sent (server-chosen, public).
        text: Option<String>,
    },
    /// Still PENDING after the profile's retry count; the transaction is kept for a later run.
    #[error("still pending after {attempts} polls (transaction kept)")]
    StillPending {
        /// Polls sent.
        attempts: u32,
    },
    /// The issued certificate is not for our key.
    #[error("issued certificate does not carry the requested public key")]
    KeyMismatch,
    /// The profile or the command line asks for something we cannot do.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The device state directory: missing, unreadable, or a file in it.
    #[error("state: {0}")]
    State(String),
    /// Nothing to renew, or the device is not registered.
    #[error("{0}")]
    Missing(&'static str),
    /// OpenSSL failed while building keys, CSRs or messages.
    #[error("crypto: {0}")]
    Crypto(String),
}

impl Error {
    /// A short stable label, for fleet summaries ("failures by reason").
    pub fn reason(&self) -> String {
        match self {
            Self::Transport(_) => "transport".into(),
            Self::Http { status, .. } => format!("http_{status}"),
            Self::NoCommonAlgorithm(_) => "no_common_algorithm".into(),
            Self::CaNotPinned => "ca_not_pinned".into(),
            Self::Protocol(_) => "protocol".into(),
            Self::Refused { fail_info, .. } => format!("refused_{fail_info:?}"),
            Self::StillPending { .. } => "still_pending".into(),
            Self::KeyMismatch => "key_mismatch".into(),
            Self::Invalid(_) => "invalid".into(),
            Self::State(_) => "state".into(),
            Self::Missing(_) => "missing".into(),
            Self::Crypto(_) => "crypto".into(),
        }
    }

    /// Whether waiting and trying again may help (503, PENDING, a broken connection).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Transport(_)
                | Self::StillPending { .. }
                | Self::Http {
                    status: 503 | 429,
                    ..
                }
        )
    }

    pub(crate) fn state(what: &str, e: impl std::fmt::Display) -> Self {
        Self::State(format!("{what}: {e}"))
    }
}

impl From<openssl::error::ErrorStack> for Error {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self::Crypto(e.to_string())
    }
}

impl From<scep::BuildError> for Error {
    fn from(e: scep::BuildError) -> Self {
        Self::Crypto(e.to_string())
    }
}

impl From<scep::ReplyError> for Error {
    fn from(e: scep::ReplyError) -> Self {
        Self::Protocol(e.to_string())
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
