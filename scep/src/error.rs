//! The two kinds of failure a SCEP responder has, and the one place refusals become wire codes.
//!
//! [`DecodeError`]: the input is too broken to address a reply (no transactionID, no
//! senderNonce, not a SignedData...). The server answers at the HTTP layer (400).
//!
//! [`Refusal`]: the request was readable enough to answer with a signed CertRep FAILURE.
//! [`Refusal::fail_info`] is the only mapping to the wire (docs/decisions.md #1). Variants keep the
//! fine-grained reason for logs and tests; the wire only carries a [`FailInfo`] and the fixed
//! text of [`Refusal::fail_info_text`], which depends on the FailInfo alone.

use std::fmt;

use crate::asn1::Asn1Error;
use crate::attr::FailInfo;

/// Input that cannot be answered with a CertRep (RFC 8894 §3.3.2 needs the request's
/// transactionID and senderNonce to address a reply). Messages are static: nothing from the
/// input is echoed, so `Display` is safe to put in an HTTP body or a log line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not valid BER/DER for the expected structure.
    #[error("malformed ASN.1: {0}")]
    Asn1(#[from] Asn1Error),
    /// Larger than [`crate::limits::MAX_MESSAGE_SIZE`].
    #[error("message too large")]
    TooLarge,
    /// The outer ContentInfo is not a SignedData (RFC 8894 §3.2: "a pkiMessage is a CMS
    /// SignedData").
    #[error("not a CMS SignedData")]
    NotSignedData,
    /// A pkiMessage has exactly one SignerInfo.
    #[error("expected exactly one SignerInfo, found {0}")]
    SignerInfoCount(usize),
    /// A required signed attribute is absent.
    #[error("missing signed attribute {0}")]
    MissingAttribute(&'static str),
    /// A signed attribute is duplicated, multi-valued, of the wrong type or out of bounds.
    #[error("invalid signed attribute {0}")]
    InvalidAttribute(&'static str),
    /// An attribute RFC 8894 types as PrintableString came as UTF8String or IA5String, and
    /// the caller did not ask for [`crate::AttributeStrings::AlsoUtf8AndIa5`].
    #[error("signed attribute {0} is not a PrintableString (RFC 8894 §3.2.1)")]
    NotPrintableString(&'static str),
    /// A GET `message=` parameter that is not base64 of anything.
    #[error("message parameter is not valid base64")]
    Base64,
}

/// Which algorithm slot a refused algorithm came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlgorithmKind {
    /// SignerInfo digestAlgorithm.
    Digest,
    /// SignerInfo signatureAlgorithm.
    Signature,
    /// KeyTransRecipientInfo keyEncryptionAlgorithm, or a non key-transport RecipientInfo.
    KeyTransport,
    /// EncryptedContentInfo contentEncryptionAlgorithm.
    ContentEncryption,
    /// The requester's public key (too small, wrong type).
    PublicKey,
}

/// What went wrong under the envelope. Only for logs and tests: every variant leaves the
/// server as the same [`FailInfo::BadMessageCheck`] with the same text, through the same code
/// path, so the envelope is no padding oracle (docs/decisions.md #1, RFC 3218 §2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeFault {
    /// No KeyTransRecipientInfo names one of our certificates.
    NoMatchingRecipient,
    /// The content-encryption parameters are unusable (IV absent, not an OCTET STRING, or
    /// not the cipher's block length).
    ContentParameters,
    /// Content decryption failed (wrong key after key transport, bad padding, bad length).
    ContentDecryption,
    /// The decrypted content is not the structure the messageType requires.
    InnerContent(Asn1Error),
    /// The PKCS#10 request is malformed or its version is not 0.
    MalformedCsr(&'static str),
    /// The PKCS#10 self-signature does not verify.
    CsrSignature,
}

impl fmt::Display for EnvelopeFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoMatchingRecipient => f.write_str("no recipient info for our certificate"),
            Self::ContentParameters => f.write_str("content-encryption parameters malformed"),
            Self::ContentDecryption => f.write_str("content decryption failed"),
            Self::InnerContent(e) => write!(f, "decrypted content malformed: {e}"),
            Self::MalformedCsr(what) => write!(f, "malformed PKCS#10: {what}"),
            Self::CsrSignature => f.write_str("PKCS#10 signature does not verify"),
        }
    }
}

/// A request we answer with a signed CertRep FAILURE (RFC 8894 §3.3.2.2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Unknown, insecure or disabled algorithm, decided from public OIDs.
    #[error("{kind:?} algorithm {oid} not accepted")]
    UnsupportedAlgorithm {
        /// The slot the algorithm came from.
        kind: AlgorithmKind,
        /// The dotted OID (or a short description).
        oid: String,
    },
    /// No certificate in the SignedData matches the SignerInfo's sid.
    #[error("signer certificate not found in the message")]
    SignerCertificateMissing,
    /// The messageDigest attribute does not match the content (RFC 5652 §5.4).
    #[error("messageDigest does not match the content")]
    MessageDigestMismatch,
    /// The signature over the signed attributes does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A messageType this responder does not handle (docs/decisions.md #2).
    #[error("messageType {0:?} not supported")]
    MessageTypeNotSupported(String),
    /// senderNonce is not 16 bytes (RFC 8894 §3.2.1.5).
    #[error("senderNonce must be 16 bytes, got {0}")]
    BadNonce(usize),
    /// A request type that needs a pkcsPKIEnvelope has none.
    #[error("request carries no content")]
    MissingContent,
    /// signingTime malformed.
    #[error("malformed signingTime")]
    MalformedSigningTime,
    /// signingTime too far from the responder's clock (only when the caller enforces it).
    #[error("signingTime outside the accepted window")]
    SigningTimeSkew,
    /// Anything from RSA key transport through the inner PKCS#10 self-signature (uniform).
    #[error("envelope: {0}")]
    Envelope(EnvelopeFault),
    /// The policy decided against the request; the named reason stays in the caller's logs.
    #[error("request rejected by policy")]
    Rejected,
    /// A renewal signed by a certificate that may not renew (foreign, revoked, expired, other
    /// device), following EJBCA's precedent of badMessageCheck.
    #[error("renewal signer not accepted")]
    RenewalSignerNotAccepted,
    /// CertPoll / GetCert / GetCRL found nothing for this requester.
    #[error("no matching certificate")]
    NotFound,
}

