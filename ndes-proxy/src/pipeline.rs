//! PKIOperation: decode -> verify -> open -> (policy -> CA -> notify) -> CertRep.
//!
//! One readable function per message type; the error contract of DESIGN decision 1 is applied
//! here and nowhere else: undecodable -> HTTP 400; after decoding, every refusal is a signed
//! CertRep FAILURE; policy or CA unreachable -> HTTP 503 with Retry-After (nothing is queued
//! yet, so PENDING would be a lie).

use openssl::x509::X509;
use policy_module::{
    Grant, NdesPolicy, Notification, Outcome, RequesterInfo, VerifyError, VerifyRequest,
};
use scep::cms::IssuerAndSerialNumber;
use scep::csr::Csr;
use scep::server::{DecodedRequest, OpenedRequest, ReplyContext, Responder};
use scep::{AlgorithmPolicy, Nonce, Refusal, RequestBody};
use tracing::{info, warn};

use crate::AppState;
use crate::ca::{CaError, IssueCall, IssuedCert};
use crate::templates::purpose_template;

/// What the HTTP layer sends back.
#[derive(Debug)]
pub enum Reply {
    /// A CertRep (`application/x-pki-message`).
    CertRep(Vec<u8>),
    /// The message could not be decoded: 400 with a short generic body.
    BadRequest,
    /// A backend is down and nothing was queued: 503 with Retry-After.
    Unavailable,
    /// Building the reply failed (an OpenSSL failure on our side): 500, generic body.
    Internal,
}

/// Run one PKIOperation body through the pipeline.
pub async fn handle(state: &AppState, der: &[u8], requester: RequesterInfo) -> Reply {
    let decoded = match DecodedRequest::decode(der) {
        Ok(d) => d,
        Err(e) => {
            info!(error = %e, "undecodable PKIOperation");
            return Reply::BadRequest;
        }
    };
    let span = tracing::info_span!("pki_operation", transaction_id = %decoded.transaction_id(), message_type = %decoded.message_type_text());
    let _guard = span.enter();
    let early_ctx = decoded.reply_context();
    let policy = state.algorithms();
    let verified = match decoded.verify(policy) {
        Ok(v) => v,
        Err(r) => return refuse(state, &early_ctx, &r),
    };
    if let Some(tolerance) = state.settings().signing_time_tolerance
        && let Err(r) = verified.check_signing_time(state.now(), tolerance)
    {
        return refuse(state, &verified.reply_context(), &r);
    }
    let ctx = verified.reply_context();
    let opened = match verified.open(&state.ra().decryption_keys(state.now()), policy) {
        Ok(o) => o,
        Err(r) => return refuse(state, &ctx, &r),
    };
    drop(_guard);
    let result = match &opened.body {
        RequestBody::PkcsReq(csr) => enroll(state, &opened, csr, false, requester).await,
        RequestBody::RenewalReq(csr) => enroll(state, &opened, csr, true, requester).await,
        RequestBody::CertPoll(_) => poll(state, &opened).await,
        RequestBody::GetCert(ias) => get_cert(state, &opened, ias).await,
        RequestBody::GetCrl(ias) => get_crl(state, ias).await,
    };
    match result {
        Ok(payload) => success(state, &opened.reply, payload),
        Err(Step::Refuse(r)) => refuse(state, &opened.reply, &r),
        Err(Step::Unavailable) => Reply::Unavailable,
    }
}

/// How a step ends when it does not produce a payload.
enum Step {
    Refuse(Refusal),
    Unavailable,
}

/// A SUCCESS payload: certificates (the requested one first) or a CRL.
enum Payload {
    Certs(Vec<X509>),
    Crl(Vec<u8>),
}

