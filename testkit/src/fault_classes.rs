//! The input classes of the error contract (docs/decisions.md #1), each as a labelled table,
//! so that the protocol tests (`scep`) and the wire tests (ndes-proxy's reliability suite)
//! assert one answer per class rather than per example:
//!
//! - [`envelope_faults`]: everything that can be wrong in a pkcsPKIEnvelope once its
//!   algorithms are ones the server supports (all must be the uniform badMessageCheck);
//! - [`oids_beyond_bounds`] / [`oids_at_bounds`]: OBJECT IDENTIFIER contents just past and
//!   just inside `scep::limits::MAX_OID_*`, and far past them;
//! - [`csrs_with_oid`]: a CSR with a given OID at each place a requester controls one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use openssl::encrypt::Encrypter;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};
use openssl::x509::X509Ref;
use scep::asn1::tag;
use scep::asn1::writer::{self, tlv};
use scep::cms::IssuerAndSerialNumber;
use scep::oid;

use crate::scep_msg::{attr, challenge_attr, csr};

/// An EnvelopedData (RFC 5652 §6) as `scep::cms::enveloped::seal` writes it (AES-128-CBC,
/// RSA PKCS#1 v1.5 key transport), field by field, so one field at a time can be wrong.
#[derive(Clone, Debug)]
pub struct EnvelopeParts {
    /// The KeyTransRecipientInfo's rid (IssuerAndSerialNumber DER).
    pub rid: Vec<u8>,
    /// encryptedKey.
    pub wrapped_key: Vec<u8>,
    /// EncryptedContentInfo contentType (OID content octets).
    pub content_type: Vec<u8>,
    /// contentEncryptionAlgorithm OID (content octets).
    pub cipher_oid: Vec<u8>,
    /// contentEncryptionAlgorithm parameters (a whole TLV), or none.
    pub params: Option<Vec<u8>>,
    /// encryptedContent, or none.
    pub encrypted: Option<Vec<u8>>,
}

/// Encrypt `key` to `recipient`'s RSA key with PKCS#1 v1.5.
pub fn rsa_wrap(recipient: &X509Ref, key: &[u8]) -> Vec<u8> {
    let public = recipient.public_key().unwrap();
    let mut e = Encrypter::new(&public).unwrap();
    e.set_rsa_padding(Padding::PKCS1).unwrap();
    let mut out = vec![0u8; e.encrypt_len(key).unwrap()];
    let n = e.encrypt(key, &mut out).unwrap();
    out.truncate(n);
    out
}

/// AES-128-CBC of `data` exactly as given (no padding added: the caller pads, or does not).
pub fn aes128_cbc_raw(key: &[u8], iv: &[u8], data: &[u8]) -> Vec<u8> {
    let mut c = Crypter::new(Cipher::aes_128_cbc(), Mode::Encrypt, key, Some(iv)).unwrap();
    c.pad(false);
    let mut out = vec![0u8; data.len() + 16];
    let mut n = c.update(data, &mut out).unwrap();
    n += c.finalize(&mut out[n..]).unwrap();
    out.truncate(n);
    out
}

const KEY: [u8; 16] = [0x4b; 16];
const IV: [u8; 16] = [0x49; 16];

impl EnvelopeParts {
    /// An envelope of `content` to `recipient` that opens.
    pub fn honest(content: &[u8], recipient: &X509Ref) -> Self {
        Self {
            rid: IssuerAndSerialNumber::of(recipient).unwrap().to_der(),
            wrapped_key: rsa_wrap(recipient, &KEY),
            content_type: oid::DATA.to_vec(),
            cipher_oid: oid::AES128_CBC.to_vec(),
            params: Some(writer::octet_string(&IV)),
            encrypted: Some(
                openssl::symm::encrypt(Cipher::aes_128_cbc(), &KEY, Some(&IV), content).unwrap(),
            ),
        }
    }

    /// The EnvelopedData ContentInfo.
    pub fn to_der(&self) -> Vec<u8> {
        let ktri = writer::sequence(&[
            &writer::small_integer(0),
            &self.rid,
            &writer::algorithm(oid::RSA_ENCRYPTION, Some(&writer::null())),
            &writer::octet_string(&self.wrapped_key),
        ]);
        let cipher = writer::algorithm(&self.cipher_oid, self.params.as_deref());
        let mut eci = vec![writer::oid(&self.content_type), cipher];
        if let Some(e) = &self.encrypted {
            eci.push(tlv(tag::context_primitive(0), e));
        }
        let eci: Vec<&[u8]> = eci.iter().map(Vec::as_slice).collect();
        let body = writer::sequence(&[
            &writer::small_integer(0),
            &tlv(tag::SET, &ktri),
            &writer::sequence(&eci),
        ]);
        writer::sequence(&[
            &writer::oid(oid::ENVELOPED_DATA),
            &writer::context(0, &body),
        ])
    }

