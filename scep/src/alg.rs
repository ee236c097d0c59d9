//! The algorithms SCEP negotiates (RFC 8894 §3.5.2), what they map to in OpenSSL, and the
//! policy that decides which ones a peer may use (docs/decisions.md #6).

use std::sync::OnceLock;

use openssl::hash::MessageDigest;
use openssl::provider::Provider;
use openssl::symm::Cipher;

use crate::asn1::{AlgorithmIdentifier, oid_to_string};
use crate::error::{AlgorithmKind, Refusal};
use crate::oid;

/// Message digests for CMS signatures (RFC 5754, RFC 3370 §2.1). MD5 is not representable:
/// it is never accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    /// SHA-1: legacy clients (micromdm `scepclient`) only speak it.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// The OID content octets.
    pub fn oid(self) -> &'static [u8] {
        match self {
            Self::Sha1 => oid::SHA1,
            Self::Sha256 => oid::SHA256,
            Self::Sha384 => oid::SHA384,
            Self::Sha512 => oid::SHA512,
        }
    }

    /// The OpenSSL digest.
    pub fn md(self) -> MessageDigest {
        match self {
            Self::Sha1 => MessageDigest::sha1(),
            Self::Sha256 => MessageDigest::sha256(),
            Self::Sha384 => MessageDigest::sha384(),
            Self::Sha512 => MessageDigest::sha512(),
        }
    }

    /// Look up a digest OID.
    pub fn from_oid(o: &[u8]) -> Option<Self> {
        [Self::Sha1, Self::Sha256, Self::Sha384, Self::Sha512]
            .into_iter()
            .find(|d| d.oid() == o)
    }

    /// `sha*WithRSAEncryption` for this digest (RFC 8017 Appendix C).
    pub fn rsa_signature_oid(self) -> &'static [u8] {
        match self {
            Self::Sha1 => oid::SHA1_WITH_RSA,
            Self::Sha256 => oid::SHA256_WITH_RSA,
            Self::Sha384 => oid::SHA384_WITH_RSA,
            Self::Sha512 => oid::SHA512_WITH_RSA,
        }
    }
}

/// Content-encryption algorithms for the pkcsPKIEnvelope (RFC 8894 §3.2.2, RFC 3565, RFC 3370).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentCipher {
    /// Single DES-CBC: accepted on input for legacy clients, never sent (docs/decisions.md #6).
    DesCbc,
    /// Triple DES (EDE3) CBC: capability `DES3`.
    DesEde3Cbc,
    /// AES-128-CBC: capability `AES`.
    Aes128Cbc,
    /// AES-192-CBC.
    Aes192Cbc,
    /// AES-256-CBC.
    Aes256Cbc,
}

impl ContentCipher {
    /// The OID content octets.
    pub fn oid(self) -> &'static [u8] {
        match self {
            Self::DesCbc => oid::DES_CBC,
            Self::DesEde3Cbc => oid::DES_EDE3_CBC,
            Self::Aes128Cbc => oid::AES128_CBC,
            Self::Aes192Cbc => oid::AES192_CBC,
            Self::Aes256Cbc => oid::AES256_CBC,
        }
    }

    /// Look up a content-encryption OID.
    pub fn from_oid(o: &[u8]) -> Option<Self> {
        [
            Self::DesCbc,
            Self::DesEde3Cbc,
            Self::Aes128Cbc,
            Self::Aes192Cbc,
            Self::Aes256Cbc,
        ]
        .into_iter()
        .find(|c| c.oid() == o)
    }

    /// The OpenSSL cipher. Single DES needs OpenSSL 3's legacy provider, loaded here on first
    /// use (once per process); a missing provider surfaces as a decryption failure.
    pub fn cipher(self) -> Cipher {
        match self {
            Self::DesCbc => {
                legacy_provider();
                Cipher::des_cbc()
            }
            Self::DesEde3Cbc => Cipher::des_ede3_cbc(),
            Self::Aes128Cbc => Cipher::aes_128_cbc(),
            Self::Aes192Cbc => Cipher::aes_192_cbc(),
            Self::Aes256Cbc => Cipher::aes_256_cbc(),
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::DesCbc => 8,
            Self::DesEde3Cbc => 24,
            Self::Aes128Cbc => 16,
            Self::Aes192Cbc => 24,
            Self::Aes256Cbc => 32,
        }
    }

    /// IV (block) length in bytes.
    pub fn iv_len(self) -> usize {
        match self {
            Self::DesCbc | Self::DesEde3Cbc => 8,
            Self::Aes128Cbc | Self::Aes192Cbc | Self::Aes256Cbc => 16,
        }
    }

    /// The cipher a reply uses for a request that used `self`: the same, except that single DES
    /// is answered with 3DES (OpenSSL 3 clients cannot open DES, and a reply is never weaker).
    pub fn for_reply(self) -> Self {
        match self {
            Self::DesCbc => Self::DesEde3Cbc,
            other => other,
        }
    }
}

/// Load OpenSSL 3's legacy provider (for single DES) once and keep it for the process.
fn legacy_provider() {
    static LEGACY: OnceLock<Option<Provider>> = OnceLock::new();
    LEGACY.get_or_init(|| Provider::try_load(None, "legacy", true).ok());
}

