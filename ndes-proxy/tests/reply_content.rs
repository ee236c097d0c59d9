//! Every kind of CertRep the pipeline sends (SUCCESS, FAILURE with each failInfo, PENDING) is
//! read by OpenSSL's PKCS7 API as C clients read it (`PKCS7_verify`, through the openssl crate
//! and `openssl smime -verify`), not only by the `scep` decoder: FAILURE and PENDING carry an
//! empty eContent by default; the strict switch omits it (docs/decisions.md #1, issue 16 item 4).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use common::{Device, Server, failure, issued, name, now, pending, pki, poll_body};
use ndes_proxy::Settings;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509PurposeId};
use scep::client::{RequestOptions, Transaction};
use scep::cms::signed::{SignedData, SignerIdentity};
use scep::server::NoEnvelopeContent;
use scep::{ContentCipher, DigestAlgorithm, FailInfo, Nonce, RequestBody, TransactionId};

/// A device with a key of its own (so each one is a transaction of its own).
fn device(cn: &str) -> Device {
    let key = testkit::pki::rsa_key(2048);
    let signer =
        scep::client::self_signed_certificate(&key, &name(cn), now() - 60, now() + 3600).unwrap();
    let tx = Transaction {
        transaction_id: TransactionId::from_public_key(&key.public_key_to_der().unwrap()).unwrap(),
        sender_nonce: Nonce::random().unwrap(),
    };
    Device {
        key,
        signer,
        tx,
        cn: cn.to_owned(),
    }
}

/// A request from `d` with `opts` (its signing time defaults to now).
fn request_with(d: &Device, body: &RequestBody, opts: RequestOptions) -> Vec<u8> {
    let signer = SignerIdentity {
        cert: &d.signer,
        key: &d.key,
    };
    scep::client::build_request(body, signer, &[&pki().ra_enc], &d.tx, &opts).unwrap()
}

