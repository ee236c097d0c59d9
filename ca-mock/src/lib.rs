//! The enterprise CA (AD CS role): templates, issuance, revocation, CRL and OCSP.

pub mod api;
pub mod auth;
pub mod ca;
pub mod client;
pub mod clock;
pub mod config;
mod crl;
pub mod error;
pub mod hierarchy;
mod issue;
pub mod keys;
pub mod names;
mod ocsp;
pub mod serial;
pub mod store;
pub mod template;
pub mod wire;

pub use api::{AppState, router, serve};
pub use ca::{CaSettings, CertificateAuthority, CrlSnapshot, Issued};
pub use config::{Config, open};
pub use crl::write_atomically;
pub use hierarchy::{CaMaterial, InitReport, InitSource, init};
pub use issue::Urls;
