//! The contract's errors: named rejections in Intune's vocabulary, and the refusals of
//! GenerateChallenge, VerifyRequest and Notify.

use serde::{Deserialize, Serialize};

/// Why a request is refused. Names follow Intune's `IntuneScepServiceException` codes where one
/// exists; the few additions say what Intune's closed format cannot (`ChallengeUnknown`,
/// `TransactionIdReused`, `TemplateMismatch`, the device states, `RenewalNotAllowed`,
/// `KeyCertifiedToAnotherDevice`, `NameNotPermitted`).
/// ndes-proxy answers every one with CertRep FAILURE badRequest (or badMessageCheck for the
/// renewal signer ones) and keeps the name for its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The CSR is not a well-formed DER PKCS#10 (or the transactionID is unusable).
    #[error("CertificateRequestDecodingFailed")]
    CertificateRequestDecodingFailed,
    /// The CSR's self-signature does not verify with its own key.
    #[error("SignatureValidationFailed")]
    SignatureValidationFailed,
    /// No challenge in the CSR nor beside it.
    #[error("ChallengePasswordMissing")]
    ChallengePasswordMissing,
    /// The challenge is not one we could have issued (shape), appears twice, or the CSR's
    /// differs from the one passed beside it.
    #[error("ChallengeDecodingError")]
    ChallengeDecodingError,
    /// Well-formed but never issued (Intune would fail to decrypt it).
    #[error("ChallengeUnknown")]
    ChallengeUnknown,
    /// Past its validity.
    #[error("ChallengeExpired")]
    ChallengeExpired,
    /// Consumed, or reserved for another (transactionID, CSR).
    #[error("ChallengeAlreadyUsed")]
    ChallengeAlreadyUsed,
    /// This transactionID was used before with a different CSR (docs/decisions.md #3).
    #[error("TransactionIdReused")]
    TransactionIdReused,
    /// The requested template is not the one the challenge or certificate was issued for.
    #[error("TemplateMismatch")]
    TemplateMismatch,
    /// The CSR has no subject while the profile renders one.
    #[error("SubjectNameMissing")]
    SubjectNameMissing,
    /// The CSR subject is not exactly the rendered subject.
    #[error("SubjectNameMismatch")]
    SubjectNameMismatch,
    /// The CSR SANs are not exactly the rendered SANs.
    #[error("SubjectAltNameMismatch")]
    SubjectAltNameMismatch,
    /// The CSR asks for key usage bits the profile does not grant.
    #[error("KeyUsageMismatch")]
    KeyUsageMismatch,
    /// The key's algorithm or size is not the profile's (or is below the floor).
    #[error("KeyLengthMismatch")]
    KeyLengthMismatch,
    /// The CSR asks for an EKU the profile does not grant.
    #[error("EnhancedKeyUsageMismatch")]
    EnhancedKeyUsageMismatch,
    /// The CSR's key is already certified to another device (a cloned disk image, or a key
    /// copied off a device), or to an mscep_admin request when this one is a device's, or
    /// the other way round. The same device may certify its key again (renewal with the same
    /// key, which RFC 8894 allows).
    #[error("KeyCertifiedToAnotherDevice")]
    KeyCertifiedToAnotherDevice,
    /// The profile (at the challenge's version) is no longer assigned to the device.
    #[error("ScepProfileNoLongerTargetedToTheClient")]
    ScepProfileNoLongerTargetedToTheClient,
    /// The challenge names a device the inventory does not hold.
    #[error("BadDeviceIdInChallenge")]
    BadDeviceIdInChallenge,
    /// Renewal: the signing certificate is not one this service recorded.
    #[error("SigningCertThumbprintMismatch")]
    SigningCertThumbprintMismatch,
    /// Renewal: the signing certificate is revoked, expired, or renewal is too early.
    #[error("RenewalNotAllowed")]
    RenewalNotAllowed,
    /// The device is blocked.
    #[error("DeviceBlocked")]
    DeviceBlocked,
    /// The device is retired.
    #[error("DeviceRetired")]
    DeviceRetired,
    /// The device is wiped.
    #[error("DeviceWiped")]
    DeviceWiped,
    /// mscep_admin path: a subject attribute or SAN of the CSR is not permitted by the
    /// template's name policy (an attribute or SAN kind not allowed, a value matching no
    /// pattern, a required attribute missing, too many SANs), or the template has no name
    /// policy. Which name and why are in the policy module's audit (`name_refused`), never
    /// in the CertRep.
    #[error("NameNotPermitted")]
    NameNotPermitted,
}

/// What `verify_request` returns on refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A named rejection.
    #[error("rejected: {0}")]
    Rejected(Rejection),
    /// The store or the remote policy-module cannot answer; the caller must fail closed.
    #[error("policy unavailable")]
    Unavailable,
}

impl From<Rejection> for VerifyError {
    fn from(r: Rejection) -> Self {
        Self::Rejected(r)
    }
}

/// What `generate_challenge` returns on refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ChallengeError {
    /// PasswordMax outstanding challenges exist ("The password cache is full.").
    #[error("the password cache is full")]
    CacheFull,
    /// The template name is not acceptable.
    #[error("invalid template name")]
    InvalidTemplate,
    /// Store unavailable.
    #[error("policy unavailable")]
    Unavailable,
}

/// What `notify` returns on refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NotifyError {
    /// No granted request with this transactionID.
    #[error("unknown transaction")]
    UnknownTransaction,
    /// The transaction was already recorded with a different certificate, or the certificate
    /// does not match the request (key, serial, thumbprint).
    #[error("notification conflicts with the recorded request")]
    Conflict,
    /// Store unavailable.
    #[error("policy unavailable")]
    Unavailable,
}
