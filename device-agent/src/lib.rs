//! device-agent: the device side of scep-lab.
//!
//! A device generates its key locally ([`key`]), builds the CSR exactly as its profile renders
//! it ([`csr`]), enrolls over SCEP with PKCSReq and polls while PENDING ([`enroll`]), renews
//! with RenewalReq signed by its current certificate ([`renew`]), and keeps everything in a
//! per-device state directory ([`state`]). In MDM mode it checks in with policy-module for
//! its profiles, challenges and commands (wipe, retire) and reports status ([`mdm`]). The
//! load tool that runs many simulated devices at once is a crate of its own, `device-fleet`:
//! this library stays what one device needs.
//!
//! The private key never leaves the device: it is never serialized into a request body
//! (`tests/private_key.rs` inspects every byte sent), only written to a 0600 file.
//!
//! ```no_run
//! # async fn run() -> Result<(), device_agent::Error> {
//! use device_agent::{EnrollConfig, HttpTransport, DeviceDir, enroll};
//! let transport = HttpTransport::new(std::time::Duration::from_secs(30))?;
//! let slot = DeviceDir::open("/var/lib/device-agent/dev-1")?.slot("default")?;
//! let config = EnrollConfig::plain("http://127.0.0.1:8080/scep", "dev-1");
//! let challenge = scep::csr::ChallengePassword::new("secret");
//! let cert = enroll(&transport, &slot, &config, Some(&challenge), None).await?;
//! println!("{}", cert.serial_hex);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod agent;
pub mod ca;
pub mod csr;
pub mod enroll;
pub mod error;
pub mod key;
pub mod mdm;
pub mod renew;
pub mod retry;
pub mod state;
pub mod transport;

pub use enroll::{EnrollConfig, Enrolled, enroll, resume};
pub use error::Error;
pub use key::{DeviceKey, KeySpec};
pub use renew::{RenewOptions, RenewOutcome, RenewalWindow, renew};
pub use retry::RetryPolicy;
pub use state::{DeviceDir, Slot};
pub use transport::{HttpTransport, ScepRequest, ScepResponse, ScepTransport};
