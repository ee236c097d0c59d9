//! PKCS#10 certification requests (RFC 2986) as SCEP carries them (RFC 8894 §3.3.1): the
//! challengePassword attribute (RFC 2985 §5.4.1) and the extensionRequest (RFC 2985 §5.4.2).
//!
//! ```text
//! CertificationRequest ::= SEQUENCE {
//!   certificationRequestInfo CertificationRequestInfo,
//!   signatureAlgorithm AlgorithmIdentifier,
//!   signature BIT STRING }
//! CertificationRequestInfo ::= SEQUENCE {
//!   version INTEGER { v1(0) },
//!   subject Name,
//!   subjectPKInfo SubjectPublicKeyInfo,
//!   attributes [0] Attributes }
//! ```
//!
//! The `openssl` crate cannot read or write CSR attributes, so the structure is handled here
//! and OpenSSL does the signatures.

use std::fmt;

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, PKeyRef, Private, Public};
use openssl::stack::StackRef;
use openssl::x509::{X509Extension, X509Name, X509NameRef, X509Req, X509ReqBuilder};

use crate::asn1::{Asn1Error, parse_single, tag, writer};
use crate::cms::{Attribute, decode_attributes};
use crate::error::BuildError;
use crate::oid;

/// Upper bound of a challengePassword (RFC 2985: `ub-challengePassword INTEGER ::= 255`).
pub const MAX_CHALLENGE_LEN: usize = 255;

/// A challenge password: a secret. No `Display`, a redacted `Debug`, zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct ChallengePassword(String);

impl ChallengePassword {
    /// Wrap a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret, for the one place that compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ChallengePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengePassword(<redacted>)")
    }
}

impl Drop for ChallengePassword {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
    }
}

/// A decoded PKCS#10 request. The self-signature is checked by [`Csr::from_der`].
#[derive(Clone)]
pub struct Csr {
    der: Vec<u8>,
    subject: Vec<u8>,
    spki: Vec<u8>,
    challenge_password: Option<ChallengePassword>,
    extension_request: Option<Vec<u8>>,
}

