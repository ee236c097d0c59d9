//! The enterprise CA (AD CS role) of the scep-lab: templates, durable issuance, revocation,
//! CRL and OCSP, on SQLite or PostgreSQL.
//!
//! NDES (ndes-proxy) asks it, as its enrollment agent, to issue under a template; the policy
//! module asks it to revoke. The CSR only proposes a public key: subject and SANs are the ones
//! the policy module granted, checked against the template, and every other extension comes
//! from the template (docs/decisions.md #7). An issuance is committed to the store before the
//! certificate is returned, and a repeated request id with the same CSR returns the same
//! certificate (docs/decisions.md #3 and #8). Its contract (wire types, HTTP client, the
//! `CaBackend` trait) is the `ca-api` crate; this crate implements it.
//!
//! | module | owns |
//! |---|---|
//! | [`hierarchy`] | `init` (create or import root + issuing CA), [`CaMaterial`] loading |
//! | [`rollover`] | a scheduled issuing-CA rollover on disk: the next CA, the switch, retired CAs |
//! | [`template`] | TOML templates, validated at load; key, subject and SAN rules |
//! | [`ca`] | [`CertificateAuthority`]: issue, revoke, release, CRL publication, OCSP answers |
//! | [`store`] | [`store::CertStore`] and [`store::SqlStore`] (SQLite WAL + FULL, or PostgreSQL) |
//! | [`api`] | [`router`] and [`serve`]: the HTTP contract, bearer-token callers |
//! | [`records`] | the audit trail as `ca_api::wire::CaRecord`s (`GET /api/v1/records`) |
//! | [`lint`] | the RFC 5280 profile every issued certificate is checked against (P35) |
//! | [`InProcessCa`] | the CA contract (`ca-api`'s `CaBackend`) implemented in process |
//! | [`config`] | `ca-mock.toml` and [`open`], which wires a CA from it |
//!
//! Running it in-process (as the lab binary does):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ca_mock::Config::load(std::path::Path::new("ca/ca-mock.toml"))?;
//! let state = ca_mock::open(&config).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! ca_mock::serve(listener, state, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod auth;
pub mod ca;
pub mod config;
mod crl;
pub mod entitlement;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod hierarchy;
mod issue;
pub mod keys;
pub mod lint;
mod local;
pub mod metrics;
pub mod names;
mod ocsp;
mod ops;
pub mod pki_plain;
pub mod records;
mod retired;
pub mod rollover;
mod state;
pub mod store;
pub mod template;

#[cfg(test)]
mod robustness_tests;

pub use api::{router, serve, serve_tls, serve_tls_with_plain};
pub use ca::{CaSettings, CertificateAuthority, CrlSnapshot};
pub use config::{Config, open, open_without_publishing};
pub use crl::write_atomically;
pub use entitlement::IssueRight;
pub use hierarchy::{CaMaterial, InitReport, InitSource, init};
pub use issue::Urls;
pub use local::InProcessCa;
pub use state::AppState;
