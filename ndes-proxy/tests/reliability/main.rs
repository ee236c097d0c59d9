//! The reliability catalogue at the SCEP endpoint (research/reliability.md part 3): rows A1–A40
//! (bad input) and the error contract's input classes (`error_classes`), P22 and P34 (policy
//! attacks that are requests) and L1 (identical requests at once), each sent over 127.0.0.1
//! to a real ndes-proxy with the fake CA and policy of `common`. `tests/RELIABILITY.md` at the
//! workspace root maps every row to its test.
//!
//! Global invariants checked on every refusal (see `harness`): an answer before a generous
//! hang guard, a 4xx or a signed CertRep FAILURE with the expected failInfo, never a 500 with
//! internal text, and no change to issuance, challenge reservations, notifications or pending
//! rows. `bad_input::nothing_secret_reaches_the_logs` checks the captured logs.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod envelope_and_csr;
mod error_classes;
mod harness;
mod requests;

use common::Device;
use scep::TransactionId;

/// A device with a transactionID of its own (the fixture keys are shared between devices,
/// and the transactionID is what makes two enrollments two).
pub fn fresh(key_index: usize, cn: &str) -> Device {
    let mut d = Device::new(key_index, cn);
    let mut r = [0u8; 8];
    openssl::rand::rand_bytes(&mut r).unwrap();
    d.tx.transaction_id = TransactionId::new(&format!("{cn}-{}", hex::encode(r))).unwrap();
    d
}
