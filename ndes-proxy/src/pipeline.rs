//! PKIOperation: decode -> verify -> open -> (policy -> CA -> notify) -> CertRep.
//!
//! One readable function per message type; the error contract of docs/decisions.md #1 is applied
//! here and nowhere else: undecodable -> HTTP 400; after decoding, every refusal is a signed
//! CertRep FAILURE; PENDING only once the request is committed to the pending store (manual
//! approval, or CA unreachable after a grant); policy or store unreachable -> HTTP 503 with
//! Retry-After.

use ca_api::{CaError, IssuedCert};
use foundation::secret::sha256;
use foundation::{Secret, Serial};
use openssl::x509::X509;
use policy_api::csr::CsrFacts;
use policy_api::{Algorithms, Outcome, ReplyReport, RequesterInfo, VerifyError, VerifyRequest};
use scep::cms::IssuerAndSerialNumber;
use scep::csr::Csr;
use scep::server::{DecodedRequest, OpenedRequest, ReplyContext, Responder};
use scep::{FailInfo, MessageType, Nonce, Refusal, RequestBody};
use tracing::{Instrument, info, warn};

use crate::AppState;
use crate::issuance::{
    RequestId, issue_bounded, issue_call, issued_cert_of, issued_outcome, notify,
};
use crate::pending::{PendingRecord, PendingState, StateKind};
use crate::queue;

/// The pkiStatus of a CertRep, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepStatus {
    /// SUCCESS.
    Success,
    /// PENDING.
    Pending,
    /// FAILURE with this failInfo.
    Failure(FailInfo),
}

/// What the HTTP layer sends back.
#[derive(Debug)]
pub enum Reply {
    /// A CertRep (`application/x-pki-message`).
    CertRep(Vec<u8>, RepStatus),
    /// The message could not be decoded: 400 with a short generic body.
    BadRequest,
    /// A backend is down and nothing was queued: 503 with Retry-After.
    Unavailable,
    /// Building the reply failed (an OpenSSL failure on our side): 500, generic body.
    Internal,
}

/// The messageType as a metrics label (a fixed set: unknown types are `other`).
fn message_type_label(wire: &str) -> &'static str {
    match MessageType::from_wire(wire) {
        Some(MessageType::PkcsReq) => "PKCSReq",
        Some(MessageType::RenewalReq) => "RenewalReq",
        Some(MessageType::CertPoll) => "CertPoll",
        Some(MessageType::GetCert) => "GetCert",
        Some(MessageType::GetCrl) => "GetCRL",
        Some(MessageType::CertRep) => "CertRep",
        None => "other",
    }
}

/// Run one PKIOperation body through the pipeline; also returns the messageType label.
pub async fn handle(
    state: &AppState,
    der: &[u8],
    requester: RequesterInfo,
) -> (Reply, &'static str) {
    let decoded = match DecodedRequest::decode_with(der, state.settings().attribute_strings) {
        Ok(d) => d,
        Err(e) => {
            info!(error = %e, "undecodable PKIOperation");
            return (Reply::BadRequest, "");
        }
    };
    for (attribute, ty) in decoded.lenient_strings() {
        state.metrics().lenient_string(*attribute, *ty);
    }
    let label = message_type_label(decoded.message_type_text());
    // Every log line of this request, policy, CA and pending store included, carries the
    // transactionID through this span, and the client's User-Agent (control characters
    // already removed) so that an interop failure can be traced to a client version.
    let user_agent = requester.user_agent.clone().unwrap_or_default();
    let span = tracing::info_span!("pki_operation", transaction_id = %decoded.transaction_id(), message_type = label, user_agent = %user_agent);
    let transaction_id = decoded.transaction_id().as_str().to_owned();
    let reply = handle_decoded(state, decoded, requester)
        .instrument(span)
        .await;
    report_reply(state, &reply, transaction_id, label);
    (reply, label)
}

