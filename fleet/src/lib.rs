//! device-fleet: the load tool of scep-lab. Many simulated devices enroll at once against a
//! SCEP deployment, plain (one URL, a static challenge) or through the MDM (register, join a
//! group, check in, enroll per profile); optionally every enrolled device then renews at once
//! (the renewal herd, reliability catalogue L5). Afterwards each installed certificate is
//! checked, so only usable certificates are counted.
//!
//! Why a crate of its own: the load tool drives many devices, while the device library
//! (`device-agent`) stays what one device needs. This crate uses only its public API.
//!
//! No module imports one that imports it back: [`latency`], [`check`] and [`key_pool`] stand
//! alone, [`herd`] uses [`latency`], and [`run`] uses all four; [`load`] (the light load
//! client of issue 19) uses [`check`], [`key_pool`] and [`latency`].
//!
//! ```no_run
//! # async fn fleet() -> Result<(), device_agent::Error> {
//! use std::sync::Arc;
//! use device_agent::{EnrollConfig, HttpTransport, KeySpec};
//! use device_fleet::{FleetMode, FleetOptions, run};
//! let http = reqwest::Client::new();
//! let options = FleetOptions {
//!     devices: 100,
//!     concurrency: 16,
//!     key: KeySpec::Rsa(2048),
//!     key_pool: None,
//!     state_root: "fleet-state".into(),
//!     prefix: "fleet".into(),
//!     mode: FleetMode::Plain {
//!         config: EnrollConfig::plain("http://127.0.0.1:8080/scep", "unused"),
//!         challenge: Some(Arc::new(scep::csr::ChallengePassword::new("secret"))),
//!     },
//!     herd: None,
//! };
//! let scep = Arc::new(HttpTransport::with_client(http.clone()));
//! let report = run(scep, http, &options, Arc::new(|_| {})).await?;
//! println!("{} enrolled, {:.1}/s", report.succeeded, report.enrollments_per_sec);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod check;
pub mod herd;
pub mod key_pool;
pub mod latency;
pub mod load;
pub mod run;

pub use check::CertCheck;
pub use herd::{HerdOptions, HerdReport};
pub use latency::Latency;
pub use run::{DeviceResult, FleetMode, FleetOptions, FleetReport, OnResult, run};
