//! The lab's scheduled CA rollover (issue 17 item 1; RFC 8894 §4.7): a `RolloverPlan`'s
//! `switch_at` onto ca-mock's on-disk rollover ([`ca_mock::rollover`]). Before `switch_at` the next
//! issuing CA exists and GetNextCACert announces it; the first start at or after `switch_at`
//! makes it the issuing CA (GetCACert then answers it, GetNextCACert stops), and the previous
//! one is retired: its CRL stays published and OCSP still answers for what it issued.
//! The switch happens at a start, not while running: the lab's services hold their CA and RA
//! identity for their lifetime, and a start is where every one of them is built afresh.
//! `scep-lab serve` restarts the lab when `Lab::rollover_due` resolves.

use std::path::Path;

use anyhow::{Context, Result};
use ca_mock::rollover::Phase;
use foundation::time::rfc3339;
use openssl::x509::X509;

/// Brings the CA directory `dir` in line with a switch planned at `at` (unix seconds) as seen
/// at `now`; the next issuing CA while it is still to be announced.
pub(crate) fn prepare(dir: &Path, at: i64, now: i64) -> Result<Option<X509>> {
    let phase = ca_mock::rollover::prepare(dir, at, now, None)
        .context("preparing the scheduled CA rollover")?;
    Ok(match phase {
        Phase::Announced(next) => {
            tracing::info!(
                switch_at = %rfc3339(at),
                switch_at_unix = at,
                "next issuing CA announced by GetNextCACert; it takes over at the first start from switch_at on"
            );
            Some(next)
        }
        Phase::Switched => {
            tracing::info!(
                switch_at = %rfc3339(at),
                switch_at_unix = at,
                "CA rollover done: the next issuing CA issues; the previous one's CRL and OCSP stay published"
            );
            None
        }
    })
}
