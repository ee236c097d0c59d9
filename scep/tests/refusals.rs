//! The error contract (docs/decisions.md #1) at the protocol level: which inputs are undecodable
//! (HTTP 400), which are refused with which failInfo, and that everything under the envelope
//! looks the same from outside.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit::pki;

use openssl::hash::MessageDigest;
use openssl::x509::X509;
use scep::client::{RequestOptions, Transaction, build_request, self_signed_certificate};
use scep::cms::enveloped::{DecryptionKey, seal};
use scep::cms::signed::SignerIdentity;
use scep::csr::{ChallengePassword, Csr, build};
use scep::error::{EnvelopeFault, fail_info_text};
use scep::server::DecodedRequest;
use scep::{
    AlgorithmPolicy, ContentCipher, DecodeError, DigestAlgorithm, FailInfo, Nonce, Refusal,
    RequestBody, TransactionId,
};
use testkit::scep_msg::{RawRequest, build as build_raw};

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

fn valid_request() -> Vec<u8> {
    let p = pki::ra_hierarchy();
    let cert = signer();
    let tx = Transaction {
        transaction_id: TransactionId::new("tx-1").unwrap(),
        sender_nonce: Nonce([7; 16]),
    };
    let body = RequestBody::PkcsReq(Csr::from_der(&csr_der()).unwrap());
    let signer = SignerIdentity {
        cert: &cert,
        key: &p.device_keys[0],
    };
    build_request(&body, signer, &[&p.ra_enc], &tx, &RequestOptions::default()).unwrap()
}

/// A request whose signed content is `content`, with messageType and nonce as given.
fn raw(message_type: &str, nonce: &[u8], content: Option<&[u8]>, include_cert: bool) -> Vec<u8> {
    let p = pki::ra_hierarchy();
    let cert = signer();
    let r = RawRequest {
        message_type,
        transaction_id: "tx-raw",
        sender_nonce: nonce,
        content,
        include_signer_cert: include_cert,
        digest: DigestAlgorithm::Sha256,
    };
    build_raw(
        &r,
        SignerIdentity {
            cert: &cert,
            key: &p.device_keys[0],
        },
    )
    .unwrap()
}

fn verify(der: &[u8]) -> Result<(), Refusal> {
    DecodedRequest::decode(der)
        .unwrap()
        .verify(&AlgorithmPolicy::default())
        .map(|_| ())
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

#[test]
fn undecodable_input_is_a_decode_error() {
    let good = valid_request();
    assert!(DecodedRequest::decode(&good).is_ok());
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        DecodedRequest::decode(&trailing),
        Err(DecodeError::Asn1(_))
    ));
    assert!(matches!(
        DecodedRequest::decode(&good[..good.len() - 1]),
        Err(DecodeError::Asn1(_))
    ));
    assert!(DecodedRequest::decode(&[]).is_err());
    let huge = vec![0u8; scep::limits::MAX_MESSAGE_SIZE + 1];
    assert_eq!(
        DecodedRequest::decode(&huge).unwrap_err(),
        DecodeError::TooLarge
    );
    let p = pki::ra_hierarchy();
    let env = seal(b"x", &[&p.ra_enc], ContentCipher::Aes128Cbc).unwrap();
    assert_eq!(
        DecodedRequest::decode(&env).unwrap_err(),
        DecodeError::NotSignedData
    );
}

#[test]
fn a_message_without_scep_attributes_is_undecodable() {
    // A SignedData made by `openssl cms -sign` has no messageType: no reply can be addressed.
    let p = pki::ra_hierarchy();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.pem");
    let key = dir.path().join("k.pem");
    std::fs::write(&cert, pki::pem(&signer())).unwrap();
    std::fs::write(&key, pki::key_pem(&p.device_keys[0])).unwrap();
    let out = testkit::openssl(
        &[
            "cms",
            "-sign",
            "-binary",
            "-nodetach",
            "-outform",
            "DER",
            "-signer",
            cert.to_str().unwrap(),
            "-inkey",
            key.to_str().unwrap(),
        ],
        Some(b"hello"),
    )
    .unwrap();
    assert!(out.success());
    assert_eq!(
        DecodedRequest::decode(&out.stdout).unwrap_err(),
        DecodeError::MissingAttribute("messageType")
    );
}