impl fmt::Debug for Csr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Csr")
            .field("subject", &self.subject_name().ok().as_deref())
            .field("has_challenge_password", &self.challenge_password.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a PKCS#10 request was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Not a well-formed request.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The self-signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

impl From<Asn1Error> for CsrError {
    fn from(e: Asn1Error) -> Self {
        Self::Malformed(e.what())
    }
}

impl Csr {
    /// Decode a DER request, check its version (v1 = 0), its attributes and its self-signature.
    pub fn from_der(der: &[u8]) -> Result<Self, CsrError> {
        let csr = Self::from_der_unverified(der)?;
        // One OpenSSL parse: the request's own decoded key verifies it. (Decoding the SPKI
        // separately as well doubled the cost: OpenSSL 3 key decoding dominates a CSR check.)
        let req = X509Req::from_der(der).map_err(|_| CsrError::Malformed("rejected by OpenSSL"))?;
        let key = req
            .public_key()
            .map_err(|_| CsrError::Malformed("unreadable public key"))?;
        if req.verify(&key).unwrap_or(false) {
            Ok(csr)
        } else {
            Err(CsrError::BadSignature)
        }
    }

    /// Decode the structure only (version, subject, key bytes, attributes), without any
    /// OpenSSL work: for a caller handed a CSR that was already checked by [`Csr::from_der`]
    /// on its way in, or that a later step checks again (the CA before it signs), and that
    /// needs only its fields. Never the basis for trusting the request.
    pub fn from_der_unverified(der: &[u8]) -> Result<Self, CsrError> {
        let mut outer = parse_single(der)?
            .expect(tag::SEQUENCE, "expected CertificationRequest")?
            .children()?;
        let cri_tlv = outer.read(tag::SEQUENCE, "expected CertificationRequestInfo")?;
        let mut cri = cri_tlv.children()?;
        let version = cri.read(tag::INTEGER, "expected version")?;
        if version.content != [0] {
            return Err(CsrError::Malformed("version is not v1"));
        }
        // The whole request goes on to the policy module and the CA: every OID in it is
        // bounded here (limits::MAX_OID_ARCS), not only the ones this decoder picks out.
        cri_tlv.read_nested()?;
        let subject = cri.read(tag::SEQUENCE, "expected subject")?.raw.to_vec();
        let spki = cri
            .read(tag::SEQUENCE, "expected subjectPKInfo")?
            .raw
            .to_vec();
        let mut challenge_password = None;
        let mut extension_request = None;
        if let Some(attrs) = cri.read_optional(tag::context(0))? {
            for a in decode_attributes(attrs)? {
                if a.oid == oid::CHALLENGE_PASSWORD {
                    let [value] = a.values.as_slice() else {
                        return Err(CsrError::Malformed("challengePassword must have one value"));
                    };
                    challenge_password = Some(ChallengePassword(directory_string(value)?));
                } else if a.oid == oid::EXTENSION_REQUEST {
                    let [value] = a.values.as_slice() else {
                        return Err(CsrError::Malformed("extensionRequest must have one value"));
                    };
                    let extensions = value.expect(tag::SEQUENCE, "extensionRequest")?;
                    check_extension_values(extensions)?;
                    extension_request = Some(extensions.raw.to_vec());
                }
            }
        }
        cri.finish("trailing data in CertificationRequestInfo")?;
        outer.read(tag::SEQUENCE, "expected signatureAlgorithm")?;
        outer.read(tag::BIT_STRING, "expected signature")?;
        outer.finish("trailing data in CertificationRequest")?;
        Ok(Self {
            der: der.to_vec(),
            subject,
            spki,
            challenge_password,
            extension_request,
        })
    }

    /// The request as received.
    pub fn to_der(&self) -> &[u8] {
        &self.der
    }

    /// DER of the subject Name.
    pub fn subject_der(&self) -> &[u8] {
        &self.subject
    }

    /// The subject Name.
    pub fn subject_name(&self) -> Result<X509Name, openssl::error::ErrorStack> {
        X509Name::from_der(&self.subject)
    }

    /// DER of the SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    /// The public key.
    pub fn public_key(&self) -> Result<PKey<Public>, openssl::error::ErrorStack> {
        PKey::public_key_from_der(&self.spki)
    }

    /// The challengePassword attribute, if any.
    pub fn challenge_password(&self) -> Option<&ChallengePassword> {
        self.challenge_password.as_ref()
    }

    /// DER of the requested `Extensions`, if any. Only a proposal: the CA's template decides.
    pub fn extension_request(&self) -> Option<&[u8]> {
        self.extension_request.as_deref()
    }
}

/// ```text
/// Extension ::= SEQUENCE { extnID OBJECT IDENTIFIER, critical BOOLEAN DEFAULT FALSE,
///                          extnValue OCTET STRING }  -- the DER of the extension's type
/// ```
/// (RFC 5280 §4.1.) Reads each requested extension's value too, so the OIDs inside it (EKUs,
/// policies, otherName types, a SAN's registeredID) are bounded like every other.
fn check_extension_values(extensions: crate::asn1::Tlv<'_>) -> Result<(), CsrError> {
    let mut r = extensions.children()?;
    while !r.is_empty() {
        let mut ext = r.read(tag::SEQUENCE, "expected Extension")?.children()?;
        let id = ext.read(tag::OID, "expected extnID")?.content;
        ext.read_optional(tag::BOOLEAN)?;
        let value = ext.read(tag::OCTET_STRING, "expected extnValue")?.content;
        ext.finish("trailing data in Extension")?;
        let inner = parse_single(value)?;
        inner.read_nested()?;
        if id == oid::SUBJECT_ALT_NAME {
            // GeneralName's registeredID is `[8] IMPLICIT OBJECT IDENTIFIER`, which the
            // reader cannot know to be an OID (RFC 5280 §4.2.1.6).
            let mut names = inner
                .expect(tag::SEQUENCE, "expected GeneralNames")?
                .children()?;
            while !names.is_empty() {
                let name = names.read_any()?;
                if name.tag == tag::context_primitive(8) {
                    crate::asn1::check_oid(name.content)?;
                }
            }
        }
    }
    Ok(())
}

/// ```text
/// DirectoryString ::= CHOICE { teletexString, printableString, universalString, utf8String,
///                              bmpString }
/// ```
/// (RFC 5280 §4.1.2.4; challengePassword, RFC 2985 §5.4.1). IA5String is tolerated: some
/// clients send it. Bounded by [`MAX_CHALLENGE_LEN`]; NUL characters are refused.
fn directory_string(t: &crate::asn1::Tlv<'_>) -> Result<String, CsrError> {
    let bad = CsrError::Malformed("challengePassword is not a valid DirectoryString");
    let s = match t.tag {
        tag::PRINTABLE_STRING | tag::UTF8_STRING | tag::IA5_STRING => {
            String::from_utf8(t.content.to_vec()).map_err(|_| bad)?
        }
        tag::T61_STRING => t.content.iter().map(|b| char::from(*b)).collect(),
        tag::BMP_STRING => {
            if !t.content.len().is_multiple_of(2) {
                return Err(bad);
            }
            let units = t
                .content
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| bad)?
        }
        tag::UNIVERSAL_STRING => {
            if !t.content.len().is_multiple_of(4) {
                return Err(bad);
            }
            t.content
                .chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect::<Option<String>>()
                .ok_or(bad)?
        }
        _ => return Err(bad),
    };
    if s.is_empty() || s.chars().count() > MAX_CHALLENGE_LEN || s.contains('\0') {
        return Err(bad);
    }
    Ok(s)
}

