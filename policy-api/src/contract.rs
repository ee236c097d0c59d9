//! The NDES-side contract (the open equivalent of NDES's INDESPolicy): what ndes-proxy calls.
//!
//! Two implementations: policy-module's `PolicyService` in process, and
//! [`crate::client::RemotePolicy`] over authenticated HTTP to a remote policy-module. Both are used as `Arc<dyn NdesPolicy>`.

use serde::{Deserialize, Serialize};

use ca_api::SignedGrant;
use foundation::names::{KeyUsage, NameAttr, San};
use foundation::{Secret, Serial};

use crate::csr::CsrFacts;
use crate::error::{ChallengeError, NotifyError, VerifyError};

/// INDESPolicy: GenerateChallenge / VerifyRequest / Notify.
#[async_trait::async_trait]
pub trait NdesPolicy: Send + Sync {
    /// mscep_admin style: a one-time password for a template, for an authorised requester.
    async fn generate_challenge(
        &self,
        req: ChallengeRequest,
    ) -> Result<IssuedChallenge, ChallengeError>;

    /// Steps 4-5: decide whether this CSR may be issued, and under what.
    async fn verify_request(&self, req: VerifyRequest) -> Result<Grant, VerifyError>;

    /// Step 7: the outcome of the issuance; idempotent by transactionID.
    async fn notify(&self, n: Notification) -> Result<(), NotifyError>;

    /// A fresh signature on the grant already given for this request (docs/decisions.md #10),
    /// for a request issued later than its VerifyRequest: queued while the CA was down, or
    /// approved by an administrator. Refused if the request is no longer one to issue (its
    /// device retired or untargeted, or it was already notified). A policy that signs
    /// nothing (plain mode) keeps this default.
    async fn regrant(&self, req: RegrantRequest) -> Result<Grant, VerifyError> {
        let _ = req;
        Err(VerifyError::Unavailable)
    }

    /// Whether [`VerifyRequest::facts`] is used: true only for an implementation in the same
    /// process that reads the CSR's facts. The caller skips reading them otherwise (an HTTP
    /// client never sends them; plain mode needs only the challenge).
    fn reads_csr_facts(&self) -> bool {
        false
    }

    /// Whether the policy answers now, for ndes-proxy's `/readyz` (the caller bounds the
    /// wait); `Err` says why, for the log. A policy in the same process without a store of its
    /// own (plain mode) keeps this default.
    async fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    /// After ndes-proxy answered: the CertRep's pkiStatus and failInfo, for the transaction's
    /// trace. Best effort: the caller never waits on it for the reply, and a policy that keeps
    /// no trace keeps this default.
    async fn reply_sent(&self, report: ReplyReport) {
        let _ = report;
    }
}

/// What ndes-proxy answered to one request (`reply_sent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyReport {
    /// The client's transactionID.
    pub transaction_id: String,
    /// ndes-proxy's request id when it is not the transactionID (a renewal's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `PKCSReq`, `RenewalReq`, `CertPoll`, ...
    pub message_type: String,
    /// `SUCCESS`, `FAILURE` or `PENDING`.
    pub pki_status: String,
    /// The failInfo of a FAILURE (`badRequest`, `badAlg`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_info: Option<String>,
    /// The ndes-proxy instance that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// GenerateChallenge input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The CA template the password is for.
    pub template: String,
    /// Who asked (the admin identity NDES authenticated), kept in the audit trail.
    pub requester: String,
}

/// GenerateChallenge output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedChallenge {
    pub challenge: Secret,
    pub template: String,
    /// RFC 3339 UTC (docs/decisions.md #12).
    pub expires_at: String,
    /// The same instant in unix seconds, for machines.
    pub expires_at_unix: i64,
}

/// Who sent the SCEP request and how, as ndes-proxy received it: written with the policy's
/// decision as the transaction's `request_received` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequesterInfo {
    #[serde(default)]
    pub remote_addr: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The ndes-proxy instance that received the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// `PKCSReq` or `RenewalReq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// The client's transactionID, when [`VerifyRequest::transaction_id`] (the request id) is
    /// not it: a renewal's request id also names the certificate that signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_transaction_id: Option<String>,
    /// The algorithms the pkiMessage used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Algorithms>,
}

/// The algorithms of one pkiMessage, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Algorithms {
    /// The signer's key type with the digest (`rsa-sha256`, `ec-sha256`).
    pub signature: String,
    /// The SignerInfo's digestAlgorithm.
    pub digest: String,
    /// The pkcsPKIEnvelope's content encryption.
    pub content_encryption: String,
}

/// VerifyRequest input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// DER PKCS#10.
    #[serde(with = "b64")]
    pub csr_der: Vec<u8>,
    /// The challengePassword, if ndes-proxy extracted it (it must equal the CSR's).
    #[serde(default)]
    pub challenge: Option<Secret>,
    pub transaction_id: String,
    /// The template NDES chose, if any.
    #[serde(default)]
    pub template: Option<String>,
    /// RenewalReq: the current certificate that signed the request (DER).
    #[serde(default, with = "b64_opt")]
    pub signer_cert_der: Option<Vec<u8>>,
    #[serde(default)]
    pub requester: RequesterInfo,
    /// What the caller learned of `csr_der` when it verified it in this process (ndes-proxy
    /// opening the pkiMessage): handed over as types so the policy module neither parses nor
    /// verifies the CSR a second time. Never on the wire: over HTTP the policy module reads
    /// the CSR itself (its trust boundary).
    #[serde(skip)]
    pub facts: Option<CsrFacts>,
}

/// Everything the CA needs to issue: the CSR proposes, the grant decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub transaction_id: String,
    pub template: String,
    /// Subject RDNs in encoding order.
    pub subject: Vec<NameAttr>,
    pub subject_alternative_names: Vec<San>,
    pub validity_days: u32,
    pub key_usage: Vec<KeyUsage>,
    pub extended_key_usages: Vec<String>,
    pub device_id: Option<String>,
    pub profile_id: Option<String>,
    pub profile_version: Option<i64>,
    /// True when authorised by a current certificate instead of a challenge.
    pub renewal: bool,
    /// All of the above, signed by the policy module for the CA (docs/decisions.md #10);
    /// ndes-proxy forwards it untouched. `None` from a policy without a signing key (plain
    /// mode), which only a caller with plain mode's entitlement can use at the CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedGrant>,
}

/// Regrant input: the request whose grant is to be signed afresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegrantRequest {
    /// The transaction id the grant was given under (ndes-proxy's request id).
    pub transaction_id: String,
}

/// Notify input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    pub transaction_id: String,
    pub outcome: Outcome,
}

/// The issuance outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    Issued {
        /// The serial (its one spelling on the wire, under its historical name).
        #[serde(rename = "serial_hex")]
        serial: Serial,
        /// Lowercase hex SHA-256 of the certificate DER.
        thumbprint_sha256: String,
        /// Unix seconds in Rust; RFC 3339 on the wire (unix seconds accepted too).
        #[serde(with = "foundation::time::rfc3339_serde")]
        not_after: i64,
        #[serde(with = "b64")]
        certificate_der: Vec<u8>,
    },
    Failed {
        reason: String,
    },
}

/// Bytes as standard base64 in JSON.
pub(crate) mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// Optional bytes as standard base64 in JSON.
pub(crate) mod b64_opt {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&STANDARD.encode(v)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => STANDARD
                .decode(s.as_bytes())
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}