/// The signature scheme named by a SignerInfo's signatureAlgorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignatureScheme {
    /// PKCS#1 v1.5; the digest comes from the OID, or from digestAlgorithm for `rsaEncryption`.
    Rsa(Option<DigestAlgorithm>),
    /// ECDSA with the given digest.
    Ecdsa(DigestAlgorithm),
}

impl SignatureScheme {
    /// Decode a signatureAlgorithm, refusing MD5 and anything unknown.
    pub(crate) fn decode(alg: &AlgorithmIdentifier<'_>) -> Result<Self, Refusal> {
        use DigestAlgorithm::*;
        let o = alg.oid;
        let scheme = match o {
            _ if o == oid::RSA_ENCRYPTION => Self::Rsa(None),
            _ if o == oid::SHA1_WITH_RSA => Self::Rsa(Some(Sha1)),
            _ if o == oid::SHA256_WITH_RSA => Self::Rsa(Some(Sha256)),
            _ if o == oid::SHA384_WITH_RSA => Self::Rsa(Some(Sha384)),
            _ if o == oid::SHA512_WITH_RSA => Self::Rsa(Some(Sha512)),
            _ if o == oid::ECDSA_WITH_SHA256 => Self::Ecdsa(Sha256),
            _ if o == oid::ECDSA_WITH_SHA384 => Self::Ecdsa(Sha384),
            _ if o == oid::ECDSA_WITH_SHA512 => Self::Ecdsa(Sha512),
            _ => return Err(refuse(AlgorithmKind::Signature, o)),
        };
        if matches!(scheme, Self::Rsa(_)) && !alg.params_absent_or_null() {
            return Err(refuse(AlgorithmKind::Signature, o));
        }
        Ok(scheme)
    }
}

/// Which algorithms a peer may use. The default is NDES compatible: legacy clients send DES
/// and SHA-1. [`AlgorithmPolicy::strict`] refuses DES, 3DES and SHA-1. MD5 and RSA keys below
/// 2048 bits are never accepted, whatever the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlgorithmPolicy {
    /// Accept single DES-CBC content encryption on input.
    pub allow_des: bool,
    /// Accept 3DES content encryption.
    pub allow_3des: bool,
    /// Accept SHA-1 digests and signatures.
    pub allow_sha1: bool,
    /// Smallest RSA modulus accepted for signer and requested keys, in bits (at least 2048).
    pub min_rsa_bits: u32,
}

impl Default for AlgorithmPolicy {
    fn default() -> Self {
        Self {
            allow_des: true,
            allow_3des: true,
            allow_sha1: true,
            min_rsa_bits: 2048,
        }
    }
}

impl AlgorithmPolicy {
    /// AES and SHA-2 only.
    pub fn strict() -> Self {
        Self {
            allow_des: false,
            allow_3des: false,
            allow_sha1: false,
            min_rsa_bits: 2048,
        }
    }

    /// Decide a digestAlgorithm.
    pub fn digest(&self, alg: &AlgorithmIdentifier<'_>) -> Result<DigestAlgorithm, Refusal> {
        let d = DigestAlgorithm::from_oid(alg.oid)
            .filter(|_| alg.params_absent_or_null())
            .ok_or_else(|| refuse(AlgorithmKind::Digest, alg.oid))?;
        self.check_digest(d)
            .map_err(|()| refuse(AlgorithmKind::Digest, alg.oid))?;
        Ok(d)
    }

    fn check_digest(&self, d: DigestAlgorithm) -> Result<(), ()> {
        if d == DigestAlgorithm::Sha1 && !self.allow_sha1 {
            Err(())
        } else {
            Ok(())
        }
    }

    /// Decide a contentEncryptionAlgorithm (parameters are checked where the IV is read).
    pub fn content_cipher(&self, oid_content: &[u8]) -> Result<ContentCipher, Refusal> {
        let c = ContentCipher::from_oid(oid_content)
            .ok_or_else(|| refuse(AlgorithmKind::ContentEncryption, oid_content))?;
        let allowed = match c {
            ContentCipher::DesCbc => self.allow_des,
            ContentCipher::DesEde3Cbc => self.allow_3des,
            _ => true,
        };
        if allowed {
            Ok(c)
        } else {
            Err(refuse(AlgorithmKind::ContentEncryption, oid_content))
        }
    }

    /// Decide a signature scheme together with the SignerInfo's digest.
    pub(crate) fn signature(
        &self,
        alg: &AlgorithmIdentifier<'_>,
        digest: DigestAlgorithm,
    ) -> Result<(SignatureScheme, DigestAlgorithm), Refusal> {
        let scheme = SignatureScheme::decode(alg)?;
        let sig_digest = match scheme {
            SignatureScheme::Rsa(d) => d.unwrap_or(digest),
            SignatureScheme::Ecdsa(d) => d,
        };
        self.check_digest(sig_digest)
            .map_err(|()| refuse(AlgorithmKind::Signature, alg.oid))?;
        Ok((scheme, sig_digest))
    }

