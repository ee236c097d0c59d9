//! The responder (RA/CA) side: decode, verify and open requests; build CertRep replies.
//!
//! Each stage is a type, so a request cannot be opened before it is verified:
//!
//! ```text
//! bytes --DecodedRequest::decode--> DecodedRequest   (DecodeError -> HTTP 400)
//!       --verify-->                 VerifiedRequest  (Refusal -> CertRep FAILURE)
//!       --open-->                   OpenedRequest    (Refusal -> CertRep FAILURE)
//! ```
//!
//! Every stage hands out a [`ReplyContext`] from which a FAILURE (or PENDING, or SUCCESS once
//! the requester's certificate is known) can be built (RFC 8894 §3.3.2).

use openssl::x509::X509;

use crate::alg::{AlgorithmPolicy, ContentCipher, DigestAlgorithm};
use crate::attr::{
    AttributeStrings, FailInfo, LenientString, MessageType, Nonce, PkiStatus, PrintableAttribute,
    TransactionId,
};
use crate::cms::Attribute;
use crate::cms::enveloped::{DecryptionKey, EnvelopedData};
use crate::cms::signed::{SignerIdentity, certs_only, sign};
use crate::error::{BuildError, DecodeError, EnvelopeFault, Refusal};
use crate::message::{PkiMessage, RequestBody};
use crate::{asn1::writer, oid};

/// A pkiMessage whose structure and SCEP attributes decoded; nothing is verified yet.
#[derive(Debug)]
pub struct DecodedRequest<'a> {
    msg: PkiMessage<'a>,
}

impl<'a> DecodedRequest<'a> {
    /// Decode a PKIOperation body, with the string types of RFC 8894. Failures cannot be
    /// answered with a CertRep.
    pub fn decode(der: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_with(der, AttributeStrings::Rfc8894)
    }

    /// [`Self::decode`], reading the PrintableString attributes as `strings` says.
    pub fn decode_with(der: &'a [u8], strings: AttributeStrings) -> Result<Self, DecodeError> {
        PkiMessage::decode(der, strings).map(|msg| Self { msg })
    }

    /// The PrintableString attributes that were accepted as another string type (empty unless
    /// decoded with [`AttributeStrings::AlsoUtf8AndIa5`]), for the caller's metrics.
    pub fn lenient_strings(&self) -> &[(PrintableAttribute, LenientString)] {
        &self.msg.lenient
    }

    /// The transactionID (safe to log: bounded PrintableString).
    pub fn transaction_id(&self) -> &TransactionId {
        &self.msg.transaction_id
    }

    /// The senderNonce as sent (at most [`crate::limits::MAX_NONCE_ECHO`] bytes; checked to be
    /// 16 bytes by [`Self::verify`]).
    pub fn sender_nonce(&self) -> &[u8] {
        &self.msg.sender_nonce
    }

    /// The messageType as sent (bounded, printable), before it is checked.
    pub fn message_type_text(&self) -> &str {
        &self.msg.message_type
    }

    /// Enough to answer FAILURE or PENDING before verification.
    pub fn reply_context(&self) -> ReplyContext {
        let digest = DigestAlgorithm::from_oid(self.msg.signer_info().digest_algorithm.oid)
            .unwrap_or(DigestAlgorithm::Sha256);
        ReplyContext::new(&self.msg, digest, ContentCipher::Aes128Cbc, None)
    }

    /// Check the outer signature (RFC 5652 §5.6) with the signer certificate the message
    /// carries, then the messageType (docs/decisions.md #2: a type is handled or refused) and the
    /// senderNonce. Which certificate may sign which request is the caller's policy.
    pub fn verify(self, policy: &AlgorithmPolicy) -> Result<VerifiedRequest<'a>, Refusal> {
        let signer = self
            .msg
            .find_signer(&[])
            .ok_or(Refusal::SignerCertificateMissing)?;
        let key = signer.public_key().map_err(|_| Refusal::BadSignature)?;
        let si = self.msg.signer_info();
        let digest = si.verify(oid::DATA, self.msg.content(), &key, policy)?;
        let message_type = MessageType::from_wire(&self.msg.message_type)
            .filter(|t| *t != MessageType::CertRep)
            .ok_or_else(|| Refusal::MessageTypeNotSupported(self.msg.message_type.clone()))?;
        if Nonce::from_slice(&self.msg.sender_nonce).is_none() {
            return Err(Refusal::BadNonce(self.msg.sender_nonce.len()));
        }
        Ok(VerifiedRequest {
            msg: self.msg,
            signer,
            message_type,
            digest,
        })
    }
}

/// A request whose outer signature verified.
#[derive(Debug)]
pub struct VerifiedRequest<'a> {
    msg: PkiMessage<'a>,
    signer: X509,
    message_type: MessageType,
    digest: DigestAlgorithm,
}