impl Refusal {
    /// RFC 8894 §3.2.1.4. The only place a refusal becomes a wire code.
    pub fn fail_info(&self) -> FailInfo {
        match self {
            Self::UnsupportedAlgorithm { .. } => FailInfo::BadAlg,
            Self::SignerCertificateMissing
            | Self::MessageDigestMismatch
            | Self::BadSignature
            | Self::Envelope(_)
            | Self::RenewalSignerNotAccepted => FailInfo::BadMessageCheck,
            Self::MessageTypeNotSupported(_)
            | Self::BadNonce(_)
            | Self::MissingContent
            | Self::MalformedSigningTime
            | Self::Rejected => FailInfo::BadRequest,
            Self::SigningTimeSkew => FailInfo::BadTime,
            Self::NotFound => FailInfo::BadCertId,
        }
    }

    /// The failInfoText sent with [`Self::fail_info`]: fixed per FailInfo, never the detail.
    pub fn fail_info_text(&self) -> &'static str {
        fail_info_text(self.fail_info())
    }
}

/// The fixed failInfoText for each FailInfo (RFC 8894 §3.2.1.4 makes the text optional; it
/// helps operators without telling an attacker which check failed).
pub fn fail_info_text(info: FailInfo) -> &'static str {
    match info {
        FailInfo::BadAlg => "Unsupported algorithm",
        FailInfo::BadMessageCheck => "Message check failed",
        FailInfo::BadRequest => "Request not permitted",
        FailInfo::BadTime => "Signing time not accepted",
        FailInfo::BadCertId => "No matching certificate",
    }
}

/// Why a message could not be built (bad arguments or an OpenSSL failure).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// OpenSSL failed (key, cipher or signature operation).
    #[error("crypto operation failed: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    /// The arguments cannot make a valid message.
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
}

/// Why a requester could not accept a CertRep (RFC 8894 §3.3.2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The reply is not a decodable pkiMessage.
    #[error("undecodable reply: {0}")]
    Decode(#[from] DecodeError),
    /// The reply's messageType is not CertRep.
    #[error("reply is not a CertRep")]
    NotCertRep,
    /// pkiStatus, failInfo or another attribute is absent or invalid.
    #[error("invalid reply attribute {0}")]
    InvalidAttribute(&'static str),
    /// The reply is not signed by one of the trusted RA/CA certificates, or does not verify.
    #[error("reply signature: {0}")]
    Signature(Refusal),
    /// transactionID differs from the request's (§3.2.1.1).
    #[error("transactionID does not match the request")]
    TransactionIdMismatch,
    /// recipientNonce differs from the request's senderNonce (§3.2.1.5).
    #[error("recipientNonce does not match the request's senderNonce")]
    RecipientNonceMismatch,
    /// The SUCCESS envelope could not be opened with our key or holds no usable payload.
    #[error("reply envelope: {0}")]
    Envelope(EnvelopeFault),
    /// Algorithm in the reply that we do not accept.
    #[error("reply algorithm not accepted: {0}")]
    Algorithm(Refusal),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_envelope_fault_looks_the_same_on_the_wire() {
        let faults = [
            EnvelopeFault::NoMatchingRecipient,
            EnvelopeFault::ContentParameters,
            EnvelopeFault::ContentDecryption,
            EnvelopeFault::InnerContent(Asn1Error::new("x")),
            EnvelopeFault::MalformedCsr("y"),
            EnvelopeFault::CsrSignature,
        ];
        for f in faults {
            let r = Refusal::Envelope(f);
            assert_eq!(r.fail_info(), FailInfo::BadMessageCheck);
            assert_eq!(r.fail_info_text(), Refusal::BadSignature.fail_info_text());
        }
    }

    #[test]
    fn maps_refusals_to_fail_info() {
        assert_eq!(Refusal::Rejected.fail_info(), FailInfo::BadRequest);
        assert_eq!(Refusal::NotFound.fail_info(), FailInfo::BadCertId);
        assert_eq!(Refusal::SigningTimeSkew.fail_info(), FailInfo::BadTime);
        let alg = Refusal::UnsupportedAlgorithm {
            kind: AlgorithmKind::Digest,
            oid: "md5".into(),
        };
        assert_eq!(alg.fail_info(), FailInfo::BadAlg);
        assert_eq!(
            Refusal::MessageTypeNotSupported("18".into()).fail_info(),
            FailInfo::BadRequest
        );
    }
}
