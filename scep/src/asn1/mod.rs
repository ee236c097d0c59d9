//! The ASN.1 layer: a bounded BER/DER reader, a DER writer, and the few shared productions
//! (AlgorithmIdentifier, IssuerAndSerialNumber, Attribute) that CMS and SCEP build on.

pub mod reader;
pub mod tag;
pub mod writer;

use std::fmt;

pub use reader::{Reader, Tlv, parse_single};

/// Why bytes could not be decoded. Static text only: it never echoes input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asn1Error {
    what: &'static str,
}

impl Asn1Error {
    /// An error with a fixed description.
    pub const fn new(what: &'static str) -> Self {
        Self { what }
    }

    /// The description.
    pub fn what(&self) -> &'static str {
        self.what
    }
}

impl fmt::Display for Asn1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
}

impl std::error::Error for Asn1Error {}

/// `AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL }`
/// (RFC 5280 §4.1.1.2), borrowed: the OID content octets and the raw parameters.
#[derive(Clone, Copy, Debug)]
pub struct AlgorithmIdentifier<'a> {
    /// Content octets of the OID.
    pub oid: &'a [u8],
    /// The parameters TLV, if present.
    pub params: Option<Tlv<'a>>,
}

impl<'a> AlgorithmIdentifier<'a> {
    /// Decode from a SEQUENCE TLV.
    pub fn decode(t: Tlv<'a>) -> Result<Self, Asn1Error> {
        let mut r = t
            .expect(tag::SEQUENCE, "expected AlgorithmIdentifier")?
            .children()?;
        let oid = r.read(tag::OID, "expected algorithm OID")?.content;
        let params = if r.is_empty() {
            None
        } else {
            Some(r.read_any()?)
        };
        r.finish("trailing data in AlgorithmIdentifier")?;
        Ok(Self { oid, params })
    }

    /// Parameters are absent or NULL (as RFC 4055 / RFC 5754 allow for RSA and SHA-2).
    pub fn params_absent_or_null(&self) -> bool {
        match self.params {
            None => true,
            Some(p) => p.tag == tag::NULL && p.content.is_empty(),
        }
    }
}

/// Strip the sign/leading zero bytes of a non-negative INTEGER's content octets, so two serial
/// numbers can be compared as magnitudes. Negative integers (top bit set) are returned as is.
pub fn integer_magnitude(content: &[u8]) -> &[u8] {
    let mut c = content;
    while c.len() > 1 && c[0] == 0 {
        c = &c[1..];
    }
    c
}

/// Check the content octets of an OBJECT IDENTIFIER (X.690 §8.19): not empty, every
/// subidentifier minimal (no leading 0x80) and terminated, at most
/// [`MAX_OID_ARCS`](crate::limits::MAX_OID_ARCS) arcs of at most
/// [`MAX_OID_ARC_BITS`](crate::limits::MAX_OID_ARC_BITS) bits. The reader calls it on every
/// OID it reads, so no unbounded OID gets past decoding into a log, a store or OpenSSL.
pub fn check_oid(content: &[u8]) -> Result<(), Asn1Error> {
    use crate::limits::{MAX_OID_ARC_BITS, MAX_OID_ARCS};
    if content.is_empty() {
        return Err(Asn1Error::new("empty OBJECT IDENTIFIER"));
    }
    if content.last().is_some_and(|b| b & 0x80 != 0) {
        return Err(Asn1Error::new("truncated OBJECT IDENTIFIER"));
    }
    // The first subidentifier carries two arcs (X.690 §8.19.4).
    let mut arcs = 1usize;
    let mut bits = 0u32;
    let mut start = true;
    for &b in content {
        if start && b == 0x80 {
            return Err(Asn1Error::new(
                "OBJECT IDENTIFIER subidentifier not minimal",
            ));
        }
        if start {
            arcs += 1;
            if arcs > MAX_OID_ARCS {
                return Err(Asn1Error::new("OBJECT IDENTIFIER has too many arcs"));
            }
            // Significant bits of the leading group; later groups add seven each.
            bits = u8::BITS - (b & 0x7f).leading_zeros();
        } else {
            bits += 7;
        }
        if bits > MAX_OID_ARC_BITS {
            return Err(Asn1Error::new("OBJECT IDENTIFIER arc too large"));
        }
        start = b & 0x80 == 0;
    }
    Ok(())
}

