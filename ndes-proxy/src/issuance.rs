//! Issuance as the pipeline and the retry queue share it: the idempotency key of a request
//! ([`RequestId`]), the CA call a grant maps to, the bounded CA call, and what Notify says.
//!
//! Its own module so that `pipeline` (a request in flight) and `queue` (a request retried
//! later) both use it without importing each other.

use std::fmt;

use ca_api::{CaError, IssueCall, IssuedCert};
use foundation::Serial;
use foundation::secret::{sha256, sha256_hex};
use foundation::time::asn1_to_unix;
use openssl::x509::X509Ref;
use policy_api::{Grant, NdesPolicy, Notification, NotifyError, Outcome};
use scep::TransactionId;
use scep::csr::Csr;
use tracing::warn;

use crate::AppState;
use crate::templates::purpose_template;

/// The idempotency key of a request at the policy module, the pending store and the CA
/// (docs/decisions.md #3). Not a transactionID: a first enrollment's request id is its
/// transactionID, a renewal's names the certificate that signed it as well, so the two are
/// kept apart as types.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// The key of a request with this transactionID, signed by `renewing_cert_der` when it is a
    /// renewal. Clients that renew with the same key (micromdm `scepclient`) repeat the
    /// transactionID and even the CSR of the enrollment yet ask for a new certificate; a
    /// retransmitted renewal still maps to the same key and the same certificate.
    pub fn for_request(transaction_id: &TransactionId, renewing_cert_der: Option<&[u8]>) -> Self {
        let txid = transaction_id.as_str();
        match renewing_cert_der {
            None => Self(txid.to_owned()),
            Some(cert) => {
                let mut input = txid.as_bytes().to_vec();
                input.push(0);
                input.extend_from_slice(cert);
                let digest = sha256(&input);
                Self(format!(
                    "renewal-{}",
                    hex::encode(digest.get(..20).unwrap_or(&digest))
                ))
            }
        }
    }

    /// A request id as stored (the pending store's rows, an administrator's approval).
    pub fn from_stored(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

/// Issue at the CA within half of the request deadline. A request waits on the CA inline (a
/// first attempt, or a retransmission retrying its queued row), and a blackholed or slow CA
/// must end in a durable PENDING (docs/decisions.md #1), not in the whole request timing out
/// with nothing said. A late answer is harmless: the CA issues idempotently by request id, so
/// the next attempt gets that same certificate.
pub(crate) async fn issue_bounded(
    state: &AppState,
    call: &IssueCall,
) -> Result<IssuedCert, CaError> {
    let deadline = state.settings().request_timeout / 2;
    tokio::time::timeout(deadline, state.ca().issue(call))
        .await
        .unwrap_or_else(|_| {
            Err(CaError::Unavailable(format!(
                "no answer within {deadline:?}"
            )))
        })
}

/// The CA call for a grant: the grant's template, else NDES's template by key purpose. The
/// grant's names are the CA's names (one vocabulary), so nothing is converted.
pub(crate) fn issue_call(request_id: &RequestId, grant: &Grant, csr: &Csr) -> IssueCall {
    let template = if grant.template.is_empty() {
        purpose_template(csr).to_owned()
    } else {
        grant.template.clone()
    };
    IssueCall {
        request_id: request_id.as_str().to_owned(),
        template,
        csr_der: csr.to_der().to_vec(),
        subject: grant.subject.clone(),
        sans: grant.subject_alternative_names.clone(),
        validity_days: Some(grant.validity_days),
        key_usage: grant.key_usage.clone(),
        extended_key_usages: grant.extended_key_usages.clone(),
        // Forwarded untouched: the CA checks this call against it (docs/decisions.md #10).
        grant: grant.signed.clone(),
    }
}

/// An issued certificate as the CA would describe it, from the certificate itself (a CertPoll
/// that found it at the CA).
pub(crate) fn issued_cert_of(cert: &X509Ref) -> Option<IssuedCert> {
    Some(IssuedCert {
        serial: Serial::of_certificate(cert).ok()?,
        der: cert.to_der().ok()?,
        chain: Vec::new(),
        not_before: asn1_to_unix(cert.not_before()).ok()?,
        not_after: asn1_to_unix(cert.not_after()).ok()?,
        replayed: true,
    })
}

/// What Notify says about an issued certificate.
pub(crate) fn issued_outcome(issued: &IssuedCert) -> Outcome {
    Outcome::Issued {
        serial: issued.serial.clone(),
        thumbprint_sha256: sha256_hex(&issued.der),
        not_after: issued.not_after,
        certificate_der: issued.der.clone(),
    }
}

/// Tell the policy module; a failure is logged. False when the policy module could not be
/// reached (worth a retransmission), true when it took the notification or refused it for
/// good (unknown transaction, conflict).
pub(crate) async fn notify(
    policy: &dyn NdesPolicy,
    request_id: &RequestId,
    outcome: Outcome,
) -> bool {
    let n = Notification {
        transaction_id: request_id.as_str().to_owned(),
        outcome,
    };
    match policy.notify(n).await {
        Ok(()) => true,
        Err(e) => {
            warn!(request_id = %request_id, error = %e, "notify failed");
            !matches!(e, NotifyError::Unavailable)
        }
    }
}
