//! The foundation of scep-lab: what every service shares, written once.
//!
//! | module | what it holds |
//! |---|---|
//! | [`clock`] | the one [`Clock`] trait, the system clock and the test clock |
//! | [`time`] | unix seconds ↔ `Asn1Time` ↔ RFC 3339 text |
//! | [`serial`] | [`Serial`]: certificate serial numbers and their one spelling |
//! | [`secret`] | [`Secret`], SHA-256 digests, constant-time comparison, secret files |
//! | [`token`] | [`BearerToken`]: API tokens held as digests |
//! | [`io`] | stdout for command-line tools: a closed pipe ends the output, never a panic |
//! | [`names`] | the name vocabulary of certificates: subject attributes, SAN kinds, KU, EKU |
//! | `sql` | (feature `sql`) the durable SQLite/PostgreSQL pool and its query macro |
//! | [`rate_limit`] | per-source token buckets for the requests anyone can make expensive |
//! | `http` | (feature `http`) bearer tokens from headers, cross-site checks |
//! | `listen` | (feature `listen`, in `tls`) listening sockets with an accept queue sized for a herd |
//! | `tls` | (feature `tls`) HTTPS listeners with live certificate reload, clients that pin one CA |
//! | `log` | (feature `log`) one logging set-up for every binary: `--log-format json\|text`, no ANSI off a terminal |
//!
//! Nothing here knows about SCEP, policies or CAs: the services build on these types, and
//! the contracts between them (`policy-api`, `ca-api`) speak them.
#![forbid(unsafe_code)]

pub mod clock;
#[cfg(feature = "http")]
pub mod http;
pub mod io;
#[cfg(feature = "listen")]
pub mod listen;
#[cfg(feature = "log")]
pub mod log;
pub mod names;
pub mod rate_limit;
pub mod secret;
pub mod serial;
#[cfg(feature = "sql")]
pub mod sql;
pub mod time;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "tls")]
pub mod tls_files;
pub mod token;

pub use clock::{Clock, ManualClock, SystemClock};
pub use secret::Secret;
pub use serial::Serial;
pub use token::BearerToken;
