//! The CA contract: what ndes-proxy and policy-module may ask of the enterprise CA, apart from
//! the CA that implements it (ca-mock).
//!
//! | module | what it holds |
//! |---|---|
//! | [`backend`] | [`CaBackend`]: issue, look up, status, CRL, as typed calls (DER bytes, [`Serial`]) |
//! | [`wire`] | the JSON bodies of the CA's HTTP API (base64 lives here and only here) |
//! | [`client`] | [`CaClient`], the typed HTTP client, and [`HttpCa`], the backend over it |
//! | [`status`] | revocation reasons and certificate status |
//! | [`grant`] | the policy module's signed grant, which the CA verifies (docs/decisions.md #10) |
//! | [`template`] | a template as the CA describes it (`GET /api/v1/templates`) and the key usage rule |
//!
//! The names a certificate carries (subject attributes, SANs) are the foundation's vocabulary.
#![forbid(unsafe_code)]

pub mod backend;
pub mod client;
pub mod grant;
pub mod status;
pub mod template;
pub mod wire;

pub use backend::{CaBackend, CaError, IssueCall, IssuedCert};
pub use client::{CaClient, ClientError, HttpCa};
pub use foundation::Serial;
pub use grant::{GrantError, GrantKey, GrantStatement, GrantVerifier, SignedGrant};
pub use status::{CertStatus, RevocationReason};
pub use template::{TemplateInfo, UsageSource};
