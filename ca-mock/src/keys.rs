//! CA key pairs: generation, PEM files written 0600 and optionally passphrase-encrypted, and the
//! signature algorithm each key signs with.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use der::asn1::{AnyRef, ObjectIdentifier};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::symm::Cipher;
use spki::AlgorithmIdentifierOwned;

use crate::error::CaError;

/// The key types `init` can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeySpec {
    /// RSA 2048 bits.
    Rsa2048,
    /// RSA 3072 bits.
    Rsa3072,
    /// RSA 4096 bits.
    Rsa4096,
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
}

impl KeySpec {
    /// Every accepted spelling, for help texts.
    pub const NAMES: [&'static str; 5] = ["rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384"];

    /// Generates a fresh private key of this type.
    pub fn generate(self) -> Result<PKey<Private>, CaError> {
        let key = match self {
            Self::Rsa2048 => PKey::from_rsa(Rsa::generate(2048).map_err(CaError::crypto)?),
            Self::Rsa3072 => PKey::from_rsa(Rsa::generate(3072).map_err(CaError::crypto)?),
            Self::Rsa4096 => PKey::from_rsa(Rsa::generate(4096).map_err(CaError::crypto)?),
            Self::EcP256 | Self::EcP384 => {
                let nid = if self == Self::EcP256 {
                    Nid::X9_62_PRIME256V1
                } else {
                    Nid::SECP384R1
                };
                let group = EcGroup::from_curve_name(nid).map_err(CaError::crypto)?;
                PKey::from_ec_key(EcKey::generate(&group).map_err(CaError::crypto)?)
            }
        };
        key.map_err(CaError::crypto)
    }
}

impl FromStr for KeySpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "rsa2048" | "rsa-2048" => Ok(Self::Rsa2048),
            "rsa3072" | "rsa-3072" => Ok(Self::Rsa3072),
            "rsa4096" | "rsa-4096" => Ok(Self::Rsa4096),
            "ec-p256" | "p256" | "p-256" => Ok(Self::EcP256),
            "ec-p384" | "p384" | "p-384" => Ok(Self::EcP384),
            _ => Err(format!(
                "unknown key type {s:?}; one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// A passphrase for a private key file. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Passphrase(String);

impl Passphrase {
    /// Wraps a passphrase; trailing newlines (as left by `echo > file`) are dropped.
    pub fn new(value: impl Into<String>) -> Self {
        let mut v = value.into();
        while v.ends_with('\n') || v.ends_with('\r') {
            v.pop();
        }
        Self(v)
    }

    /// Reads a passphrase from a file.
    pub fn from_file(path: &Path) -> Result<Self, CaError> {
        std::fs::read_to_string(path)
            .map(Self::new)
            .map_err(|e| CaError::io(path, e))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Writes `key` as PKCS#8 PEM (AES-256-CBC encrypted when a passphrase is given), creating the
/// file with mode 0600 so it is never readable by others, not even briefly.
pub fn write_private_key(
    path: &Path,
    key: &PKeyRef<Private>,
    passphrase: Option<&Passphrase>,
) -> Result<(), CaError> {
    let pem = match passphrase {
        Some(p) => key.private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), p.as_bytes()),
        None => key.private_key_to_pem_pkcs8(),
    }
    .map_err(CaError::crypto)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| CaError::io(path, e))?;
    file.write_all(&pem)
        .and_then(|()| file.sync_all())
        .map_err(|e| CaError::io(path, e))
}

/// Reads a PEM private key, decrypting it with `passphrase` if it is encrypted.
pub fn read_private_key(
    path: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<PKey<Private>, CaError> {
    let pem = std::fs::read(path).map_err(|e| CaError::io(path, e))?;
    let key = match passphrase {
        Some(p) => PKey::private_key_from_pem_passphrase(&pem, p.as_bytes()),
        // An empty passphrase makes OpenSSL fail cleanly on encrypted keys instead of prompting.
        None => PKey::private_key_from_pem_passphrase(&pem, b""),
    };
    key.map_err(|_| {
        CaError::Config(format!(
            "{}: not a readable private key (wrong or missing passphrase?)",
            path.display()
        ))
    })
}

/// How a CA key signs certificates, CRLs and OCSP responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    /// RSA PKCS#1 v1.5 with the given digest.
    Rsa(HashAlg),
    /// ECDSA with the given digest.
    Ecdsa(HashAlg),
}

/// Digests the CA signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// The OpenSSL digest.
    pub fn digest(self) -> MessageDigest {
        match self {
            Self::Sha256 => MessageDigest::sha256(),
            Self::Sha384 => MessageDigest::sha384(),
            Self::Sha512 => MessageDigest::sha512(),
        }
    }
}

impl SigningAlg {
    /// The algorithm a CA key uses for CRLs and OCSP: SHA-384 for P-384, else SHA-256.
    pub fn for_key(key: &PKeyRef<Private>) -> Result<Self, CaError> {
        match key.id() {
            Id::RSA => Ok(Self::Rsa(HashAlg::Sha256)),
            Id::EC => {
                let bits = key.bits();
                Ok(Self::Ecdsa(if bits > 256 {
                    HashAlg::Sha384
                } else {
                    HashAlg::Sha256
                }))
            }
            _ => Err(CaError::Config("CA key must be RSA or EC".into())),
        }
    }

