//! Requester -> responder -> requester for every message type and every reply status, over
//! random transactionIDs, nonces, digests and ciphers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit::pki;

use openssl::hash::MessageDigest;
use openssl::x509::X509;
use proptest::prelude::*;
use scep::client::{
    CertRep, RequestOptions, Transaction, build_request, open_cert_rep, self_signed_certificate,
};
use scep::cms::IssuerAndSerialNumber;
use scep::cms::enveloped::DecryptionKey;
use scep::cms::signed::SignerIdentity;
use scep::csr::{ChallengePassword, Csr, build};
use scep::server::{DecodedRequest, Responder};
use scep::{
    AlgorithmPolicy, ContentCipher, DigestAlgorithm, FailInfo, IssuerAndSubject, MessageType,
    Nonce, RequestBody, TransactionId,
};

#[derive(Clone, Copy, Debug)]
enum Kind {
    PkcsReq,
    RenewalReq,
    CertPoll,
    GetCert,
    GetCrl,
}

#[derive(Clone, Copy, Debug)]
enum Status {
    Success,
    Failure(FailInfo),
    Pending,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::PkcsReq),
        Just(Kind::RenewalReq),
        Just(Kind::CertPoll),
        Just(Kind::GetCert),
        Just(Kind::GetCrl)
    ]
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Success),
        Just(Status::Pending),
        prop_oneof![
            Just(FailInfo::BadAlg),
            Just(FailInfo::BadMessageCheck),
            Just(FailInfo::BadRequest),
            Just(FailInfo::BadTime),
            Just(FailInfo::BadCertId)
        ]
        .prop_map(Status::Failure),
    ]
}

fn digest() -> impl Strategy<Value = DigestAlgorithm> {
    prop_oneof![
        Just(DigestAlgorithm::Sha1),
        Just(DigestAlgorithm::Sha256),
        Just(DigestAlgorithm::Sha384),
        Just(DigestAlgorithm::Sha512)
    ]
}

fn cipher() -> impl Strategy<Value = ContentCipher> {
    prop_oneof![
        Just(ContentCipher::DesCbc),
        Just(ContentCipher::DesEde3Cbc),
        Just(ContentCipher::Aes128Cbc),
        Just(ContentCipher::Aes192Cbc),
        Just(ContentCipher::Aes256Cbc)
    ]
}

/// The request body for `kind`, and the certificate that signs it.
fn body(kind: Kind, challenge: &str) -> (RequestBody, X509) {
    let p = pki::ra_hierarchy();
    let key = &p.device_keys[0];
    let subject = pki::name("round-trip");
    let csr = || {
        let der = build(
            key,
            &subject,
            None,
            Some(&ChallengePassword::new(challenge)),
            MessageDigest::sha256(),
        )
        .unwrap();
        Csr::from_der(&der).unwrap()
    };
    let issued = pki::ra_hierarchy().issue(key, "round-trip", 4242);
    let self_signed = self_signed_certificate(key, &subject, 1_700_000_000, 1_700_003_600).unwrap();
    match kind {
        Kind::PkcsReq => (RequestBody::PkcsReq(csr()), self_signed),
        Kind::RenewalReq => (RequestBody::RenewalReq(csr()), issued),
        Kind::CertPoll => (
            RequestBody::CertPoll(IssuerAndSubject::new(&p.ca, &subject).unwrap()),
            self_signed,
        ),
        Kind::GetCert => (
            RequestBody::GetCert(IssuerAndSerialNumber::of(&issued).unwrap()),
            issued,
        ),
        Kind::GetCrl => (
            RequestBody::GetCrl(IssuerAndSerialNumber::of(&issued).unwrap()),
            issued,
        ),
    }
}