    /// Check a public key: RSA of at least `min_rsa_bits` (and at most 16384, so a hostile key
    /// cannot make verification expensive) with an odd exponent from 65537 to 64 bits and a
    /// modulus without the ROCA fingerprint ([`crate::roca`]), or EC on P-256/P-384/P-521.
    pub fn public_key<T: openssl::pkey::HasPublic>(
        &self,
        key: &openssl::pkey::PKeyRef<T>,
    ) -> Result<(), Refusal> {
        let bad = || Refusal::UnsupportedAlgorithm {
            kind: AlgorithmKind::PublicKey,
            oid: format!("{:?} {} bits", key.id(), key.bits()),
        };
        match key.id() {
            openssl::pkey::Id::RSA => {
                let bits = key.bits();
                if bits < self.min_rsa_bits.max(2048) || bits > 16384 {
                    return Err(bad());
                }
                let rsa = key.rsa().map_err(|_| bad())?;
                let e = rsa.e().to_vec();
                // e must be odd, at least 65537 (small exponents such as 3 invite the
                // low-exponent attacks CA/B Forum BR 6.1.6 rules out; reliability P10) and fit
                // in 64 bits (hostile exponents are slow; RFC 8017 §3.1).
                let at_least_65537 =
                    e.len() > 3 || (e.len() == 3 && e.as_slice() >= &[1, 0, 1][..]);
                if e.len() > 8 || e.last().is_none_or(|b| b & 1 == 0) || !at_least_65537 {
                    return Err(bad());
                }
                // A ROCA-weak modulus (Infineon RSALib, CVE-2017-15361) can be factored:
                // refused like any other unacceptable key (reliability P10).
                if crate::roca::has_fingerprint(rsa.n()).unwrap_or(true) {
                    return Err(Refusal::UnsupportedAlgorithm {
                        kind: AlgorithmKind::PublicKey,
                        oid: format!("RSA {bits} bits with the ROCA fingerprint"),
                    });
                }
                Ok(())
            }
            openssl::pkey::Id::EC => {
                let ec = key.ec_key().map_err(|_| bad())?;
                let nid = ec.group().curve_name();
                use openssl::nid::Nid;
                if matches!(
                    nid,
                    Some(Nid::X9_62_PRIME256V1 | Nid::SECP384R1 | Nid::SECP521R1)
                ) {
                    Ok(())
                } else {
                    Err(bad())
                }
            }
            _ => Err(bad()),
        }
    }
}

fn refuse(kind: AlgorithmKind, o: &[u8]) -> Refusal {
    Refusal::UnsupportedAlgorithm {
        kind,
        oid: oid_to_string(o),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::asn1::{parse_single, writer};

    fn alg(o: &[u8], params: bool) -> Vec<u8> {
        writer::algorithm(o, params.then(writer::null).as_deref())
    }

    #[test]
    fn refuses_md5_and_sha1_in_strict_mode() {
        let md5 = alg(oid::MD5, true);
        let sha1 = alg(oid::SHA1, false);
        let d = |b: &[u8], p: AlgorithmPolicy| {
            p.digest(&AlgorithmIdentifier::decode(parse_single(b).unwrap()).unwrap())
        };
        assert!(d(&md5, AlgorithmPolicy::default()).is_err());
        assert_eq!(
            d(&sha1, AlgorithmPolicy::default()).unwrap(),
            DigestAlgorithm::Sha1
        );
        assert!(d(&sha1, AlgorithmPolicy::strict()).is_err());
    }

    #[test]
    fn strict_mode_refuses_des_and_3des() {
        let strict = AlgorithmPolicy::strict();
        assert!(strict.content_cipher(oid::DES_CBC).is_err());
        assert!(strict.content_cipher(oid::DES_EDE3_CBC).is_err());
        assert_eq!(
            strict.content_cipher(oid::AES256_CBC).unwrap(),
            ContentCipher::Aes256Cbc
        );
        assert!(
            AlgorithmPolicy::default()
                .content_cipher(oid::DES_CBC)
                .is_ok()
        );
    }

    #[test]
    fn replies_never_use_single_des() {
        assert_eq!(ContentCipher::DesCbc.for_reply(), ContentCipher::DesEde3Cbc);
        assert_eq!(
            ContentCipher::Aes128Cbc.for_reply(),
            ContentCipher::Aes128Cbc
        );
    }

    #[test]
    fn refuses_roca_weak_rsa_keys_and_accepts_ordinary_ones() {
        let weak = testkit::pki::roca_structured_rsa_2048().unwrap();
        let weak = openssl::pkey::PKey::from_rsa(weak).unwrap();
        assert!(matches!(
            AlgorithmPolicy::default().public_key(&weak),
            Err(Refusal::UnsupportedAlgorithm {
                kind: AlgorithmKind::PublicKey,
                ..
            })
        ));
        let fine =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        assert!(AlgorithmPolicy::default().public_key(&fine).is_ok());
    }

    #[test]
    fn refuses_small_rsa_keys() {
        let small =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
        assert!(AlgorithmPolicy::default().public_key(&small).is_err());
    }
}
