//! The SCEP endpoint over 127.0.0.1: NDES-shaped informational answers, enrollment, renewal,
//! GetCert/GetCRL/CertPoll, retransmission, and the error contract one assertion per case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use common::{Device, Server, failure, issued, now, pki};
use policy_api::{Outcome, Rejection};
use scep::client::CertRep;
use scep::cms::IssuerAndSerialNumber;
use scep::http::{CONTENT_TYPE_CA_RA_CERT, CaCertificates, encode_get_message};
use scep::{ContentCipher, DigestAlgorithm, FailInfo, IssuerAndSubject, RequestBody};
use testkit::scep_msg::{RawRequest, build as build_raw};

#[tokio::test]
async fn answers_getcacaps_and_getcacert_like_ndes_on_every_path() {
    let s = Server::start(&[]).await;
    for path in ndes_proxy::routes::SCEP_PATHS {
        let caps = s.get(&format!("{path}?operation=GetCACaps")).await;
        assert_eq!(caps.status(), 200, "{path}");
        let text = caps.text().await.unwrap();
        for word in [
            "AES",
            "POSTPKIOperation",
            "Renewal",
            "SHA-256",
            "SHA-512",
            "SCEPStandard",
            "DES3",
            "SHA-1",
        ] {
            assert!(
                text.lines().any(|l| l == word),
                "{word} missing on {path}: {text}"
            );
        }
        assert!(!text.contains("GetNextCACert"), "no rollover configured");
        for message in ["", "&message=0", "&message=ca", "&message=CAIdentifier"] {
            let r = s.get(&format!("{path}?operation=GetCACert{message}")).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], CONTENT_TYPE_CA_RA_CERT);
            let certs =
                CaCertificates::from_response(CONTENT_TYPE_CA_RA_CERT, &r.bytes().await.unwrap())
                    .unwrap();
            assert_eq!(certs.all().len(), 3);
            assert_eq!(
                certs.encryption_recipient().unwrap().to_der().unwrap(),
                pki().ra_enc.to_der().unwrap()
            );
        }
    }
    let r = s.get("/scep?operation=GetNextCACert").await;
    assert_eq!(r.status(), 404);
    assert_eq!(s.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn strict_mode_advertises_only_what_it_accepts() {
    let settings = ndes_proxy::Settings {
        strict_algorithms: true,
        ..Default::default()
    };
    let s = Server::start_with(&[], settings).await;
    let text = s
        .get("/scep?operation=GetCACaps")
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("DES3") && !text.contains("SHA-1"), "{text}");
}

