//! The device key: generated here, stored only as a 0600 PEM file in the device's state
//! directory, never serialized into anything that leaves the machine.
//!
//! [`DeviceKey`] has no `Serialize`, a `Debug` that prints only the algorithm, and no accessor
//! for its private bytes outside this crate (the state directory writes it through
//! [`DeviceKey::to_pkcs8_pem`], which is `pub(crate)`).

use std::fmt;
use std::str::FromStr;

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;

use crate::error::{Error, Result};

/// Which key to generate: what a profile allows (RSA 2048/3072/4096, EC P-256/P-384).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeySpec {
    /// RSA with this modulus size in bits.
    Rsa(u32),
    /// NIST P-256 (secp256r1).
    EcP256,
    /// NIST P-384 (secp384r1).
    EcP384,
}

impl KeySpec {
    /// The spec for an algorithm name and size as profiles carry them (`rsa`/`ec`, bits).
    pub fn from_profile(algorithm: &str, size: u32) -> Result<Self> {
        match (algorithm.to_ascii_lowercase().as_str(), size) {
            ("rsa", 2048 | 3072 | 4096) => Ok(Self::Rsa(size)),
            ("ec", 256) => Ok(Self::EcP256),
            ("ec", 384) => Ok(Self::EcP384),
            _ => Err(Error::Invalid(format!(
                "key {algorithm}/{size}: RSA 2048/3072/4096 or EC 256/384"
            ))),
        }
    }

    /// Whether this is an RSA spec (SCEP key transport needs RSA; see [`crate::enroll`]).
    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa(_))
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa(bits) => write!(f, "rsa{bits}"),
            Self::EcP256 => f.write_str("ec256"),
            Self::EcP384 => f.write_str("ec384"),
        }
    }
}

impl FromStr for KeySpec {
    type Err = Error;

    /// `rsa2048`, `rsa3072`, `rsa4096`, `ec256` (or `p256`), `ec384` (or `p384`).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "rsa2048" => Ok(Self::Rsa(2048)),
            "rsa3072" => Ok(Self::Rsa(3072)),
            "rsa4096" => Ok(Self::Rsa(4096)),
            "ec256" | "p256" | "p-256" => Ok(Self::EcP256),
            "ec384" | "p384" | "p-384" => Ok(Self::EcP384),
            other => Err(Error::Invalid(format!(
                "key type {other:?}: rsa2048, rsa3072, rsa4096, ec256 or ec384"
            ))),
        }
    }
}

/// A private key of this device. OpenSSL clears the key material when it is freed.
pub struct DeviceKey {
    pkey: PKey<Private>,
}

impl DeviceKey {
    /// A fresh key from OpenSSL's CSPRNG.
    pub fn generate(spec: KeySpec) -> Result<Self> {
        let pkey = match spec {
            KeySpec::Rsa(bits) => {
                if !matches!(bits, 2048 | 3072 | 4096) {
                    return Err(Error::Invalid(format!("RSA {bits}: 2048, 3072 or 4096")));
                }
                PKey::from_rsa(Rsa::generate(bits)?)?
            }
            KeySpec::EcP256 => ec_key(Nid::X9_62_PRIME256V1)?,
            KeySpec::EcP384 => ec_key(Nid::SECP384R1)?,
        };
        Ok(Self { pkey })
    }

    /// Load a key from PEM (PKCS#8 or traditional), e.g. from the state directory or a key
    /// pool. The error never includes the input.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        let pkey = PKey::private_key_from_pem(pem)
            .map_err(|_| Error::State("not a PEM private key".into()))?;
        let key = Self { pkey };
        key.spec()?;
        Ok(key)
    }

    /// What kind of key this is.
    pub fn spec(&self) -> Result<KeySpec> {
        match self.pkey.id() {
            Id::RSA => match self.pkey.bits() {
                b @ (2048 | 3072 | 4096) => Ok(KeySpec::Rsa(b)),
                b => Err(Error::Invalid(format!("RSA {b} bits is not supported"))),
            },
            Id::EC => {
                let ec = self.pkey.ec_key()?;
                match ec.group().curve_name() {
                    Some(Nid::X9_62_PRIME256V1) => Ok(KeySpec::EcP256),
                    Some(Nid::SECP384R1) => Ok(KeySpec::EcP384),
                    _ => Err(Error::Invalid("unsupported EC curve".into())),
                }
            }
            _ => Err(Error::Invalid("unsupported key type".into())),
        }
    }

    /// DER SubjectPublicKeyInfo: safe to share, used to match the issued certificate.
    pub fn public_key_der(&self) -> Result<Vec<u8>> {
        Ok(self.pkey.public_key_to_der()?)
    }

    /// The OpenSSL key, for signing inside this crate and for callers that build their own
    /// messages with the `scep` crate (the key stays in this process either way).
    pub fn pkey(&self) -> &PKeyRef<Private> {
        &self.pkey
    }

    /// Unencrypted PKCS#8 PEM, for the 0600 key file only (and PKCS#12 export on request).
    pub(crate) fn to_pkcs8_pem(&self) -> Result<Vec<u8>> {
        Ok(self.pkey.private_key_to_pem_pkcs8()?)
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = self
            .spec()
            .map_or_else(|_| "unknown".to_string(), |s| s.to_string());
        write!(f, "DeviceKey({spec}, <redacted>)")
    }
}

fn ec_key(nid: Nid) -> Result<PKey<Private>> {
    let group = EcGroup::from_curve_name(nid)?;
    Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
}

/// Overwrite a buffer that held secret bytes before it is dropped (public for callers that
/// keep keys of their own, such as the fleet's key pool).
pub fn scrub(mut buf: Vec<u8>) {
    buf.iter_mut().for_each(|b| *b = 0);
    std::hint::black_box(&buf);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn debug_never_shows_key_material() {
        let key = DeviceKey::generate(KeySpec::EcP256).unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        let body: String = String::from_utf8(pem)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let debug = format!("{key:?}");
        assert_eq!(debug, "DeviceKey(ec256, <redacted>)");
        assert!(!debug.contains(&body[..16]));
    }

    #[test]
    fn specs_parse_and_round_trip_through_pem() {
        for (text, spec) in [("ec256", KeySpec::EcP256), ("p384", KeySpec::EcP384)] {
            assert_eq!(text.parse::<KeySpec>().unwrap(), spec);
            let key = DeviceKey::generate(spec).unwrap();
            let back = DeviceKey::from_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
            assert_eq!(back.spec().unwrap(), spec);
            assert_eq!(
                back.public_key_der().unwrap(),
                key.public_key_der().unwrap()
            );
        }
        assert_eq!("RSA3072".parse::<KeySpec>().unwrap(), KeySpec::Rsa(3072));
        assert!("rsa1024".parse::<KeySpec>().is_err());
        assert!(KeySpec::from_profile("rsa", 1024).is_err());
        assert_eq!(KeySpec::from_profile("ec", 384).unwrap(), KeySpec::EcP384);
    }

    #[test]
    fn garbage_pem_is_refused_without_echo() {
        let err = DeviceKey::from_pem(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n").unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"));
    }
}