/// Decode the content octets of an OBJECT IDENTIFIER into dotted form (for logs and errors).
pub fn oid_to_string(content: &[u8]) -> String {
    if check_oid(content).is_err() {
        return "(invalid OID)".to_owned();
    }
    let mut arcs: Vec<u128> = Vec::new();
    let mut acc: u128 = 0;
    for b in content {
        // `check_oid` bounds every arc to 128 bits, so the shift never loses bits.
        acc = (acc << 7) | u128::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
        }
    }
    let Some(first) = arcs.first().copied() else {
        return "(empty OID)".to_owned();
    };
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut s = format!("{a}.{b}");
    for arc in &arcs[1..] {
        s.push('.');
        s.push_str(&arc.to_string());
    }
    s
}

/// Encode a dotted OID into content octets. For tests and tooling; constants live in [`crate::oid`].
pub fn oid_from_string(dotted: &str) -> Option<Vec<u8>> {
    let arcs: Vec<u128> = dotted
        .split('.')
        .map(|a| a.parse().ok())
        .collect::<Option<_>>()?;
    if arcs.len() < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39) {
        return None;
    }
    let mut out = Vec::new();
    let mut push = |mut v: u128| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        out.extend(tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for a in &arcs[2..] {
        push(*a);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Encode subidentifiers given as (significant bits) with all bits set.
    fn encode(bits: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bits {
            let groups = b.div_ceil(7).max(1);
            let lead = b - (groups - 1) * 7;
            let mut sub = vec![0xffu8; groups];
            sub[groups - 1] = 0x7f;
            sub[0] = if groups == 1 {
                (1u8 << lead) - 1
            } else {
                0x80 | ((1u8 << lead) - 1)
            };
            out.extend(sub);
        }
        out
    }

    #[test]
    fn oids_are_bounded_in_arcs_and_arc_size() {
        use crate::limits::{MAX_OID_ARC_BITS, MAX_OID_ARCS};
        let bits = MAX_OID_ARC_BITS as usize;
        // The first subidentifier carries two arcs, so 31 subidentifiers are 32 arcs.
        assert!(check_oid(&encode(&[6; MAX_OID_ARCS - 1])).is_ok());
        assert!(check_oid(&encode(&[6; MAX_OID_ARCS])).is_err());
        assert!(check_oid(&encode(&[6, bits])).is_ok());
        assert!(check_oid(&encode(&[6, bits + 1])).is_err());
        assert!(check_oid(&encode(&[6; 5000])).is_err());
        assert!(check_oid(&encode(&[6, 7000])).is_err());
        for bad in [&[][..], &[0x2a, 0x80, 0x01], &[0x2a, 0x86], &[0x80, 0x01]] {
            assert!(check_oid(bad).is_err(), "{bad:02x?}");
        }
        // A 2.25 UUID OID at the largest arc prints in full.
        let max = oid_from_string(&format!("2.25.{}", u128::MAX)).unwrap();
        assert!(check_oid(&max).is_ok());
        assert_eq!(oid_to_string(&max), format!("2.25.{}", u128::MAX));
        assert_eq!(oid_to_string(&encode(&[6; 40])), "(invalid OID)");
    }

    proptest::proptest! {
        #[test]
        fn check_oid_accepts_exactly_the_bounded_oids(
            bits in proptest::collection::vec(0usize..140, 1..40)
        ) {
            let ok = bits.len() < crate::limits::MAX_OID_ARCS
                && bits.iter().all(|b| *b <= crate::limits::MAX_OID_ARC_BITS as usize);
            let der = encode(&bits);
            proptest::prop_assert_eq!(check_oid(&der).is_ok(), ok);
            // Whatever it decides, the reader decides the same for a whole OID TLV.
            proptest::prop_assert_eq!(parse_single(&writer::oid(&der)).is_ok(), ok);
        }
    }

    #[test]
    fn oid_round_trips() {
        for s in [
            "2.16.840.1.113733.1.9.7",
            "1.2.840.113549.1.9.16.1.1",
            "1.3.14.3.2.26",
            "2.999.3",
        ] {
            assert_eq!(oid_to_string(&oid_from_string(s).unwrap()), s);
        }
    }
}
