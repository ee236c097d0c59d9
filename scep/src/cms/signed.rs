//! SignedData (RFC 5652 §5): the pkiMessage wrapper (RFC 8894 §3.2) and the degenerate
//! certificates-only form (RFC 8894 §3.4).

use std::borrow::Cow;

use openssl::pkey::{HasPublic, PKeyRef, Private};
use openssl::sign::{Signer, Verifier};
use openssl::x509::{X509, X509Ref};

use super::{
    Attribute, CertIdentifier, IssuerAndSerialNumber, MAX_REPEATED, decode_attributes,
    decode_content_info, encode_content_info, octets, read_all,
};
use crate::alg::{AlgorithmPolicy, DigestAlgorithm, SignatureScheme};
use crate::asn1::{AlgorithmIdentifier, Asn1Error, Tlv, tag, writer};
use crate::error::{AlgorithmKind, BuildError, DecodeError, Refusal};
use crate::oid;

/// ```text
/// SignedData ::= SEQUENCE {
///   version CMSVersion,
///   digestAlgorithms DigestAlgorithmIdentifiers,
///   encapContentInfo EncapsulatedContentInfo,
///   certificates [0] IMPLICIT CertificateSet OPTIONAL,
///   crls [1] IMPLICIT RevocationInfoChoices OPTIONAL,
///   signerInfos SignerInfos }
/// EncapsulatedContentInfo ::= SEQUENCE {
///   eContentType ContentType,
///   eContent [0] EXPLICIT OCTET STRING OPTIONAL }
/// ```
/// RFC 5652 §5.1 and §5.2, borrowed from the input.
#[derive(Debug)]
pub struct SignedData<'a> {
    /// eContentType OID octets.
    pub content_type: &'a [u8],
    /// eContent, if present (BER constructed OCTET STRINGs joined).
    pub content: Option<Cow<'a, [u8]>>,
    /// Raw DER of each certificate (other CertificateChoices are skipped).
    pub certificates: Vec<&'a [u8]>,
    /// Raw DER of each CRL (other RevocationInfoChoices are skipped).
    pub crls: Vec<&'a [u8]>,
    /// The signers.
    pub signer_infos: Vec<SignerInfo<'a>>,
}

impl<'a> SignedData<'a> {
    /// Decode a ContentInfo that must hold a SignedData.
    pub fn from_content_info(input: &'a [u8]) -> Result<Self, DecodeError> {
        let (content_type, content) = decode_content_info(input)?;
        if content_type != oid::SIGNED_DATA {
            return Err(DecodeError::NotSignedData);
        }
        Ok(Self::decode(content)?)
    }

    fn decode(t: Tlv<'a>) -> Result<Self, Asn1Error> {
        let mut r = t.expect(tag::SEQUENCE, "expected SignedData")?.children()?;
        r.read(tag::INTEGER, "expected SignedData version")?;
        read_all(r.read(tag::SET, "expected digestAlgorithms")?)?;
        let mut encap = r
            .read(tag::SEQUENCE, "expected encapContentInfo")?
            .children()?;
        let content_type = encap.read(tag::OID, "expected eContentType")?.content;
        let content = match encap.read_optional(tag::context(0))? {
            Some(explicit) => {
                let mut inner = explicit.children()?;
                let c = octets(inner.read_any()?, "expected eContent OCTET STRING")?;
                inner.finish("trailing data in eContent")?;
                Some(c)
            }
            None => None,
        };
        encap.finish("trailing data in encapContentInfo")?;
        let certificates = match r.read_optional(tag::context(0))? {
            Some(set) => sequences(set)?,
            None => Vec::new(),
        };
        let crls = match r.read_optional(tag::context(1))? {
            Some(set) => sequences(set)?,
            None => Vec::new(),
        };
        let signer_infos = read_all(r.read(tag::SET, "expected signerInfos")?)?
            .into_iter()
            .map(SignerInfo::decode)
            .collect::<Result<Vec<_>, _>>()?;
        r.finish("trailing data in SignedData")?;
        Ok(Self {
            content_type,
            content,
            certificates,
            crls,
            signer_infos,
        })
    }

