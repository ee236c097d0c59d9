//! Key agreement for EC requesters (RFC 5753 §3.1): a CertRep SUCCESS to a device whose key is
//! EC cannot use key transport, so its content-encryption key is wrapped under a key agreed by
//! ephemeral-static ECDH. The server builds the KeyAgreeRecipientInfo here; the requester
//! opens it with OpenSSL's CMS (an independent implementation of the same RFC), so the two
//! sides check each other.

use openssl::bn::BigNumContext;
use openssl::derive::Deriver;
use openssl::ec::{EcKey, PointConversionForm};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey};
use openssl::x509::X509Ref;

use super::IssuerAndSerialNumber;
use crate::alg::{AlgorithmPolicy, ContentCipher};
use crate::asn1::{tag, writer};
use crate::error::{AlgorithmKind, BuildError, EnvelopeFault, Refusal};
use crate::oid;

/// dhSinglePass-stdDH-sha256kdf-scheme, 1.3.132.1.11.1 (RFC 5753 §7.1.4).
pub const DH_SINGLE_PASS_STD_DH_SHA256_KDF: &[u8] = &[0x2b, 0x81, 0x04, 0x01, 0x0b, 0x01];
/// id-aes128-wrap, 2.16.840.1.101.3.4.1.5 (RFC 3565 §2.3.2).
pub const AES128_WRAP: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x05];
/// id-aes256-wrap, 2.16.840.1.101.3.4.1.45 (RFC 3565 §2.3.2).
pub const AES256_WRAP: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2d];

/// How an envelope reaches a recipient certificate's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientKind {
    /// RSA: key transport (KeyTransRecipientInfo, RFC 5652 §6.2.1).
    KeyTransport,
    /// EC on P-256, P-384 or P-521: key agreement (KeyAgreeRecipientInfo, RFC 5753 §3.1).
    KeyAgreement,
}

/// Whether an envelope can be sealed to `cert`'s key, and how. Anything else is badAlg, and the
/// server asks this before it does anything for the request (nothing is issued that could not
/// be delivered).
pub fn recipient_kind(cert: &X509Ref) -> Result<RecipientKind, Refusal> {
    let unsupported = |what: String| Refusal::UnsupportedAlgorithm {
        kind: AlgorithmKind::PublicKey,
        oid: format!("no envelope to a requester key of {what}"),
    };
    let key = cert
        .public_key()
        .map_err(|_| unsupported("an unreadable type".into()))?;
    match key.id() {
        Id::RSA => Ok(RecipientKind::KeyTransport),
        Id::EC => {
            let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
            match curve {
                Some(Nid::X9_62_PRIME256V1 | Nid::SECP384R1 | Nid::SECP521R1) => {
                    Ok(RecipientKind::KeyAgreement)
                }
                other => Err(unsupported(format!("curve {other:?}"))),
            }
        }
        other => Err(unsupported(format!("type {other:?}"))),
    }
}

/// ```text
/// KeyAgreeRecipientInfo ::= SEQUENCE {
///   version CMSVersion,  -- always set to 3
///   originator [0] EXPLICIT OriginatorIdentifierOrKey,
///   ukm [1] EXPLICIT UserKeyingMaterial OPTIONAL,
///   keyEncryptionAlgorithm KeyEncryptionAlgorithmIdentifier,
///   recipientEncryptedKeys RecipientEncryptedKeys }
/// OriginatorPublicKey ::= SEQUENCE { algorithm AlgorithmIdentifier, publicKey BIT STRING }
/// RecipientEncryptedKey ::= SEQUENCE {
///   rid KeyAgreeRecipientIdentifier, encryptedKey EncryptedKey }
/// ```
/// RFC 5652 §6.2.2 as RFC 5753 §3.1.1 profiles it for ECDH: the originator is an ephemeral key
/// on the recipient's curve (`originatorKey`, id-ecPublicKey with parameters absent, the point
/// uncompressed); no ukm (the ephemeral key already makes every KEK fresh); the key agreement
/// algorithm is dhSinglePass-stdDH-sha256kdf-scheme with the AES key wrap as its parameter;
/// the recipient is named by issuer and serial number. Returns the `[1]`-tagged CHOICE.
pub(super) fn recipient_info(cert: &X509Ref, cek: &[u8]) -> Result<Vec<u8>, BuildError> {
    let recipient = cert.public_key()?;
    let recipient_ec = recipient.ec_key()?;
    let group = recipient_ec.group();
    let ephemeral = PKey::from_ec_key(EcKey::generate(group)?)?;
    let mut deriver = Deriver::new(&ephemeral)?;
    deriver.set_peer(&recipient)?;
    let z = deriver.derive_to_vec()?;
    let wrap_oid = if cek.len() > 16 {
        AES256_WRAP
    } else {
        AES128_WRAP
    };
    let kek_len = if wrap_oid == AES256_WRAP { 32 } else { 16 };
    let kek = x963_kdf_sha256(&z, &shared_info(wrap_oid, kek_len), kek_len)?;
    let wrapped = aes_wrap(&kek, cek)?;
    let mut ctx = BigNumContext::new()?;
    let point = ephemeral.ec_key()?.public_key().to_bytes(
        group,
        PointConversionForm::UNCOMPRESSED,
        &mut ctx,
    )?;
    let mut bits = vec![0u8]; // no unused bits
    bits.extend_from_slice(&point);
    let originator_key = writer::tlv(
        tag::context(1),
        &[
            writer::algorithm(oid::EC_PUBLIC_KEY, None),
            writer::tlv(tag::BIT_STRING, &bits),
        ]
        .concat(),
    );
    let body = [
        writer::small_integer(3),
        writer::context(0, &originator_key),
        writer::algorithm(
            DH_SINGLE_PASS_STD_DH_SHA256_KDF,
            Some(&writer::algorithm(wrap_oid, None)),
        ),
        writer::sequence(&[&writer::sequence(&[
            &IssuerAndSerialNumber::of(cert)?.to_der(),
            &writer::octet_string(&wrapped),
        ])]),
    ]
    .concat();
    Ok(writer::tlv(tag::context(1), &body))
}