    /// The same key family with another digest.
    pub fn with_hash(self, hash: HashAlg) -> Self {
        match self {
            Self::Rsa(_) => Self::Rsa(hash),
            Self::Ecdsa(_) => Self::Ecdsa(hash),
        }
    }

    /// The digest.
    pub fn hash(self) -> HashAlg {
        match self {
            Self::Rsa(h) | Self::Ecdsa(h) => h,
        }
    }

    /// The AlgorithmIdentifier placed in CRLs and OCSP responses (RSA with NULL parameters,
    /// ECDSA with none, as RFC 4055 and RFC 5758 say).
    pub fn algorithm_identifier(self) -> AlgorithmIdentifierOwned {
        let (oid, null) = match self {
            Self::Rsa(HashAlg::Sha256) => ("1.2.840.113549.1.1.11", true),
            Self::Rsa(HashAlg::Sha384) => ("1.2.840.113549.1.1.12", true),
            Self::Rsa(HashAlg::Sha512) => ("1.2.840.113549.1.1.13", true),
            Self::Ecdsa(HashAlg::Sha256) => ("1.2.840.10045.4.3.2", false),
            Self::Ecdsa(HashAlg::Sha384) => ("1.2.840.10045.4.3.3", false),
            Self::Ecdsa(HashAlg::Sha512) => ("1.2.840.10045.4.3.4", false),
        };
        AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap(oid),
            parameters: null.then(|| AnyRef::NULL.into()),
        }
    }

    /// Signs `data` with `key`.
    pub fn sign(self, key: &PKeyRef<Private>, data: &[u8]) -> Result<Vec<u8>, CaError> {
        let mut signer =
            openssl::sign::Signer::new(self.hash().digest(), key).map_err(CaError::crypto)?;
        signer.sign_oneshot_to_vec(data).map_err(CaError::crypto)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn key_files_are_private_and_round_trip_with_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let key = KeySpec::EcP256.generate().unwrap();
        let pass = Passphrase::new("correct horse\n");
        write_private_key(&path, &key, Some(&pass)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("ENCRYPTED PRIVATE KEY"));
        assert!(read_private_key(&path, None).is_err());
        assert!(read_private_key(&path, Some(&Passphrase::new("wrong"))).is_err());
        let back = read_private_key(&path, Some(&pass)).unwrap();
        assert!(back.public_eq(&key));
        assert_eq!(format!("{pass:?}"), "Passphrase(<redacted>)");
    }

    #[test]
    fn key_spec_names_parse() {
        for name in KeySpec::NAMES {
            assert!(name.parse::<KeySpec>().is_ok(), "{name}");
        }
        assert!("rsa1024".parse::<KeySpec>().is_err());
    }
}
