//! Hand-built SCEP messages, CMS and CSRs: every field under the test's control, so tests can
//! send what no correct client ever would: wrong messageTypes, odd nonces, no signer
//! certificate ([`RawRequest`]); unsorted or malformed signed attributes, several SignerInfos,
//! foreign algorithm OIDs, odd string types, CSRs with any version, key or attribute layout
//! (the parts below it). Written with the `scep` crate's DER writer; panics on an OpenSSL error
//! (a fixture that cannot be built is a broken test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use openssl::x509::X509;
use scep::DigestAlgorithm;
use scep::asn1::tag;
use scep::asn1::writer::{self, tlv};
use scep::cms::IssuerAndSerialNumber;
use scep::cms::signed::SignerIdentity;
use scep::oid;

/// A pkiMessage with every SCEP attribute under the caller's control.
#[derive(Clone, Debug)]
pub struct RawRequest<'a> {
    /// messageType text, written as a PrintableString as is.
    pub message_type: &'a str,
    /// transactionID text, written as a PrintableString as is.
    pub transaction_id: &'a str,
    /// senderNonce bytes, any length.
    pub sender_nonce: &'a [u8],
    /// eContent (normally an EnvelopedData), or none.
    pub content: Option<&'a [u8]>,
    /// Whether the signer's certificate goes into the certificates field.
    pub include_signer_cert: bool,
    /// Digest of the signature.
    pub digest: DigestAlgorithm,
}

/// Sign a [`RawRequest`] (RSA or EC signer): one SignerInfo with the SCEP attributes,
/// contentType and messageDigest, in DER order.
pub fn build(raw: &RawRequest<'_>, signer: SignerIdentity<'_>) -> Result<Vec<u8>, ErrorStack> {
    let mut spec = SignerSpec::scep(
        writer::printable_string(raw.message_type),
        writer::printable_string(raw.transaction_id),
        writer::octet_string(raw.sender_nonce),
    );
    spec.digest_oid = raw.digest.oid().to_vec();
    spec.md = raw.digest.md();
    if signer.key.id() == openssl::pkey::Id::EC {
        let alg = match raw.digest {
            DigestAlgorithm::Sha384 => oid::ECDSA_WITH_SHA384,
            DigestAlgorithm::Sha512 => oid::ECDSA_WITH_SHA512,
            _ => oid::ECDSA_WITH_SHA256,
        };
        spec.signature_alg = writer::algorithm(alg, None);
    }
    let cert = signer.cert.to_owned();
    let key = signer.key.to_owned();
    let si = signer_info(&spec, &cert, &key, raw.content);
    let certs: &[&X509] = if raw.include_signer_cert {
        &[&cert]
    } else {
        &[]
    };
    Ok(signed_data(raw.content, &spec.digest_oid, certs, &[si]))
}

/// `Attribute ::= SEQUENCE { attrType OID, attrValues SET OF ANY }` with the values as given
/// (in the given order: a multi-valued attribute need not be sorted to be refused).
pub fn attr(oid_content: &[u8], values: &[Vec<u8>]) -> Vec<u8> {
    writer::sequence(&[&writer::oid(oid_content), &tlv(tag::SET, &values.concat())])
}

/// An IA5String (tag 22), any bytes.
pub fn ia5(bytes: &[u8]) -> Vec<u8> {
    tlv(0x16, bytes)
}

/// A BMPString (tag 30): UTF-16BE.
pub fn bmp(s: &str) -> Vec<u8> {
    let units: Vec<u8> = s.encode_utf16().flat_map(u16::to_be_bytes).collect();
    tlv(0x1e, &units)
}

/// A UTCTime (tag 23) with the given text, valid or not.
pub fn utc_time(text: &str) -> Vec<u8> {
    tlv(0x17, text.as_bytes())
}

/// One SignerInfo, and how to make it wrong.
pub struct SignerSpec {
    /// digestAlgorithm OID (content octets) written in the SignerInfo and SignedData.
    pub digest_oid: Vec<u8>,
    /// The digest actually computed (messageDigest and signature).
    pub md: MessageDigest,
    /// signatureAlgorithm AlgorithmIdentifier DER.
    pub signature_alg: Vec<u8>,
    /// The SCEP and other attributes (contentType and messageDigest are added unless
    /// `message_digest` says otherwise).
    pub attrs: Vec<Vec<u8>>,
    /// Write the signed attributes in this order instead of DER (sorted) order.
    pub unsorted: bool,
    /// Replace the messageDigest value.
    pub message_digest: Option<Vec<u8>>,
}

impl SignerSpec {
    /// SHA-256 with RSA, messageType/transactionID/senderNonce as given (already encoded
    /// attribute values).
    pub fn scep(message_type: Vec<u8>, transaction_id: Vec<u8>, nonce: Vec<u8>) -> Self {
        Self {
            digest_oid: oid::SHA256.to_vec(),
            md: MessageDigest::sha256(),
            signature_alg: writer::algorithm(oid::RSA_ENCRYPTION, Some(&writer::null())),
            attrs: vec![
                attr(oid::MESSAGE_TYPE, &[message_type]),
                attr(oid::TRANSACTION_ID, &[transaction_id]),
                attr(oid::SENDER_NONCE, &[nonce]),
            ],
            unsorted: false,
            message_digest: None,
        }
    }

    /// A PKCSReq-shaped spec: messageType 19, the given transactionID, a 16-byte nonce.
    pub fn pkcs_req(transaction_id: &str) -> Self {
        Self::scep(
            writer::printable_string("19"),
            writer::printable_string(transaction_id),
            writer::octet_string(&[7; 16]),
        )
    }
}

