//! Certificate serial numbers: 16 random bytes, positive, and one spelling everywhere
//! (docs/decisions.md #7).
//!
//! The canonical spelling is lowercase hex of the big-endian magnitude without leading zero
//! octets (`0b01`, never `b01` or `000b01`): the key in every store, API body, log line and
//! CLI output. Input is forgiving: either case, leading zeros, an odd number of digits, and
//! the colon-separated form `openssl x509 -serial`-like tools print all name the same serial.

use std::fmt;

use openssl::bn::BigNum;
use openssl::error::ErrorStack;
use openssl::rand::rand_bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes of CSPRNG output in every serial (RFC 5280 allows up to 20 octets; CA/B BRs want 64+
/// bits).
pub const SERIAL_LEN: usize = 16;

/// Longest serial accepted (RFC 5280 4.1.2.2: at most 20 octets).
pub const MAX_SERIAL_LEN: usize = 20;

/// Why text or bytes are not a serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid serial number (1 to 20 octets of hex, positive and non-zero)")]
pub struct InvalidSerial;

/// A positive certificate serial number, kept as its big-endian bytes without leading zeros.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// A fresh random serial: 16 bytes from OpenSSL's CSPRNG, top bit cleared so the DER
    /// INTEGER is positive without a pad byte, first byte non-zero so every serial has the
    /// same length.
    pub fn random() -> Result<Self, ErrorStack> {
        let mut bytes = [0u8; SERIAL_LEN];
        loop {
            rand_bytes(&mut bytes)?;
            bytes[0] &= 0x7f;
            if bytes[0] != 0 {
                return Ok(Self(bytes.to_vec()));
            }
        }
    }

    /// Parses any accepted spelling: hex in either case, optional leading zeros, optional
    /// `:` between octets, at most 20 octets, positive and non-zero.
    pub fn from_hex(text: &str) -> Result<Self, InvalidSerial> {
        let text = text.trim();
        let digits: String = if text.contains(':') {
            if text
                .split(':')
                .any(|octet| octet.is_empty() || octet.len() > 2)
            {
                return Err(InvalidSerial);
            }
            text.split(':').map(|o| format!("{o:0>2}")).collect()
        } else {
            text.to_owned()
        };
        if digits.is_empty() || digits.len() > 2 * MAX_SERIAL_LEN + 2 {
            return Err(InvalidSerial);
        }
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let bytes = hex::decode(padded).map_err(|_| InvalidSerial)?;
        Self::from_magnitude(&bytes)
    }

    /// From the content of a DER INTEGER (two's complement); negative or zero is refused.
    pub fn from_der_int(bytes: &[u8]) -> Result<Self, InvalidSerial> {
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(InvalidSerial);
        }
        Self::from_magnitude(bytes)
    }

    /// From unsigned big-endian bytes; zero is refused.
    pub fn from_magnitude(bytes: &[u8]) -> Result<Self, InvalidSerial> {
        let start = bytes.iter().position(|b| *b != 0).ok_or(InvalidSerial)?;
        let trimmed = &bytes[start..];
        if trimmed.len() > MAX_SERIAL_LEN {
            return Err(InvalidSerial);
        }
        Ok(Self(trimmed.to_vec()))
    }

    /// The serial of a certificate.
    pub fn of_certificate(cert: &openssl::x509::X509Ref) -> Result<Self, InvalidSerial> {
        let bn = cert.serial_number().to_bn().map_err(|_| InvalidSerial)?;
        if bn.is_negative() {
            return Err(InvalidSerial);
        }
        Self::from_magnitude(&bn.to_vec())
    }

    /// The canonical spelling: lowercase hex without leading zero octets.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// Big-endian magnitude bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Big-endian bytes as a DER INTEGER body holds them (a zero pad when the top bit is set).
    pub fn to_der_int_bytes(&self) -> Vec<u8> {
        if self.0.first().is_some_and(|b| b & 0x80 != 0) {
            let mut v = Vec::with_capacity(self.0.len() + 1);
            v.push(0);
            v.extend_from_slice(&self.0);
            v
        } else {
            self.0.clone()
        }
    }

    /// As an OpenSSL big number.
    pub fn to_bn(&self) -> Result<BigNum, ErrorStack> {
        BigNum::from_slice(&self.0)
    }
}

/// The canonical spelling of any accepted spelling, or `None` if it is not a serial.
pub fn canonical(text: &str) -> Option<String> {
    Serial::from_hex(text).ok().map(|s| s.to_hex())
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::str::FromStr for Serial {
    type Err = InvalidSerial;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl Serialize for Serial {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Serial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn random_serials_are_positive_and_sixteen_bytes() {
        for _ in 0..500 {
            let s = Serial::random().unwrap();
            assert_eq!(s.as_bytes().len(), SERIAL_LEN);
            assert_eq!(s.as_bytes()[0] & 0x80, 0);
            assert_ne!(s.as_bytes()[0], 0);
            assert_eq!(s.to_hex().len(), 32);
        }
    }

    #[test]
    fn every_spelling_reads_as_one_serial_and_writes_canonically() {
        for spelling in ["0b01", "b01", "B01", "000B01", "0b:01", "0B:1", " 0b01 "] {
            assert_eq!(
                Serial::from_hex(spelling).unwrap().to_hex(),
                "0b01",
                "{spelling}"
            );
        }
        assert_eq!(canonical("00AB01").as_deref(), Some("ab01"));
        for bad in ["", "00", "zz", "0b::01", ":0b", "0b:012", &"11".repeat(21)] {
            assert!(Serial::from_hex(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn der_integer_forms() {
        assert_eq!(
            Serial::from_hex("80").unwrap().to_der_int_bytes(),
            vec![0, 0x80]
        );
        assert!(
            Serial::from_der_int(&[0x80]).is_err(),
            "negative serials are refused"
        );
        assert_eq!(Serial::from_der_int(&[0, 0x80]).unwrap().to_hex(), "80");
    }

    #[test]
    fn serde_writes_the_canonical_spelling_and_reads_any() {
        let s: Serial = serde_json::from_str("\"00:AB:01\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"ab01\"");
        assert!(serde_json::from_str::<Serial>("\"-1\"").is_err());
    }
}
