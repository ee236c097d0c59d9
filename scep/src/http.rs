//! The HTTP binding of SCEP (RFC 8894 §4) as pure functions: operation names, the GET
//! `message=` encoding with the quirks clients have, content types, and GetCACert answers.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use openssl::x509::{X509, X509Ref};

use crate::asn1::Asn1Error;
use crate::cms::signed::{CertsOnly, certs_only};
use crate::error::{BuildError, DecodeError};
use crate::limits::{MAX_GET_MESSAGE_LEN, MAX_MESSAGE_SIZE};

/// `application/x-x509-ca-cert`: GetCACert answer with one CA certificate (§4.2.1.1).
pub const CONTENT_TYPE_CA_CERT: &str = "application/x-x509-ca-cert";
/// `application/x-x509-ca-ra-cert`: GetCACert answer as certs-only PKCS#7 with RA certs (§4.2.1.2).
pub const CONTENT_TYPE_CA_RA_CERT: &str = "application/x-x509-ca-ra-cert";
/// `application/x-x509-next-ca-cert`: GetNextCACert answer (§4.7.1).
pub const CONTENT_TYPE_NEXT_CA_CERT: &str = "application/x-x509-next-ca-cert";
/// `application/x-pki-message`: PKIOperation request body and CertRep (§4.3).
pub const CONTENT_TYPE_PKI_MESSAGE: &str = "application/x-pki-message";
/// `text/plain`: GetCACaps answer (§4.5).
pub const CONTENT_TYPE_CAPS: &str = "text/plain";

/// The `operation` parameter (RFC 8894 §4.1). Matching is exact, as the RFC spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `GetCACaps` (§4.5).
    GetCaCaps,
    /// `GetCACert` (§4.2).
    GetCaCert,
    /// `GetNextCACert` (§4.7).
    GetNextCaCert,
    /// `PKIOperation` (§4.3).
    PkiOperation,
}

impl Operation {
    /// Parse the parameter value.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "GetCACaps" => Self::GetCaCaps,
            "GetCACert" => Self::GetCaCert,
            "GetNextCACert" => Self::GetNextCaCert,
            "PKIOperation" => Self::PkiOperation,
            _ => return None,
        })
    }

    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GetCaCaps => "GetCACaps",
            Self::GetCaCert => "GetCACert",
            Self::GetNextCaCert => "GetNextCACert",
            Self::PkiOperation => "PKIOperation",
        }
    }
}

/// The SCEP parameters of a request URL's query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScepQuery {
    /// The operation, if the parameter was present and known.
    pub operation: Option<Operation>,
    /// The raw (still percent-encoded) `message` value, if present.
    pub message: Option<String>,
}

/// Why a query string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `operation` is missing.
    #[error("missing operation parameter")]
    MissingOperation,
    /// `operation` names no SCEP operation.
    #[error("unknown operation")]
    UnknownOperation,
    /// A parameter appears twice.
    #[error("repeated parameter")]
    Repeated,
    /// The query string is longer than [`MAX_GET_MESSAGE_LEN`].
    #[error("query too long")]
    TooLong,
}

impl ScepQuery {
    /// Parse a raw query string (`operation=...&message=...`). Other parameters are ignored;
    /// `message` values are kept raw for [`decode_get_message`].
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        if query.len() > MAX_GET_MESSAGE_LEN + 1024 {
            return Err(QueryError::TooLong);
        }
        let (mut op, mut message) = (None, None);
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "operation" if op.replace(value).is_some() => return Err(QueryError::Repeated),
                "message" if message.replace(value.to_owned()).is_some() => {
                    return Err(QueryError::Repeated);
                }
                _ => {}
            }
        }
        let op = op.ok_or(QueryError::MissingOperation)?;
        let decoded = percent_decode(op).ok_or(QueryError::UnknownOperation)?;
        let operation = std::str::from_utf8(&decoded)
            .ok()
            .and_then(Operation::parse);
        if operation.is_none() {
            return Err(QueryError::UnknownOperation);
        }
        Ok(Self { operation, message })
    }
}

