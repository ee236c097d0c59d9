//! EC requesters (issue #15 item 4): a CertRep SUCCESS to an EC key is sealed by key agreement
//! (RFC 5753 KeyAgreeRecipientInfo) that `openssl cms -decrypt` opens and the requester side of
//! this crate opens; a requester key no envelope can reach is badAlg when the request is opened,
//! before a server does anything for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use scep::client::{self, CertRep, RequestOptions, Transaction};
use scep::cms::enveloped::{DecryptionKey, seal};
use scep::cms::kari::{RecipientKind, recipient_kind};
use scep::cms::signed::{SignerIdentity, certs_only};
use scep::csr::{ChallengePassword, Csr, build};
use scep::server::{DecodedRequest, Responder};
use scep::{AlgorithmPolicy, ContentCipher, FailInfo, Nonce, RequestBody, TransactionId};
use testkit::pki;

fn ec_key(curve: Nid) -> PKey<Private> {
    let group = EcGroup::from_curve_name(curve).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = testkit::openssl(args, None).unwrap();
    assert!(
        out.success(),
        "openssl {args:?} failed: {}",
        out.stderr_str()
    );
    out.stdout
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A PKCSReq signed by a self-signed certificate of `key`, as a device sends it.
fn pkcs_req(key: &PKey<Private>, cipher: ContentCipher) -> (Vec<u8>, X509, Transaction) {
    let p = pki::ra_hierarchy();
    let subject = pki::name("ec-device");
    let csr_der = build(
        key,
        &subject,
        None,
        Some(&ChallengePassword::new("secret")),
        MessageDigest::sha256(),
    )
    .unwrap();
    let signer =
        client::self_signed_certificate(key, &subject, 1_700_000_000, 1_700_003_600).unwrap();
    let tx = Transaction {
        transaction_id: TransactionId::new("ec-interop-1").unwrap(),
        sender_nonce: Nonce::random().unwrap(),
    };
    let options = RequestOptions {
        cipher,
        ..RequestOptions::default()
    };
    let der = client::build_request(
        &RequestBody::PkcsReq(Csr::from_der(&csr_der).unwrap()),
        SignerIdentity { cert: &signer, key },
        &[&p.ra_enc],
        &tx,
        &options,
    )
    .unwrap();
    (der, signer, tx)
}

fn responder() -> Responder<'static> {
    let p = pki::ra_hierarchy();
    Responder {
        signer: SignerIdentity {
            cert: &p.ra_sign,
            key: &p.ra_sign_key,
        },
        sender_nonce: Nonce::random().unwrap(),
        signing_time: Some(1_700_000_200),
        no_envelope: Default::default(),
    }
}