#[tokio::test]
async fn enrolls_by_post_and_by_get_with_client_quirks() {
    let s = Server::start(&["challenge-post", "challenge-get"]).await;
    let d = Device::new(0, "device-post");
    let cert = issued(
        d.send(&s, &RequestBody::PkcsReq(d.csr(Some("challenge-post"))))
            .await,
    );
    assert!(cert.public_key().unwrap().public_eq(&d.key));
    assert!(cert.verify(&pki().ca.public_key().unwrap()).unwrap());
    let notes = s.policy.notifications.lock().unwrap().clone();
    assert_eq!(notes.len(), 1);
    assert!(
        matches!(&notes[0].outcome, Outcome::Issued { certificate_der, .. } if *certificate_der == cert.to_der().unwrap())
    );

    // GET with the base64 not URL-encoded ('+' arrives as a space), as macOS sends it.
    let d = Device::new(1, "device-get");
    let der = d.request(&RequestBody::PkcsReq(d.csr(Some("challenge-get"))));
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    for path in ["/certsrv/mscep/mscep.dll", "/cgi-bin/pkiclient.exe"] {
        let raw = format!("{}{path}?operation=PKIOperation&message={}", s.url, b64);
        let r = s
            .http
            .get(reqwest::Url::parse(&raw).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        issued(d.open(&r.bytes().await.unwrap()));
    }
    let r = s
        .get(&format!(
            "/scep?operation=PKIOperation&message={}",
            encode_get_message(&der)
        ))
        .await;
    issued(d.open(&r.bytes().await.unwrap()));
}

#[tokio::test]
async fn a_retransmitted_request_returns_the_same_certificate() {
    let s = Server::start(&["once"]).await;
    let d = Device::new(0, "retransmit");
    let body = RequestBody::PkcsReq(d.csr(Some("once")));
    let first = issued(d.send(&s, &body).await);
    let second = issued(d.send(&s, &body).await);
    assert_eq!(first.to_der().unwrap(), second.to_der().unwrap());
    assert_eq!(
        s.ca.issued.lock().unwrap().len(),
        1,
        "one certificate, not two"
    );
    // The same transactionID with a different CSR is refused.
    let other_csr = Device::new(0, "retransmit-other").csr(Some("once"));
    assert_eq!(
        failure(d.send(&s, &RequestBody::PkcsReq(other_csr)).await),
        FailInfo::BadRequest
    );
}

#[tokio::test]
async fn wrong_reused_and_missing_challenges_are_bad_request_with_the_reason_logged() {
    let s = Server::start(&["good"]).await;
    let d = Device::new(0, "a");
    assert_eq!(
        failure(
            d.send(&s, &RequestBody::PkcsReq(d.csr(Some("wrong"))))
                .await
        ),
        FailInfo::BadRequest
    );
    assert_eq!(
        failure(d.send(&s, &RequestBody::PkcsReq(d.csr(None))).await),
        FailInfo::BadRequest
    );
    issued(d.send(&s, &RequestBody::PkcsReq(d.csr(Some("good")))).await);
    let other = Device::new(1, "b");
    assert_eq!(
        failure(
            other
                .send(&s, &RequestBody::PkcsReq(other.csr(Some("good"))))
                .await
        ),
        FailInfo::BadRequest
    );
    let reasons = s.policy.rejections.lock().unwrap().clone();
    assert_eq!(
        reasons,
        [
            Rejection::ChallengeUnknown,
            Rejection::ChallengePasswordMissing,
            Rejection::ChallengeAlreadyUsed
        ]
    );
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn renews_with_a_current_certificate_and_no_challenge() {
    let s = Server::start(&["enroll"]).await;
    let d = Device::new(2, "renewer");
    let cert = issued(
        d.send(&s, &RequestBody::PkcsReq(d.csr(Some("enroll"))))
            .await,
    );
    // New key, RenewalReq signed by the current certificate and its key.
    let mut renewal = Device::new(3, "renewer");
    let old_key = d.key.clone();
    renewal.signer = cert.clone();
    let csr = renewal.csr(None);
    renewal.key = old_key;
    let new_cert = issued(renewal.send(&s, &RequestBody::RenewalReq(csr)).await);
    assert!(
        new_cert
            .public_key()
            .unwrap()
            .public_eq(&pki().device_keys[3])
    );
    assert_ne!(
        new_cert.serial_number().to_bn().unwrap(),
        cert.serial_number().to_bn().unwrap()
    );
}

/// A renewal with a new key whose reply was lost (the policy module missed the Notify, 503):
/// the device's CertPoll, signed like the renewal by its current certificate and key, gets the
/// new certificate the CA holds under the renewal's request id, not badCertID and not a
/// second certificate.
#[tokio::test]
async fn a_renewal_whose_reply_was_lost_is_answered_by_its_poll() {
    let s = Server::start(&["enroll-2"]).await;
    let d = Device::new(2, "renew-poller");
    let cert = issued(
        d.send(&s, &RequestBody::PkcsReq(d.csr(Some("enroll-2"))))
            .await,
    );
    let mut renewal = Device::new(3, "renew-poller");
    let old_key = d.key.clone();
    renewal.signer = cert.clone();
    let csr = renewal.csr(None);
    renewal.key = old_key;
    s.policy.notify_down.store(true, Ordering::SeqCst);
    let r = s
        .post(
            "/scep?operation=PKIOperation",
            renewal.request(&RequestBody::RenewalReq(csr)),
        )
        .await;
    assert_eq!(r.status(), 503, "issued, but the inventory has not heard");
    assert_eq!(s.ca.issued.lock().unwrap().len(), 2);
    s.policy.notify_down.store(false, Ordering::SeqCst);
    let new_cert = issued(renewal.send(&s, &common::poll_body("renew-poller")).await);
    assert!(
        new_cert
            .public_key()
            .unwrap()
            .public_eq(&pki().device_keys[3])
    );
    assert_eq!(
        s.ca.issued.lock().unwrap().len(),
        2,
        "no second certificate"
    );
}

#[tokio::test]
async fn renewal_with_a_foreign_or_expired_certificate_is_refused() {
    let s = Server::start(&[]).await;
    let p = pki();
    let foreign_key = testkit::pki::rsa_key(2048);
    let foreign_ca = testkit::pki::certificate(
        &common::name("Foreign CA"),
        &foreign_key,
        None,
        testkit::pki::Usage::Ca,
        now() + 86_400,
    );
    let foreign = testkit::pki::certificate(
        &common::name("x"),
        &p.device_keys[0],
        Some((&foreign_ca, &foreign_key)),
        testkit::pki::Usage::Leaf,
        now() + 86_400,
    );
    let expired = testkit::pki::certificate(
        &common::name("x"),
        &p.device_keys[0],
        Some((&p.ca, &p.ca_key)),
        testkit::pki::Usage::Leaf,
        now() - 10,
    );
    for signer in [foreign, expired] {
        let d = Device::new(0, "x").signing_with(signer);
        let csr = d.csr(None);
        assert_eq!(
            failure(d.send(&s, &RequestBody::RenewalReq(csr)).await),
            FailInfo::BadMessageCheck
        );
    }
    assert!(s.ca.issued.lock().unwrap().is_empty());
}

#[tokio::test]
async fn get_cert_get_crl_and_cert_poll() {
    let s = Server::start(&["c"]).await;
    let d = Device::new(0, "getter");
    let cert = issued(d.send(&s, &RequestBody::PkcsReq(d.csr(Some("c")))).await);
    let ias = IssuerAndSerialNumber::of(&cert).unwrap();
    let holder = Device::new(0, "getter").signing_with(cert.clone());
    let got = issued(holder.send(&s, &RequestBody::GetCert(ias.clone())).await);
    assert_eq!(got.to_der().unwrap(), cert.to_der().unwrap());
    // Someone else's key asking for it: badCertID.
    let stranger = Device::new(1, "stranger");
    assert_eq!(
        failure(stranger.send(&s, &RequestBody::GetCert(ias.clone())).await),
        FailInfo::BadCertId
    );
    let unknown = IssuerAndSerialNumber {
        serial: vec![1, 2, 3],
        ..ias.clone()
    };
    assert_eq!(
        failure(holder.send(&s, &RequestBody::GetCert(unknown)).await),
        FailInfo::BadCertId
    );
    match holder.send(&s, &RequestBody::GetCrl(ias)).await {
        CertRep::Success(p) => assert_eq!(p.crls.len(), 1),
        other => panic!("{other:?}"),
    }
    // A poll for the completed transaction returns its certificate; an unknown one badCertID.
    let poll =
        RequestBody::CertPoll(IssuerAndSubject::new(&pki().ca, &common::name("getter")).unwrap());
    assert_eq!(
        issued(d.send(&s, &poll).await).to_der().unwrap(),
        cert.to_der().unwrap()
    );
    assert_eq!(failure(stranger.send(&s, &poll).await), FailInfo::BadCertId);
}

#[tokio::test]
async fn policy_down_means_503_with_retry_after_and_no_state_change() {
    let s = Server::start(&["c"]).await;
    let d = Device::new(0, "waiting");
    let body = RequestBody::PkcsReq(d.csr(Some("c")));
    s.policy.down.store(true, Ordering::SeqCst);
    let r = s
        .post("/scep?operation=PKIOperation", d.request(&body))
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "30");
    assert!(
        !r.text().await.unwrap().to_lowercase().contains("policy"),
        "no internals in the body"
    );
    assert!(s.ca.issued.lock().unwrap().is_empty());
    s.policy.down.store(false, Ordering::SeqCst);
    // Back up: the same request (same transactionID, same CSR) succeeds.
    issued(d.send(&s, &body).await);
}

#[tokio::test]
async fn an_issuance_the_policy_module_did_not_hear_of_is_503_until_notify_succeeds() {
    let s = Server::start(&["c"]).await;
    let d = Device::new(0, "unnotified");
    let body = RequestBody::PkcsReq(d.csr(Some("c")));
    // The policy module dies between VerifyRequest and Notify.
    s.policy.notify_down.store(true, Ordering::SeqCst);
    let r = s
        .post("/scep?operation=PKIOperation", d.request(&body))
        .await;
    assert_eq!(
        r.status(),
        503,
        "no SUCCESS the inventory would never learn of"
    );
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1, "issued at the CA");
    assert!(s.policy.notifications.lock().unwrap().is_empty());
    // The client's retransmission gets the same certificate, and Notify now reaches it.
    s.policy.notify_down.store(false, Ordering::SeqCst);
    let cert = issued(d.send(&s, &body).await);
    assert_eq!(
        s.ca.issued.lock().unwrap().len(),
        1,
        "replayed, not issued twice"
    );
    let notes = s.policy.notifications.lock().unwrap();
    assert_eq!(notes.len(), 1);
    let Outcome::Issued {
        certificate_der, ..
    } = &notes[0].outcome
    else {
        panic!("expected an Issued notification");
    };
    assert_eq!(*certificate_der, cert.to_der().unwrap());
}