    /// Parse the embedded certificates with OpenSSL; unparsable ones are skipped.
    pub fn parsed_certificates(&self) -> Vec<X509> {
        self.certificates
            .iter()
            .filter_map(|der| X509::from_der(der).ok())
            .collect()
    }
}

/// The SEQUENCE members of an IMPLICIT SET OF CHOICE (certificates, CRLs); other choices skipped.
fn sequences<'a>(set: Tlv<'a>) -> Result<Vec<&'a [u8]>, Asn1Error> {
    let items = read_all(set)?;
    Ok(items
        .into_iter()
        .filter(|t| t.tag == tag::SEQUENCE)
        .map(|t| t.raw)
        .collect())
}

/// ```text
/// SignerInfo ::= SEQUENCE {
///   version CMSVersion,
///   sid SignerIdentifier,
///   digestAlgorithm DigestAlgorithmIdentifier,
///   signedAttrs [0] IMPLICIT SignedAttributes OPTIONAL,
///   signatureAlgorithm SignatureAlgorithmIdentifier,
///   signature SignatureValue,
///   unsignedAttrs [1] IMPLICIT UnsignedAttributes OPTIONAL }
/// ```
/// RFC 5652 §5.3.
#[derive(Debug)]
pub struct SignerInfo<'a> {
    /// Which certificate signed.
    pub sid: CertIdentifier,
    /// digestAlgorithm.
    pub digest_algorithm: AlgorithmIdentifier<'a>,
    /// The `[0]` signed attributes TLV, if present.
    signed_attrs_tlv: Option<Tlv<'a>>,
    /// The signed attributes, decoded.
    pub signed_attrs: Vec<Attribute<'a>>,
    /// signatureAlgorithm.
    pub signature_algorithm: AlgorithmIdentifier<'a>,
    /// The signature value.
    pub signature: Cow<'a, [u8]>,
}

impl<'a> SignerInfo<'a> {
    fn decode(t: Tlv<'a>) -> Result<Self, Asn1Error> {
        let mut r = t.expect(tag::SEQUENCE, "expected SignerInfo")?.children()?;
        r.read(tag::INTEGER, "expected SignerInfo version")?;
        let sid = CertIdentifier::decode(r.read_any()?)?;
        let digest_algorithm = AlgorithmIdentifier::decode(r.read_any()?)?;
        let signed_attrs_tlv = r.read_optional(tag::context(0))?;
        let signed_attrs = match signed_attrs_tlv {
            Some(t) => decode_attributes(t)?,
            None => Vec::new(),
        };
        let signature_algorithm = AlgorithmIdentifier::decode(r.read_any()?)?;
        let signature = octets(r.read_any()?, "expected signature OCTET STRING")?;
        r.read_optional(tag::context(1))?;
        r.finish("trailing data in SignerInfo")?;
        Ok(Self {
            sid,
            digest_algorithm,
            signed_attrs_tlv,
            signed_attrs,
            signature_algorithm,
            signature,
        })
    }

