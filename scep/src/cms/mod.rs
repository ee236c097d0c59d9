//! The parts of CMS (RFC 5652) that SCEP uses: ContentInfo, SignedData, EnvelopedData with RSA
//! key transport, and the shared IssuerAndSerialNumber / Attribute productions.
//!
//! Decoding borrows from the input and accepts BER; encoding is DER. OpenSSL does the
//! arithmetic (digests, RSA, ciphers); the structure is ours, so every field can be checked,
//! bounded and reported precisely.

pub mod enveloped;
pub mod kari;
pub mod signed;

use std::borrow::Cow;

use openssl::x509::{X509, X509Ref};

use crate::asn1::{Asn1Error, Reader, Tlv, integer_magnitude, parse_single, tag, writer};
use crate::error::BuildError;

/// Most certificates, CRLs, signers or recipients accepted in one structure. GetCACert answers
/// carry 2 to 5 certificates; a client encrypting to each of them makes as many recipients.
pub const MAX_REPEATED: usize = 32;

/// ```text
/// ContentInfo ::= SEQUENCE {
///   contentType ContentType,
///   content [0] EXPLICIT ANY DEFINED BY contentType }
/// ```
/// RFC 5652 §3. Returns the content type's OID octets and the inner content TLV.
pub fn decode_content_info(input: &[u8]) -> Result<(&[u8], Tlv<'_>), Asn1Error> {
    let mut r = parse_single(input)?
        .expect(tag::SEQUENCE, "expected ContentInfo")?
        .children()?;
    let content_type = r.read(tag::OID, "expected contentType")?.content;
    let mut explicit = r
        .read(tag::context(0), "expected [0] content")?
        .children()?;
    let content = explicit.read_any()?;
    explicit.finish("trailing data in [0] content")?;
    r.finish("trailing data in ContentInfo")?;
    Ok((content_type, content))
}

/// Encode a ContentInfo around already-encoded content.
pub fn encode_content_info(content_type: &[u8], content: &[u8]) -> Vec<u8> {
    writer::sequence(&[&writer::oid(content_type), &writer::context(0, content)])
}

/// ```text
/// IssuerAndSerialNumber ::= SEQUENCE {
///   issuer Name,
///   serialNumber CertificateSerialNumber }
/// ```
/// RFC 5652 §10.2.4, also the body of SCEP GetCert and GetCRL (RFC 8894 §3.3.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerAndSerialNumber {
    /// DER of the issuer Name.
    pub issuer: Vec<u8>,
    /// Magnitude of the serial number, big-endian, without leading zeros.
    pub serial: Vec<u8>,
}

impl IssuerAndSerialNumber {
    /// The issuer and serial of a certificate.
    pub fn of(cert: &X509Ref) -> Result<Self, BuildError> {
        Ok(Self {
            issuer: cert.issuer_name().to_der()?,
            serial: cert.serial_number().to_bn()?.to_vec(),
        })
    }

    /// Decode from a SEQUENCE TLV.
    pub fn decode(t: Tlv<'_>) -> Result<Self, Asn1Error> {
        let mut r = t
            .expect(tag::SEQUENCE, "expected IssuerAndSerialNumber")?
            .children()?;
        let issuer = r
            .read(tag::SEQUENCE, "expected issuer Name")?
            .to_definite()?
            .into_owned();
        let serial = r.read(tag::INTEGER, "expected serialNumber")?.content;
        r.finish("trailing data in IssuerAndSerialNumber")?;
        if serial.is_empty() {
            return Err(Asn1Error::new("empty serialNumber"));
        }
        Ok(Self {
            issuer,
            serial: integer_magnitude(serial).to_vec(),
        })
    }

    /// Decode a whole DER/BER value.
    pub fn from_der(der: &[u8]) -> Result<Self, Asn1Error> {
        Self::decode(parse_single(der)?)
    }

    /// DER encoding.
    pub fn to_der(&self) -> Vec<u8> {
        writer::sequence(&[&self.issuer, &writer::unsigned_integer(&self.serial)])
    }

    /// Whether this names `cert`. Names are compared as encoded first, then by OpenSSL's
    /// canonical comparison (clients re-encode names differently).
    pub fn matches(&self, cert: &X509Ref) -> bool {
        let Ok(serial) = cert.serial_number().to_bn().map(|b| b.to_vec()) else {
            return false;
        };
        if serial != self.serial {
            return false;
        }
        names_equal(&self.issuer, cert.issuer_name())
    }
}

/// Compare a DER Name with an OpenSSL name, canonically.
pub(crate) fn names_equal(der: &[u8], name: &openssl::x509::X509NameRef) -> bool {
    if name.to_der().is_ok_and(|n| n == der) {
        return true;
    }
    match openssl::x509::X509Name::from_der(der) {
        Ok(other) => other.try_cmp(name).is_ok_and(|o| o.is_eq()),
        Err(_) => false,
    }
}

