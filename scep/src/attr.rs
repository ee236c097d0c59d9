//! The SCEP signed attributes (RFC 8894 §3.2.1) as types.
//!
//! ```text
//! id-VeriSign  OBJECT_IDENTIFIER ::= {2 16 US(840) 1 VeriSign(113733)}
//! id-pki       OBJECT_IDENTIFIER ::= {id-VeriSign pki(1)}
//! id-attributes OBJECT_IDENTIFIER ::= {id-pki attributes(9)}
//! id-transactionID  OBJECT_IDENTIFIER ::= {id-attributes transactionID(7)}   -- PrintableString
//! id-messageType    OBJECT_IDENTIFIER ::= {id-attributes messageType(2)}     -- PrintableString
//! id-pkiStatus      OBJECT_IDENTIFIER ::= {id-attributes pkiStatus(3)}       -- PrintableString
//! id-failInfo       OBJECT_IDENTIFIER ::= {id-attributes failInfo(4)}        -- PrintableString
//! id-senderNonce    OBJECT_IDENTIFIER ::= {id-attributes senderNonce(5)}     -- OCTET STRING
//! id-recipientNonce OBJECT_IDENTIFIER ::= {id-attributes recipientNonce(6)}  -- OCTET STRING
//! id-scep-failInfoText OBJECT IDENTIFIER ::= {id-pkix 24 1}                  -- UTF8String
//! ```

use std::fmt;

/// `messageType` (RFC 8894 §3.2.1.2): "a PrintableString containing the decimal value".
///
/// Only the types RFC 8894 registers exist here; anything else (18 UpdateReq, 99, "019") is not a
/// `MessageType` at all, so a server has to refuse it explicitly (docs/decisions.md #2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 3: response to a request (§3.3.2).
    CertRep,
    /// 17: renewal of an existing certificate (§3.3.1.2).
    RenewalReq,
    /// 19: certificate request (§3.3.1).
    PkcsReq,
    /// 20: poll for a pending request, a.k.a. GetCertInitial (§3.3.3).
    CertPoll,
    /// 21: retrieve a certificate (§3.3.4).
    GetCert,
    /// 22: retrieve a CRL (§3.3.4).
    GetCrl,
}

impl MessageType {
    /// The decimal value on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::CertRep => 3,
            Self::RenewalReq => 17,
            Self::PkcsReq => 19,
            Self::CertPoll => 20,
            Self::GetCert => 21,
            Self::GetCrl => 22,
        }
    }

    /// Parse the attribute value strictly: the exact decimal text of a registered type, nothing
    /// else (no sign, no leading zero, no spaces).
    pub fn from_wire(text: &str) -> Option<Self> {
        Some(match text {
            "3" => Self::CertRep,
            "17" => Self::RenewalReq,
            "19" => Self::PkcsReq,
            "20" => Self::CertPoll,
            "21" => Self::GetCert,
            "22" => Self::GetCrl,
            _ => return None,
        })
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CertRep => "CertRep",
            Self::RenewalReq => "RenewalReq",
            Self::PkcsReq => "PKCSReq",
            Self::CertPoll => "CertPoll",
            Self::GetCert => "GetCert",
            Self::GetCrl => "GetCRL",
        })
    }
}

/// `pkiStatus` (RFC 8894 §3.2.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PkiStatus {
    /// 0: request granted.
    Success,
    /// 2: request rejected; `failInfo` says why.
    Failure,
    /// 3: request pending for manual approval.
    Pending,
}

impl PkiStatus {
    /// The decimal value on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 2,
            Self::Pending => 3,
        }
    }

    /// Parse the attribute value strictly.
    pub fn from_wire(text: &str) -> Option<Self> {
        Some(match text {
            "0" => Self::Success,
            "2" => Self::Failure,
            "3" => Self::Pending,
            _ => return None,
        })
    }
}

/// `failInfo` (RFC 8894 §3.2.1.4): "The failInfo attribute MUST contain one of the following
/// failure reasons".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailInfo {
    /// 0: unrecognized or unsupported algorithm.
    BadAlg,
    /// 1: integrity check (meaning signature verification of the CMS message) failed.
    BadMessageCheck,
    /// 2: transaction not permitted or supported.
    BadRequest,
    /// 3: the signingTime attribute was not sufficiently close to the system time.
    BadTime,
    /// 4: no certificate could be identified matching the provided criteria.
    BadCertId,
}

impl FailInfo {
    /// The decimal value on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::BadAlg => 0,
            Self::BadMessageCheck => 1,
            Self::BadRequest => 2,
            Self::BadTime => 3,
            Self::BadCertId => 4,
        }
    }

    /// Parse the attribute value strictly.
    pub fn from_wire(text: &str) -> Option<Self> {
        Some(match text {
            "0" => Self::BadAlg,
            "1" => Self::BadMessageCheck,
            "2" => Self::BadRequest,
            "3" => Self::BadTime,
            "4" => Self::BadCertId,
            _ => return None,
        })
    }
}

impl fmt::Display for FailInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadAlg => "badAlg",
            Self::BadMessageCheck => "badMessageCheck",
            Self::BadRequest => "badRequest",
            Self::BadTime => "badTime",
            Self::BadCertId => "badCertID",
        })
    }
}