impl<'a> VerifiedRequest<'a> {
    /// The (registered, request) messageType.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// The transactionID.
    pub fn transaction_id(&self) -> &TransactionId {
        &self.msg.transaction_id
    }

    /// The certificate that signed the request: self-signed for a first PKCSReq, the current
    /// certificate for a renewal.
    pub fn signer_certificate(&self) -> &X509 {
        &self.signer
    }

    /// The signingTime attribute, if present, in Unix seconds.
    pub fn signing_time(&self) -> Result<Option<i64>, Refusal> {
        let si = self.msg.signer_info();
        match si.attribute(oid::SIGNING_TIME, "signingTime") {
            Ok(Some(t)) => crate::time::decode_time(t)
                .map(Some)
                .map_err(|_| Refusal::MalformedSigningTime),
            Ok(None) => Ok(None),
            Err(_) => Err(Refusal::MalformedSigningTime),
        }
    }

    /// Refuse with badTime if signingTime is present and further than `tolerance` seconds from
    /// `now` (RFC 8894 §3.2.1.4 badTime). Servers that do not enforce it skip this call.
    pub fn check_signing_time(&self, now: i64, tolerance: i64) -> Result<(), Refusal> {
        match self.signing_time()? {
            Some(t) if (t - now).abs() > tolerance => Err(Refusal::SigningTimeSkew),
            _ => Ok(()),
        }
    }

    /// Enough to answer FAILURE or PENDING.
    pub fn reply_context(&self) -> ReplyContext {
        ReplyContext::new(
            &self.msg,
            self.digest,
            ContentCipher::Aes128Cbc,
            Some(self.signer.clone()),
        )
    }

    /// Open the pkcsPKIEnvelope with one of `keys` and decode the request body. Algorithms
    /// are decided from public OIDs first (badAlg); everything after is one uniform refusal.
    pub fn open(
        self,
        keys: &[DecryptionKey<'_>],
        policy: &AlgorithmPolicy,
    ) -> Result<OpenedRequest, Refusal> {
        // A SUCCESS must be sealed to the signer's key: a key no envelope can reach is badAlg
        // now, before the server does anything for the request (issue #15 item 4).
        crate::cms::kari::recipient_kind(&self.signer)?;
        let content = self.msg.content();
        if content.is_empty() {
            return Err(Refusal::MissingContent);
        }
        let envelope = EnvelopedData::from_content_info(content)
            .map_err(|e| Refusal::Envelope(EnvelopeFault::InnerContent(e)))?;
        let (data, cipher) = envelope.open(keys, policy)?;
        let body = RequestBody::decode(self.message_type, &data)?;
        if let RequestBody::PkcsReq(csr) | RequestBody::RenewalReq(csr) = &body {
            let key = csr
                .public_key()
                .map_err(|_| Refusal::Envelope(EnvelopeFault::MalformedCsr("key")))?;
            policy.public_key(&key)?;
        }
        let reply = ReplyContext::new(
            &self.msg,
            self.digest,
            cipher.for_reply(),
            Some(self.signer.clone()),
        );
        Ok(OpenedRequest {
            message_type: self.message_type,
            signer: self.signer,
            body,
            reply,
        })
    }
}

/// A verified and decrypted request.
#[derive(Debug)]
pub struct OpenedRequest {
    /// The messageType.
    pub message_type: MessageType,
    /// The certificate that signed the request.
    pub signer: X509,
    /// What the request asks for.
    pub body: RequestBody,
    /// How to answer it.
    pub reply: ReplyContext,
}

impl OpenedRequest {
    /// Whether the request was signed with the key it asks a certificate for (a first
    /// enrollment signs with a self-signed certificate of the new key).
    pub fn signed_with_requested_key(&self) -> bool {
        let (RequestBody::PkcsReq(csr) | RequestBody::RenewalReq(csr)) = &self.body else {
            return false;
        };
        match (self.signer.public_key(), csr.public_key()) {
            (Ok(a), Ok(b)) => a.public_eq(&b),
            _ => false,
        }
    }
}

/// Everything needed to answer a request: the transactionID and nonce to echo, the digest and
/// cipher to use, and (once verified) the requester certificate to encrypt a SUCCESS to.
#[derive(Clone, Debug)]
pub struct ReplyContext {
    /// transactionID to echo.
    pub transaction_id: TransactionId,
    recipient_nonce: Vec<u8>,
    /// Digest of the reply signature (the request's; SHA-256 if the request's was unusable).
    pub digest: DigestAlgorithm,
    /// Content cipher of a SUCCESS envelope (never single DES).
    pub cipher: ContentCipher,
    requester: Option<X509>,
}

/// The RA identity that signs replies, and what goes with each reply.
#[derive(Clone, Copy, Debug)]
pub struct Responder<'a> {
    /// RA (or CA) signing certificate and key.
    pub signer: SignerIdentity<'a>,
    /// A fresh senderNonce for this reply.
    pub sender_nonce: Nonce,
    /// signingTime to include, in Unix seconds (none if `None`).
    pub signing_time: Option<i64>,
    /// The eContent of a FAILURE or PENDING reply, which carries no pkcsPKIEnvelope.
    pub no_envelope: NoEnvelopeContent,
}