/// Tells the policy module what was answered, for the transaction's trace: in the
/// background, so it never delays or fails the reply.
fn report_reply(state: &AppState, reply: &Reply, transaction_id: String, label: &'static str) {
    if !matches!(label, "PKCSReq" | "RenewalReq" | "CertPoll") {
        return;
    }
    let Reply::CertRep(_, status) = reply else {
        return;
    };
    let (pki_status, fail_info) = match status {
        RepStatus::Success => ("SUCCESS", None),
        RepStatus::Pending => ("PENDING", None),
        RepStatus::Failure(f) => ("FAILURE", Some(f.to_string())),
    };
    let report = ReplyReport {
        transaction_id,
        request_id: None,
        message_type: label.to_owned(),
        pki_status: pki_status.to_owned(),
        fail_info,
        instance: Some(state.settings().instance.clone()),
    };
    let state = state.clone();
    tokio::spawn(async move { state.policy().reply_sent(report).await });
}

/// The algorithms of an opened request, by name, for the trace.
fn algorithms_of(req: &OpenedRequest) -> Algorithms {
    let key = match req.signer.public_key().map(|k| k.id()) {
        Ok(openssl::pkey::Id::RSA) => "rsa",
        Ok(openssl::pkey::Id::EC) => "ec",
        _ => "other",
    };
    let digest = format!("{:?}", req.reply.digest).to_ascii_lowercase();
    Algorithms {
        signature: format!("{key}-{digest}"),
        digest,
        content_encryption: format!("{:?}", req.reply.cipher).to_ascii_lowercase(),
    }
}

async fn handle_decoded(
    state: &AppState,
    decoded: DecodedRequest<'_>,
    requester: RequesterInfo,
) -> Reply {
    let early_ctx = decoded.reply_context();
    let policy = state.algorithms();
    let verified = match decoded.verify(policy) {
        Ok(v) => v,
        Err(r) => return refuse(state, &early_ctx, &r),
    };
    // A signingTime that is present must be well formed even when it is not enforced: a
    // malformed one is badRequest either way (reliability catalogue A30).
    if let Err(r) = verified.signing_time() {
        return refuse(state, &verified.reply_context(), &r);
    }
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
    let requester = RequesterInfo {
        instance: Some(state.settings().instance.clone()),
        message_type: Some(opened.message_type.to_string()),
        algorithms: Some(algorithms_of(&opened)),
        ..requester
    };
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
        Err(Step::Pending) => pending(state, &opened.reply),
        Err(Step::Unavailable) => Reply::Unavailable,
    }
}

/// How a step ends when it does not produce a payload.
enum Step {
    Refuse(Refusal),
    /// The request is committed to the pending store.
    Pending,
    Unavailable,
}

/// A SUCCESS payload: certificates (the requested one first) or a CRL.
enum Payload {
    Certs(Vec<X509>),
    Crl(Vec<u8>),
}

