//! The error contract (docs/decisions.md #1) by class rather than by example: every envelope
//! fault is one answer, every OID a peer controls is bounded wherever it is, and the
//! attributes RFC 8894 types as PrintableString are PrintableString unless the caller asks
//! for the compatible reading. The classes are `testkit::fault_classes`; ndes-proxy's
//! reliability suite sends the same tables over the wire.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use openssl::hash::MessageDigest;
use openssl::x509::X509;
use scep::asn1::writer::{self, tlv};
use scep::asn1::{parse_single, tag};
use scep::client::self_signed_certificate;
use scep::cms::enveloped::{DecryptionKey, seal};
use scep::csr::{ChallengePassword, build};
use scep::error::EnvelopeFault;
use scep::server::DecodedRequest;
use scep::{
    AlgorithmPolicy, AttributeStrings, ContentCipher, DecodeError, FailInfo, LenientString,
    PrintableAttribute, Refusal, RequestBody, oid,
};
use testkit::fault_classes::{
    EnvelopeParts, csrs_with_oid, envelope_faults, oids_at_bounds, oids_beyond_bounds,
};
use testkit::pki;
use testkit::scep_msg::{self as forge, SignerSpec, attr};

fn signer() -> X509 {
    let p = pki::ra_hierarchy();
    self_signed_certificate(
        &p.device_keys[0],
        &pki::name("dev"),
        1_700_000_000,
        1_700_003_600,
    )
    .unwrap()
}

fn csr_der() -> Vec<u8> {
    let p = pki::ra_hierarchy();
    build(
        &p.device_keys[0],
        &pki::name("dev"),
        None,
        Some(&ChallengePassword::new("c")),
        MessageDigest::sha256(),
    )
    .unwrap()
}

/// A PKCSReq signed by the device around `content`, with the signer spec as given.
fn message(spec: &SignerSpec, content: &[u8]) -> Vec<u8> {
    let p = pki::ra_hierarchy();
    forge::message(spec, &signer(), &p.device_keys[0], content)
}

fn open(der: &[u8]) -> Result<RequestBody, Refusal> {
    let p = pki::ra_hierarchy();
    let policy = AlgorithmPolicy::default();
    let keys = [DecryptionKey {
        cert: &p.ra_enc,
        key: &p.ra_enc_key,
    }];
    DecodedRequest::decode(der)
        .unwrap()
        .verify(&policy)?
        .open(&keys, &policy)
        .map(|o| o.body)
}

fn open_envelope(envelope: &[u8]) -> Result<RequestBody, Refusal> {
    open(&message(&SignerSpec::pkcs_req("tx-env"), envelope))
}

/// The one answer: a uniform envelope refusal, badMessageCheck with its fixed text.
fn assert_uniform(label: &str, r: Result<RequestBody, Refusal>) {
    let r = r.expect_err(label);
    assert!(matches!(r, Refusal::Envelope(_)), "{label}: {r:?}");
    let reference = Refusal::Envelope(EnvelopeFault::NoMatchingRecipient);
    assert_eq!(r.fail_info(), FailInfo::BadMessageCheck, "{label}");
    assert_eq!(r.fail_info_text(), reference.fail_info_text(), "{label}");
}

#[test]
fn every_envelope_fault_is_one_answer() {
    let p = pki::ra_hierarchy();
    let csr = csr_der();
    let other = pki::ra_hierarchy().issue(&p.device_keys[1], "someone else", 5);
    // The hand-built envelope is sound: unchanged, it opens.
    assert!(open_envelope(&EnvelopeParts::honest(&csr, &p.ra_enc).to_der()).is_ok());
    let faults = envelope_faults(&csr, &p.ra_enc, &other);
    assert!(faults.len() >= 20);
    for (label, envelope) in faults {
        assert_uniform(label, open_envelope(&envelope));
    }
    // The envelope's own OIDs past the bounds are malformed content, not unknown algorithms.
    for (label, o) in oids_beyond_bounds() {
        let good = EnvelopeParts::honest(&csr, &p.ra_enc);
        let mut as_cipher = good.clone();
        as_cipher.cipher_oid = o.clone();
        assert_uniform(label, open_envelope(&as_cipher.to_der()));
        let mut as_type = good;
        as_type.content_type = o;
        assert_uniform(label, open_envelope(&as_type.to_der()));
    }
}