#[tokio::test]
async fn ca_refusal_is_bad_request_and_notified() {
    let s = Server::start(&["c"]).await;
    s.ca.refuse.store(true, Ordering::SeqCst);
    let d = Device::new(0, "refused");
    assert_eq!(
        failure(d.send(&s, &RequestBody::PkcsReq(d.csr(Some("c")))).await),
        FailInfo::BadRequest
    );
    let notes = s.policy.notifications.lock().unwrap().clone();
    assert!(matches!(&notes[..], [n] if matches!(n.outcome, Outcome::Failed { .. })));
}

#[tokio::test]
async fn the_error_contract_one_assertion_per_case() {
    let s = Server::start(&["c"]).await;
    let p = pki();
    let d = Device::new(0, "bad");
    let good = d.request(&RequestBody::PkcsReq(d.csr(Some("c"))));
    let status = |r: reqwest::Response| r.status().as_u16();

    assert_eq!(status(s.get("/scep").await), 400, "no operation");
    assert_eq!(
        status(s.get("/scep?operation=Foo").await),
        400,
        "unknown operation"
    );
    assert_eq!(
        status(s.get("/scep?operation=pkioperation").await),
        400,
        "case matters"
    );
    assert_eq!(
        status(s.get("/scep?operation=PKIOperation&message=!!!").await),
        400,
        "bad base64"
    );
    assert_eq!(
        status(s.get("/scep?operation=PKIOperation&message=").await),
        400,
        "empty message"
    );
    assert_eq!(
        status(s.get("/scep?operation=PKIOperation").await),
        400,
        "no message"
    );
    assert_eq!(
        status(
            s.post(
                "/scep?operation=PKIOperation",
                good[..good.len() / 2].to_vec()
            )
            .await
        ),
        400,
        "truncated"
    );
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"garbage");
    assert_eq!(
        status(s.post("/scep?operation=PKIOperation", trailing).await),
        400,
        "trailing garbage"
    );
    let env = scep::cms::enveloped::seal(b"x", &[&p.ra_enc], ContentCipher::Aes128Cbc).unwrap();
    assert_eq!(
        status(s.post("/scep?operation=PKIOperation", env).await),
        400,
        "EnvelopedData, not SignedData"
    );
    for crasher in [
        &[0x30u8, 0x82, 0x06][..],
        &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff],
        &[0x30, 0x80].repeat(50_000),
    ] {
        assert_eq!(
            status(
                s.post("/scep?operation=PKIOperation", crasher.to_vec())
                    .await
            ),
            400
        );
    }
    let put = s
        .http
        .put(format!("{}/scep?operation=PKIOperation", s.url))
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 405, "PUT");
    let big = vec![0u8; scep::limits::MAX_MESSAGE_SIZE + 1];
    assert_eq!(
        status(s.post("/scep?operation=PKIOperation", big).await),
        413,
        "oversized body"
    );
    let long = format!(
        "/scep?operation=PKIOperation&message={}",
        "A".repeat(scep::limits::MAX_GET_MESSAGE_LEN + 10)
    );
    let code = raw_get_status(&s.url, &long).await;
    assert!(matches!(code, 414 | 431), "oversized query answered {code}");
    let long = format!(
        "/scep?operation=PKIOperation&message={}",
        "A".repeat(60_000)
    );
    assert_eq!(
        raw_get_status(&s.url, &long).await,
        400,
        "long but not too long: just not a message"
    );

    // Signed FAILUREs after decoding.
    let mut bad_sig = good.clone();
    let n = bad_sig.len();
    bad_sig[n - 10] ^= 1;
    let r = s.post("/scep?operation=PKIOperation", bad_sig).await;
    assert_eq!(
        failure(d.open(&r.bytes().await.unwrap())),
        FailInfo::BadMessageCheck,
        "bad signature"
    );
    let stranger = testkit::pki::certificate(
        &common::name("other"),
        &p.device_keys[1],
        Some((&p.ca, &p.ca_key)),
        testkit::pki::Usage::Leaf,
        now() + 86_400,
    );
    let for_other = scep::client::build_request(
        &RequestBody::PkcsReq(d.csr(Some("c"))),
        scep::cms::signed::SignerIdentity {
            cert: &d.signer,
            key: &d.key,
        },
        &[&stranger],
        &d.tx,
        &Default::default(),
    )
    .unwrap();
    let r = s.post("/scep?operation=PKIOperation", for_other).await;
    assert_eq!(
        failure(d.open(&r.bytes().await.unwrap())),
        FailInfo::BadMessageCheck,
        "envelope for another recipient"
    );
    for mt in ["18", "99"] {
        let raw = RawRequest {
            message_type: mt,
            transaction_id: d.tx.transaction_id.as_str(),
            sender_nonce: &d.tx.sender_nonce.0,
            content: None,
            include_signer_cert: true,
            digest: DigestAlgorithm::Sha256,
        };
        let der = build_raw(
            &raw,
            scep::cms::signed::SignerIdentity {
                cert: &d.signer,
                key: &d.key,
            },
        )
        .unwrap();
        let r = s.post("/scep?operation=PKIOperation", der).await;
        assert_eq!(
            failure(d.open(&r.bytes().await.unwrap())),
            FailInfo::BadRequest,
            "messageType {mt}"
        );
    }
    assert!(
        s.ca.issued.lock().unwrap().is_empty(),
        "no issuance on any refusal"
    );
}

