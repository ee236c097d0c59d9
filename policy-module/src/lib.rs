//! policy-module: the Intune/ConfigMgr role of the NDES flow.
pub mod admin;
pub mod api;
pub mod checkin;
pub mod client;
pub mod clock;
pub mod contract;
pub mod csr;
pub mod error;
pub mod model;
pub mod outbox;
pub mod payload;
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
