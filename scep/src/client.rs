//! The requester (device) side: build PKCSReq, RenewalReq, CertPoll, GetCert and GetCRL
//! (RFC 8894 §3.3), and open the CertRep that answers them (§3.3.2).

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKeyRef, Private};
use openssl::x509::{X509, X509NameRef, X509Ref};

use crate::alg::{AlgorithmPolicy, ContentCipher, DigestAlgorithm};
use crate::attr::{FailInfo, MessageType, Nonce, PkiStatus, TransactionId};
use crate::cms::enveloped::{DecryptionKey, EnvelopedData, seal};
use crate::cms::signed::{CertsOnly, SignerIdentity, sign};
use crate::error::{BuildError, EnvelopeFault, ReplyError};
use crate::message::{PkiMessage, RequestBody, request_attributes};
use crate::oid;

/// How a request is protected. Pick from the server's GetCACaps
/// ([`crate::caps::Capabilities::strongest_digest`] / `strongest_cipher`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestOptions {
    /// Digest of the outer signature.
    pub digest: DigestAlgorithm,
    /// Content cipher of the pkcsPKIEnvelope.
    pub cipher: ContentCipher,
    /// signingTime attribute in Unix seconds, if wanted.
    pub signing_time: Option<i64>,
}

impl Default for RequestOptions {
    fn default() -> Self {
        Self {
            digest: DigestAlgorithm::Sha256,
            cipher: ContentCipher::Aes128Cbc,
            signing_time: None,
        }
    }
}

/// What a reply is checked against: the request's transactionID and senderNonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// transactionID of the request (and every poll for it).
    pub transaction_id: TransactionId,
    /// senderNonce of the request this reply must answer.
    pub sender_nonce: Nonce,
}

/// Build a pkiMessage: `body` sealed to `recipients` (the RA encryption certificate, or every
/// certificate GetCACert returned), signed by `signer` with the SCEP attributes.
pub fn build_request(
    body: &RequestBody,
    signer: SignerIdentity<'_>,
    recipients: &[&X509Ref],
    transaction: &Transaction,
    options: &RequestOptions,
) -> Result<Vec<u8>, BuildError> {
    let envelope = seal(&body.to_der(), recipients, options.cipher)?;
    let attrs = request_attributes(
        &body.message_type().code().to_string(),
        transaction.transaction_id.as_str(),
        &transaction.sender_nonce.0,
    );
    sign(
        Some(&envelope),
        signer,
        options.digest,
        attrs,
        &[signer.cert],
        options.signing_time,
    )
}

/// A self-signed certificate of the request key, to sign a first PKCSReq with (RFC 8894
/// §2.3: "the requester MUST use a self-signed certificate"), valid from `not_before` to
/// `not_after` (Unix seconds), with a random serial.
pub fn self_signed_certificate(
    key: &PKeyRef<Private>,
    subject: &X509NameRef,
    not_before: i64,
    not_after: i64,
) -> Result<X509, BuildError> {
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    b.set_serial_number(&*serial.to_asn1_integer()?)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(subject)?;
    b.set_pubkey(key)?;
    b.set_not_before(&*Asn1Time::from_unix(not_before)?)?;
    b.set_not_after(&*Asn1Time::from_unix(not_after)?)?;
    let digest = if key.id() == openssl::pkey::Id::RSA || key.id() == openssl::pkey::Id::EC {
        MessageDigest::sha256()
    } else {
        return Err(BuildError::InvalidInput("request key must be RSA or EC"));
    };
    b.sign(key, digest)?;
    Ok(b.build())
}

/// A CertRep as the requester sees it (RFC 8894 §3.3.2).
#[derive(Clone, Debug)]
pub enum CertRep {
    /// SUCCESS: the decrypted certs-only payload (issued certificate and chain, or a CRL).
    Success(CertsOnly),
    /// FAILURE with the server's failInfo and optional text.
    Failure {
        /// failInfo.
        fail_info: FailInfo,
        /// failInfoText, if sent.
        text: Option<String>,
    },
    /// PENDING: poll later with CertPoll and the same transactionID.
    Pending,
}

/// Verify and open a CertRep.
///
/// `trusted_signers` are the certificates allowed to sign replies (from GetCACert, see
/// [`crate::http::CaCertificates::reply_signers`]); a reply signed by anything else is refused.
/// The transactionID and recipientNonce must match `transaction`. A SUCCESS envelope is opened
/// with `key` (the requester's key and the certificate it signed the request with).
pub fn open_cert_rep(
    der: &[u8],
    transaction: &Transaction,
    trusted_signers: &[X509],
    key: DecryptionKey<'_>,
    policy: &AlgorithmPolicy,
) -> Result<CertRep, ReplyError> {
    // The requester stays tolerant of a server's string types: the RFC 8894 check is the
    // responder's (docs/decisions.md #1), and a reply is verified against the RA anyway.
    let msg = PkiMessage::decode(der, crate::attr::AttributeStrings::AlsoUtf8AndIa5)?;
    if MessageType::from_wire(&msg.message_type) != Some(MessageType::CertRep) {
        return Err(ReplyError::NotCertRep);
    }
    let signer = msg
        .signer_info()
        .sid
        .find(trusted_signers)
        .ok_or(ReplyError::Signature(
            crate::error::Refusal::SignerCertificateMissing,
        ))?;
    let signer_key = signer
        .public_key()
        .map_err(|_| ReplyError::InvalidAttribute("signer key"))?;
    msg.signer_info()
        .verify(oid::DATA, msg.content(), &signer_key, policy)
        .map_err(ReplyError::Signature)?;
    if msg.transaction_id != transaction.transaction_id {
        return Err(ReplyError::TransactionIdMismatch);
    }
    if msg.recipient_nonce.as_deref() != Some(&transaction.sender_nonce.0[..]) {
        return Err(ReplyError::RecipientNonceMismatch);
    }
    let status = msg
        .pki_status
        .as_deref()
        .and_then(PkiStatus::from_wire)
        .ok_or(ReplyError::InvalidAttribute("pkiStatus"))?;
    match status {
        PkiStatus::Pending => Ok(CertRep::Pending),
        PkiStatus::Failure => {
            let fail_info = msg
                .fail_info
                .as_deref()
                .and_then(FailInfo::from_wire)
                .ok_or(ReplyError::InvalidAttribute("failInfo"))?;
            Ok(CertRep::Failure {
                fail_info,
                text: msg.fail_info_text.clone(),
            })
        }
        PkiStatus::Success => {
            let envelope = EnvelopedData::from_content_info(msg.content())
                .map_err(|e| ReplyError::Envelope(EnvelopeFault::InnerContent(e)))?;
            let (payload, _) = envelope.open(&[key], policy).map_err(|r| match r {
                crate::error::Refusal::Envelope(f) => ReplyError::Envelope(f),
                other => ReplyError::Algorithm(other),
            })?;
            let certs = CertsOnly::from_der(&payload).map_err(|e| match e {
                crate::error::DecodeError::Asn1(a) => {
                    ReplyError::Envelope(EnvelopeFault::InnerContent(a))
                }
                other => ReplyError::Decode(other),
            })?;
            Ok(CertRep::Success(certs))
        }
    }
}