/// Decode a GET `message=` value (RFC 8894 §4.3: base64 of the DER pkiMessage, URL-encoded)
/// as clients really send it: percent-encoded or not, `+` arriving as a space (macOS and
/// others do not escape it), URL-safe alphabet, missing padding, and line breaks every 64
/// characters. Anything else is [`DecodeError::Base64`].
pub fn decode_get_message(raw: &str) -> Result<Vec<u8>, DecodeError> {
    if raw.len() > MAX_GET_MESSAGE_LEN {
        return Err(DecodeError::TooLarge);
    }
    let unescaped = percent_decode(raw).ok_or(DecodeError::Base64)?;
    let cleaned: Vec<u8> = unescaped
        .iter()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .map(|b| match b {
            b' ' | b'-' => b'+',
            b'_' => b'/',
            other => *other,
        })
        .collect();
    if cleaned.is_empty() {
        return Err(DecodeError::Base64);
    }
    let engine = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let der = engine.decode(&cleaned).map_err(|_| DecodeError::Base64)?;
    if der.len() > MAX_MESSAGE_SIZE {
        return Err(DecodeError::TooLarge);
    }
    Ok(der)
}

/// Encode a pkiMessage for a GET `message=` parameter: standard base64, percent-encoded.
pub fn encode_get_message(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(der)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// Decode `%XX` escapes; `None` on a malformed escape. `+` is left alone (see above).
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The certificates a GetCACert (or GetNextCACert) answer carries (RFC 8894 §4.2), in order.
#[derive(Clone, Debug)]
pub struct CaCertificates {
    certs: Vec<X509>,
}

impl CaCertificates {
    /// Wrap certificates in answer order (RA signing, RA encryption, then the CA chain).
    pub fn new(certs: Vec<X509>) -> Self {
        Self { certs }
    }

    /// Build the HTTP answer: one CA certificate as DER (`x-x509-ca-cert`), or a degenerate
    /// certs-only PKCS#7 (`x-x509-ca-ra-cert`) when there are several (§4.2.1).
    pub fn to_response(&self) -> Result<(&'static str, Vec<u8>), BuildError> {
        match self.certs.as_slice() {
            [] => Err(BuildError::InvalidInput("no CA certificate")),
            [single] => Ok((CONTENT_TYPE_CA_CERT, single.to_der()?)),
            many => {
                let refs: Vec<&X509Ref> = many.iter().map(|c| &**c).collect();
                Ok((CONTENT_TYPE_CA_RA_CERT, certs_only(&refs, &[])?))
            }
        }
    }

    /// Parse an answer by its content type. Unknown content types are tried as DER certificate
    /// first, then as PKCS#7 (servers in the field mislabel these).
    pub fn from_response(content_type: &str, body: &[u8]) -> Result<Self, DecodeError> {
        if body.len() > MAX_MESSAGE_SIZE {
            return Err(DecodeError::TooLarge);
        }
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let single = || X509::from_der(body).map(|c| Self::new(vec![c]));
        let bundle = || CertsOnly::from_der(body).map(|c| Self::new(c.certificates));
        let parsed = match essence {
            CONTENT_TYPE_CA_CERT => single().ok(),
            CONTENT_TYPE_CA_RA_CERT | CONTENT_TYPE_NEXT_CA_CERT => bundle().ok(),
            _ => single().ok().or_else(|| bundle().ok()),
        };
        parsed
            .filter(|c| !c.certs.is_empty())
            .ok_or(DecodeError::Asn1(Asn1Error::new(
                "not a certificate or certs-only PKCS#7",
            )))
    }

    /// All certificates, in answer order.
    pub fn all(&self) -> &[X509] {
        &self.certs
    }

    /// CA certificates (keyCertSign).
    pub fn cas(&self) -> impl Iterator<Item = &X509> {
        self.certs.iter().filter(|c| is_ca(c))
    }

    /// RA certificates (not CAs).
    pub fn ras(&self) -> impl Iterator<Item = &X509> {
        self.certs.iter().filter(|c| !is_ca(c))
    }

    /// Where a requester encrypts its pkcsPKIEnvelope: the RA certificate with keyEncipherment
    /// if there is one, else the first RA, else the first CA (§2.2: "If the CA has an RA, the
    /// requester uses the RA certificate for encryption").
    pub fn encryption_recipient(&self) -> Option<&X509> {
        use openssl::x509::X509KeyUsage as Ku;
        self.ras()
            .find(|c| {
                c.key_usage()
                    .is_some_and(|k| k.contains(Ku::KEY_ENCIPHERMENT))
            })
            .or_else(|| self.ras().next())
            .or_else(|| self.cas().next())
            .or_else(|| self.certs.first())
    }

    /// Certificates a CertRep may be signed by: RA certificates with digitalSignature (or no
    /// key usage) and the CAs.
    pub fn reply_signers(&self) -> Vec<X509> {
        use openssl::x509::X509KeyUsage as Ku;
        self.certs
            .iter()
            .filter(|c| {
                is_ca(c)
                    || c.key_usage()
                        .is_none_or(|k| k.contains(Ku::DIGITAL_SIGNATURE))
            })
            .cloned()
            .collect()
    }

    /// The certificate whose SHA-256 fingerprint is `fingerprint` (to pin the CA as the
    /// profile's trusted root or CA thumbprint says).
    pub fn find_by_sha256(&self, fingerprint: &[u8]) -> Option<&X509> {
        self.certs.iter().find(|c| {
            c.digest(openssl::hash::MessageDigest::sha256())
                .is_ok_and(|d| *d == *fingerprint)
        })
    }
}

/// A certificate is a CA if its key usage allows certificate signing.
fn is_ca(cert: &X509Ref) -> bool {
    cert.key_usage()
        .is_some_and(|k| k.contains(openssl::x509::X509KeyUsage::KEY_CERT_SIGN))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_queries_exactly() {
        let q = ScepQuery::parse("operation=GetCACert&message=CAIdentifier").unwrap();
        assert_eq!(q.operation, Some(Operation::GetCaCert));
        assert_eq!(q.message.as_deref(), Some("CAIdentifier"));
        assert_eq!(
            ScepQuery::parse("").unwrap_err(),
            QueryError::MissingOperation
        );
        assert_eq!(
            ScepQuery::parse("operation=Foo").unwrap_err(),
            QueryError::UnknownOperation
        );
        assert_eq!(
            ScepQuery::parse("operation=pkioperation").unwrap_err(),
            QueryError::UnknownOperation
        );
        assert_eq!(
            ScepQuery::parse("operation=GetCACaps&operation=GetCACert").unwrap_err(),
            QueryError::Repeated
        );
        assert_eq!(
            ScepQuery::parse("operation=GetCACaps").unwrap().message,
            None
        );
        assert_eq!(
            ScepQuery::parse("operation=Get%43ACaps").unwrap().operation,
            Some(Operation::GetCaCaps)
        );
    }

    #[test]
    fn decodes_every_message_form_clients_send() {
        let der: Vec<u8> = (0u8..=255).cycle().take(700).collect();
        let std = base64::engine::general_purpose::STANDARD.encode(&der);
        assert!(std.contains('+') && std.contains('/'));
        let forms = [
            std.clone(),
            encode_get_message(&der),
            std.replace('+', " "),
            std.replace('+', "-")
                .replace('/', "_")
                .trim_end_matches('=')
                .to_owned(),
            std.as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join("\r\n"),
            std.as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join("%0A"),
        ];
        for f in forms {
            assert_eq!(decode_get_message(&f).unwrap(), der, "{f:.40}");
        }
        for bad in ["", "%", "%zz", "!!!!", "A"] {
            assert_eq!(decode_get_message(bad), Err(DecodeError::Base64), "{bad:?}");
        }
        assert_eq!(
            decode_get_message(&"A".repeat(MAX_GET_MESSAGE_LEN + 1)),
            Err(DecodeError::TooLarge)
        );
    }
}