/// PKCSReq / RenewalReq (RFC 8894 §3.3.1): policy, CA, notify.
async fn enroll(
    state: &AppState,
    req: &OpenedRequest,
    csr: &Csr,
    renewal_req: bool,
    requester: RequesterInfo,
) -> Result<Payload, Step> {
    let txid = req.reply.transaction_id.as_str();
    // Renewal (DESIGN decision 5): signed by a certificate this CA issued. A RenewalReq must be;
    // a PKCSReq may be (clients renew that way too) and then counts as a renewal.
    let issued_by_us = state.issued_by_our_ca(&req.signer);
    if renewal_req && !issued_by_us {
        warn!(
            transaction_id = txid,
            "renewal signed by a certificate this CA did not issue"
        );
        return Err(Step::Refuse(Refusal::RenewalSignerNotAccepted));
    }
    let signer_cert_der = if issued_by_us {
        req.signer.to_der().ok()
    } else {
        None
    };
    let request_id = request_id(txid, signer_cert_der.as_deref());
    if request_id != txid {
        info!(transaction_id = txid, request_id = %request_id, "renewal signed by an issued certificate");
    }
    let txid = request_id.as_str();
    let verify = VerifyRequest {
        csr_der: csr.to_der().to_vec(),
        challenge: csr
            .challenge_password()
            .map(|c| policy_module::secret::Secret::new(c.expose())),
        transaction_id: txid.to_owned(),
        template: None,
        signer_cert_der,
        requester,
    };
    let grant = match state.policy().verify_request(verify).await {
        Ok(g) => g,
        Err(VerifyError::Rejected(reason)) => {
            // The named reason goes to the log and audit only; the wire says badRequest.
            warn!(transaction_id = txid, reason = ?reason, "policy rejected the request");
            return Err(Step::Refuse(Refusal::Rejected));
        }
        Err(e) => {
            warn!(transaction_id = txid, error = %e, "policy module unavailable");
            return Err(Step::Unavailable);
        }
    };
    let call = match issue_call(&grant, csr) {
        Ok(c) => c,
        Err(e) => {
            warn!(transaction_id = txid, error = %e, "grant does not map to an issuance");
            notify(
                state.policy(),
                txid,
                Outcome::Failed {
                    reason: "grant_unusable".into(),
                },
            )
            .await;
            return Err(Step::Refuse(Refusal::Rejected));
        }
    };
    let issued = match state.ca().issue(&call).await {
        Ok(i) => i,
        Err(CaError::Unavailable(e)) => {
            warn!(transaction_id = txid, error = %e, "CA unavailable");
            return Err(Step::Unavailable);
        }
        Err(CaError::Refused(e)) => {
            warn!(transaction_id = txid, error = %e, "CA refused the issuance");
            notify(
                state.policy(),
                txid,
                Outcome::Failed {
                    reason: format!("ca_refused: {e}"),
                },
            )
            .await;
            return Err(Step::Refuse(Refusal::Rejected));
        }
    };
    let certs = certs_of(&issued).map_err(|()| Step::Unavailable)?;
    let thumbprint = certs[0]
        .digest(openssl::hash::MessageDigest::sha256())
        .map(|d| hex::encode(&*d));
    let outcome = Outcome::Issued {
        serial_hex: issued.serial_hex.clone(),
        thumbprint_sha256: thumbprint.unwrap_or_default(),
        not_after: issued.not_after,
        certificate_der: issued.der.clone(),
    };
    notify(state.policy(), txid, outcome).await;
    info!(transaction_id = txid, serial = %issued.serial_hex, template = %call.template, renewal = grant.renewal, "issued");
    Ok(Payload::Certs(certs))
}

/// The idempotency key of a request at the policy module and the CA (DESIGN decision 3).
///
/// A first enrollment is keyed by its transactionID. A renewal is keyed by the transactionID
/// *and* the certificate that signed it: clients that renew with the same key (micromdm
/// `scepclient`) repeat the transactionID and even the CSR of the enrollment, yet ask for a new
/// certificate; a retransmitted renewal still maps to the same key and the same certificate.
pub fn request_id(transaction_id: &str, renewing_cert_der: Option<&[u8]>) -> String {
    match renewing_cert_der {
        None => transaction_id.to_owned(),
        Some(cert) => {
            let mut input = transaction_id.as_bytes().to_vec();
            input.push(0);
            input.extend_from_slice(cert);
            let digest = openssl::hash::hash(openssl::hash::MessageDigest::sha256(), &input)
                .map(|d| hex::encode(&d[..20]))
                .unwrap_or_default();
            format!("renewal-{digest}")
        }
    }
}

/// Tell the policy module; a failure is logged, not fatal: the certificate is recorded at the
/// CA, and a retransmission re-runs verify (same grant) and notify.
async fn notify(policy: &dyn NdesPolicy, txid: &str, outcome: Outcome) {
    let n = Notification {
        transaction_id: txid.to_owned(),
        outcome,
    };
    if let Err(e) = policy.notify(n).await {
        warn!(transaction_id = txid, error = %e, "notify failed");
    }
}

fn issue_call(grant: &Grant, csr: &Csr) -> Result<IssueCall, serde_json::Error> {
    // policy-module and ca-mock share the wire vocabulary for names (see the ca-mock contract).
    let subject = serde_json::from_value(serde_json::to_value(&grant.subject)?)?;
    let sans = serde_json::from_value(serde_json::to_value(&grant.subject_alternative_names)?)?;
    let template = if grant.template.is_empty() {
        purpose_template(csr).to_owned()
    } else {
        grant.template.clone()
    };
    Ok(IssueCall {
        request_id: grant.transaction_id.clone(),
        template,
        csr_der: csr.to_der().to_vec(),
        subject,
        sans,
        validity_days: Some(grant.validity_days),
    })
}