async fn post(s: &Server, der: Vec<u8>) -> Vec<u8> {
    let r = s.post("/scep?operation=PKIOperation", der).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

/// `PKCS7_verify` against the test CA (purpose any, as the RA certificate is no S/MIME
/// signer): the content it returns, or OpenSSL's error.
fn pkcs7_verify(reply: &[u8]) -> Result<Vec<u8>, String> {
    let p7 = Pkcs7::from_der(reply).map_err(|e| e.to_string())?;
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(pki().ca.clone()).unwrap();
    store.set_purpose(X509PurposeId::ANY).unwrap();
    let store = store.build();
    let certs = Stack::<X509>::new().unwrap();
    let signers = p7.signers(&certs, Pkcs7Flags::empty()).unwrap();
    assert_eq!(signers.len(), 1);
    assert_eq!(
        signers[0].to_der().unwrap(),
        pki().ra_sign.to_der().unwrap(),
        "signed by the RA"
    );
    let mut out = Vec::new();
    p7.verify(&certs, &store, None, Some(&mut out), Pkcs7Flags::empty())
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// `openssl smime -verify` (the PKCS7 API on the command line).
fn smime_verify(reply: &[u8]) -> testkit::CmdOutput {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pki().ca.to_pem().unwrap()).unwrap();
    let ca = ca.to_str().unwrap();
    let args = [
        "smime", "-verify", "-binary", "-inform", "DER", "-CAfile", ca, "-purpose", "any",
    ];
    testkit::openssl(&args, Some(reply)).unwrap()
}

/// What a reply should be.
#[derive(Debug)]
enum Kind {
    Success,
    Failure(FailInfo),
    Pending,
}

/// One reply of each kind, through the real pipeline, with the device that asked.
async fn every_reply(s: &Server) -> Vec<(Kind, Device, Vec<u8>)> {
    let mut out = Vec::new();
    let d = device("reply-success");
    let body = RequestBody::PkcsReq(d.csr(Some("c1")));
    let rep = post(s, d.request(&body)).await;
    out.push((Kind::Success, d, rep));

    let d = device("reply-bad-alg");
    let opts = RequestOptions {
        cipher: ContentCipher::DesEde3Cbc,
        signing_time: Some(now()),
        ..RequestOptions::default()
    };
    let rep = post(
        s,
        request_with(&d, &RequestBody::PkcsReq(d.csr(Some("c2"))), opts),
    )
    .await;
    out.push((Kind::Failure(FailInfo::BadAlg), d, rep));

    let d = device("reply-bad-message-check");
    let mut bad_sig = d.request(&RequestBody::PkcsReq(d.csr(Some("c2"))));
    let n = bad_sig.len();
    bad_sig[n - 10] ^= 1;
    let rep = post(s, bad_sig).await;
    out.push((Kind::Failure(FailInfo::BadMessageCheck), d, rep));

    let d = device("reply-bad-request");
    let rep = post(s, d.request(&RequestBody::PkcsReq(d.csr(Some("wrong"))))).await;
    out.push((Kind::Failure(FailInfo::BadRequest), d, rep));

    let d = device("reply-bad-time");
    let opts = RequestOptions {
        digest: DigestAlgorithm::Sha256,
        signing_time: Some(now() - 86_400),
        ..RequestOptions::default()
    };
    let rep = post(
        s,
        request_with(&d, &RequestBody::PkcsReq(d.csr(Some("c2"))), opts),
    )
    .await;
    out.push((Kind::Failure(FailInfo::BadTime), d, rep));

    let d = device("reply-bad-cert-id");
    let rep = post(s, d.request(&poll_body("reply-bad-cert-id"))).await;
    out.push((Kind::Failure(FailInfo::BadCertId), d, rep));

    s.ca.down.store(true, Ordering::SeqCst);
    let d = device("reply-pending");
    let rep = post(s, d.request(&RequestBody::PkcsReq(d.csr(Some("c3"))))).await;
    s.ca.down.store(false, Ordering::SeqCst);
    out.push((Kind::Pending, d, rep));
    out
}

/// Strict algorithms (badAlg for 3DES) and a signingTime window (badTime).
fn settings(no_envelope_content: NoEnvelopeContent) -> Settings {
    Settings {
        strict_algorithms: true,
        signing_time_tolerance: Some(600),
        no_envelope_content,
        ..Settings::default()
    }
}

/// The project's own client reads the reply as `kind`.
fn check_own_client(kind: &Kind, d: &Device, reply: &[u8]) {
    let rep = d.open(reply);
    match kind {
        Kind::Success => {
            issued(rep);
        }
        Kind::Failure(f) => assert_eq!(failure(rep), *f, "{kind:?}"),
        Kind::Pending => pending(rep),
    }
}

#[tokio::test]
async fn pkcs7_verify_reads_every_reply_kind() {
    let s = Server::start_with(&["c1", "c3"], settings(NoEnvelopeContent::default())).await;
    let replies = every_reply(&s).await;
    for (kind, d, reply) in &replies {
        check_own_client(kind, d, reply);
        let content = pkcs7_verify(reply).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let cli = smime_verify(reply);
        assert!(cli.success(), "{kind:?}: {}", cli.stderr_str());
        assert_eq!(cli.stdout, content, "{kind:?}");
        let sd = SignedData::from_content_info(reply).unwrap();
        match kind {
            // The pkcsPKIEnvelope, which the device opens.
            Kind::Success => assert!(!content.is_empty()),
            // An empty eContent, present.
            _ => {
                assert_eq!(sd.content.as_deref(), Some(&[][..]), "{kind:?}");
                assert!(content.is_empty(), "{kind:?}");
            }
        }
    }
    s.shutdown().await;
}

#[tokio::test]
async fn the_strict_switch_omits_the_content_and_the_own_client_still_reads_it() {
    let s = Server::start_with(&["c1", "c3"], settings(NoEnvelopeContent::Absent)).await;
    let replies = every_reply(&s).await;
    for (kind, d, reply) in &replies {
        check_own_client(kind, d, reply);
        let sd = SignedData::from_content_info(reply).unwrap();
        if let Kind::Success = kind {
            assert!(sd.content.is_some_and(|c| !c.is_empty()));
            pkcs7_verify(reply).unwrap();
            continue;
        }
        assert!(sd.content.is_none(), "{kind:?}: eContent absent");
        // Why the default is the empty content: the PKCS7 API cannot read this form.
        let err = pkcs7_verify(reply).unwrap_err();
        assert!(err.contains("no content"), "{kind:?}: {err}");
    }
    s.shutdown().await;
}
