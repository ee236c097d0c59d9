//! Prometheus metrics, rendered by `/metrics` in the text exposition format (0.0.4).
//!
//! A small per-server registry rather than a process-global recorder (`metrics` +
//! `metrics-exporter-prometheus`): several servers in one test process stay apart, and the
//! handful of series below needs no more than a map and fixed buckets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Latency buckets, in seconds (upper bounds; `+Inf` is implied).
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Labels of one SCEP request: operation, messageType, pkiStatus, failInfo.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestLabels {
    /// GetCACaps, GetCACert, GetNextCACert, PKIOperation, or `invalid`.
    pub operation: &'static str,
    /// PKCSReq, RenewalReq, CertPoll, GetCert, GetCRL, `other`, or empty.
    pub message_type: &'static str,
    /// SUCCESS, FAILURE, PENDING, or empty when the answer was no CertRep.
    pub pki_status: &'static str,
    /// badAlg, badMessageCheck, badRequest, badTime, badCertId, or empty.
    pub fail_info: &'static str,
    /// The HTTP status code.
    pub http_status: u16,
}

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<RequestLabels, u64>,
    latency: BTreeMap<&'static str, Histogram>,
    queue_attempts: BTreeMap<&'static str, u64>,
    lenient_strings: BTreeMap<(&'static str, &'static str), u64>,
    policy_rejections: BTreeMap<String, u64>,
}

/// The registry of one server.
#[derive(Default)]
pub struct Metrics(Mutex<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Counters stay meaningful after a panic elsewhere: keep counting.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Count one SCEP request and its latency.
    pub fn observe(&self, labels: RequestLabels, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut m = self.inner();
        let h = m.latency.entry(labels.operation).or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
        *m.requests.entry(labels).or_default() += 1;
    }

    /// Count one background or poll-driven CA attempt for a queued request.
    pub fn queue_attempt(&self, result: &'static str) {
        *self.inner().queue_attempts.entry(result).or_default() += 1;
    }

    /// Count one attribute accepted as UTF8String or IA5String where RFC 8894 requires
    /// PrintableString (only with `lenient_attribute_strings`).
    pub fn lenient_string(&self, attribute: scep::PrintableAttribute, ty: scep::LenientString) {
        *self
            .inner()
            .lenient_strings
            .entry((attribute.name(), ty.name()))
            .or_default() += 1;
    }

    /// Count one VerifyRequest the policy module refused, by its named reason (the wire says
    /// only badRequest; operators see why here and in the log).
    pub fn policy_rejection(&self, reason: policy_api::Rejection) {
        *self
            .inner()
            .policy_rejections
            .entry(reason.to_string())
            .or_default() += 1;
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let m = self.inner();
        let mut out = String::new();
        out.push_str("# HELP ndes_scep_requests_total SCEP requests by operation, messageType, pkiStatus, failInfo and HTTP status.\n");
        out.push_str("# TYPE ndes_scep_requests_total counter\n");
        for (l, n) in &m.requests {
            let _ = writeln!(
                out,
                "ndes_scep_requests_total{{operation=\"{}\",message_type=\"{}\",pki_status=\"{}\",fail_info=\"{}\",status=\"{}\"}} {n}",
                l.operation, l.message_type, l.pki_status, l.fail_info, l.http_status
            );
        }
        out.push_str("# HELP ndes_scep_request_duration_seconds Time to answer a SCEP request.\n");
        out.push_str("# TYPE ndes_scep_request_duration_seconds histogram\n");
        for (op, h) in &m.latency {
            for (le, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "ndes_scep_request_duration_seconds_bucket{{operation=\"{op}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "ndes_scep_request_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "ndes_scep_request_duration_seconds_sum{{operation=\"{op}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "ndes_scep_request_duration_seconds_count{{operation=\"{op}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP ndes_queue_attempts_total CA attempts for requests queued while the CA was unreachable, by result.\n");
        out.push_str("# TYPE ndes_queue_attempts_total counter\n");
        for (result, n) in &m.queue_attempts {
            let _ = writeln!(out, "ndes_queue_attempts_total{{result=\"{result}\"}} {n}");
        }
        out.push_str("# HELP ndes_scep_lenient_attribute_strings_total SCEP attributes RFC 8894 types as PrintableString accepted as another string type (lenient_attribute_strings), by attribute and type.\n");
        out.push_str("# TYPE ndes_scep_lenient_attribute_strings_total counter\n");
        for ((attribute, ty), n) in &m.lenient_strings {
            let _ = writeln!(
                out,
                "ndes_scep_lenient_attribute_strings_total{{attribute=\"{attribute}\",string_type=\"{ty}\"}} {n}"
            );
        }
        out.push_str("# HELP ndes_policy_rejections_total Requests the policy module refused, by its named reason.\n");
        out.push_str("# TYPE ndes_policy_rejections_total counter\n");
        for (reason, n) in &m.policy_rejections {
            let _ = writeln!(
                out,
                "ndes_policy_rejections_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        let labels = RequestLabels {
            operation: "PKIOperation",
            message_type: "PKCSReq",
            pki_status: "SUCCESS",
            fail_info: "",
            http_status: 200,
        };
        m.observe(labels.clone(), Duration::from_millis(3));
        m.observe(labels, Duration::from_millis(300));
        let text = m.render();
        assert!(text.contains("ndes_scep_requests_total{operation=\"PKIOperation\",message_type=\"PKCSReq\",pki_status=\"SUCCESS\",fail_info=\"\",status=\"200\"} 2"), "{text}");
        assert!(text.contains(
            "ndes_scep_request_duration_seconds_bucket{operation=\"PKIOperation\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "ndes_scep_request_duration_seconds_bucket{operation=\"PKIOperation\",le=\"0.5\"} 2"
        ));
        assert!(
            text.contains("ndes_scep_request_duration_seconds_count{operation=\"PKIOperation\"} 2")
        );
    }
}