/// Build a signed PKCS#10 request: subject, the key's public half, optional requested
/// extensions, and an optional challengePassword (as a PrintableString when its characters
/// allow, else UTF8String).
pub fn build(
    key: &PKeyRef<Private>,
    subject: &X509NameRef,
    extensions: Option<&StackRef<X509Extension>>,
    challenge: Option<&ChallengePassword>,
    digest: MessageDigest,
) -> Result<Vec<u8>, BuildError> {
    let mut b = X509ReqBuilder::new()?;
    b.set_version(0)?;
    b.set_subject_name(subject)?;
    b.set_pubkey(key)?;
    if let Some(ext) = extensions {
        b.add_extensions(ext)?;
    }
    b.sign(key, digest)?;
    let der = b.build().to_der()?;
    match challenge {
        None => Ok(der),
        Some(c) => add_attribute(
            &der,
            key,
            digest,
            oid::CHALLENGE_PASSWORD,
            &challenge_value(c.expose())?,
        ),
    }
}

fn challenge_value(secret: &str) -> Result<Vec<u8>, BuildError> {
    if secret.is_empty() || secret.chars().count() > MAX_CHALLENGE_LEN || secret.contains('\0') {
        return Err(BuildError::InvalidInput(
            "challenge must be 1 to 255 characters without NUL",
        ));
    }
    if secret.bytes().all(crate::attr::is_printable_string_char) {
        Ok(writer::printable_string(secret))
    } else {
        Ok(writer::utf8_string(secret))
    }
}

