//! DER encoding (X.690 §10): everything `scep` emits is DER with definite lengths.

use super::tag;

/// Encode one tag-length-value.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_length(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// `SEQUENCE { parts... }`.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag::SEQUENCE, &parts.concat())
}

/// `SET OF`, sorted as DER requires (X.690 §11.6).
pub fn set_of(mut parts: Vec<Vec<u8>>) -> Vec<u8> {
    parts.sort();
    tlv(tag::SET, &parts.concat())
}

/// A constructed context tag `[n]` around already-encoded content.
pub fn context(n: u8, content: &[u8]) -> Vec<u8> {
    tlv(tag::context(n), content)
}

/// `OBJECT IDENTIFIER` from its content octets (see [`crate::oid`]).
pub fn oid(content: &[u8]) -> Vec<u8> {
    tlv(tag::OID, content)
}

/// `OCTET STRING`.
pub fn octet_string(bytes: &[u8]) -> Vec<u8> {
    tlv(tag::OCTET_STRING, bytes)
}

/// `PrintableString` (the caller guarantees the character set).
pub fn printable_string(s: &str) -> Vec<u8> {
    tlv(tag::PRINTABLE_STRING, s.as_bytes())
}

/// `UTF8String`.
pub fn utf8_string(s: &str) -> Vec<u8> {
    tlv(tag::UTF8_STRING, s.as_bytes())
}

/// `NULL`.
pub fn null() -> Vec<u8> {
    vec![tag::NULL, 0]
}

/// `INTEGER` from a small non-negative value.
pub fn small_integer(v: u32) -> Vec<u8> {
    unsigned_integer(&v.to_be_bytes())
}

/// `INTEGER` from big-endian unsigned magnitude bytes (leading zeros trimmed, sign byte added).
pub fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match magnitude.iter().position(|b| *b != 0) {
        Some(i) => &magnitude[i..],
        None => &[0],
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(tag::INTEGER, &content)
}

/// `AlgorithmIdentifier { algorithm, parameters }` with the given encoded parameters, if any.
pub fn algorithm(oid_content: &[u8], params: Option<&[u8]>) -> Vec<u8> {
    let o = oid(oid_content);
    match params {
        Some(p) => sequence(&[&o, p]),
        None => sequence(&[&o]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_long_lengths_minimally() {
        assert_eq!(&tlv(0x04, &[0; 0x7f])[..2], &[0x04, 0x7f]);
        assert_eq!(&tlv(0x04, &[0; 0x80])[..3], &[0x04, 0x81, 0x80]);
        assert_eq!(&tlv(0x04, &[0; 0x1234])[..4], &[0x04, 0x82, 0x12, 0x34]);
    }

    #[test]
    fn encodes_integers_with_sign_byte() {
        assert_eq!(small_integer(0), vec![0x02, 0x01, 0x00]);
        assert_eq!(small_integer(1), vec![0x02, 0x01, 0x01]);
        assert_eq!(small_integer(128), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(
            unsigned_integer(&[0, 0, 0xff]),
            vec![0x02, 0x02, 0x00, 0xff]
        );
    }

    #[test]
    fn sorts_set_members() {
        let s = set_of(vec![vec![0x04, 0x01, 0x02], vec![0x04, 0x01, 0x01]]);
        assert_eq!(s, vec![0x31, 0x06, 0x04, 0x01, 0x01, 0x04, 0x01, 0x02]);
    }
}