#[test]
fn algorithms_stay_bad_alg_whatever_else_is_wrong() {
    // The boundary of the class: an algorithm, decided from its public OID before anything is
    // opened, is badAlg even when the IV is wrong too.
    let p = pki::ra_hierarchy();
    let csr = csr_der();
    const RC2_CBC: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x02];
    for params in [None, Some(writer::octet_string(&[1; 3]))] {
        let mut parts = EnvelopeParts::honest(&csr, &p.ra_enc);
        parts.cipher_oid = RC2_CBC.to_vec();
        parts.params = params;
        let r = open_envelope(&parts.to_der()).unwrap_err();
        assert_eq!(r.fail_info(), FailInfo::BadAlg, "{r:?}");
    }
    let env = seal(&csr, &[&p.ra_enc], ContentCipher::DesEde3Cbc).unwrap();
    let strict = AlgorithmPolicy::strict();
    let keys = [DecryptionKey {
        cert: &p.ra_enc,
        key: &p.ra_enc_key,
    }];
    let msg = message(&SignerSpec::pkcs_req("tx-3des"), &env);
    let r = DecodedRequest::decode(&msg)
        .unwrap()
        .verify(&strict)
        .unwrap()
        .open(&keys, &strict)
        .unwrap_err();
    assert_eq!(r.fail_info(), FailInfo::BadAlg);
}

#[test]
fn oids_past_the_bounds_are_refused_in_every_csr_position() {
    let p = pki::ra_hierarchy();
    let key = &p.device_keys[0];
    for (oid_label, o) in oids_beyond_bounds() {
        for (place, csr) in csrs_with_oid(key, "dev", "c", &o) {
            let env = seal(&csr, &[&p.ra_enc], ContentCipher::Aes128Cbc).unwrap();
            let label = format!("{oid_label} as {place}");
            let r = open_envelope(&env);
            assert!(
                matches!(r, Err(Refusal::Envelope(EnvelopeFault::MalformedCsr(_)))),
                "{label}: {r:?}"
            );
            assert_uniform(&label, r);
        }
    }
    // At the bounds every position is accepted: the bounds refuse nothing a real CSR carries.
    for (oid_label, o) in oids_at_bounds() {
        for (place, csr) in csrs_with_oid(key, "dev", "c", &o) {
            let env = seal(&csr, &[&p.ra_enc], ContentCipher::Aes128Cbc).unwrap();
            let r = open_envelope(&env);
            assert!(
                matches!(r, Ok(RequestBody::PkcsReq(_))),
                "{oid_label} as {place}: {r:?}"
            );
        }
    }
}

#[test]
fn oids_past_the_bounds_in_the_signed_data_are_undecodable() {
    let p = pki::ra_hierarchy();
    let env = seal(&csr_der(), &[&p.ra_enc], ContentCipher::Aes128Cbc).unwrap();
    for (label, o) in oids_beyond_bounds() {
        let mut as_attribute = SignerSpec::pkcs_req("tx-oid");
        as_attribute
            .attrs
            .push(attr(&o, &[writer::utf8_string("x")]));
        let mut as_digest = SignerSpec::pkcs_req("tx-oid");
        as_digest.digest_oid = o.clone();
        let mut as_signature = SignerSpec::pkcs_req("tx-oid");
        as_signature.signature_alg = writer::algorithm(&o, Some(&writer::null()));
        let good = message(&SignerSpec::pkcs_req("tx-oid"), &env);
        let inner = parse_single(&good).unwrap().children().unwrap();
        let signed = {
            let mut r = inner;
            r.read_any().unwrap();
            r.read_any()
                .unwrap()
                .children()
                .unwrap()
                .read_any()
                .unwrap()
        };
        let as_content_type = forge::content_info(&o, signed.raw);
        for (place, msg) in [
            ("signed attribute type", message(&as_attribute, &env)),
            ("digestAlgorithm", message(&as_digest, &env)),
            ("signatureAlgorithm", message(&as_signature, &env)),
            ("ContentInfo contentType", as_content_type),
        ] {
            let r = DecodedRequest::decode(&msg);
            assert!(
                matches!(r, Err(DecodeError::Asn1(_))),
                "{label} as {place}: {:?}",
                r.map(|_| ())
            );
        }
    }
}