    fn with(&self, change: impl FnOnce(&mut Self)) -> Vec<u8> {
        let mut p = self.clone();
        change(&mut p);
        p.to_der()
    }
}

/// Every fault of an envelope whose algorithms the server supports, labelled: the IV (absent,
/// of another type, another length), the key transport (a content key of another length, a
/// wrapped key that is garbage, truncated or empty), the padding, the ciphertext (truncated,
/// empty, absent), the recipient (`other`, not the server), and the content (not a CSR, a
/// truncated CSR). `csr` is a valid request for `ra`.
pub fn envelope_faults(csr: &[u8], ra: &X509Ref, other: &X509Ref) -> Vec<(&'static str, Vec<u8>)> {
    let good = EnvelopeParts::honest(csr, ra);
    let mut padded = csr.to_vec();
    let pad = 16 - csr.len() % 16;
    padded.extend(std::iter::repeat_n(pad as u8, pad));
    let last = padded.len() - 1;
    let mut zero_pad = padded.clone();
    zero_pad[last] = 0;
    let mut pad_17 = padded.clone();
    pad_17[last] = 17;
    let mut garbage_key = vec![0u8; good.wrapped_key.len()];
    openssl::rand::rand_bytes(&mut garbage_key[1..]).unwrap();
    let ciphertext = good.encrypted.clone().unwrap();
    vec![
        (
            "IV of 15 bytes",
            good.with(|p| p.params = Some(writer::octet_string(&IV[..15]))),
        ),
        (
            "IV of 17 bytes",
            good.with(|p| p.params = Some(writer::octet_string(&[0x49; 17]))),
        ),
        (
            "IV of 8 bytes (a DES IV)",
            good.with(|p| p.params = Some(writer::octet_string(&IV[..8]))),
        ),
        (
            "IV empty",
            good.with(|p| p.params = Some(writer::octet_string(&[]))),
        ),
        ("IV absent", good.with(|p| p.params = None)),
        ("IV a NULL", good.with(|p| p.params = Some(writer::null()))),
        (
            "IV an INTEGER",
            good.with(|p| p.params = Some(writer::small_integer(16))),
        ),
        (
            "IV in a SEQUENCE",
            good.with(|p| p.params = Some(writer::sequence(&[&writer::octet_string(&IV)]))),
        ),
        (
            "content key of 24 bytes",
            good.with(|p| p.wrapped_key = rsa_wrap(ra, &[0x4b; 24])),
        ),
        (
            "content key of 15 bytes",
            good.with(|p| p.wrapped_key = rsa_wrap(ra, &[0x4b; 15])),
        ),
        (
            "content key empty",
            good.with(|p| p.wrapped_key = rsa_wrap(ra, &[])),
        ),
        (
            "wrapped key garbage",
            good.with(|p| p.wrapped_key = garbage_key),
        ),
        (
            "wrapped key truncated",
            good.with(|p| p.wrapped_key.truncate(100)),
        ),
        ("wrapped key empty", good.with(|p| p.wrapped_key.clear())),
        (
            "padding byte 0",
            good.with(|p| p.encrypted = Some(aes128_cbc_raw(&KEY, &IV, &zero_pad))),
        ),
        (
            "padding byte 17",
            good.with(|p| p.encrypted = Some(aes128_cbc_raw(&KEY, &IV, &pad_17))),
        ),
        (
            "last block dropped",
            good.with(|p| p.encrypted = Some(ciphertext[..ciphertext.len() - 16].to_vec())),
        ),
        (
            "ciphertext truncated mid-block",
            good.with(|p| p.encrypted = Some(ciphertext[..ciphertext.len() - 5].to_vec())),
        ),
        (
            "ciphertext empty",
            good.with(|p| p.encrypted = Some(Vec::new())),
        ),
        ("ciphertext absent", good.with(|p| p.encrypted = None)),
        (
            "another recipient",
            EnvelopeParts::honest(csr, other).to_der(),
        ),
        (
            "content not a CSR",
            EnvelopeParts::honest(&[0x30, 0x03, 0x02, 0x01, 0x05], ra).to_der(),
        ),
        (
            "content a truncated CSR",
            EnvelopeParts::honest(&csr[..csr.len() - 9], ra).to_der(),
        ),
    ]
}

/// One arc of exactly `bits` significant bits (all ones), as a subidentifier (X.690 §8.19.2).
pub fn arc_of_bits(bits: usize) -> Vec<u8> {
    let groups = bits.div_ceil(7).max(1);
    let lead_bits = bits - (groups - 1) * 7;
    let mut out = vec![0xffu8; groups];
    out[0] = 0x80 | ((1u8 << lead_bits) - 1);
    out[groups - 1] = 0x7f;
    if groups == 1 {
        out[0] = (1u8 << lead_bits) - 1;
    }
    out
}

