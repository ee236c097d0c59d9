//! policy-module: the Intune/ConfigMgr role of the NDES flow (steps 1, 2, 5, 7 and lifecycle).
//!
//! ndes-proxy uses [`NdesPolicy`] (`Arc<dyn NdesPolicy>`): [`PolicyService`] in process or
//! [`client::RemotePolicy`] over HTTP. Modules:
//! - `contract`: the INDESPolicy-equivalent trait and its wire types (Grant, Notification).
//! - `verify`: VerifyRequest / Notify / GenerateChallenge (DESIGN decisions 3, 4, 5).
//! - `csr`, `rules`, `render`: CSR parsing, the checks, profile variable rendering.
//! - `admin`, `checkin`: profiles, devices, groups, lifecycle; the MDM check-in.
//! - `outbox`: revocation delivery to the CA (`Revoker`, `HttpRevoker`, `OutboxWorker`).
//! - `payload`: SyncML (ClientCertificateInstall CSP) and Apple .mobileconfig.
//! - `store`: SQLite or PostgreSQL behind one SQL text; `api`: axum router and `serve`.
//! - `config`: the `policy-module serve --config FILE` TOML (sample: `policy-module.sample.toml`).
//! - `rate_limit`: per-source token buckets (challenge minting here, PKIOperation in ndes-proxy).
#![forbid(unsafe_code)]
pub mod admin;
pub mod api;
pub mod checkin;
pub mod client;
pub mod clock;
pub mod config;
pub mod contract;
pub mod cross_site;
pub mod csr;
pub mod error;
pub mod fuzzing;
pub mod model;
pub mod outbox;
pub mod payload;
pub mod rate_limit;
pub mod render;
pub mod rules;
pub mod secret;
pub mod service;
pub mod store;
mod verify;

pub use contract::{
    ChallengeRequest, Grant, IssuedChallenge, NdesPolicy, Notification, Outcome, RequesterInfo,
    VerifyRequest,
};
pub use error::{ChallengeError, NotifyError, Rejection, VerifyError};
pub use service::{ChallengeSettings, PolicyService, ServiceConfig};