#[test]
fn bad_signature_and_digest_are_bad_message_check() {
    let good = valid_request();
    // The signature value is the last OCTET STRING of the SignerInfo, at the end of the message.
    let mut bad_sig = good.clone();
    let n = bad_sig.len();
    bad_sig[n - 10] ^= 0x01;
    let r = verify(&bad_sig).unwrap_err();
    assert_eq!(r, Refusal::BadSignature);
    assert_eq!(r.fail_info(), FailInfo::BadMessageCheck);
    // Content changed after signing: messageDigest no longer matches.
    let mut bad_content = good;
    let pos = bad_content
        .windows(4)
        .position(|w| w == [0x04, 0x82, 0x01, 0x00])
        .unwrap()
        + 10;
    bad_content[pos] ^= 0x01;
    assert_eq!(
        verify(&bad_content).unwrap_err(),
        Refusal::MessageDigestMismatch
    );
    // No signer certificate in the message.
    let p = pki::ra_hierarchy();
    let env = seal(&csr_der(), &[&p.ra_enc], ContentCipher::Aes128Cbc).unwrap();
    let r = verify(&raw("19", &[1; 16], Some(&env), false)).unwrap_err();
    assert_eq!(r, Refusal::SignerCertificateMissing);
    assert_eq!(r.fail_info(), FailInfo::BadMessageCheck);
}

#[test]
fn unknown_message_types_are_bad_request() {
    let p = pki::ra_hierarchy();
    let env = seal(&csr_der(), &[&p.ra_enc], ContentCipher::Aes128Cbc).unwrap();
    for mt in ["18", "99", "3", "019", "0", "1e1", "-1"] {
        let r = verify(&raw(mt, &[1; 16], Some(&env), true)).unwrap_err();
        assert_eq!(r, Refusal::MessageTypeNotSupported(mt.to_owned()), "{mt}");
        assert_eq!(r.fail_info(), FailInfo::BadRequest);
    }
    assert!(verify(&raw("19", &[1; 16], Some(&env), true)).is_ok());
    // Characters outside PrintableString cannot even be addressed.
    let bad = raw("19\n", &[1; 16], Some(&env), true);
    assert_eq!(
        DecodedRequest::decode(&bad).unwrap_err(),
        DecodeError::InvalidAttribute("messageType")
    );
}

#[test]
fn nonces_that_are_not_16_bytes_are_bad_request() {
    let p = pki::ra_hierarchy();
    let env = seal(&csr_der(), &[&p.ra_enc], ContentCipher::Aes128Cbc).unwrap();
    for len in [0usize, 15, 17, 64] {
        let r = verify(&raw("19", &vec![9; len], Some(&env), true)).unwrap_err();
        assert_eq!(r, Refusal::BadNonce(len));
        assert_eq!(r.fail_info(), FailInfo::BadRequest);
    }
    let huge = raw("19", &[9; 65], Some(&env), true);
    assert_eq!(
        DecodedRequest::decode(&huge).unwrap_err(),
        DecodeError::InvalidAttribute("senderNonce")
    );
}

#[test]
fn a_request_without_content_is_bad_request() {
    let r = open(&raw("19", &[1; 16], None, true)).unwrap_err();
    assert_eq!(r, Refusal::MissingContent);
    assert_eq!(r.fail_info(), FailInfo::BadRequest);
}