/// ```text
/// SignerIdentifier ::= CHOICE {
///   issuerAndSerialNumber IssuerAndSerialNumber,
///   subjectKeyIdentifier [0] SubjectKeyIdentifier }
/// ```
/// RFC 5652 §5.3; RecipientIdentifier (§6.2.1) has the same shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertIdentifier {
    /// By issuer and serial number.
    IssuerAndSerial(IssuerAndSerialNumber),
    /// By subject key identifier.
    SubjectKeyId(Vec<u8>),
}

impl CertIdentifier {
    pub(crate) fn decode(t: Tlv<'_>) -> Result<Self, Asn1Error> {
        if t.tag == tag::context_primitive(0) || t.tag == tag::context(0) {
            return Ok(Self::SubjectKeyId(
                t.string_bytes(tag::OCTET_STRING)?.into_owned(),
            ));
        }
        IssuerAndSerialNumber::decode(t).map(Self::IssuerAndSerial)
    }

    /// Whether this identifies `cert`.
    pub fn matches(&self, cert: &X509Ref) -> bool {
        match self {
            Self::IssuerAndSerial(ias) => ias.matches(cert),
            Self::SubjectKeyId(ski) => cert.subject_key_id().is_some_and(|k| k.as_slice() == ski),
        }
    }

    /// The first certificate this identifies.
    pub fn find<'c>(&self, certs: &'c [X509]) -> Option<&'c X509> {
        certs.iter().find(|c| self.matches(c))
    }
}

/// ```text
/// Attribute ::= SEQUENCE {
///   attrType OBJECT IDENTIFIER,
///   attrValues SET OF AttributeValue }
/// ```
/// RFC 5652 §5.3.
#[derive(Clone, Debug)]
pub struct Attribute<'a> {
    /// OID content octets.
    pub oid: &'a [u8],
    /// The values (SCEP attributes have exactly one).
    pub values: Vec<Tlv<'a>>,
}

impl<'a> Attribute<'a> {
    fn decode(t: Tlv<'a>) -> Result<Self, Asn1Error> {
        let mut r = t.expect(tag::SEQUENCE, "expected Attribute")?.children()?;
        let oid = r.read(tag::OID, "expected attrType")?.content;
        let mut set = r.read(tag::SET, "expected attrValues")?.children()?;
        r.finish("trailing data in Attribute")?;
        let mut values = Vec::new();
        while !set.is_empty() {
            if values.len() >= MAX_REPEATED {
                return Err(Asn1Error::new("too many attribute values"));
            }
            values.push(set.read_any()?);
        }
        Ok(Self { oid, values })
    }

    /// Encode a single-valued attribute.
    pub fn encode(oid: &[u8], value: &[u8]) -> Vec<u8> {
        writer::sequence(&[&writer::oid(oid), &writer::set_of(vec![value.to_vec()])])
    }
}

/// Decode a SET OF Attribute, rejecting a repeated attribute type (RFC 5652 §5.3: signed
/// attributes carry each type once) and more than [`MAX_REPEATED`] attributes.
pub(crate) fn decode_attributes<'a>(set: Tlv<'a>) -> Result<Vec<Attribute<'a>>, Asn1Error> {
    let mut r = set.children()?;
    let mut attrs: Vec<Attribute<'a>> = Vec::new();
    while !r.is_empty() {
        let a = Attribute::decode(r.read_any()?)?;
        if attrs.iter().any(|b| b.oid == a.oid) {
            return Err(Asn1Error::new("repeated attribute type"));
        }
        if attrs.len() >= MAX_REPEATED {
            return Err(Asn1Error::new("too many attributes"));
        }
        attrs.push(a);
    }
    Ok(attrs)
}

/// Read the elements of a SET/SEQUENCE OF as raw TLVs, bounded.
pub(crate) fn read_all<'a>(t: Tlv<'a>) -> Result<Vec<Tlv<'a>>, Asn1Error> {
    let mut r: Reader<'a> = t.children()?;
    let mut out = Vec::new();
    while !r.is_empty() {
        if out.len() >= MAX_REPEATED {
            return Err(Asn1Error::new("too many elements"));
        }
        out.push(r.read_any()?);
    }
    Ok(out)
}

/// Bytes of an OCTET STRING (primitive or BER constructed).
pub(crate) fn octets<'a>(t: Tlv<'a>, what: &'static str) -> Result<Cow<'a, [u8]>, Asn1Error> {
    if t.tag != tag::OCTET_STRING && t.tag != tag::constructed(tag::OCTET_STRING) {
        return Err(Asn1Error::new(what));
    }
    t.string_bytes(tag::OCTET_STRING)
}

/// A private key that can open envelopes addressed to its certificate (the RA encryption
/// certificate; during a rollover, the previous one too).
#[derive(Clone, Copy)]
pub struct DecryptionKey<'a> {
    /// The certificate requesters encrypt to.
    pub cert: &'a X509Ref,
    /// Its private key (RSA on the server; RSA or EC on a client opening a reply).
    pub key: &'a openssl::pkey::PKeyRef<openssl::pkey::Private>,
}

impl std::fmt::Debug for DecryptionKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptionKey")
            .field("cert", &self.cert.subject_name())
            .finish_non_exhaustive()
    }
}