fn store_down(e: &crate::pending::StoreError) -> Step {
    warn!(error = %e, "pending store unavailable");
    Step::Unavailable
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
    if state.ra().holds_public_key(csr.public_key_der()) {
        warn!(
            transaction_id = txid,
            "request for a certificate on the RA's or the CA's own key"
        );
        return Err(Step::Refuse(Refusal::Rejected));
    }
    // Renewal (docs/decisions.md #5): signed by a current, unrevoked certificate this CA issued.
    // A RenewalReq must be; a PKCSReq may be (clients renew that way too) and then counts as
    // a renewal, otherwise its challenge decides. Revocation is the CA's word, not a cache.
    let issued_by_us =
        state.issued_by_our_ca(&req.signer) && signer_is_good(state, req, txid).await?;
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
    let request_id = RequestId::for_request(&req.reply.transaction_id, signer_cert_der.as_deref());
    if request_id.as_str() != txid {
        info!(transaction_id = txid, request_id = %request_id, "renewal signed by an issued certificate");
    }
    // Decision 3 for pending requests: a retransmission answers from the committed row.
    if let Some(rec) = state
        .pending()
        .get(request_id.as_str())
        .await
        .map_err(|e| store_down(&e))?
    {
        if rec.csr_der != csr.to_der() {
            warn!(
                transaction_id = txid,
                request_id = %request_id,
                "known transactionID with a different CSR"
            );
            return Err(Step::Refuse(Refusal::Rejected));
        }
        return answer_from_record(state, rec).await;
    }
    // The CSR's self-signature was verified when the pkiMessage was opened: for a policy in
    // this process that reads them, its facts are read once here and handed over as types (an
    // unreadable CSR is left to the policy, which names the rejection in its audit).
    let verify = VerifyRequest {
        csr_der: csr.to_der().to_vec(),
        challenge: csr.challenge_password().map(|c| Secret::new(c.expose())),
        transaction_id: request_id.as_str().to_owned(),
        template: None,
        signer_cert_der,
        requester: RequesterInfo {
            // A renewal's request id is not the client's transactionID: keep it visible.
            client_transaction_id: Some(txid.to_owned()),
            ..requester
        },
        facts: state
            .policy()
            .reads_csr_facts()
            .then(|| CsrFacts::read_verified(csr.to_der()).ok())
            .flatten(),
    };
    let grant = match state.policy().verify_request(verify).await {
        Ok(g) => g,
        Err(VerifyError::Rejected(reason)) => {
            // The named reason goes to the log and audit only; the wire says badRequest.
            warn!(transaction_id = txid, request_id = %request_id, reason = ?reason, "policy rejected the request");
            state.metrics().policy_rejection(reason);
            return Err(Step::Refuse(Refusal::Rejected));
        }
        Err(e) => {
            warn!(transaction_id = txid, error = %e, "policy module unavailable");
            return Err(Step::Unavailable);
        }
    };
    let call = issue_call(&request_id, &grant, csr);
    if state.needs_approval(&call.template) {
        info!(transaction_id = txid, template = %call.template, "waiting for manual approval");
        let rec = PendingRecord::new(
            &request_id,
            &req.reply.transaction_id,
            &call.template,
            csr.to_der(),
            grant,
            PendingState::AwaitingApproval,
            state.now(),
        )
        .signed_by(signer_key_digest(&req.signer));
        return persist_pending(state, rec, csr).await;
    }
    let issued = match issue_bounded(state, &call).await {
        Ok(i) => i,
        Err(CaError::Unavailable(e)) => {
            // Granted but not issued: queue it durably and say PENDING (decision 1).
            warn!(transaction_id = txid, error = %e, "CA unavailable, queueing the request");
            let rec = PendingRecord::new(
                &request_id,
                &req.reply.transaction_id,
                &call.template,
                csr.to_der(),
                grant,
                PendingState::QueuedForCa,
                state.now(),
            )
            .signed_by(signer_key_digest(&req.signer));
            return persist_pending(state, rec, csr).await;
        }
        Err(CaError::Refused(e)) => {
            warn!(transaction_id = txid, error = %e, "CA refused the issuance");
            notify(
                state.policy(),
                &request_id,
                Outcome::Failed {
                    reason: format!("ca_refused: {e}"),
                },
            )
            .await;
            return Err(Step::Refuse(Refusal::Rejected));
        }
    };
    if !notify(state.policy(), &request_id, issued_outcome(&issued)).await {
        // Issued and recorded at the CA, but the policy module never heard of it (it died or
        // is unreachable). The Notify is owed: recorded durably as an issued row whose Notify
        // is pending, which the retry task delivers whether or not the device comes back, and
        // which a retransmission or CertPoll answers from (docs/decisions.md #1 and #3; issue
        // #15 item 4). No SUCCESS yet: the inventory has not heard, so 503 and the device
        // retries, as for a queued request whose Notify is owed.
        let rec = PendingRecord::new(
            &request_id,
            &req.reply.transaction_id,
            &call.template,
            csr.to_der(),
            grant,
            PendingState::Issued {
                serial_hex: issued.serial.to_hex(),
                cert_der: issued.der.clone(),
            },
            state.now(),
        )
        .signed_by(signer_key_digest(&req.signer));
        let stored = state
            .pending()
            .insert(&rec)
            .await
            .map_err(|e| store_down(&e))?;
        state.metrics().queue_attempt("notify_owed");
        warn!(transaction_id = txid, request_id = %request_id, serial = %issued.serial, state = ?stored.state, "issued; the Notify is owed and will be retried");
        return Err(Step::Unavailable);
    }
    info!(transaction_id = txid, request_id = %request_id, serial = %issued.serial, template = %call.template, renewal = grant.renewal, "issued");
    let certs = certs_of(state, &issued).map_err(|()| Step::Unavailable)?;
    Ok(Payload::Certs(certs))
}