#[test]
fn everything_under_the_envelope_fails_the_same_way() {
    let p = pki::ra_hierarchy();
    let csr = csr_der();
    let other = pki::ra_hierarchy().issue(&p.device_keys[1], "someone else", 5);
    let for_other = seal(&csr, &[&other], ContentCipher::Aes128Cbc).unwrap();
    let not_a_csr = seal(
        b"\x30\x03\x02\x01\x05",
        &[&p.ra_enc],
        ContentCipher::Aes128Cbc,
    )
    .unwrap();
    let mut bad_csr_sig = csr.clone();
    let n = bad_csr_sig.len();
    bad_csr_sig[n - 3] ^= 0x01;
    let bad_csr_sig = seal(&bad_csr_sig, &[&p.ra_enc], ContentCipher::Aes128Cbc).unwrap();
    let mut bad_key = seal(&csr, &[&p.ra_enc], ContentCipher::Aes128Cbc).unwrap();
    let at = bad_key
        .windows(4)
        .position(|w| w == [0x04, 0x82, 0x01, 0x00])
        .unwrap()
        + 4;
    bad_key[at + 100] ^= 0xff; // the RSA-encrypted content key
    let mut bad_ciphertext = seal(&csr, &[&p.ra_enc], ContentCipher::Aes128Cbc).unwrap();
    let n = bad_ciphertext.len();
    bad_ciphertext[n - 20] ^= 0x01;
    let cases = [
        (for_other, EnvelopeFault::NoMatchingRecipient),
        (bad_key, EnvelopeFault::ContentDecryption),
        (bad_csr_sig, EnvelopeFault::CsrSignature),
    ];
    for (env, fault) in cases {
        let r = open(&raw("19", &[1; 16], Some(&env), true)).unwrap_err();
        assert_eq!(r, Refusal::Envelope(fault));
        assert_eq!(r.fail_info(), FailInfo::BadMessageCheck);
        assert_eq!(
            r.fail_info_text(),
            fail_info_text(FailInfo::BadMessageCheck)
        );
    }
    for env in [not_a_csr, bad_ciphertext] {
        let r = open(&raw("19", &[1; 16], Some(&env), true)).unwrap_err();
        assert!(matches!(r, Refusal::Envelope(_)), "{r:?}");
        assert_eq!(r.fail_info(), FailInfo::BadMessageCheck);
    }
    // Garbage where the EnvelopedData should be is the same uniform failure.
    let r = open(&raw("19", &[1; 16], Some(b"\x04\x02ab"), true)).unwrap_err();
    assert!(matches!(
        r,
        Refusal::Envelope(EnvelopeFault::InnerContent(_))
    ));
}

#[test]
fn algorithms_are_decided_from_public_oids_first() {
    let p = pki::ra_hierarchy();
    let env = seal(&csr_der(), &[&p.ra_enc], ContentCipher::DesEde3Cbc).unwrap();
    let keys = [DecryptionKey {
        cert: &p.ra_enc,
        key: &p.ra_enc_key,
    }];
    let strict = AlgorithmPolicy::strict();
    let msg = raw("19", &[1; 16], Some(&env), true);
    let r = DecodedRequest::decode(&msg)
        .unwrap()
        .verify(&strict)
        .unwrap()
        .open(&keys, &strict)
        .unwrap_err();
    assert_eq!(r.fail_info(), FailInfo::BadAlg);
    // A 1024-bit request key is refused with badAlg after the envelope opens.
    let small = pki::rsa_key(1024);
    let small_csr = build(
        &small,
        &pki::name("small"),
        None,
        None,
        MessageDigest::sha256(),
    )
    .unwrap();
    let env = seal(&small_csr, &[&p.ra_enc], ContentCipher::Aes128Cbc).unwrap();
    let r = open(&raw("19", &[1; 16], Some(&env), true)).unwrap_err();
    assert_eq!(r.fail_info(), FailInfo::BadAlg);
}

#[test]
fn signing_time_is_checked_only_when_asked() {
    let p = pki::ra_hierarchy();
    let cert = signer();
    let tx = Transaction {
        transaction_id: TransactionId::new("t").unwrap(),
        sender_nonce: Nonce([1; 16]),
    };
    let body = RequestBody::PkcsReq(Csr::from_der(&csr_der()).unwrap());
    let opts = RequestOptions {
        signing_time: Some(1_700_000_000),
        ..RequestOptions::default()
    };
    let der = build_request(
        &body,
        SignerIdentity {
            cert: &cert,
            key: &p.device_keys[0],
        },
        &[&p.ra_enc],
        &tx,
        &opts,
    )
    .unwrap();
    let v = DecodedRequest::decode(&der)
        .unwrap()
        .verify(&AlgorithmPolicy::default())
        .unwrap();
    assert!(v.check_signing_time(1_700_000_100, 300).is_ok());
    let r = v.check_signing_time(1_700_086_400, 300).unwrap_err();
    assert_eq!(r.fail_info(), FailInfo::BadTime);
}