/// Add one attribute to a request built by OpenSSL and sign it again with the same key.
fn add_attribute(
    der: &[u8],
    key: &PKeyRef<Private>,
    digest: MessageDigest,
    attr_oid: &[u8],
    value: &[u8],
) -> Result<Vec<u8>, BuildError> {
    let malformed = |_| BuildError::InvalidInput("OpenSSL produced an unreadable request");
    let mut outer = parse_single(der)
        .and_then(|t| t.children())
        .map_err(malformed)?;
    let cri = outer.read(tag::SEQUENCE, "cri").map_err(malformed)?;
    let sig_alg = outer.read(tag::SEQUENCE, "alg").map_err(malformed)?;
    let mut r = cri.children().map_err(malformed)?;
    let mut fields = Vec::new();
    let mut attrs: Vec<Vec<u8>> = Vec::new();
    while !r.is_empty() {
        let t = r.read_any().map_err(malformed)?;
        if t.tag == tag::context(0) {
            let mut a = t.children().map_err(malformed)?;
            while !a.is_empty() {
                attrs.push(a.read_any().map_err(malformed)?.raw.to_vec());
            }
        } else {
            fields.extend_from_slice(t.raw);
        }
    }
    attrs.push(Attribute::encode(attr_oid, value));
    let mut attr_set = writer::set_of(attrs);
    attr_set[0] = tag::context(0);
    fields.extend(attr_set);
    let cri = writer::tlv(tag::SEQUENCE, &fields);
    let mut signer = openssl::sign::Signer::new(digest, key)?;
    signer.update(&cri)?;
    let mut bits = vec![0u8];
    bits.extend(signer.sign_to_vec()?);
    Ok(writer::sequence(&[
        &cri,
        sig_alg.raw,
        &writer::tlv(tag::BIT_STRING, &bits),
    ]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use openssl::rsa::Rsa;

    fn key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    fn name(cn: &str) -> X509Name {
        let mut b = X509Name::builder().unwrap();
        b.append_entry_by_text("CN", cn).unwrap();
        b.build()
    }

    #[test]
    fn challenge_password_round_trips_and_openssl_reads_it() {
        let k = key();
        let secret = ChallengePassword::new("s3cret+/=");
        let der = build(
            &k,
            &name("dev-1"),
            None,
            Some(&secret),
            MessageDigest::sha256(),
        )
        .unwrap();
        let csr = Csr::from_der(&der).unwrap();
        assert_eq!(csr.challenge_password().unwrap().expose(), "s3cret+/=");
        assert!(X509Req::from_der(&der).unwrap().verify(&k).unwrap());
        assert!(!format!("{csr:?}").contains("s3cret"));
        assert!(!format!("{secret:?}").contains("s3cret"));
        let utf8 = ChallengePassword::new("pässwörd");
        let der = build(
            &k,
            &name("dev-1"),
            None,
            Some(&utf8),
            MessageDigest::sha256(),
        )
        .unwrap();
        assert_eq!(
            Csr::from_der(&der)
                .unwrap()
                .challenge_password()
                .unwrap()
                .expose(),
            "pässwörd"
        );
    }

    #[test]
    fn rejects_tampered_requests() {
        let k = key();
        let mut der = build(&k, &name("dev-1"), None, None, MessageDigest::sha256()).unwrap();
        let pos = der.windows(5).position(|w| w == b"dev-1").unwrap();
        der[pos] = b'x';
        assert_eq!(Csr::from_der(&der).unwrap_err(), CsrError::BadSignature);
        assert!(Csr::from_der(&der[..der.len() - 1]).is_err());
    }

    #[test]
    fn keeps_requested_extensions() {
        let k = key();
        let mut stack = openssl::stack::Stack::new().unwrap();
        stack
            .push(
                openssl::x509::extension::SubjectAlternativeName::new()
                    .dns("dev.example")
                    .build(&X509ReqBuilder::new().unwrap().x509v3_context(None))
                    .unwrap(),
            )
            .unwrap();
        let der = build(
            &k,
            &name("dev"),
            Some(&stack),
            Some(&ChallengePassword::new("x")),
            MessageDigest::sha256(),
        )
        .unwrap();
        let csr = Csr::from_der(&der).unwrap();
        assert!(csr.extension_request().is_some());
        let req = X509Req::from_der(&der).unwrap();
        assert_eq!(req.extensions().unwrap().len(), 1);
    }
}
