//! The policy module's Prometheus metrics (`/metrics`, text exposition 0.0.4), named as
//! ndes-proxy's and the CA's: VerifyRequest decisions by named reason, and the revocation
//! outbox's backlog and the age of its oldest entry (read from the store at scrape time, so
//! every instance sharing a database reports the same backlog).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};

/// VerifyRequest decisions of one instance.
#[derive(Default)]
pub struct PolicyMetrics(Mutex<BTreeMap<(&'static str, String), u64>>);

impl std::fmt::Debug for PolicyMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyMetrics")
    }
}

/// The outbox's pending entries and the creation time of the oldest, unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backlog {
    /// Entries still to deliver to the CA.
    pub pending: i64,
    /// When the oldest of them was queued.
    pub oldest_created_at: Option<i64>,
}

impl PolicyMetrics {
    /// One decision: `granted` (reason `challenge` or `renewal`), `rejected` (the rejection's
    /// name, e.g. `ChallengeExpired`) or `unavailable`.
    pub(crate) fn decision(&self, decision: &'static str, reason: String) {
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((decision, reason))
            .or_default() += 1;
    }

    /// The text exposition; `backlog` is `None` when the store could not be read (the
    /// gauges are left out rather than reported as zero).
    pub fn render(&self, backlog: Option<Backlog>, now: i64) -> String {
        let mut out = String::new();
        out.push_str("# HELP policy_verify_decisions_total VerifyRequest decisions, by decision and named reason.\n# TYPE policy_verify_decisions_total counter\n");
        for ((decision, reason), n) in self.0.lock().unwrap_or_else(PoisonError::into_inner).iter()
        {
            let _ = writeln!(
                out,
                "policy_verify_decisions_total{{decision=\"{decision}\",reason=\"{reason}\"}} {n}"
            );
        }
        if let Some(b) = backlog {
            let age = b.oldest_created_at.map_or(0, |t| (now - t).max(0));
            let _ = write!(
                out,
                "# HELP policy_outbox_backlog Revocation outbox entries not yet delivered to the CA.\n# TYPE policy_outbox_backlog gauge\npolicy_outbox_backlog {}\n\
                 # HELP policy_outbox_oldest_age_seconds Age of the oldest undelivered outbox entry (0 when none).\n# TYPE policy_outbox_oldest_age_seconds gauge\npolicy_outbox_oldest_age_seconds {age}\n",
                b.pending
            );
        }
        out
    }
}
