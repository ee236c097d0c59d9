//! The policy contract: the open equivalent of NDES's INDESPolicy (GenerateChallenge,
//! VerifyRequest, Notify), apart from the policy module that implements it.
//!
//! ndes-proxy holds an `Arc<dyn NdesPolicy>`: policy-module's `PolicyService` in process, or
//! [`RemotePolicy`] over authenticated HTTP to a remote policy-module.
//!
//! | module | what it holds |
//! |---|---|
//! | [`contract`] | [`NdesPolicy`] and its types: challenge request, verify request, grant, notification |
//! | [`error`] | named rejections ([`Rejection`]) and the refusals of each call |
//! | [`csr`] | [`csr::CsrFacts`]: what a CSR says, read once per trust boundary |
//! | [`client`] | [`RemotePolicy`], the HTTP client of `/internal/v1` |
//! | [`trace`] | one transaction's events and one device's history, as the admin API returns them |
//!
//! Names (subject attributes, SANs, key usage) are the foundation's vocabulary, so a grant goes
//! to the CA's contract without conversion.
#![forbid(unsafe_code)]

pub mod client;
pub mod contract;
pub mod csr;
pub mod error;
pub mod trace;

pub use client::RemotePolicy;
pub use contract::{
    Algorithms, ChallengeRequest, Grant, IssuedChallenge, NdesPolicy, Notification, Outcome,
    RegrantRequest, ReplyReport, RequesterInfo, VerifyRequest,
};
pub use error::{ChallengeError, NotifyError, Rejection, VerifyError};