/// ```text
/// ECC-CMS-SharedInfo ::= SEQUENCE {
///   keyInfo AlgorithmIdentifier,
///   entityUInfo [0] EXPLICIT OCTET STRING OPTIONAL,
///   suppPubInfo [2] EXPLICIT OCTET STRING }
/// ```
/// RFC 5753 §7.2: keyInfo is the key wrap algorithm (parameters absent, RFC 3565 §2.3.2),
/// entityUInfo the ukm (none here), suppPubInfo the KEK length in bits as four octets.
fn shared_info(wrap_oid: &[u8], kek_len: usize) -> Vec<u8> {
    let bits = u32::try_from(kek_len * 8).unwrap_or(u32::MAX).to_be_bytes();
    writer::sequence(&[
        &writer::algorithm(wrap_oid, None),
        &writer::context(2, &writer::octet_string(&bits)),
    ])
}

/// The ANSI X9.63 KDF with SHA-256 (SEC 1 §3.6.1, which RFC 5753 §7.2 names):
/// `K = H(Z || counter || SharedInfo)` for counter = 1, 2, ... (32-bit big-endian).
fn x963_kdf_sha256(z: &[u8], shared_info: &[u8], len: usize) -> Result<Vec<u8>, BuildError> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 1u32;
    while out.len() < len {
        let mut h = openssl::sha::Sha256::new();
        h.update(z);
        h.update(&counter.to_be_bytes());
        h.update(shared_info);
        out.extend_from_slice(&h.finish());
        counter = counter
            .checked_add(1)
            .ok_or(BuildError::InvalidInput("KDF output too long"))?;
    }
    out.truncate(len);
    Ok(out)
}

/// AES key wrap with the default IV (RFC 3394 §2.2.1), as id-aes*-wrap requires.
fn aes_wrap(kek: &[u8], cek: &[u8]) -> Result<Vec<u8>, BuildError> {
    let key = openssl::aes::AesKey::new_encrypt(kek)
        .map_err(|_| BuildError::InvalidInput("key-encryption key length"))?;
    let mut out = vec![0u8; cek.len() + 8];
    let n = openssl::aes::wrap_key(&key, None, &mut out, cek)
        .map_err(|_| BuildError::InvalidInput("content key cannot be wrapped"))?;
    out.truncate(n);
    Ok(out)
}

/// Open an EnvelopedData ContentInfo addressed to an EC key (the requester side of a CertRep
/// SUCCESS), with OpenSSL's CMS: the content cipher is checked against `policy` from its
/// public OID first (badAlg), then any failure to find our recipient or decrypt is one
/// envelope fault.
pub(crate) fn open_with_ec_key(
    content_info: &[u8],
    content_cipher_oid: &[u8],
    key: super::DecryptionKey<'_>,
    policy: &AlgorithmPolicy,
) -> Result<(Vec<u8>, ContentCipher), Refusal> {
    let cipher = policy.content_cipher(content_cipher_oid)?;
    let cms = openssl::cms::CmsContentInfo::from_der(content_info)
        .map_err(|_| Refusal::Envelope(EnvelopeFault::ContentDecryption))?;
    let plain = cms
        .decrypt(key.key, &key.cert.to_owned())
        .map_err(|_| Refusal::Envelope(EnvelopeFault::ContentDecryption))?;
    if plain.is_empty() {
        return Err(Refusal::Envelope(EnvelopeFault::ContentDecryption));
    }
    Ok((plain, cipher))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// SEC 1's KDF with SHA-256 against a hand-computed single block.
    #[test]
    fn kdf_is_one_hash_of_z_counter_and_shared_info() {
        let z = [7u8; 32];
        let info = shared_info(AES128_WRAP, 16);
        let mut input = z.to_vec();
        input.extend_from_slice(&[0, 0, 0, 1]);
        input.extend_from_slice(&info);
        let expected = openssl::sha::sha256(&input);
        assert_eq!(
            x963_kdf_sha256(&z, &info, 16).unwrap(),
            expected[..16].to_vec()
        );
        // 48 octets take a second block with counter 2.
        let long = x963_kdf_sha256(&z, &info, 48).unwrap();
        assert_eq!(long.len(), 48);
        assert_eq!(long[..32], expected[..]);
    }

    /// The suppPubInfo of RFC 5753 §7.2 carries the KEK length in bits.
    #[test]
    fn shared_info_names_the_wrap_and_the_kek_bits() {
        let info = shared_info(AES256_WRAP, 32);
        assert!(info.windows(AES256_WRAP.len()).any(|w| w == AES256_WRAP));
        assert!(info.ends_with(&[0xa2, 0x06, 0x04, 0x04, 0, 0, 1, 0]));
    }
}
