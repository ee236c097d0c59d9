//! Known answers from software nobody here wrote: micromdm `scepclient` and `scepserver`
//! (see `testdata/micromdm/README.md` for provenance and the command that regenerates them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use openssl::pkey::PKey;
use openssl::x509::{X509, X509Req};
use scep::client::{CertRep, Transaction, open_cert_rep};
use scep::cms::enveloped::DecryptionKey;
use scep::cms::signed::SignerIdentity;
use scep::error::AlgorithmKind;
use scep::http::{CONTENT_TYPE_CA_CERT, CaCertificates};
use scep::server::{DecodedRequest, Responder};
use scep::{
    AlgorithmPolicy, ContentCipher, DigestAlgorithm, MessageType, Nonce, Refusal, RequestBody,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/micromdm");

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap()
}

fn cert(name: &str) -> X509 {
    X509::from_pem(&read(name)).unwrap()
}

struct Vectors {
    ca: X509,
    ca_key: PKey<openssl::pkey::Private>,
    client_key: PKey<openssl::pkey::Private>,
    csr_der: Vec<u8>,
    challenge: String,
}

fn vectors() -> Vectors {
    let info = String::from_utf8(read("capture-info.txt")).unwrap();
    let challenge = info
        .lines()
        .find_map(|l| l.strip_prefix("challenge: "))
        .unwrap()
        .trim()
        .to_owned();
    Vectors {
        ca: cert("ca.pem"),
        ca_key: PKey::private_key_from_pem(&read("ca.key.pem")).unwrap(),
        client_key: PKey::private_key_from_pem(&read("client.key.pem")).unwrap(),
        csr_der: X509Req::from_pem(&read("client.csr.pem"))
            .unwrap()
            .to_der()
            .unwrap(),
        challenge,
    }
}

#[test]
fn opens_micromdm_pkcsreq() {
    let v = vectors();
    let der = read("pkcsreq.der");
    let policy = AlgorithmPolicy::default();
    let decoded = DecodedRequest::decode(&der).unwrap();
    assert_eq!(decoded.message_type_text(), "19");
    let verified = decoded.verify(&policy).unwrap();
    assert_eq!(verified.message_type(), MessageType::PkcsReq);
    assert_eq!(
        verified.signer_certificate().to_der().unwrap(),
        cert("client-signer.cert.pem").to_der().unwrap()
    );
    assert!(verified.signing_time().unwrap().is_some());
    let opened = verified
        .open(
            &[DecryptionKey {
                cert: &v.ca,
                key: &v.ca_key,
            }],
            &policy,
        )
        .unwrap();
    let RequestBody::PkcsReq(csr) = &opened.body else {
        panic!("not a PKCSReq: {:?}", opened.body)
    };
    assert_eq!(csr.to_der(), v.csr_der.as_slice());
    assert_eq!(csr.challenge_password().unwrap().expose(), v.challenge);
    assert!(opened.signed_with_requested_key());
    // micromdm sends SHA-1 and single DES; the reply must use neither DES nor anything weaker.
    assert_eq!(opened.reply.digest, DigestAlgorithm::Sha1);
    assert_eq!(opened.reply.cipher, ContentCipher::DesEde3Cbc);
}

#[test]
fn strict_mode_refuses_micromdm_algorithms_with_bad_alg() {
    let der = read("pkcsreq.der");
    let err = DecodedRequest::decode(&der)
        .unwrap()
        .verify(&AlgorithmPolicy::strict())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Refusal::UnsupportedAlgorithm {
                kind: AlgorithmKind::Digest,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.fail_info(), scep::FailInfo::BadAlg);
    // Allowing SHA-1 but not DES moves the refusal to the envelope, still badAlg.
    let v = vectors();
    let policy = AlgorithmPolicy {
        allow_des: false,
        ..AlgorithmPolicy::default()
    };
    let err = DecodedRequest::decode(&der)
        .unwrap()
        .verify(&policy)
        .unwrap()
        .open(
            &[DecryptionKey {
                cert: &v.ca,
                key: &v.ca_key,
            }],
            &policy,
        )
        .unwrap_err();
    assert!(matches!(
        err,
        Refusal::UnsupportedAlgorithm {
            kind: AlgorithmKind::ContentEncryption,
            ..
        }
    ));
}

#[test]
fn opens_micromdm_renewalreq_signed_by_the_old_certificate() {
    let v = vectors();
    let der = read("renewalreq.der");
    let policy = AlgorithmPolicy::default();
    let verified = DecodedRequest::decode(&der)
        .unwrap()
        .verify(&policy)
        .unwrap();
    assert_eq!(verified.message_type(), MessageType::RenewalReq);
    let old = cert("client.cert.pem");
    assert_eq!(
        verified.signer_certificate().to_der().unwrap(),
        old.to_der().unwrap()
    );
    assert!(old.verify(&v.ca.public_key().unwrap()).unwrap());
    let opened = verified
        .open(
            &[DecryptionKey {
                cert: &v.ca,
                key: &v.ca_key,
            }],
            &policy,
        )
        .unwrap();
    let RequestBody::RenewalReq(csr) = &opened.body else {
        panic!("not a RenewalReq")
    };
    assert_eq!(csr.to_der(), v.csr_der.as_slice());
}