/// Send a GET with an arbitrary request target over raw TCP (HTTP clients refuse huge URIs);
/// returns the status code.
async fn raw_get_status(base: &str, target: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    // The server may answer and close before it has read everything we send.
    let _ = conn.write_all(req.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        conn.read_to_end(&mut buf),
    )
    .await;
    let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"))
}

#[tokio::test]
async fn renewal_signed_by_a_certificate_revoked_at_the_ca_is_refused() {
    let s = Server::start(&["enroll", "again"]).await;
    let d = Device::new(2, "revoked-signer");
    let cert = issued(
        d.send(&s, &RequestBody::PkcsReq(d.csr(Some("enroll"))))
            .await,
    );
    let serial = hex::encode(cert.serial_number().to_bn().unwrap().to_vec());
    s.ca.revoked.lock().unwrap().insert(serial);
    let renewing = Device::new(2, "revoked-signer").signing_with(cert.clone());
    let csr = renewing.csr(None);
    assert_eq!(
        failure(renewing.send(&s, &RequestBody::RenewalReq(csr)).await),
        FailInfo::BadMessageCheck
    );
    // A PKCSReq (new key) signed by the revoked certificate is no renewal: its challenge decides.
    let mut rekey = Device::new(3, "revoked-signer");
    rekey.signer = cert.clone();
    let csr = rekey.csr(Some("again"));
    rekey.key = d.key.clone();
    let fresh = issued(rekey.send(&s, &RequestBody::PkcsReq(csr)).await);
    assert_ne!(fresh.to_der().unwrap(), cert.to_der().unwrap());
    // With the CA unreachable a renewal is not decided on a guess: 503.
    s.ca.down.store(true, Ordering::SeqCst);
    let renewing = Device::new(3, "revoked-signer").signing_with(fresh);
    let body = renewing.request(&RequestBody::RenewalReq(renewing.csr(None)));
    assert_eq!(
        s.post("/scep?operation=PKIOperation", body).await.status(),
        503
    );
}