/// `1.2` followed by `extra` arcs of 1: an OID of `extra + 2` arcs.
pub fn oid_of_arcs(arcs: usize) -> Vec<u8> {
    let mut out = vec![0x2a];
    out.extend(std::iter::repeat_n(0x01, arcs.saturating_sub(2)));
    out
}

/// OIDs (content octets) the parser must refuse wherever a peer puts one, labelled: the
/// first past each bound (33 arcs; a 129-bit arc) and far past (thousands of arcs, an arc of
/// thousands of bits), and encodings X.690 forbids (a non-minimal subidentifier, an
/// unterminated one).
pub fn oids_beyond_bounds() -> Vec<(&'static str, Vec<u8>)> {
    let with_arc = |bits| [vec![0x2a], arc_of_bits(bits)].concat();
    vec![
        ("33 arcs", oid_of_arcs(33)),
        ("5000 arcs", oid_of_arcs(5000)),
        ("an arc of 129 bits", with_arc(129)),
        ("an arc of 7000 bits", with_arc(7000)),
        ("a non-minimal subidentifier", vec![0x2a, 0x80, 0x01]),
        ("an unterminated subidentifier", vec![0x2a, 0x86]),
    ]
}

/// OIDs at the bounds (32 arcs; a 128-bit arc, as an X.667 UUID arc under 2.25), which must
/// be accepted.
pub fn oids_at_bounds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("32 arcs", oid_of_arcs(32)),
        (
            "a UUID arc of 128 bits",
            [vec![0x69], arc_of_bits(128)].concat(),
        ),
    ]
}

/// A valid, self-signed (`key`, RSA) PKCS#10 request for `CN=<cn>` with `challenge`, with
/// `o` at one of the places a requester controls an OID, labelled: an extension's extnID, an
/// EKU inside an extension value, a SAN otherName type, a SAN registeredID, an attribute
/// type, and a subject attribute type.
pub fn csrs_with_oid(
    key: &PKey<Private>,
    cn: &str,
    challenge: &str,
    o: &[u8],
) -> Vec<(&'static str, Vec<u8>)> {
    const EKU: &[u8] = &[0x55, 0x1d, 0x25];
    let ext = |id: &[u8], value: &[u8]| {
        writer::sequence(&[&writer::oid(id), &writer::octet_string(value)])
    };
    let ext_req = |e: Vec<u8>| attr(oid::EXTENSION_REQUEST, &[writer::sequence(&[&e])]);
    let cn_rdn = tlv(
        tag::SET,
        &writer::sequence(&[&writer::oid(&[0x55, 0x04, 0x03]), &writer::utf8_string(cn)]),
    );
    let subject = writer::sequence(&[&cn_rdn]);
    let challenge = challenge_attr(&[writer::printable_string(challenge)]);
    let build = |subject: &[u8], extra: Option<Vec<u8>>| {
        let attrs: Vec<Vec<u8>> = std::iter::once(challenge.clone()).chain(extra).collect();
        csr(0, subject, &key.public_key_to_der().unwrap(), &attrs, key)
    };
    let other_name = tlv(
        tag::context(0),
        &[
            writer::oid(o),
            writer::context(0, &writer::utf8_string("x")),
        ]
        .concat(),
    );
    let odd_rdn = tlv(
        tag::SET,
        &writer::sequence(&[&writer::oid(o), &writer::utf8_string("x")]),
    );
    vec![
        (
            "extension extnID",
            build(&subject, Some(ext_req(ext(o, &writer::null())))),
        ),
        (
            "EKU in an extension value",
            build(
                &subject,
                Some(ext_req(ext(EKU, &writer::sequence(&[&writer::oid(o)])))),
            ),
        ),
        (
            "SAN otherName type",
            build(
                &subject,
                Some(ext_req(ext(
                    oid::SUBJECT_ALT_NAME,
                    &writer::sequence(&[&other_name]),
                ))),
            ),
        ),
        (
            "SAN registeredID",
            build(
                &subject,
                Some(ext_req(ext(
                    oid::SUBJECT_ALT_NAME,
                    &writer::sequence(&[&tlv(tag::context_primitive(8), o)]),
                ))),
            ),
        ),
        (
            "attribute type",
            build(&subject, Some(attr(o, &[writer::utf8_string("x")]))),
        ),
        (
            "subject attribute type",
            build(&writer::sequence(&[&odd_rdn, &cn_rdn]), None),
        ),
    ]
}
