//! policy-module: the Intune/ConfigMgr role of the NDES flow (steps 1, 2, 5, 7 and lifecycle).
//!
//! It implements the policy contract of the `policy-api` crate ([`NdesPolicy`]): ndes-proxy holds
//! an `Arc<dyn NdesPolicy>`, this crate's [`PolicyService`] in process or
//! `policy_api::RemotePolicy` over HTTP to this crate's [`api`]. Modules:
//! - `verify`: VerifyRequest / Notify / GenerateChallenge (docs/decisions.md #3, #4, #5).
//! - `rules`, `format`, `render`: the checks of a CSR's facts (`policy_api::csr`), the profile
//!   format syntax, rendering for a device.
//! - `admin`, `checkin`: profiles, devices, groups, lifecycle; the MDM check-in.
//! - `admin_certs`: the certificate inventory searched, and revoked by an admin.
//! - `template_check`, `template_source`, `profile_view`: how a profile and its CA template
//!   differ (warnings, preview; decisions.md #7).
//! - `admin_path`, `name_policy`: the mscep_admin path's templates and their name policies
//!   (which subject and SANs a CSR under an admin challenge may carry; ESC1 only by flag).
//! - `admin_renewal`: the renewal window, and renewal of admin-path certificates (#5).
//! - `outbox`: revocation delivery to the CA (`Revoker`, `HttpRevoker`, `OutboxWorker`).
//! - `intune`: Intune (Graph) SCEP profile documents in and out, and their admin routes.
//! - `payload`: SyncML (ClientCertificateInstall CSP) and Apple .mobileconfig.
//! - `store`: SQLite or PostgreSQL behind one SQL text; `api`: axum router and `serve`.
//! - `config`: the `policy-module serve --config FILE` TOML (sample: `policy-module.sample.toml`).
#![forbid(unsafe_code)]
pub mod admin;
pub mod admin_certs;
pub mod admin_path;
mod admin_renewal;
pub mod api;
pub mod cert_subject;
pub mod checkin;
pub mod config;
mod decision_audit;
pub mod error;
pub mod format;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod grant;
pub mod intune;
pub mod metrics;
pub mod model;
pub mod name_policy;
pub mod outbox;
pub mod payload;
pub mod profile_view;
mod records;
pub mod render;
pub mod rules;
pub mod service;
pub mod store;
pub mod template_check;
pub mod template_source;
pub mod trace;
mod verify;

pub use policy_api::{
    ChallengeError, ChallengeRequest, Grant, IssuedChallenge, NdesPolicy, Notification,
    NotifyError, Outcome, Rejection, RequesterInfo, VerifyError, VerifyRequest,
};
pub use service::{ChallengeSettings, PolicyService, ServiceConfig};
