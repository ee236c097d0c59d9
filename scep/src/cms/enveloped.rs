//! EnvelopedData with RSA key transport (RFC 5652 §6): the pkcsPKIEnvelope (RFC 8894 §3.2.2).

use std::borrow::Cow;

use openssl::encrypt::{Decrypter, Encrypter};
use openssl::pkey::{PKeyRef, Private};
use openssl::rsa::Padding;
use openssl::x509::X509Ref;

use super::{
    CertIdentifier, IssuerAndSerialNumber, decode_content_info, encode_content_info, octets,
    read_all,
};
use crate::alg::{AlgorithmPolicy, ContentCipher};
use crate::asn1::{AlgorithmIdentifier, Asn1Error, Tlv, oid_to_string, tag, writer};
use crate::error::{AlgorithmKind, BuildError, EnvelopeFault, Refusal};
use crate::oid;

use super::kari::{RecipientKind, recipient_kind};

/// ```text
/// EnvelopedData ::= SEQUENCE {
///   version CMSVersion,
///   originatorInfo [0] IMPLICIT OriginatorInfo OPTIONAL,
///   recipientInfos RecipientInfos,
///   encryptedContentInfo EncryptedContentInfo,
///   unprotectedAttrs [1] IMPLICIT UnprotectedAttributes OPTIONAL }
/// EncryptedContentInfo ::= SEQUENCE {
///   contentType ContentType,
///   contentEncryptionAlgorithm ContentEncryptionAlgorithmIdentifier,
///   encryptedContent [0] IMPLICIT EncryptedContent OPTIONAL }
/// ```
/// RFC 5652 §6.1. Versions 0 and 2 (and the v1 some clients send) are all read the same way.
#[derive(Debug)]
pub struct EnvelopedData<'a> {
    /// The recipients; only key transport ones can be opened.
    pub recipients: Vec<RecipientInfo<'a>>,
    /// contentEncryptionAlgorithm.
    pub content_encryption: AlgorithmIdentifier<'a>,
    /// encryptedContent (BER constructed strings joined); empty when absent.
    pub encrypted_content: Cow<'a, [u8]>,
}

/// ```text
/// RecipientInfo ::= CHOICE {
///   ktri KeyTransRecipientInfo,
///   kari [1] KeyAgreeRecipientInfo,
///   kekri [2] KEKRecipientInfo,
///   pwri [3] PasswordRecipientinfo,
///   ori [4] OtherRecipientInfo }
/// KeyTransRecipientInfo ::= SEQUENCE {
///   version CMSVersion,  -- always set to 0 or 2
///   rid RecipientIdentifier,
///   keyEncryptionAlgorithm KeyEncryptionAlgorithmIdentifier,
///   encryptedKey EncryptedKey }
/// ```
/// RFC 5652 §6.2.
#[derive(Debug)]
pub enum RecipientInfo<'a> {
    /// Key transport (the only kind SCEP uses).
    KeyTrans {
        /// Whose key the content-encryption key is encrypted to.
        rid: CertIdentifier,
        /// keyEncryptionAlgorithm.
        algorithm: AlgorithmIdentifier<'a>,
        /// The encrypted content-encryption key.
        encrypted_key: Cow<'a, [u8]>,
    },
    /// Key agreement, KEK, password or other: never ours.
    Other,
}

pub use super::DecryptionKey;

impl<'a> EnvelopedData<'a> {
    /// Decode a ContentInfo that must hold an EnvelopedData.
    pub fn from_content_info(input: &'a [u8]) -> Result<Self, Asn1Error> {
        let (content_type, content) = decode_content_info(input)?;
        if content_type != oid::ENVELOPED_DATA {
            return Err(Asn1Error::new("not a CMS EnvelopedData"));
        }
        Self::decode(content)
    }

