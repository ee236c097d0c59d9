//! Certificate serial numbers: 16 random bytes, positive, in one canonical hex spelling.

use openssl::bn::BigNum;
use openssl::rand::rand_bytes;

use crate::error::CaError;

/// Bytes of CSPRNG output in every serial (RFC 5280 allows up to 20 octets; CA/B BRs want 64+ bits).
pub const SERIAL_LEN: usize = 16;

/// A positive certificate serial number, kept as its big-endian bytes without leading zeros.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// A fresh random serial: 16 bytes from OpenSSL's CSPRNG, top bit cleared so the DER INTEGER is
    /// positive without a pad byte, first byte non-zero so every serial has the same length.
    pub fn random() -> Result<Self, CaError> {
        let mut bytes = [0u8; SERIAL_LEN];
        loop {
            rand_bytes(&mut bytes).map_err(CaError::crypto)?;
            bytes[0] &= 0x7f;
            if bytes[0] != 0 {
                return Ok(Self(bytes.to_vec()));
            }
        }
    }

    /// Parses the wire spelling: hex (either case), at most 20 octets, positive and non-zero.
    /// Leading zero bytes are accepted and dropped, so `00ab` and `ab` name the same serial.
    pub fn from_hex(text: &str) -> Result<Self, CaError> {
        let text = text.trim();
        if text.is_empty() || text.len() > 42 {
            return Err(CaError::InvalidSerial);
        }
        let padded = if text.len() % 2 == 1 {
            format!("0{text}")
        } else {
            text.to_owned()
        };
        let bytes = hex::decode(padded).map_err(|_| CaError::InvalidSerial)?;
        Self::from_magnitude(&bytes)
    }

    /// From the content of a DER INTEGER (two's complement); negative or zero is refused.
    pub fn from_der_int(bytes: &[u8]) -> Result<Self, CaError> {
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(CaError::InvalidSerial);
        }
        Self::from_magnitude(bytes)
    }

    /// From unsigned big-endian bytes; zero is refused.
    pub fn from_magnitude(bytes: &[u8]) -> Result<Self, CaError> {
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .ok_or(CaError::InvalidSerial)?;
        let trimmed = &bytes[start..];
        if trimmed.len() > 20 {
            return Err(CaError::InvalidSerial);
        }
        Ok(Self(trimmed.to_vec()))
    }

    /// Lowercase hex without leading zero bytes: the key in the store and on the wire.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// Big-endian magnitude bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Big-endian bytes as a DER INTEGER body would hold them (a zero pad when the top bit is set).
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
    pub fn to_bn(&self) -> Result<BigNum, CaError> {
        BigNum::from_slice(&self.0).map_err(CaError::crypto)
    }
}

impl std::fmt::Debug for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
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
    fn hex_spelling_is_canonical() {
        let s = Serial::from_hex("00AB01").unwrap();
        assert_eq!(s.to_hex(), "ab01");
        assert_eq!(Serial::from_hex("b01").unwrap().to_hex(), "0b01");
        assert!(Serial::from_hex("").is_err());
        assert!(Serial::from_hex("00").is_err());
        assert!(Serial::from_hex("zz").is_err());
        assert_eq!(
            Serial::from_hex("80").unwrap().to_der_int_bytes(),
            vec![0, 0x80]
        );
        assert!(
            Serial::from_der_int(&[0x80]).is_err(),
            "negative serials are refused"
        );
        assert_eq!(Serial::from_der_int(&[0, 0x80]).unwrap().to_hex(), "80");
        assert!(Serial::from_hex(&"11".repeat(21)).is_err());
    }
}