#[test]
fn a_success_to_an_ec_requester_is_key_agreement_that_openssl_and_the_client_open() {
    let p = pki::ra_hierarchy();
    let dir = tempfile::tempdir().unwrap();
    let policy = AlgorithmPolicy::default();
    let combos = [
        (Nid::X9_62_PRIME256V1, ContentCipher::Aes128Cbc),
        (Nid::X9_62_PRIME256V1, ContentCipher::DesEde3Cbc),
        (Nid::SECP384R1, ContentCipher::Aes256Cbc),
        (Nid::SECP521R1, ContentCipher::Aes192Cbc),
    ];
    for (curve, cipher) in combos {
        let key = ec_key(curve);
        let (der, signer, tx) = pkcs_req(&key, cipher);
        let opened = DecodedRequest::decode(&der)
            .unwrap()
            .verify(&policy)
            .unwrap()
            .open(
                &[DecryptionKey {
                    cert: &p.ra_enc,
                    key: &p.ra_enc_key,
                }],
                &policy,
            )
            .unwrap();
        let issued = pki::CertSpec::new(&pki::name("ec-device"), None, 30)
            .issued_by(&p.ca, &p.ca_key)
            .build(&key);
        let rep = opened
            .reply
            .success(&responder(), &[&issued, &p.ca], &[])
            .unwrap();

        // The requester side of this crate opens it with the EC key.
        let got = client::open_cert_rep(
            &rep,
            &tx,
            std::slice::from_ref(&p.ra_sign),
            DecryptionKey {
                cert: &signer,
                key: &key,
            },
            &policy,
        )
        .unwrap();
        let CertRep::Success(certs) = got else {
            panic!("SUCCESS expected, got {got:?}");
        };
        assert_eq!(
            certs.certificates[0].to_der().unwrap(),
            issued.to_der().unwrap()
        );

        // OpenSSL's CMS opens the same envelope with the device's key and certificate.
        let rep_path = dir.path().join("rep.der");
        std::fs::write(&rep_path, &rep).unwrap();
        let env = dir.path().join("env.der");
        openssl(&[
            "cms",
            "-verify",
            "-noverify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            s(&rep_path),
            "-out",
            s(&env),
        ]);
        let dump = String::from_utf8(openssl(&[
            "cms",
            "-cmsout",
            "-print",
            "-inform",
            "DER",
            "-in",
            s(&env),
        ]))
        .unwrap();
        assert!(
            dump.contains("dhSinglePass-stdDH-sha256kdf-scheme") && dump.contains("originatorKey"),
            "{curve:?} {cipher:?}: not a KeyAgreeRecipientInfo:\n{dump}"
        );
        let dev = dir.path().join("dev.pem");
        std::fs::write(&dev, pki::pem(&signer)).unwrap();
        let dev_key = dir.path().join("dev.key");
        std::fs::write(&dev_key, pki::key_pem(&key)).unwrap();
        let payload = dir.path().join("payload.der");
        openssl(&[
            "cms",
            "-decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            s(&env),
            "-recip",
            s(&dev),
            "-inkey",
            s(&dev_key),
            "-out",
            s(&payload),
        ]);
        assert_eq!(
            std::fs::read(&payload).unwrap(),
            certs_only(&[&issued, &p.ca], &[]).unwrap(),
            "{curve:?} {cipher:?}"
        );
    }
}

#[test]
fn the_client_refuses_an_ec_envelope_sealed_to_another_key() {
    let p = pki::ra_hierarchy();
    let policy = AlgorithmPolicy::default();
    let key = ec_key(Nid::X9_62_PRIME256V1);
    let (der, signer, tx) = pkcs_req(&key, ContentCipher::Aes128Cbc);
    let opened = DecodedRequest::decode(&der)
        .unwrap()
        .verify(&policy)
        .unwrap()
        .open(
            &[DecryptionKey {
                cert: &p.ra_enc,
                key: &p.ra_enc_key,
            }],
            &policy,
        )
        .unwrap();
    let rep = opened.reply.success(&responder(), &[&p.ca], &[]).unwrap();
    let other = ec_key(Nid::X9_62_PRIME256V1);
    let err = client::open_cert_rep(
        &rep,
        &tx,
        std::slice::from_ref(&p.ra_sign),
        DecryptionKey {
            cert: &signer,
            key: &other,
        },
        &policy,
    )
    .unwrap_err();
    assert!(
        matches!(err, scep::ReplyError::Envelope(_)),
        "an envelope fault expected, got {err:?}"
    );
}

#[test]
fn a_requester_key_no_envelope_can_reach_is_bad_alg() {
    let p = pki::ra_hierarchy();
    let subject = pki::name("odd-key");
    let cases = [
        ("secp256k1", ec_key(Nid::SECP256K1)),
        ("Ed25519", PKey::generate_ed25519().unwrap()),
    ];
    for (what, key) in cases {
        let cert = pki::CertSpec::new(&subject, None, 30)
            .issued_by(&p.ca, &p.ca_key)
            .build_for(&key);
        let refusal = recipient_kind(&cert).unwrap_err();
        assert_eq!(refusal.fail_info(), FailInfo::BadAlg, "{what}");
        assert!(
            seal(b"x", &[&cert], ContentCipher::Aes128Cbc).is_err(),
            "{what}"
        );
    }
    let rsa = pki::CertSpec::new(&subject, None, 30).build(&pki::rsa_key(2048));
    assert_eq!(recipient_kind(&rsa).unwrap(), RecipientKind::KeyTransport);
    let ec = pki::CertSpec::new(&subject, None, 30).build(&pki::ec384_key());
    assert_eq!(recipient_kind(&ec).unwrap(), RecipientKind::KeyAgreement);
}
