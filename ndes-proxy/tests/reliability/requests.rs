//! Rows P22 (messageTypes with issuance-shaped content) and P34 (algorithm downgrade): policy
//! attacks that are requests, so they go through the endpoint.

use scep::asn1::parse_single;
use scep::client::RequestOptions;
use scep::cms::signed::SignedData;
use scep::cms::signed::SignerIdentity;
use scep::{ContentCipher, DigestAlgorithm, FailInfo, RequestBody, oid};

use crate::common::{Server, pki};
use crate::fresh;
use crate::harness::{Outcome, Req, capture_logs, classify, refused};
use testkit::scep_msg::{self as forge, SignerSpec};

#[tokio::test]
async fn p22_other_message_types_with_a_csr_inside_never_issue() {
    capture_logs();
    let s = Server::start(&["p22"]).await;
    let d = fresh(0, "p22");
    // A CSR with a valid, unused challenge: anything that treated it as an enrollment would
    // issue.
    let env = scep::cms::enveloped::seal(
        d.csr(Some("p22")).to_der(),
        &[&pki().ra_enc],
        ContentCipher::Aes128Cbc,
    )
    .unwrap();
    let with_type = |mt: &str| {
        let spec = SignerSpec::scep(
            scep::asn1::writer::printable_string(mt),
            scep::asn1::writer::printable_string(d.tx.transaction_id.as_str()),
            scep::asn1::writer::octet_string(&[3; 16]),
        );
        Req::Post(forge::message(&spec, &d.signer, &d.key, &env))
    };
    // UpdateReq is not supported: badRequest.
    refused(
        &s,
        "P22 UpdateReq(18)",
        with_type("18"),
        Outcome::Failure(FailInfo::BadRequest),
    )
    .await;
    // CertPoll, GetCert and GetCRL are supported, and their content must be what they say
    // (IssuerAndSubject, IssuerAndSerialNumber): a CSR there is the uniform envelope failure.
    for mt in ["20", "21", "22"] {
        refused(
            &s,
            &format!("P22 {mt}"),
            with_type(mt),
            Outcome::Failure(FailInfo::BadMessageCheck),
        )
        .await;
    }
    assert!(
        s.policy.challenges.lock().unwrap()["p22"].is_none(),
        "challenge untouched"
    );
}

/// The digest OID of a CertRep's SignerInfo and the content cipher OID of its envelope.
fn reply_algorithms(reply: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let sd = SignedData::from_content_info(reply).unwrap();
    let digest = sd.signer_infos[0].digest_algorithm.oid.to_vec();
    let env = sd.content.as_deref().unwrap().to_vec();
    // ContentInfo { OID, [0] EnvelopedData { version, recipientInfos, encryptedContentInfo
    // { contentType, contentEncryptionAlgorithm, ... } } }
    let ci = parse_single(&env).unwrap();
    let mut r = ci.children().unwrap();
    r.read_any().unwrap();
    let explicit = r.read_any().unwrap();
    let mut e = parse_single(explicit.content).unwrap().children().unwrap();
    e.read_any().unwrap();
    e.read_any().unwrap();
    let mut eci = e.read_any().unwrap().children().unwrap();
    eci.read_any().unwrap();
    let alg = scep::asn1::AlgorithmIdentifier::decode(eci.read_any().unwrap()).unwrap();
    (digest, alg.oid.to_vec())
}

#[tokio::test]
async fn p34_replies_are_never_weaker_than_the_request_and_caps_do_not_offer_des() {
    capture_logs();
    let cases = [
        (
            "AES-128 + SHA-256",
            ContentCipher::Aes128Cbc,
            DigestAlgorithm::Sha256,
        ),
        (
            "AES-256 + SHA-512",
            ContentCipher::Aes256Cbc,
            DigestAlgorithm::Sha512,
        ),
        (
            "DES + SHA-1 (micromdm)",
            ContentCipher::DesCbc,
            DigestAlgorithm::Sha1,
        ),
        (
            "3DES + SHA-1",
            ContentCipher::DesEde3Cbc,
            DigestAlgorithm::Sha1,
        ),
    ];
    let challenges: Vec<String> = (0..cases.len()).map(|i| format!("p34-{i}")).collect();
    let list: Vec<&str> = challenges.iter().map(String::as_str).collect();
    let s = Server::start(&list).await;
    let strength = |d: &[u8]| match d {
        x if x == oid::SHA1 => 1,
        x if x == oid::SHA256 => 2,
        x if x == oid::SHA384 => 3,
        x if x == oid::SHA512 => 4,
        other => panic!("unexpected reply digest {other:?}"),
    };
    for (i, (label, cipher, digest)) in cases.into_iter().enumerate() {
        let d = fresh(0, &format!("p34-{i}"));
        let opts = RequestOptions {
            digest,
            cipher,
            signing_time: None,
        };
        let der = scep::client::build_request(
            &RequestBody::PkcsReq(d.csr(Some(&challenges[i]))),
            SignerIdentity {
                cert: &d.signer,
                key: &d.key,
            },
            &[&pki().ra_enc],
            &d.tx,
            &opts,
        )
        .unwrap();
        let r = s.post("/scep?operation=PKIOperation", der).await;
        assert_eq!(r.status(), 200, "{label}");
        let reply = r.bytes().await.unwrap();
        assert_eq!(classify(&reply), Outcome::Success, "{label}");
        let (reply_digest, reply_cipher) = reply_algorithms(&reply);
        assert!(
            strength(&reply_digest) >= strength(digest.oid()),
            "{label}: reply digest weaker than the request's"
        );
        assert_ne!(
            reply_cipher,
            oid::DES_CBC,
            "{label}: never single DES in a reply"
        );
        if cipher != ContentCipher::DesCbc && cipher != ContentCipher::DesEde3Cbc {
            assert_ne!(
                reply_cipher,
                oid::DES_EDE3_CBC,
                "{label}: no 3DES for an AES request"
            );
        }
        // The device opens it (the cipher is one it can use).
        crate::common::issued(d.open(&reply));
    }
    // GetCACaps never offers single DES; SHA-1 and DES3 only while enabled (strict mode:
    // `scep_endpoint::strict_mode_advertises_only_what_it_accepts`).
    let caps = s
        .get("/scep?operation=GetCACaps")
        .await
        .text()
        .await
        .unwrap();
    assert!(!caps.lines().any(|l| l == "DES"), "{caps}");
    assert!(caps.lines().any(|l| l == "AES"), "{caps}");
}