    fn decode(t: Tlv<'a>) -> Result<Self, Asn1Error> {
        let mut r = t
            .expect(tag::SEQUENCE, "expected EnvelopedData")?
            .children()?;
        r.read(tag::INTEGER, "expected EnvelopedData version")?;
        r.read_optional(tag::context(0))?;
        let recipients = read_all(r.read(tag::SET, "expected recipientInfos")?)?
            .into_iter()
            .map(RecipientInfo::decode)
            .collect::<Result<Vec<_>, _>>()?;
        let mut eci = r
            .read(tag::SEQUENCE, "expected encryptedContentInfo")?
            .children()?;
        eci.read(tag::OID, "expected contentType")?;
        let content_encryption = AlgorithmIdentifier::decode(eci.read_any()?)?;
        let encrypted_content = match eci.peek_tag() {
            Some(t) if t == tag::context_primitive(0) || t == tag::context(0) => {
                eci.read_any()?.string_bytes(tag::OCTET_STRING)?
            }
            Some(_) => return Err(Asn1Error::new("unexpected field in encryptedContentInfo")),
            None => Cow::Borrowed(&[][..]),
        };
        eci.finish("trailing data in encryptedContentInfo")?;
        r.read_optional(tag::context(1))?;
        r.finish("trailing data in EnvelopedData")?;
        Ok(Self {
            recipients,
            content_encryption,
            encrypted_content,
        })
    }