/// Commit a pending row, then answer from what is stored (a concurrent twin may have won).
async fn persist_pending(state: &AppState, rec: PendingRecord, csr: &Csr) -> Result<Payload, Step> {
    let stored = state
        .pending()
        .insert(&rec)
        .await
        .map_err(|e| store_down(&e))?;
    if stored.csr_der != csr.to_der() {
        return Err(Step::Refuse(Refusal::Rejected));
    }
    // Just queued because the CA did not answer: trying it again at once would only spend the
    // rest of the request's deadline; the queue and the client's retransmission will.
    if stored.state == PendingState::QueuedForCa
        && stored.attempts == 0
        && rec.state == stored.state
    {
        return Err(Step::Pending);
    }
    answer_from_record(state, stored).await
}

/// The answer for a committed pending row; a queued row is tried at the CA first.
async fn answer_from_record(state: &AppState, rec: PendingRecord) -> Result<Payload, Step> {
    let mut rec = if rec.state == PendingState::QueuedForCa {
        queue::attempt(state, rec)
            .await
            .map_err(|e| store_down(&e))?
    } else {
        rec
    };
    // An ended row whose Notify is still owed: deliver it now. A SUCCESS the inventory would
    // never learn of is not given (as for an inline issuance): 503, and the next
    // retransmission tries again.
    if rec.state.kind().is_ended()
        && !queue::deliver(state, &mut rec)
            .await
            .map_err(|e| store_down(&e))?
        && rec.state.kind() == StateKind::Issued
    {
        return Err(Step::Unavailable);
    }
    match rec.state {
        PendingState::AwaitingApproval | PendingState::QueuedForCa => Err(Step::Pending),
        PendingState::Issued { cert_der, .. } => {
            let cert = X509::from_der(&cert_der).map_err(|_| {
                warn!(request_id = %rec.request_id, "stored certificate does not decode");
                Step::Unavailable
            })?;
            let mut out = vec![cert];
            out.extend(state.ra().chain().iter().cloned());
            Ok(Payload::Certs(out))
        }
        PendingState::Denied | PendingState::Failed { .. } => {
            info!(request_id = %rec.request_id, state = ?rec.state, "pending request ended without a certificate");
            Err(Step::Refuse(Refusal::Rejected))
        }
    }
}

/// Whether the CA still holds the request's signer certificate as good (not revoked, not on
/// hold, known). The CA unreachable is a 503: a renewal is never decided on a guess.
async fn signer_is_good(state: &AppState, req: &OpenedRequest, txid: &str) -> Result<bool, Step> {
    let Ok(serial) = Serial::of_certificate(&req.signer) else {
        return Ok(false);
    };
    match state.ca().is_good(&serial).await {
        Ok(Some(true)) => Ok(true),
        Ok(Some(false) | None) => {
            warn!(transaction_id = txid, serial = %serial, "signer certificate revoked, on hold or unknown at the CA");
            Ok(false)
        }
        Err(e) => {
            warn!(transaction_id = txid, error = %e, "CA unavailable for the signer's status");
            Err(Step::Unavailable)
        }
    }
}

/// SHA-256 of the SubjectPublicKeyInfo of the key that signed a message (its signature was
/// verified with this key when the message was decoded).
fn signer_key_digest(signer: &X509) -> Option<Vec<u8>> {
    let spki = signer.public_key().ok()?.public_key_to_der().ok()?;
    Some(sha256(&spki))
}

