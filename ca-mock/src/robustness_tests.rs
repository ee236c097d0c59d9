//! Property tests: decoders of untrusted input never panic, whatever the bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use openssl::hash::MessageDigest;
use openssl::ocsp::{OcspCertId, OcspRequest};
use proptest::prelude::*;

use crate::hierarchy::{CaMaterial, InitSource, init};
use crate::issue::check_csr;
use crate::keys::KeySpec;
use crate::ocsp::parse_request;
use foundation::Serial;

/// A minimal certificate issued by the CA with serial 0x0102.
fn leaf_of(ca: &CaMaterial) -> openssl::x509::X509 {
    let mut b = openssl::x509::X509Builder::new().unwrap();
    let serial = openssl::bn::BigNum::from_u32(0x0102)
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_issuer_name(ca.issuing.subject_name()).unwrap();
    b.set_subject_name(ca.issuing.subject_name()).unwrap();
    b.set_pubkey(&ca.key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(&ca.key, MessageDigest::sha256()).unwrap();
    b.build()
}

fn material() -> &'static (CaMaterial, Vec<u8>) {
    static CA: OnceLock<(CaMaterial, Vec<u8>)> = OnceLock::new();
    CA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let source = InitSource::Generate {
            key: KeySpec::EcP256,
            root_cn: "R".into(),
            issuing_cn: "I".into(),
            org: None,
            root_days: 10,
            issuing_days: 5,
        };
        init(dir.path(), &source, None).unwrap();
        let ca = CaMaterial::load(dir.path(), None).unwrap();
        // A well-formed request for a leaf (serial 0x0102) of our issuer, to mutate.
        let leaf = leaf_of(&ca);
        let id = OcspCertId::from_cert(MessageDigest::sha1(), &leaf, &ca.issuing).unwrap();
        let mut req = OcspRequest::new().unwrap();
        req.add_id(id).unwrap();
        let der = req.to_der().unwrap();
        (ca, der)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn serial_parsing_never_panics(text in ".{0,64}") {
        let _ = Serial::from_hex(&text);
    }

    #[test]
    fn serial_hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 1..20)) {
        if let Ok(s) = Serial::from_magnitude(&bytes) {
            prop_assert_eq!(&Serial::from_hex(&s.to_hex()).unwrap(), &s);
            prop_assert_eq!(Serial::from_der_int(&s.to_der_int_bytes()).unwrap(), s);
        }
    }

    #[test]
    fn csr_check_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(check_csr(&bytes).is_err());
    }

    #[test]
    fn ocsp_parsing_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = parse_request(&material().0, &bytes);
    }

    #[test]
    fn ocsp_parsing_never_panics_on_mutated_requests(pos in any::<usize>(), xor in 1u8..=255, cut in any::<usize>()) {
        let (ca, der) = material();
        let mut m = der.clone();
        let i = pos % m.len();
        m[i] ^= xor;
        m.truncate(m.len() - cut % 4);
        let _ = parse_request(ca, &m);
    }
}

#[test]
fn the_unmutated_request_names_our_issuer() {
    let (ca, der) = material();
    let req = parse_request(ca, der).unwrap();
    assert_eq!(req.items.len(), 1);
    assert_eq!(
        req.items[0].1.as_ref().map(Serial::to_hex).as_deref(),
        Some("0102")
    );

    // The same serial under the root's name (OpenSSL takes the name from the leaf's issuer)
    // is not ours: no serial, so the answer will be "unknown".
    let id = OcspCertId::from_cert(MessageDigest::sha1(), &ca.issuing, &ca.issuing).unwrap();
    let mut other = OcspRequest::new().unwrap();
    other.add_id(id).unwrap();
    let req = parse_request(ca, &other.to_der().unwrap()).unwrap();
    assert!(req.items[0].1.is_none());
}
