//! The CA's Prometheus metrics (`/metrics`, text exposition 0.0.4), named as ndes-proxy's
//! (`<service>_<what>_total` counters): issuance by template, refusals by wire code,
//! revocations by reason, CRL publications with the last one's build time and size, OCSP
//! answers by certificate status. A small registry per CA, like ndes-proxy's: several CAs in
//! one test process stay apart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

#[derive(Default)]
struct Inner {
    issued: BTreeMap<(String, bool), u64>,
    refused: BTreeMap<&'static str, u64>,
    revoked: BTreeMap<&'static str, u64>,
    crl_publications: u64,
    crl_last_seconds: f64,
    crl_last_bytes: usize,
    crl_last_number: i64,
    crl_last_unix: i64,
    ocsp: BTreeMap<&'static str, u64>,
}

/// The registry of one CA.
#[derive(Default)]
pub struct CaMetrics(Mutex<Inner>);

impl std::fmt::Debug for CaMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaMetrics")
    }
}

impl CaMetrics {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Counters stay meaningful after a panic elsewhere: keep counting.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One issuance (or a replay of one) under a loaded template.
    pub(crate) fn issued(&self, template: &str, replayed: bool) {
        *self
            .inner()
            .issued
            .entry((template.to_owned(), replayed))
            .or_default() += 1;
    }

    /// One refused issuance, by wire code.
    pub(crate) fn refused(&self, code: &'static str) {
        *self.inner().refused.entry(code).or_default() += 1;
    }

    /// One new revocation or hold (not an idempotent repeat), by RFC 5280 reason.
    pub(crate) fn revoked(&self, reason: &'static str) {
        *self.inner().revoked.entry(reason).or_default() += 1;
    }

    /// One CRL published: how long building and writing it took, its size and number, when.
    pub(crate) fn crl_published(&self, took: Duration, bytes: usize, number: i64, at_unix: i64) {
        let mut m = self.inner();
        m.crl_publications += 1;
        m.crl_last_seconds = took.as_secs_f64();
        m.crl_last_bytes = bytes;
        m.crl_last_number = number;
        m.crl_last_unix = at_unix;
    }

    /// One OCSP answer: `good`, `revoked`, `unknown` per certificate asked about, or
    /// `malformed` / `internal_error` for the whole request.
    pub(crate) fn ocsp(&self, status: &'static str) {
        *self.inner().ocsp.entry(status).or_default() += 1;
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let m = self.inner();
        let mut out = String::new();
        out.push_str("# HELP ca_issued_total Certificates issued, by template; replayed=\"true\" for a request id answered again.\n# TYPE ca_issued_total counter\n");
        for ((template, replayed), n) in &m.issued {
            let _ = writeln!(
                out,
                "ca_issued_total{{template=\"{}\",replayed=\"{replayed}\"}} {n}",
                escape(template)
            );
        }
        out.push_str("# HELP ca_issue_refusals_total Issuance requests refused, by error code.\n# TYPE ca_issue_refusals_total counter\n");
        for (code, n) in &m.refused {
            let _ = writeln!(out, "ca_issue_refusals_total{{code=\"{code}\"}} {n}");
        }
        out.push_str("# HELP ca_revocations_total Certificates revoked or put on hold, by reason.\n# TYPE ca_revocations_total counter\n");
        for (reason, n) in &m.revoked {
            let _ = writeln!(out, "ca_revocations_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = write!(
            out,
            "# HELP ca_crl_publications_total CRLs built and published.\n# TYPE ca_crl_publications_total counter\nca_crl_publications_total {}\n\
             # HELP ca_crl_last_publication_seconds Time the last CRL took to build and write.\n# TYPE ca_crl_last_publication_seconds gauge\nca_crl_last_publication_seconds {}\n\
             # HELP ca_crl_size_bytes Size of the last CRL, DER.\n# TYPE ca_crl_size_bytes gauge\nca_crl_size_bytes {}\n\
             # HELP ca_crl_number The last CRL's number.\n# TYPE ca_crl_number gauge\nca_crl_number {}\n\
             # HELP ca_crl_last_publication_timestamp_seconds When the last CRL was published, unix seconds.\n# TYPE ca_crl_last_publication_timestamp_seconds gauge\nca_crl_last_publication_timestamp_seconds {}\n",
            m.crl_publications,
            m.crl_last_seconds,
            m.crl_last_bytes,
            m.crl_last_number,
            m.crl_last_unix
        );
        out.push_str("# HELP ca_ocsp_responses_total OCSP answers, by certificate status (or malformed, internal_error).\n# TYPE ca_ocsp_responses_total counter\n");
        for (status, n) in &m.ocsp {
            let _ = writeln!(out, "ca_ocsp_responses_total{{status=\"{status}\"}} {n}");
        }
        out
    }
}

/// A label value as the exposition format wants it (template names come from configuration).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