/// CertPoll (RFC 8894 §3.3.3): the pending row of this request (PENDING, SUCCESS once approved
/// and issued, FAILURE if denied), else the certificate the CA recorded for this
/// transactionID, else nothing (badCertID).
async fn poll(state: &AppState, req: &OpenedRequest) -> Result<Payload, Step> {
    let renewing = state
        .issued_by_our_ca(&req.signer)
        .then(|| req.signer.to_der().ok())
        .flatten();
    let id = RequestId::for_request(&req.reply.transaction_id, renewing.as_deref());
    if let Some(rec) = state
        .pending()
        .get(id.as_str())
        .await
        .map_err(|e| store_down(&e))?
    {
        // A renewal's id already names its signer; a first enrollment must poll with its key,
        // or with the key that signed its PKCSReq (a client with a throwaway identity key).
        let owner = renewing.is_some()
            || Csr::from_der(&rec.csr_der)
                .ok()
                .and_then(|c| c.public_key().ok())
                .zip(req.signer.public_key().ok())
                .is_some_and(|(a, b)| a.public_eq(&b))
            || rec
                .signer_key_sha256
                .as_ref()
                .is_some_and(|k| signer_key_digest(&req.signer).as_ref() == Some(k));
        if !owner {
            return Err(Step::Refuse(Refusal::NotFound));
        }
        return answer_from_record(state, rec).await;
    }
    let found = state
        .ca()
        .by_request_id(id.as_str())
        .await
        .map_err(|_| Step::Unavailable)?;
    let mut certs: Vec<X509> = found
        .iter()
        .filter_map(|d| X509::from_der(d).ok())
        .collect();
    // A first enrollment polls with the key it asked a certificate for: only certificates
    // for that key belong to this requester. A renewal polls with its current certificate
    // and key while the new certificate may carry a new key; its request id already names
    // that signer certificate (whose key signed this poll), so what the CA holds under the id
    // is its own.
    if renewing.is_none() {
        certs.retain(|c| {
            c.public_key()
                .is_ok_and(|k| req.signer.public_key().is_ok_and(|s| k.public_eq(&s)))
        });
    }
    let cert = certs.pop().ok_or(Step::Refuse(Refusal::NotFound))?;
    // The CA issued it but no pending row tells whether the policy module heard (the inline
    // Notify may have failed after the CA answered): tell it again (Notify is idempotent), and
    // give no SUCCESS the inventory would never learn of.
    let issued = issued_cert_of(&cert).ok_or(Step::Unavailable)?;
    if !notify(state.policy(), &id, issued_outcome(&issued)).await {
        return Err(Step::Unavailable);
    }
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
    let Ok(serial) = Serial::from_magnitude(&ias.serial) else {
        return Err(Step::Refuse(Refusal::NotFound));
    };
    let der = state
        .ca()
        .certificate(&serial)
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

/// The issued certificate, then its chain (normally the RA's own, already parsed).
fn certs_of(state: &AppState, issued: &IssuedCert) -> Result<Vec<X509>, ()> {
    std::iter::once(X509::from_der(&issued.der))
        .chain(issued.chain.iter().map(|d| state.parse_ca_cert(d)))
        .map(|c| c.map_err(|_| ()))
        .collect()
}

fn responder<'a>(state: &'a AppState) -> Result<Responder<'a>, openssl::error::ErrorStack> {
    Ok(Responder {
        signer: state.ra().signer(),
        sender_nonce: Nonce::random()?,
        signing_time: Some(state.now()),
        no_envelope: state.settings().no_envelope_content,
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
    built
        .map(|b| Reply::CertRep(b, RepStatus::Success))
        .unwrap_or(Reply::Internal)
}

fn pending(state: &AppState, ctx: &ReplyContext) -> Reply {
    let Ok(r) = responder(state) else {
        return Reply::Internal;
    };
    ctx.pending(&r)
        .map(|b| Reply::CertRep(b, RepStatus::Pending))
        .unwrap_or(Reply::Internal)
}

fn refuse(state: &AppState, ctx: &ReplyContext, refusal: &Refusal) -> Reply {
    info!(transaction_id = %ctx.transaction_id, refusal = %refusal, fail_info = %refusal.fail_info(), "refused");
    let Ok(r) = responder(state) else {
        return Reply::Internal;
    };
    ctx.refuse(&r, refusal)
        .map(|b| Reply::CertRep(b, RepStatus::Failure(refusal.fail_info())))
        .unwrap_or(Reply::Internal)
}