    /// Decide the algorithms from their public OIDs (badAlg), then open the envelope with one
    /// of `keys`. Everything else is one [`Refusal::Envelope`] (docs/decisions.md #1): the
    /// recipient, the cipher's parameters (an IV absent, of another type or another length),
    /// the key transport, the padding and the content. An RSA decryption failure continues
    /// with a random key (RFC 3218 §2.3.2) so it surfaces as the same content-decryption
    /// failure as a wrong key.
    pub fn open(
        &self,
        keys: &[DecryptionKey<'_>],
        policy: &AlgorithmPolicy,
    ) -> Result<(Vec<u8>, ContentCipher), Refusal> {
        let cipher = policy.content_cipher(self.content_encryption.oid)?;
        let mut key_transport = self.recipients.iter().filter_map(|r| match r {
            RecipientInfo::KeyTrans {
                rid,
                algorithm,
                encrypted_key,
            } => Some((rid, algorithm, encrypted_key)),
            RecipientInfo::Other => None,
        });
        if key_transport.clone().next().is_none() {
            return Err(Refusal::UnsupportedAlgorithm {
                kind: AlgorithmKind::KeyTransport,
                oid: "no key transport recipient".into(),
            });
        }
        let found = key_transport.find_map(|(rid, alg, ek)| {
            keys.iter()
                .find(|k| rid.matches(k.cert))
                .map(|k| (k, alg, ek))
        });
        let Some((key, algorithm, encrypted_key)) = found else {
            return Err(Refusal::Envelope(EnvelopeFault::NoMatchingRecipient));
        };
        if algorithm.oid != oid::RSA_ENCRYPTION || !algorithm.params_absent_or_null() {
            return Err(Refusal::UnsupportedAlgorithm {
                kind: AlgorithmKind::KeyTransport,
                oid: oid_to_string(algorithm.oid),
            });
        }
        // The IV is a parameter of an algorithm we support, not an algorithm: a wrong one is
        // a malformed envelope like any other (it was badAlg, the one exception).
        let iv = self
            .content_encryption
            .params
            .and_then(|p| octets(p, "IV").ok())
            .filter(|iv| iv.len() == cipher.iv_len())
            .ok_or(Refusal::Envelope(EnvelopeFault::ContentParameters))?;
        let cek = unwrap_key_or_random(key.key, encrypted_key, cipher.key_len());
        let plain =
            openssl::symm::decrypt(cipher.cipher(), &cek, Some(&iv), &self.encrypted_content)
                .map_err(|_| Refusal::Envelope(EnvelopeFault::ContentDecryption))?;
        if plain.is_empty() {
            return Err(Refusal::Envelope(EnvelopeFault::ContentDecryption));
        }
        Ok((plain, cipher))
    }
}

/// RSA PKCS#1 v1.5 key transport; on any failure (padding, length) a random key of the
/// expected length, so the caller cannot tell a padding failure from a wrong key.
fn unwrap_key_or_random(key: &PKeyRef<Private>, encrypted: &[u8], len: usize) -> Vec<u8> {
    let decrypted = (|| {
        let mut d = Decrypter::new(key)?;
        d.set_rsa_padding(Padding::PKCS1)?;
        let mut out = vec![0u8; d.decrypt_len(encrypted)?];
        let n = d.decrypt(encrypted, &mut out)?;
        out.truncate(n);
        Ok::<_, openssl::error::ErrorStack>(out)
    })();
    let mut random = vec![0u8; len];
    // If the CSPRNG fails the key stays zero: still a wrong key, still the same failure path.
    let _ = openssl::rand::rand_bytes(&mut random);
    match decrypted {
        Ok(k) if k.len() == len => k,
        _ => random,
    }
}

impl<'a> RecipientInfo<'a> {
    fn decode(t: Tlv<'a>) -> Result<Self, Asn1Error> {
        if t.tag != tag::SEQUENCE {
            return Ok(Self::Other);
        }
        let mut r = t.children()?;
        r.read(tag::INTEGER, "expected KeyTransRecipientInfo version")?;
        let rid = CertIdentifier::decode(r.read_any()?)?;
        let algorithm = AlgorithmIdentifier::decode(r.read_any()?)?;
        let encrypted_key = octets(r.read_any()?, "expected encryptedKey")?;
        r.finish("trailing data in KeyTransRecipientInfo")?;
        Ok(Self::KeyTrans {
            rid,
            algorithm,
            encrypted_key,
        })
    }
}

/// Encrypt `content` for every certificate in `recipients` with a fresh random key and IV:
/// to an RSA key by PKCS#1 v1.5 key transport, to an EC key (P-256/P-384/P-521) by key
/// agreement ([`super::kari`], RFC 5753), each recipient named by issuer and serial. Returns
/// the EnvelopedData ContentInfo, version 0 with key transport only and 2 once a
/// KeyAgreeRecipientInfo (version 3) is present (RFC 5652 §6.1).
pub fn seal(
    content: &[u8],
    recipients: &[&X509Ref],
    cipher: ContentCipher,
) -> Result<Vec<u8>, BuildError> {
    if recipients.is_empty() {
        return Err(BuildError::InvalidInput(
            "an envelope needs at least one recipient",
        ));
    }
    let mut cek = vec![0u8; cipher.key_len()];
    let mut iv = vec![0u8; cipher.iv_len()];
    openssl::rand::rand_bytes(&mut cek)?;
    openssl::rand::rand_bytes(&mut iv)?;
    let mut infos = Vec::with_capacity(recipients.len());
    let mut version = 0;
    for cert in recipients {
        match recipient_kind(cert) {
            Ok(RecipientKind::KeyTransport) => infos.push(key_transport_info(cert, &cek)?),
            Ok(RecipientKind::KeyAgreement) => {
                version = 2;
                infos.push(super::kari::recipient_info(cert, &cek)?);
            }
            Err(_) => {
                return Err(BuildError::InvalidInput(
                    "an envelope needs RSA or P-256/P-384/P-521 recipient certificates",
                ));
            }
        }
    }
    let encrypted = openssl::symm::encrypt(cipher.cipher(), &cek, Some(&iv), content)?;
    let eci = writer::sequence(&[
        &writer::oid(oid::DATA),
        &writer::algorithm(cipher.oid(), Some(&writer::octet_string(&iv))),
        &writer::tlv(tag::context_primitive(0), &encrypted),
    ]);
    let body = writer::sequence(&[
        &writer::small_integer(version),
        &writer::set_of(infos),
        &eci,
    ]);
    Ok(encode_content_info(oid::ENVELOPED_DATA, &body))
}

/// A KeyTransRecipientInfo (version 0): `cek` under the RSA key of `cert`, PKCS#1 v1.5.
fn key_transport_info(cert: &X509Ref, cek: &[u8]) -> Result<Vec<u8>, BuildError> {
    let key = cert.public_key()?;
    let mut e = Encrypter::new(&key)?;
    e.set_rsa_padding(Padding::PKCS1)?;
    let mut wrapped = vec![0u8; e.encrypt_len(cek)?];
    let n = e.encrypt(cek, &mut wrapped)?;
    wrapped.truncate(n);
    Ok(writer::sequence(&[
        &writer::small_integer(0),
        &IssuerAndSerialNumber::of(cert)?.to_der(),
        &writer::algorithm(oid::RSA_ENCRYPTION, Some(&writer::null())),
        &writer::octet_string(&wrapped),
    ]))
}