/// The eContent of a CertRep without a pkcsPKIEnvelope (FAILURE, PENDING; RFC 8894 §3.3.2
/// omits the envelope). Either way the reply is signed over the same attributes, and
/// messageDigest is the digest of the empty string (docs/decisions.md #1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NoEnvelopeContent {
    /// `eContent [0] EXPLICIT OCTET STRING` of length 0 is present. OpenSSL's PKCS7 API
    /// (`PKCS7_verify`: "PKCS7 routines::no content") and Python SCEP libraries cannot read a
    /// reply without an eContent; every client reads this one.
    #[default]
    Empty,
    /// No eContent: the strict reading of RFC 8894, for clients that insist on it.
    Absent,
}

impl ReplyContext {
    fn new(
        msg: &PkiMessage<'_>,
        digest: DigestAlgorithm,
        cipher: ContentCipher,
        requester: Option<X509>,
    ) -> Self {
        Self {
            transaction_id: msg.transaction_id.clone(),
            recipient_nonce: msg.sender_nonce.clone(),
            digest,
            cipher,
            requester,
        }
    }

    /// CertRep SUCCESS (RFC 8894 §3.3.2): a degenerate certs-only SignedData with `certs` (the
    /// issued certificate first) and `crls`, encrypted to the requester's certificate.
    pub fn success(
        &self,
        responder: &Responder<'_>,
        certs: &[&openssl::x509::X509Ref],
        crls: &[&[u8]],
    ) -> Result<Vec<u8>, BuildError> {
        let requester = self.requester.as_ref().ok_or(BuildError::InvalidInput(
            "SUCCESS needs the requester certificate (reply context from a verified request)",
        ))?;
        let payload = certs_only(certs, crls)?;
        let envelope = crate::cms::enveloped::seal(&payload, &[requester], self.cipher)?;
        self.cert_rep(responder, PkiStatus::Success, None, Some(&envelope))
    }

    /// CertRep FAILURE with `fail_info` and an optional failInfoText; no envelope.
    pub fn failure(
        &self,
        responder: &Responder<'_>,
        fail_info: FailInfo,
        text: Option<&str>,
    ) -> Result<Vec<u8>, BuildError> {
        self.cert_rep(responder, PkiStatus::Failure, Some((fail_info, text)), None)
    }

    /// CertRep FAILURE for a refusal: its FailInfo and fixed text, never the detail.
    pub fn refuse(
        &self,
        responder: &Responder<'_>,
        refusal: &Refusal,
    ) -> Result<Vec<u8>, BuildError> {
        self.failure(
            responder,
            refusal.fail_info(),
            Some(refusal.fail_info_text()),
        )
    }

    /// CertRep PENDING; no envelope. The requester polls with CertPoll.
    pub fn pending(&self, responder: &Responder<'_>) -> Result<Vec<u8>, BuildError> {
        self.cert_rep(responder, PkiStatus::Pending, None, None)
    }

    fn cert_rep(
        &self,
        responder: &Responder<'_>,
        status: PkiStatus,
        failure: Option<(FailInfo, Option<&str>)>,
        envelope: Option<&[u8]>,
    ) -> Result<Vec<u8>, BuildError> {
        let printable = |s: String| writer::printable_string(&s);
        let mut attrs = vec![
            Attribute::encode(
                oid::MESSAGE_TYPE,
                &printable(MessageType::CertRep.code().to_string()),
            ),
            Attribute::encode(oid::PKI_STATUS, &printable(status.code().to_string())),
            Attribute::encode(
                oid::TRANSACTION_ID,
                &writer::printable_string(self.transaction_id.as_str()),
            ),
            Attribute::encode(
                oid::SENDER_NONCE,
                &writer::octet_string(&responder.sender_nonce.0),
            ),
            Attribute::encode(
                oid::RECIPIENT_NONCE,
                &writer::octet_string(&self.recipient_nonce),
            ),
        ];
        if let Some((info, text)) = failure {
            attrs.push(Attribute::encode(
                oid::FAIL_INFO,
                &printable(info.code().to_string()),
            ));
            if let Some(t) = text {
                attrs.push(Attribute::encode(
                    oid::FAIL_INFO_TEXT,
                    &writer::utf8_string(t),
                ));
            }
        }
        let signer = responder.signer;
        let content = match (envelope, responder.no_envelope) {
            (Some(e), _) => Some(e),
            (None, NoEnvelopeContent::Empty) => Some(&[][..]),
            (None, NoEnvelopeContent::Absent) => None,
        };
        sign(
            content,
            signer,
            self.digest,
            attrs,
            &[signer.cert],
            responder.signing_time,
        )
    }
}