    /// The single value of a signed attribute. `Ok(None)` when absent; an error when
    /// multi-valued (SCEP attributes are single-valued, RFC 8894 §3.2.1).
    pub fn attribute(
        &self,
        oid: &[u8],
        name: &'static str,
    ) -> Result<Option<Tlv<'a>>, DecodeError> {
        match self.signed_attrs.iter().find(|a| a.oid == oid) {
            None => Ok(None),
            Some(a) if a.values.len() == 1 => Ok(Some(a.values[0])),
            Some(_) => Err(DecodeError::InvalidAttribute(name)),
        }
    }

    /// Verify this signer over `content` with the signer's public key (RFC 5652 §5.4, §5.6):
    /// the messageDigest attribute must equal the digest of the content, the contentType
    /// attribute must equal `content_type`, and the signature over the DER of the signed
    /// attributes must verify. Returns the digest algorithm used.
    pub fn verify<T: HasPublic>(
        &self,
        content_type: &[u8],
        content: &[u8],
        key: &PKeyRef<T>,
        policy: &AlgorithmPolicy,
    ) -> Result<DigestAlgorithm, Refusal> {
        let digest = policy.digest(&self.digest_algorithm)?;
        let (scheme, sig_digest) = policy.signature(&self.signature_algorithm, digest)?;
        let key_matches = match scheme {
            SignatureScheme::Rsa(_) => key.id() == openssl::pkey::Id::RSA,
            SignatureScheme::Ecdsa(_) => key.id() == openssl::pkey::Id::EC,
        };
        if !key_matches {
            return Err(Refusal::UnsupportedAlgorithm {
                kind: AlgorithmKind::Signature,
                oid: "signature algorithm does not match the signer key".into(),
            });
        }
        policy.public_key(key)?;
        let attrs = self.signed_attrs_tlv.ok_or(Refusal::BadSignature)?;
        let ct = self
            .attribute(oid::CONTENT_TYPE, "contentType")
            .map_err(|_| Refusal::BadSignature)?;
        if ct.is_none_or(|t| t.tag != tag::OID || t.content != content_type) {
            return Err(Refusal::BadSignature);
        }
        let md = self
            .attribute(oid::MESSAGE_DIGEST, "messageDigest")
            .map_err(|_| Refusal::BadSignature)?;
        let expected = md
            .and_then(|t| octets(t, "messageDigest").ok())
            .ok_or(Refusal::MessageDigestMismatch)?;
        let actual =
            openssl::hash::hash(digest.md(), content).map_err(|_| Refusal::BadSignature)?;
        if *expected != *actual {
            return Err(Refusal::MessageDigestMismatch);
        }
        // The signature covers the DER of the attributes with an explicit SET OF tag (§5.4).
        let mut signed = attrs
            .to_definite()
            .map_err(|_| Refusal::BadSignature)?
            .into_owned();
        signed[0] = tag::SET;
        let ok = Verifier::new(sig_digest.md(), key)
            .and_then(|mut v| {
                v.update(&signed)?;
                v.verify(&self.signature)
            })
            .unwrap_or(false);
        if ok {
            Ok(digest)
        } else {
            Err(Refusal::BadSignature)
        }
    }
}

/// The signer of a message we build.
#[derive(Clone, Copy)]
pub struct SignerIdentity<'a> {
    /// The certificate that identifies the signer (self-signed for a new PKCSReq).
    pub cert: &'a X509Ref,
    /// Its private key (RSA or EC).
    pub key: &'a PKeyRef<Private>,
}

impl std::fmt::Debug for SignerIdentity<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerIdentity")
            .field("cert", &self.cert.subject_name())
            .finish_non_exhaustive()
    }
}

/// Build a SignedData ContentInfo with one signer (RFC 5652 §5), id-data content, the standard
/// contentType/messageDigest (and optional signingTime) attributes plus `extra_attrs` (already
/// encoded Attributes), and `certs` in the certificates field, in the order given.
pub(crate) fn sign(
    content: Option<&[u8]>,
    signer: SignerIdentity<'_>,
    digest: DigestAlgorithm,
    extra_attrs: Vec<Vec<u8>>,
    certs: &[&X509Ref],
    signing_time: Option<i64>,
) -> Result<Vec<u8>, BuildError> {
    let message_digest = openssl::hash::hash(digest.md(), content.unwrap_or_default())?;
    let mut attrs = extra_attrs;
    attrs.push(Attribute::encode(
        oid::CONTENT_TYPE,
        &writer::oid(oid::DATA),
    ));
    attrs.push(Attribute::encode(
        oid::MESSAGE_DIGEST,
        &writer::octet_string(&message_digest),
    ));
    if let Some(t) = signing_time {
        attrs.push(Attribute::encode(
            oid::SIGNING_TIME,
            &crate::time::encode_time(t)?,
        ));
    }
    let signed_attrs = writer::set_of(attrs);
    let mut s = Signer::new(digest.md(), signer.key)?;
    s.update(&signed_attrs)?;
    let signature = s.sign_to_vec()?;
    let signature_algorithm = match signer.key.id() {
        openssl::pkey::Id::RSA => writer::algorithm(oid::RSA_ENCRYPTION, Some(&writer::null())),
        openssl::pkey::Id::EC => writer::algorithm(ecdsa_oid(digest)?, None),
        _ => return Err(BuildError::InvalidInput("signer key must be RSA or EC")),
    };
    let mut signed_attrs_implicit = signed_attrs;
    signed_attrs_implicit[0] = tag::context(0);
    let digest_alg = writer::algorithm(digest.oid(), Some(&writer::null()));
    let signer_info = writer::sequence(&[
        &writer::small_integer(1),
        &IssuerAndSerialNumber::of(signer.cert)?.to_der(),
        &digest_alg,
        &signed_attrs_implicit,
        &signature_algorithm,
        &writer::octet_string(&signature),
    ]);
    let cert_ders = certs
        .iter()
        .map(|c| c.to_der())
        .collect::<Result<Vec<_>, _>>()?;
    signed_data(content, &[digest_alg], &cert_ders, &[], &[signer_info])
}