/// A PKCSReq with each of the four PrintableString attributes encoded by `encode`.
fn with_strings(encode: &Encode, which: PrintableAttribute) -> Vec<u8> {
    let p = pki::ra_hierarchy();
    let env = seal(&csr_der(), &[&p.ra_enc], ContentCipher::Aes128Cbc).unwrap();
    let value = |a: PrintableAttribute, text: &str| {
        if a == which {
            encode(text)
        } else {
            writer::printable_string(text)
        }
    };
    let mut spec = SignerSpec::scep(
        value(PrintableAttribute::MessageType, "19"),
        value(PrintableAttribute::TransactionId, "tx-strings"),
        writer::octet_string(&[7; 16]),
    );
    spec.attrs.push(attr(
        oid::PKI_STATUS,
        &[value(PrintableAttribute::PkiStatus, "0")],
    ));
    spec.attrs.push(attr(
        oid::FAIL_INFO,
        &[value(PrintableAttribute::FailInfo, "2")],
    ));
    message(&spec, &env)
}

/// How a test writes an attribute value.
type Encode = dyn Fn(&str) -> Vec<u8>;

const ATTRIBUTES: [PrintableAttribute; 4] = [
    PrintableAttribute::MessageType,
    PrintableAttribute::TransactionId,
    PrintableAttribute::PkiStatus,
    PrintableAttribute::FailInfo,
];

#[test]
fn printable_string_attributes_are_printable_string_unless_asked() {
    let compat = AttributeStrings::AlsoUtf8AndIa5;
    for a in ATTRIBUTES {
        // PrintableString: accepted by both readings, nothing reported.
        let msg = with_strings(&|s: &str| writer::printable_string(s), a);
        for strings in [AttributeStrings::Rfc8894, compat] {
            let d = DecodedRequest::decode_with(&msg, strings).unwrap();
            assert!(d.lenient_strings().is_empty());
        }
        // UTF8String and IA5String: refused by default, accepted and reported when asked.
        for (ty, encode) in [
            (
                LenientString::Utf8String,
                &(|s: &str| writer::utf8_string(s)) as &Encode,
            ),
            (LenientString::Ia5String, &|s: &str| {
                forge::ia5(s.as_bytes())
            }),
        ] {
            let msg = with_strings(encode, a);
            assert_eq!(
                DecodedRequest::decode(&msg).unwrap_err(),
                DecodeError::NotPrintableString(a.name()),
                "{a:?} as {ty:?}"
            );
            let d = DecodedRequest::decode_with(&msg, compat).unwrap();
            assert_eq!(d.lenient_strings(), &[(a, ty)]);
            assert!(d.verify(&AlgorithmPolicy::default()).is_ok());
        }
        // Other string types are refused by both readings; so are characters outside
        // PrintableString in the types the compatible reading takes.
        let others: [(&str, &Encode); 6] = [
            ("BMPString", &|s: &str| forge::bmp(s)),
            ("T61String", &|s: &str| tlv(tag::T61_STRING, s.as_bytes())),
            ("VisibleString", &|s: &str| tlv(0x1a, s.as_bytes())),
            ("OCTET STRING", &|s: &str| {
                writer::octet_string(s.as_bytes())
            }),
            ("UTF8String with '_'", &|s: &str| {
                writer::utf8_string(&format!("{s}_"))
            }),
            ("IA5String with '@'", &|s: &str| {
                forge::ia5(format!("{s}@").as_bytes())
            }),
        ];
        for (label, encode) in others {
            let msg = with_strings(encode, a);
            for strings in [AttributeStrings::Rfc8894, compat] {
                assert_eq!(
                    DecodedRequest::decode_with(&msg, strings).unwrap_err(),
                    DecodeError::InvalidAttribute(a.name()),
                    "{a:?} as {label}, {strings:?}"
                );
            }
        }
    }
}
