//! ndes-proxy: the SCEP server of the NDES role (RFC 8894). HTTP <-> `scep` <-> policy (the
//! `policy-api` contract) <-> CA (the `ca-api` contract, as NDES's enrollment agent).
//!
//! Steps 3, 4, 6 and 7 of the flow: answer GetCACaps / GetCACert as NDES does, decrypt and
//! verify PKIOperation requests, ask the policy module whether to issue (VerifyRequest), ask
//! the CA to issue under the granted template, Notify the policy module, answer CertRep.
//!
//! Beyond NDES: requests under templates that need manual approval, or granted while the CA is
//! unreachable, are committed to a [`PendingStore`] (SQLite or PostgreSQL) before PENDING is
//! answered, and complete on a CertPoll, an approval ([`admin`]) or the retry task
//! ([`queue`]). [`mscep_admin`] hands out one-time challenges in NDES's page format;
//! [`server`] adds header-read timeouts and a connection cap; `/metrics` serves Prometheus.
//!
//! Plain mode ([`plain`]) replaces the policy module with one fixed challenge, as a standalone
//! NDES or micromdm `scepserver` runs.
//!
//! | module | what it holds |
//! |---|---|
//! | [`routes`], [`server`] | the HTTP face: SCEP operations, admin API, limits |
//! | [`pipeline`] | one PKIOperation: decode → verify → open → policy → CA → notify → CertRep |
//! | [`issuance`] | [`RequestId`], the CA call of a grant, Notify: shared by pipeline and queue |
//! | [`queue`], [`pending`] | requests waiting for approval or for the CA, durably |
//! | [`state`], [`settings`] | [`AppState`] and its tunables |

pub mod admin;
pub mod auth;
pub mod config;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod issuance;
pub mod metrics;
pub mod mscep_admin;
pub mod pending;
pub mod pipeline;
pub mod plain;
pub mod queue;
pub mod ra;
pub mod routes;
pub mod server;
pub mod settings;
pub mod state;
pub mod templates;

pub use issuance::RequestId;
pub use pending::{MemoryPendingStore, PendingStore, SqlPendingStore};
pub use plain::StaticChallenge;
pub use ra::{KeyPair, RaIdentity};
pub use routes::router;
pub use server::{serve, serve_tls};
pub use settings::{
    DEFAULT_MAX_CONCURRENT_PKI_OPERATIONS, DEFAULT_PKI_RATE_LIMIT, MscepAdmin, QueueSettings,
    Settings, default_pki_workers,
};
pub use state::{AppState, AppStateBuilder};