/// CertPoll (RFC 8894 §3.3.3): this server never leaves a request pending yet, so a poll
/// finds the certificate the CA recorded for this transactionID, or nothing (badCertID).
async fn poll(state: &AppState, req: &OpenedRequest) -> Result<Payload, Step> {
    let renewing = state
        .issued_by_our_ca(&req.signer)
        .then(|| req.signer.to_der().ok())
        .flatten();
    let id = request_id(req.reply.transaction_id.as_str(), renewing.as_deref());
    let found = state
        .ca()
        .by_request_id(&id)
        .await
        .map_err(|_| Step::Unavailable)?;
    let mut certs: Vec<X509> = found
        .iter()
        .filter_map(|d| X509::from_der(d).ok())
        .collect();
    // Only certificates for the key that signed the poll belong to this requester.
    certs.retain(|c| {
        c.public_key()
            .is_ok_and(|k| req.signer.public_key().is_ok_and(|s| k.public_eq(&s)))
    });
    let cert = certs.pop().ok_or(Step::Refuse(Refusal::NotFound))?;
    let mut out = vec![cert];
    out.extend(state.ra().chain().iter().cloned());
    Ok(Payload::Certs(out))
}

/// GetCert (RFC 8894 §3.3.4): a certificate of ours, and only to the holder of its key.
async fn get_cert(
    state: &AppState,
    req: &OpenedRequest,
    ias: &IssuerAndSerialNumber,
) -> Result<Payload, Step> {
    if !state.is_our_issuer(&ias.issuer) {
        return Err(Step::Refuse(Refusal::NotFound));
    }
    let der = state
        .ca()
        .certificate(&hex::encode(&ias.serial))
        .await
        .map_err(|_| Step::Unavailable)?;
    let cert = der
        .and_then(|d| X509::from_der(&d).ok())
        .ok_or(Step::Refuse(Refusal::NotFound))?;
    let holder = match (cert.public_key(), req.signer.public_key()) {
        (Ok(a), Ok(b)) => a.public_eq(&b),
        _ => false,
    };
    if !holder {
        return Err(Step::Refuse(Refusal::NotFound));
    }
    Ok(Payload::Certs(vec![cert]))
}

/// GetCRL (RFC 8894 §3.3.4): the CRL of our CA.
async fn get_crl(state: &AppState, ias: &IssuerAndSerialNumber) -> Result<Payload, Step> {
    if !state.is_our_issuer(&ias.issuer) {
        return Err(Step::Refuse(Refusal::NotFound));
    }
    state
        .ca()
        .crl()
        .await
        .map(Payload::Crl)
        .map_err(|_| Step::Unavailable)
}

fn certs_of(issued: &IssuedCert) -> Result<Vec<X509>, ()> {
    std::iter::once(&issued.der)
        .chain(&issued.chain)
        .map(|d| X509::from_der(d).map_err(|_| ()))
        .collect()
}

fn responder<'a>(state: &'a AppState) -> Result<Responder<'a>, openssl::error::ErrorStack> {
    Ok(Responder {
        signer: state.ra().signer(),
        sender_nonce: Nonce::random()?,
        signing_time: Some(state.now()),
    })
}

fn success(state: &AppState, ctx: &ReplyContext, payload: Payload) -> Reply {
    let Ok(r) = responder(state) else {
        return Reply::Internal;
    };
    let built = match &payload {
        Payload::Certs(certs) => {
            let refs: Vec<&openssl::x509::X509Ref> = certs.iter().map(|c| &**c).collect();
            ctx.success(&r, &refs, &[])
        }
        Payload::Crl(crl) => ctx.success(&r, &[], &[crl]),
    };
    built.map(Reply::CertRep).unwrap_or(Reply::Internal)
}

fn refuse(state: &AppState, ctx: &ReplyContext, refusal: &Refusal) -> Reply {
    info!(transaction_id = %ctx.transaction_id, refusal = %refusal, fail_info = %refusal.fail_info(), "refused");
    let Ok(r) = responder(state) else {
        return Reply::Internal;
    };
    ctx.refuse(&r, refusal)
        .map(Reply::CertRep)
        .unwrap_or(Reply::Internal)
}

/// The algorithm policy in force, re-exported for the HTTP layer.
pub fn algorithms(strict: bool) -> AlgorithmPolicy {
    if strict {
        AlgorithmPolicy::strict()
    } else {
        AlgorithmPolicy::default()
    }
}