#[test]
fn opens_micromdm_certreps_as_the_client() {
    let v = vectors();
    let policy = AlgorithmPolicy::default();
    let signer = cert("client-signer.cert.pem");
    let cases = [
        (
            "pkcsreq.der",
            "pkcsreq-certrep.der",
            &signer,
            "client.cert.pem",
        ),
        (
            "renewalreq.der",
            "renewalreq-certrep.der",
            &cert("client.cert.pem"),
            "client-renewed.cert.pem",
        ),
    ];
    for (req, rep, signer_cert, issued) in cases {
        let req = read(req);
        let ctx = DecodedRequest::decode(&req).unwrap().reply_context();
        let tx = transaction_of(&req, &ctx.transaction_id);
        let key = DecryptionKey {
            cert: signer_cert,
            key: &v.client_key,
        };
        let rep =
            open_cert_rep(&read(rep), &tx, std::slice::from_ref(&v.ca), key, &policy).unwrap();
        let CertRep::Success(payload) = rep else {
            panic!("expected SUCCESS, got {rep:?}")
        };
        assert_eq!(payload.certificates.len(), 1);
        assert_eq!(
            payload.certificates[0].to_der().unwrap(),
            cert(issued).to_der().unwrap()
        );
        // A reply checked against another nonce is refused.
        let wrong = Transaction {
            sender_nonce: Nonce([0; 16]),
            ..tx
        };
        let key = DecryptionKey {
            cert: signer_cert,
            key: &v.client_key,
        };
        assert!(
            open_cert_rep(
                &read(rep_name(issued)),
                &wrong,
                std::slice::from_ref(&v.ca),
                key,
                &policy
            )
            .is_err()
        );
    }
}

fn rep_name(issued: &str) -> &'static str {
    if issued == "client.cert.pem" {
        "pkcsreq-certrep.der"
    } else {
        "renewalreq-certrep.der"
    }
}

/// What a client that sent `req` checks the reply against.
fn transaction_of(req: &[u8], txid: &scep::TransactionId) -> Transaction {
    let decoded = DecodedRequest::decode(req).unwrap();
    Transaction {
        transaction_id: txid.clone(),
        sender_nonce: Nonce::from_slice(decoded.sender_nonce()).unwrap(),
    }
}

#[test]
fn parses_micromdm_getcacert_and_getcacaps() {
    let certs =
        CaCertificates::from_response(CONTENT_TYPE_CA_CERT, &read("getcacert.der")).unwrap();
    assert_eq!(certs.all().len(), 1);
    assert_eq!(
        certs.encryption_recipient().unwrap().to_der().unwrap(),
        cert("ca.pem").to_der().unwrap()
    );
    let caps = scep::caps::Capabilities::parse(&String::from_utf8(read("getcacaps.txt")).unwrap());
    assert!(caps.has(scep::caps::Capability::Renewal));
    assert!(caps.has(scep::caps::Capability::PostPkiOperation));
    assert_eq!(caps.strongest_digest(), Some(DigestAlgorithm::Sha256));
    assert_eq!(caps.strongest_cipher(), Some(ContentCipher::Aes128Cbc));
}

#[test]
fn answers_the_micromdm_request_with_a_certrep_the_client_side_opens() {
    // Our responder answers scepclient's request (as ca-mock would, here with the vector's CA).
    let v = vectors();
    let policy = AlgorithmPolicy::default();
    let der = read("pkcsreq.der");
    let opened = DecodedRequest::decode(&der)
        .unwrap()
        .verify(&policy)
        .unwrap()
        .open(
            &[DecryptionKey {
                cert: &v.ca,
                key: &v.ca_key,
            }],
            &policy,
        )
        .unwrap();
    let issued = cert("client.cert.pem");
    let responder = Responder {
        signer: SignerIdentity {
            cert: &v.ca,
            key: &v.ca_key,
        },
        sender_nonce: Nonce::random().unwrap(),
        signing_time: Some(1_790_000_000),
        no_envelope: Default::default(),
    };
    let reply = opened
        .reply
        .success(&responder, &[&issued, &v.ca], &[])
        .unwrap();
    let tx = transaction_of(&der, &opened.reply.transaction_id);
    let signer = cert("client-signer.cert.pem");
    let key = DecryptionKey {
        cert: &signer,
        key: &v.client_key,
    };
    let CertRep::Success(payload) =
        open_cert_rep(&reply, &tx, std::slice::from_ref(&v.ca), key, &policy).unwrap()
    else {
        panic!("expected SUCCESS");
    };
    assert_eq!(
        payload.certificates[0].to_der().unwrap(),
        issued.to_der().unwrap()
    );
    // The reply is 3DES (not DES): OpenSSL opens it without the legacy provider.
    let rep = testkit::openssl(
        &["cms", "-cmsout", "-print", "-inform", "DER"],
        Some(&reply),
    )
    .unwrap();
    assert!(rep.success());
}