fn same_body(a: &RequestBody, b: &RequestBody) -> bool {
    a.message_type() == b.message_type() && a.to_der() == b.to_der()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_message_type_round_trips(
        kind in kind(),
        status in status(),
        digest in digest(),
        cipher in cipher(),
        txid in "[A-Za-z0-9 '()+,./:=?-]{1,128}",
        nonce in any::<[u8; 16]>(),
        reply_nonce in any::<[u8; 16]>(),
        challenge in "[A-Za-z0-9]{8,32}",
        text in proptest::option::of("[ -~]{0,60}"),
    ) {
        let p = pki::ra_hierarchy();
        let key = &p.device_keys[0];
        let (body, signer_cert) = body(kind, &challenge);
        let tx = Transaction { transaction_id: TransactionId::new(&txid).unwrap(), sender_nonce: Nonce(nonce) };
        let opts = RequestOptions { digest, cipher, signing_time: Some(1_700_000_000) };
        let signer = SignerIdentity { cert: &signer_cert, key };
        let request = build_request(&body, signer, &[&p.ra_enc], &tx, &opts).unwrap();

        // Responder.
        let policy = AlgorithmPolicy::default();
        let verified = DecodedRequest::decode(&request).unwrap().verify(&policy).unwrap();
        prop_assert_eq!(verified.message_type(), body.message_type());
        prop_assert_eq!(verified.transaction_id(), &tx.transaction_id);
        prop_assert_eq!(verified.signing_time().unwrap(), Some(1_700_000_000));
        let opened = verified.open(&[DecryptionKey { cert: &p.ra_enc, key: &p.ra_enc_key }], &policy).unwrap();
        prop_assert!(same_body(&opened.body, &body));
        if let RequestBody::PkcsReq(csr) = &opened.body {
            prop_assert_eq!(csr.challenge_password().unwrap().expose(), challenge.as_str());
        }
        prop_assert_eq!(opened.reply.digest, digest);
        prop_assert_eq!(opened.reply.cipher, cipher.for_reply());
        let responder = Responder {
            signer: SignerIdentity { cert: &p.ra_sign, key: &p.ra_sign_key },
            sender_nonce: Nonce(reply_nonce),
            signing_time: None,
            no_envelope: Default::default(),
        };
        let issued = pki::ra_hierarchy().issue(key, "round-trip", 4243);
        let reply = match status {
            Status::Success => opened.reply.success(&responder, &[&issued, &p.ca], &[]).unwrap(),
            Status::Failure(f) => opened.reply.failure(&responder, f, text.as_deref()).unwrap(),
            Status::Pending => opened.reply.pending(&responder).unwrap(),
        };

        // Requester.
        let trusted = [p.ra_sign.clone(), p.ca.clone()];
        let decrypt = DecryptionKey { cert: &signer_cert, key };
        let rep = open_cert_rep(&reply, &tx, &trusted, decrypt, &policy).unwrap();
        match (status, rep) {
            (Status::Success, CertRep::Success(payload)) => {
                prop_assert_eq!(payload.certificates.len(), 2);
                prop_assert_eq!(payload.certificates[0].to_der().unwrap(), issued.to_der().unwrap());
            }
            (Status::Failure(f), CertRep::Failure { fail_info, text: got }) => {
                prop_assert_eq!(fail_info, f);
                prop_assert_eq!(got, text);
            }
            (Status::Pending, CertRep::Pending) => {}
            (want, got) => prop_assert!(false, "wanted {:?}, got {:?}", want, got),
        }

        // A reply is bound to its request: another transaction or an untrusted signer fails.
        let other = Transaction { sender_nonce: Nonce(reply_nonce), ..tx.clone() };
        let decrypt = DecryptionKey { cert: &signer_cert, key };
        prop_assert!(open_cert_rep(&reply, &other, &trusted, decrypt, &policy).is_err() || reply_nonce == nonce);
        let decrypt = DecryptionKey { cert: &signer_cert, key };
        prop_assert!(open_cert_rep(&reply, &tx, std::slice::from_ref(&p.ra_enc), decrypt, &policy).is_err());
    }
}

#[test]
fn a_request_is_not_a_reply_and_a_reply_is_not_a_request() {
    let p = pki::ra_hierarchy();
    let (body, signer_cert) = body(Kind::PkcsReq, "x");
    let key = &p.device_keys[0];
    let tx = Transaction {
        transaction_id: TransactionId::new("t").unwrap(),
        sender_nonce: Nonce([1; 16]),
    };
    let request = build_request(
        &body,
        SignerIdentity {
            cert: &signer_cert,
            key,
        },
        &[&p.ra_enc],
        &tx,
        &Default::default(),
    )
    .unwrap();
    let decrypt = DecryptionKey {
        cert: &signer_cert,
        key,
    };
    let trusted = [signer_cert.clone()];
    let err = open_cert_rep(
        &request,
        &tx,
        &trusted,
        decrypt,
        &AlgorithmPolicy::default(),
    )
    .unwrap_err();
    assert!(matches!(err, scep::ReplyError::NotCertRep), "{err:?}");
    let policy = AlgorithmPolicy::default();
    let opened = DecodedRequest::decode(&request)
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
    let responder = Responder {
        signer: SignerIdentity {
            cert: &p.ra_sign,
            key: &p.ra_sign_key,
        },
        sender_nonce: Nonce([2; 16]),
        signing_time: None,
        no_envelope: Default::default(),
    };
    let reply = opened.reply.pending(&responder).unwrap();
    let err = DecodedRequest::decode(&reply)
        .unwrap()
        .verify(&policy)
        .unwrap_err();
    assert_eq!(
        err,
        scep::Refusal::MessageTypeNotSupported(MessageType::CertRep.code().to_string())
    );
}