/// Sign `content` as a SignerInfo of `cert`/`key`.
pub fn signer_info(
    spec: &SignerSpec,
    cert: &X509,
    key: &PKey<Private>,
    content: Option<&[u8]>,
) -> Vec<u8> {
    let digest = openssl::hash::hash(spec.md, content.unwrap_or_default()).unwrap();
    let mut attrs = spec.attrs.clone();
    attrs.push(attr(oid::CONTENT_TYPE, &[writer::oid(oid::DATA)]));
    attrs.push(attr(
        oid::MESSAGE_DIGEST,
        &[writer::octet_string(
            spec.message_digest.as_deref().unwrap_or(&digest),
        )],
    ));
    if !spec.unsorted {
        attrs.sort();
    }
    // Signed over the SET OF as sent (RFC 5652 §5.4: EXPLICIT SET OF tag).
    let set = tlv(tag::SET, &attrs.concat());
    let mut signer = Signer::new(spec.md, key).unwrap();
    signer.update(&set).unwrap();
    let signature = signer.sign_to_vec().unwrap();
    let mut implicit = set;
    implicit[0] = tag::context(0);
    writer::sequence(&[
        &writer::small_integer(1),
        &IssuerAndSerialNumber::of(cert).unwrap().to_der(),
        &writer::algorithm(&spec.digest_oid, Some(&writer::null())),
        &implicit,
        &spec.signature_alg,
        &writer::octet_string(&signature),
    ])
}

/// A SignedData ContentInfo around id-data `content` with the given SignerInfos and
/// certificates (in order).
pub fn signed_data(
    content: Option<&[u8]>,
    digest_oid: &[u8],
    certs: &[&X509],
    signer_infos: &[Vec<u8>],
) -> Vec<u8> {
    let encap = match content {
        Some(c) => writer::sequence(&[
            &writer::oid(oid::DATA),
            &writer::context(0, &writer::octet_string(c)),
        ]),
        None => writer::sequence(&[&writer::oid(oid::DATA)]),
    };
    let certs: Vec<u8> = certs.iter().flat_map(|c| c.to_der().unwrap()).collect();
    let mut parts = vec![
        writer::small_integer(1),
        tlv(
            tag::SET,
            &writer::algorithm(digest_oid, Some(&writer::null())),
        ),
        encap,
    ];
    if !certs.is_empty() {
        parts.push(writer::context(0, &certs));
    }
    parts.push(tlv(tag::SET, &signer_infos.concat()));
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    content_info(oid::SIGNED_DATA, &writer::sequence(&refs))
}

/// `ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content }`.
pub fn content_info(oid_content: &[u8], inner: &[u8]) -> Vec<u8> {
    writer::sequence(&[&writer::oid(oid_content), &writer::context(0, inner)])
}

/// The usual one-signer pkiMessage around `content` with the signer certificate included.
pub fn message(spec: &SignerSpec, cert: &X509, key: &PKey<Private>, content: &[u8]) -> Vec<u8> {
    let si = signer_info(spec, cert, key, Some(content));
    signed_data(Some(content), &spec.digest_oid, &[cert], &[si])
}

/// Replace every occurrence of `from` by `to` (same length, so no length changes).
pub fn replace_all(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = data.to_vec();
    let mut i = 0;
    let mut hits = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            hits += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(hits > 0, "nothing replaced");
    out
}

/// A PKCS#10 request with every field given: version, subject and SPKI DER, attributes
/// (already encoded), self-signed with `key` under SHA-256 (the signature is whatever `key`
/// makes of it: a key that does not match the SPKI gives a request that fails its check).
pub fn csr(
    version: u32,
    subject_der: &[u8],
    spki_der: &[u8],
    attrs: &[Vec<u8>],
    key: &PKey<Private>,
) -> Vec<u8> {
    let cri = writer::sequence(&[
        &writer::small_integer(version),
        subject_der,
        spki_der,
        &writer::context(0, &attrs.concat()),
    ]);
    let mut signer = Signer::new(MessageDigest::sha256(), key).unwrap();
    signer.update(&cri).unwrap();
    let sig = signer.sign_to_vec().unwrap();
    let mut bits = vec![0u8];
    bits.extend_from_slice(&sig);
    let alg = match key.id() {
        openssl::pkey::Id::EC => writer::algorithm(oid::ECDSA_WITH_SHA256, None),
        openssl::pkey::Id::DSA => writer::algorithm(DSA_WITH_SHA256, None),
        _ => writer::algorithm(oid::SHA256_WITH_RSA, Some(&writer::null())),
    };
    writer::sequence(&[&cri, &alg, &tlv(tag::BIT_STRING, &bits)])
}

/// id-dsa-with-sha256 (RFC 5758).
const DSA_WITH_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x02];

/// A challengePassword attribute with the given (encoded) values.
pub fn challenge_attr(values: &[Vec<u8>]) -> Vec<u8> {
    attr(oid::CHALLENGE_PASSWORD, values)
}

/// An RSA SubjectPublicKeyInfo with any modulus and exponent.
pub fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let key = writer::sequence(&[&writer::unsigned_integer(n), &writer::unsigned_integer(e)]);
    let mut bits = vec![0u8];
    bits.extend_from_slice(&key);
    writer::sequence(&[
        &writer::algorithm(oid::RSA_ENCRYPTION, Some(&writer::null())),
        &tlv(tag::BIT_STRING, &bits),
    ])
}

/// A P-256 SubjectPublicKeyInfo with any point encoding.
pub fn p256_spki(point: &[u8]) -> Vec<u8> {
    const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    writer::sequence(&[
        &writer::sequence(&[&writer::oid(oid::EC_PUBLIC_KEY), &writer::oid(PRIME256V1)]),
        &tlv(tag::BIT_STRING, &bits),
    ])
}
