//! The service's own errors (store, admin). The contract's errors (named rejections, verify,
//! challenge and notify refusals) are policy-api's, re-exported here.

pub use policy_api::{ChallengeError, NotifyError, Rejection, VerifyError};

/// A store failure. The detail goes to the log, never to a client.
#[derive(Debug, thiserror::Error)]
#[error("store error: {0}")]
pub struct StoreError(#[from] pub sqlx::Error);

/// Errors of the admin and check-in operations, mapped to HTTP statuses in `api`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// 400: the message says which field.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// 404.
    #[error("not found")]
    NotFound,
    /// 409: the message says why (illegal lifecycle move, duplicate id).
    #[error("conflict: {0}")]
    Conflict(String),
    /// 503: store unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 500 with a generic body: a local failure such as the RNG.
    #[error("internal error")]
    Internal,
}

impl From<sqlx::Error> for AdminError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError(e))
    }
}
