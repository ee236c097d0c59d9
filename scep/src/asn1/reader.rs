//! A bounded BER/DER reader (X.690): what SCEP clients in the field send, and nothing more.
//!
//! Accepts definite and indefinite lengths and constructed strings (BER), because older clients
//! and Go's `pkcs7` produce them. Every read is bounded: lengths must fit the input, nesting
//! stops at [`MAX_DEPTH`], only low tag numbers (< 31) exist in the structures SCEP uses,
//! every OBJECT IDENTIFIER is checked as it is read ([`super::check_oid`]), and callers finish
//! each reader to reject trailing data. Nothing here panics on any input.

use std::borrow::Cow;

use super::Asn1Error;
use super::tag;

/// Maximum nesting of constructed encodings. Real SCEP messages nest about 12 deep.
pub const MAX_DEPTH: u8 = 40;

/// One decoded tag-length-value, borrowing from the input.
#[derive(Clone, Copy, Debug)]
pub struct Tlv<'a> {
    /// The identifier octet (class, constructed bit and tag number < 31).
    pub tag: u8,
    /// The contents octets (for indefinite lengths: without the end-of-contents marker).
    pub content: &'a [u8],
    /// The whole encoding, header and end-of-contents included.
    pub raw: &'a [u8],
    /// Whether the length was indefinite (BER only).
    pub indefinite: bool,
    depth: u8,
}

impl<'a> Tlv<'a> {
    /// Whether the constructed bit is set.
    pub fn is_constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// A reader over the children of a constructed value.
    pub fn children(&self) -> Result<Reader<'a>, Asn1Error> {
        if !self.is_constructed() {
            return Err(Asn1Error::new("expected a constructed value"));
        }
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(Asn1Error::new("nesting too deep"));
        }
        Ok(Reader {
            data: self.content,
            pos: 0,
            depth,
        })
    }

    /// The bytes of a string type, joining BER constructed segments (X.690 §8.7.3).
    ///
    /// `universal` is the primitive tag of the segments (OCTET STRING for `[0] IMPLICIT OCTET
    /// STRING` too); the outer tag is the caller's business.
    pub fn string_bytes(&self, universal: u8) -> Result<Cow<'a, [u8]>, Asn1Error> {
        if !self.is_constructed() {
            return Ok(Cow::Borrowed(self.content));
        }
        let mut out = Vec::new();
        self.collect_segments(universal, &mut out)?;
        Ok(Cow::Owned(out))
    }

    fn collect_segments(&self, universal: u8, out: &mut Vec<u8>) -> Result<(), Asn1Error> {
        let mut r = self.children()?;
        while !r.is_empty() {
            let seg = r.read_any()?;
            if seg.tag == universal {
                out.extend_from_slice(seg.content);
            } else if seg.tag == tag::constructed(universal) {
                seg.collect_segments(universal, out)?;
            } else {
                return Err(Asn1Error::new("unexpected segment in constructed string"));
            }
        }
        Ok(())
    }

    /// The DER encoding of this value: the raw bytes when the length was definite, otherwise a
    /// re-encoding with definite lengths (used where RFC 5652 requires DER, e.g. signed attributes).
    pub fn to_definite(&self) -> Result<Cow<'a, [u8]>, Asn1Error> {
        if !self.contains_indefinite()? {
            return Ok(Cow::Borrowed(self.raw));
        }
        let mut content = Vec::new();
        let mut r = self.children()?;
        while !r.is_empty() {
            content.extend_from_slice(&r.read_any()?.to_definite()?);
        }
        Ok(Cow::Owned(super::writer::tlv(self.tag, &content)))
    }

    fn contains_indefinite(&self) -> Result<bool, Asn1Error> {
        if self.indefinite {
            return Ok(true);
        }
        if !self.is_constructed() {
            return Ok(false);
        }
        let mut r = self.children()?;
        while !r.is_empty() {
            if r.read_any()?.contains_indefinite()? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Read every value nested in this one (primitive contents stay opaque), so that the
    /// reader's checks (lengths, depth, OBJECT IDENTIFIERs) hold for all of it, not only for
    /// the fields a caller picks out.
    pub fn read_nested(&self) -> Result<(), Asn1Error> {
        if !self.is_constructed() {
            return Ok(());
        }
        let mut r = self.children()?;
        while !r.is_empty() {
            r.read_any()?.read_nested()?;
        }
        Ok(())
    }

    /// Require a specific tag.
    pub fn expect(self, tag: u8, what: &'static str) -> Result<Self, Asn1Error> {
        if self.tag == tag {
            Ok(self)
        } else {
            Err(Asn1Error::new(what))
        }
    }
}

/// A cursor over a sequence of TLVs.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    depth: u8,
}

impl<'a> Reader<'a> {
    /// A reader over a whole top-level input.
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            depth: 0,
        }
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The identifier octet of the next value, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// Read the next value, whatever its tag.
    pub fn read_any(&mut self) -> Result<Tlv<'a>, Asn1Error> {
        let (tlv, len) = parse_tlv(&self.data[self.pos..], self.depth)?;
        self.pos += len;
        Ok(tlv)
    }

    /// Read the next value and require its tag.
    pub fn read(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, Asn1Error> {
        if self.peek_tag() != Some(tag) {
            return Err(Asn1Error::new(what));
        }
        self.read_any()
    }

    /// Read the next value only if it has this tag (OPTIONAL fields).
    pub fn read_optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, Asn1Error> {
        if self.peek_tag() == Some(tag) {
            self.read_any().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Require that nothing follows.
    pub fn finish(&self, what: &'static str) -> Result<(), Asn1Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Asn1Error::new(what))
        }
    }
}

/// Decode exactly one value from `input`, rejecting trailing data.
pub fn parse_single(input: &[u8]) -> Result<Tlv<'_>, Asn1Error> {
    let mut r = Reader::new(input);
    let tlv = r.read_any()?;
    r.finish("trailing data after the value")?;
    Ok(tlv)
}

