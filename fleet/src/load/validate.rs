//! After the window: every reply checked as a device would, and more. A CertRep must be
//! signed by a reply signer from GetCACert (the RA), echo the request's transactionID and
//! senderNonce, be SUCCESS, open with the device's key, and carry a certificate of the
//! device's key signed by the CA discovery found; serials must be unique across the run
//! (the same checks as [`crate::check`], which judges a device fleet's installed files).

use device_agent::ca::CaInfo;
use openssl::x509::X509;
use scep::client::{CertRep, open_cert_rep};
use scep::cms::enveloped::DecryptionKey;
use scep::{AlgorithmPolicy, ReplyError};

use super::prepare::Prepared;
use super::send::Reply;
use crate::check::{CertCheck, Seen, bump, tally};

/// The verdict over all replies, and per request whether its own certificate passed (before
/// the run-wide serial check): the latencies that count.
pub fn validate(ca: &CaInfo, prepared: &[Prepared], replies: &[Reply]) -> (CertCheck, Vec<bool>) {
    let cas: Vec<X509> = ca.chain().cloned().collect();
    let policy = AlgorithmPolicy::default();
    let mut out = CertCheck::default();
    let mut seen = Vec::new();
    let mut ok = vec![false; replies.len()];
    for (i, (p, r)) in prepared.iter().zip(replies).enumerate() {
        match one(ca, &cas, &policy, p, r) {
            Ok(s) => {
                ok[i] = s.is_ok();
                seen.push(s);
            }
            Err(reason) => bump(&mut out, &reason),
        }
    }
    for _ in replies.len()..prepared.len() {
        bump(&mut out, "not_sent");
    }
    tally(&seen, &mut out);
    (out, ok)
}

fn one(
    ca: &CaInfo,
    cas: &[X509],
    policy: &AlgorithmPolicy,
    p: &Prepared,
    r: &Reply,
) -> Result<Seen, String> {
    let (status, body) = r.outcome.as_ref().map_err(|e| (*e).to_owned())?;
    if *status != 200 {
        return Err(format!("http_{status}"));
    }
    let key = DecryptionKey {
        cert: &p.signer,
        key: p.key.pkey(),
    };
    let rep = open_cert_rep(body, &p.transaction, &ca.reply_signers, key, policy).map_err(|e| {
        match e {
            ReplyError::Signature(_) => "reply_signature",
            ReplyError::TransactionIdMismatch | ReplyError::RecipientNonceMismatch => {
                "reply_mismatch"
            }
            ReplyError::Envelope(_) => "reply_envelope",
            _ => "bad_reply",
        }
        .to_owned()
    })?;
    let certs = match rep {
        CertRep::Success(certs) => certs.certificates,
        CertRep::Pending => return Err("pending".into()),
        CertRep::Failure { fail_info, .. } => return Err(format!("failure_{fail_info:?}")),
    };
    // The certificate of the device's key, else the first (judged a key mismatch).
    let leaf = certs
        .iter()
        .find(|c| c.public_key().is_ok_and(|k| k.public_eq(p.key.pkey())))
        .or(certs.first())
        .ok_or_else(|| "no_certificate".to_owned())?;
    Ok(Seen::examine(leaf, cas, &p.key))
}