/// Longest transactionID accepted. Clients use a hash of the public key (28 to 64 characters);
/// anything much longer is an attack on logs and storage, not an identifier.
pub const MAX_TRANSACTION_ID_LEN: usize = 128;

/// `transactionID` (RFC 8894 §3.2.1.1): "The client MUST generate a unique string as the
/// transaction identifier, which MUST be used for all PKI messages exchanged for a given
/// enrolment, encoded as a PrintableString."
///
/// Always 1 to [`MAX_TRANSACTION_ID_LEN`] characters of the PrintableString set, so it is safe
/// to log and to use as a key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(String);

impl TransactionId {
    /// Accept a value made of PrintableString characters (X.680 §41.4) of bounded length.
    pub fn new(value: &str) -> Option<Self> {
        let ok = !value.is_empty()
            && value.len() <= MAX_TRANSACTION_ID_LEN
            && value.bytes().all(is_printable_string_char);
        ok.then(|| Self(value.to_owned()))
    }

    /// The identifier a client derives from its public key: uppercase hex of the SHA-256 of the
    /// DER SubjectPublicKeyInfo, so retransmissions with the same key repeat it (§3.2.1.1 says a
    /// hash of the public key is a good choice).
    pub fn from_public_key(spki_der: &[u8]) -> Result<Self, openssl::error::ErrorStack> {
        let digest = openssl::hash::hash(openssl::hash::MessageDigest::sha256(), spki_der)?;
        let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
        Ok(Self(hex))
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransactionId({})", self.0)
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters allowed in a PrintableString (X.680 §41.4, table 10).
pub fn is_printable_string_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b)
}

/// The signed attributes RFC 8894 §3.2.1 types as PrintableString.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrintableAttribute {
    /// messageType (§3.2.1.2).
    MessageType,
    /// transactionID (§3.2.1.1).
    TransactionId,
    /// pkiStatus (§3.2.1.3).
    PkiStatus,
    /// failInfo (§3.2.1.4).
    FailInfo,
}

impl PrintableAttribute {
    /// The attribute's name in RFC 8894 (also its metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Self::MessageType => "messageType",
            Self::TransactionId => "transactionID",
            Self::PkiStatus => "pkiStatus",
            Self::FailInfo => "failInfo",
        }
    }
}

/// A string type the compatible reading accepts in place of PrintableString.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LenientString {
    /// UTF8String.
    Utf8String,
    /// IA5String.
    Ia5String,
}

impl LenientString {
    /// The ASN.1 type name (also its metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Self::Utf8String => "UTF8String",
            Self::Ia5String => "IA5String",
        }
    }
}

/// How the [`PrintableAttribute`]s are read.
///
/// RFC 8894 by default: PrintableString only, and every client the lab drives sends it. The
/// compatible reading also takes UTF8String and IA5String (only those, still restricted to
/// the PrintableString characters) for clients that send them; the responder reports each
/// such acceptance so an operator can count them before relying on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttributeStrings {
    /// PrintableString only (RFC 8894 §3.2.1).
    #[default]
    Rfc8894,
    /// PrintableString, UTF8String or IA5String.
    AlsoUtf8AndIa5,
}

/// `senderNonce` / `recipientNonce` (RFC 8894 §3.2.1.5): "a 16-byte random number".
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce(pub [u8; 16]);

impl Nonce {
    /// Accept exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// A fresh random nonce from OpenSSL's CSPRNG.
    pub fn random() -> Result<Self, openssl::error::ErrorStack> {
        let mut n = [0u8; 16];
        openssl::rand::rand_bytes(&mut n)?;
        Ok(Self(n))
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_parsing_is_exact() {
        for t in [3u8, 17, 19, 20, 21, 22] {
            let mt = MessageType::from_wire(&t.to_string());
            assert_eq!(mt.map(MessageType::code), Some(t));
        }
        for bad in ["18", "99", "019", "19 ", " 19", "-1", "1e1", "", "+19", "0"] {
            assert_eq!(MessageType::from_wire(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn status_and_fail_info_round_trip() {
        for s in [PkiStatus::Success, PkiStatus::Failure, PkiStatus::Pending] {
            assert_eq!(PkiStatus::from_wire(&s.code().to_string()), Some(s));
        }
        for f in [
            FailInfo::BadAlg,
            FailInfo::BadMessageCheck,
            FailInfo::BadRequest,
            FailInfo::BadTime,
            FailInfo::BadCertId,
        ] {
            assert_eq!(FailInfo::from_wire(&f.code().to_string()), Some(f));
        }
        assert_eq!(PkiStatus::from_wire("1"), None);
        assert_eq!(FailInfo::from_wire("5"), None);
    }

    #[test]
    fn transaction_ids_are_bounded_printable_strings() {
        assert!(TransactionId::new("abc+/=:?()").is_some());
        assert!(TransactionId::new("").is_none());
        assert!(TransactionId::new("a\nb").is_none());
        assert!(TransactionId::new("\u{1b}[31m").is_none());
        assert!(TransactionId::new(&"a".repeat(MAX_TRANSACTION_ID_LEN)).is_some());
        assert!(TransactionId::new(&"a".repeat(MAX_TRANSACTION_ID_LEN + 1)).is_none());
    }
}