fn ecdsa_oid(digest: DigestAlgorithm) -> Result<&'static [u8], BuildError> {
    match digest {
        DigestAlgorithm::Sha256 => Ok(oid::ECDSA_WITH_SHA256),
        DigestAlgorithm::Sha384 => Ok(oid::ECDSA_WITH_SHA384),
        DigestAlgorithm::Sha512 => Ok(oid::ECDSA_WITH_SHA512),
        DigestAlgorithm::Sha1 => Err(BuildError::InvalidInput(
            "ECDSA with SHA-1 is not supported",
        )),
    }
}

/// Assemble a SignedData ContentInfo. Certificates and CRLs keep the caller's order (clients
/// read GetCACert answers in order), which is valid BER for the IMPLICIT SET OF.
fn signed_data(
    content: Option<&[u8]>,
    digest_algs: &[Vec<u8>],
    certs: &[Vec<u8>],
    crls: &[Vec<u8>],
    signer_infos: &[Vec<u8>],
) -> Result<Vec<u8>, BuildError> {
    if certs.len() > MAX_REPEATED || crls.len() > MAX_REPEATED {
        return Err(BuildError::InvalidInput("too many certificates or CRLs"));
    }
    let mut encap = writer::oid(oid::DATA);
    if let Some(c) = content {
        encap.extend(writer::context(0, &writer::octet_string(c)));
    }
    let mut body = writer::small_integer(1);
    body.extend(writer::set_of(digest_algs.to_vec()));
    body.extend(writer::tlv(tag::SEQUENCE, &encap));
    if !certs.is_empty() {
        body.extend(writer::context(0, &certs.concat()));
    }
    if !crls.is_empty() {
        body.extend(writer::context(1, &crls.concat()));
    }
    body.extend(writer::set_of(signer_infos.to_vec()));
    Ok(encode_content_info(
        oid::SIGNED_DATA,
        &writer::tlv(tag::SEQUENCE, &body),
    ))
}

/// A degenerate certificates-only SignedData (RFC 8894 §3.4, RFC 5652 §5.2): no content, no
/// signers, just certificates and CRLs. The GetCACert answer for an RA, and the payload of a
/// CertRep SUCCESS.
pub fn certs_only(certs: &[&X509Ref], crls: &[&[u8]]) -> Result<Vec<u8>, BuildError> {
    let cert_ders = certs
        .iter()
        .map(|c| c.to_der())
        .collect::<Result<Vec<_>, _>>()?;
    let crl_ders: Vec<Vec<u8>> = crls.iter().map(|c| c.to_vec()).collect();
    signed_data(None, &[], &cert_ders, &crl_ders, &[])
}

/// What a degenerate certificates-only SignedData holds.
#[derive(Clone, Debug, Default)]
pub struct CertsOnly {
    /// Certificates, in message order.
    pub certificates: Vec<X509>,
    /// CRLs (DER), in message order.
    pub crls: Vec<Vec<u8>>,
}

impl CertsOnly {
    /// Decode a certificates-only SignedData. Signers, if any, are ignored (some servers sign
    /// it anyway); every certificate must parse.
    pub fn from_der(der: &[u8]) -> Result<Self, DecodeError> {
        let sd = SignedData::from_content_info(der)?;
        let certificates = sd
            .certificates
            .iter()
            .map(|c| {
                X509::from_der(c).map_err(|_| DecodeError::Asn1(Asn1Error::new("bad certificate")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            certificates,
            crls: sd.crls.iter().map(|c| c.to_vec()).collect(),
        })
    }
}