/// Parse one TLV at the start of `input`; returns it and the number of bytes it spans.
fn parse_tlv(input: &[u8], depth: u8) -> Result<(Tlv<'_>, usize), Asn1Error> {
    let tag = *input
        .first()
        .ok_or(Asn1Error::new("unexpected end of data"))?;
    if tag & 0x1f == 0x1f {
        return Err(Asn1Error::new("high tag numbers are not used by SCEP"));
    }
    if tag == 0 {
        return Err(Asn1Error::new("unexpected end-of-contents"));
    }
    let first = *input.get(1).ok_or(Asn1Error::new("truncated length"))?;
    let header_end;
    let content_len = if first < 0x80 {
        header_end = 2;
        Some(usize::from(first))
    } else if first == 0x80 {
        header_end = 2;
        None
    } else {
        let n = usize::from(first & 0x7f);
        if n > 4 {
            return Err(Asn1Error::new("length too large"));
        }
        let bytes = input
            .get(2..2 + n)
            .ok_or(Asn1Error::new("truncated length"))?;
        header_end = 2 + n;
        Some(
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
        )
    };
    match content_len {
        Some(len) => {
            let end = header_end
                .checked_add(len)
                .ok_or(Asn1Error::new("length overflow"))?;
            let content = input
                .get(header_end..end)
                .ok_or(Asn1Error::new("length exceeds data"))?;
            if tag == tag::OID {
                super::check_oid(content)?;
            }
            let raw = &input[..end];
            Ok((
                Tlv {
                    tag,
                    content,
                    raw,
                    indefinite: false,
                    depth,
                },
                end,
            ))
        }
        None => {
            if tag & 0x20 == 0 {
                return Err(Asn1Error::new("indefinite length on a primitive value"));
            }
            if depth + 1 > MAX_DEPTH {
                return Err(Asn1Error::new("nesting too deep"));
            }
            // Walk the children to find the end-of-contents marker (00 00).
            let mut pos = header_end;
            loop {
                match input.get(pos..pos + 2) {
                    Some([0, 0]) => break,
                    Some(_) => {
                        let (_, len) = parse_tlv(&input[pos..], depth + 1)?;
                        pos += len;
                    }
                    None => return Err(Asn1Error::new("missing end-of-contents")),
                }
            }
            let content = &input[header_end..pos];
            let raw = &input[..pos + 2];
            Ok((
                Tlv {
                    tag,
                    content,
                    raw,
                    indefinite: true,
                    depth,
                },
                pos + 2,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_definite_and_indefinite_lengths() {
        let der = [0x30, 0x03, 0x02, 0x01, 0x05];
        let t = parse_single(&der).unwrap();
        assert_eq!(t.content, &[0x02, 0x01, 0x05]);
        let ber = [0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00];
        let t = parse_single(&ber).unwrap();
        assert!(t.indefinite);
        assert_eq!(t.content, &[0x02, 0x01, 0x05]);
        assert_eq!(&*t.to_definite().unwrap(), &der);
    }

    #[test]
    fn joins_constructed_octet_strings() {
        // 24 80 (04 02 aa bb) (24 80 (04 01 cc) 00 00) 00 00
        let ber = [
            0x24, 0x80, 0x04, 0x02, 0xaa, 0xbb, 0x24, 0x80, 0x04, 0x01, 0xcc, 0, 0, 0, 0,
        ];
        let t = parse_single(&ber).unwrap();
        assert_eq!(
            &*t.string_bytes(tag::OCTET_STRING).unwrap(),
            &[0xaa, 0xbb, 0xcc]
        );
    }

    #[test]
    fn rejects_known_crashers_and_bombs() {
        let cases: &[&[u8]] = &[
            &[0x30, 0x82, 0x06],
            &[0x5f, 0x4d],
            &[0x1f, 0x80],
            &[0x1f, 0x05],
            &[0x30, 0x81],
            &[0x30, 0x84, 0x01],
            &[0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff],
            &[0x04, 0x80, 0x00, 0x00],
            &[0x30, 0x03, 0x02, 0x01, 0x05, 0x00],
        ];
        for c in cases {
            assert!(parse_single(c).is_err(), "{c:02x?}");
        }
        let bomb: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 100_000)
            .flatten()
            .collect();
        assert!(parse_single(&bomb).is_err());
    }

    #[test]
    fn stops_definite_nesting_at_the_depth_cap() {
        let mut v = vec![0x30, 0x00];
        for _ in 0..200 {
            let mut outer = super::super::writer::tlv(0x30, &v);
            std::mem::swap(&mut v, &mut outer);
        }
        fn walk(t: Tlv<'_>) -> Result<(), Asn1Error> {
            let mut r = t.children()?;
            while !r.is_empty() {
                walk(r.read_any()?)?;
            }
            Ok(())
        }
        assert!(walk(parse_single(&v).unwrap()).is_err());
    }
}
