//! Rows A1–A30: the HTTP binding, the outer CMS and its signed attributes.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::hash::MessageDigest;
use scep::asn1::writer;
use scep::asn1::{parse_single, tag};
use scep::http::encode_get_message;
use scep::{FailInfo, RequestBody, oid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Server, now, pki};
use crate::fresh;
use crate::harness::{HANG_GUARD, Outcome, Req, accepted, capture_logs, refused};
use testkit::scep_msg::{self as forge, SignerSpec};

const BAD: Outcome = Outcome::Http(400);

/// A good PKCSReq for a fresh device, enrolling with `challenge`.
fn good_request(cn: &str, challenge: &str) -> Vec<u8> {
    let d = fresh(0, cn);
    d.request(&RequestBody::PkcsReq(d.csr(Some(challenge))))
}

/// The sealed CSR of a fresh device (the eContent of a PKCSReq).
fn envelope(challenge: &str) -> Vec<u8> {
    let d = fresh(0, "env");
    scep::cms::enveloped::seal(
        d.csr(Some(challenge)).to_der(),
        &[&pki().ra_enc],
        scep::ContentCipher::Aes128Cbc,
    )
    .unwrap()
}

#[tokio::test]
async fn a1_a2_a3_a11_a12_a13_a14_a16_undecodable_requests_are_400() {
    capture_logs();
    let s = Server::start(&["a-c1"]).await;
    for (row, target) in [
        ("A1 no operation", "/scep"),
        ("A1 unknown operation", "/scep?operation=Foo"),
        ("A1 operation case", "/scep?operation=pkioperation"),
        ("A3 empty message", "/scep?operation=PKIOperation&message="),
        ("A3 no message", "/scep?operation=PKIOperation"),
        ("A3 not base64", "/scep?operation=PKIOperation&message=%%%"),
    ] {
        refused(&s, row, Req::Get(target.to_owned()), BAD).await;
    }
    for m in [
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        refused(&s, "A2", Req::Method(m), Outcome::Http(405)).await;
    }
    // A11: known crashers of other ASN.1 stacks, as whole bodies.
    for crasher in [
        &[0x30u8, 0x82, 0x06][..],
        &[0x5f, 0x4d],
        &[0x1f, 0x80],
        &[0x1f, 0x05],
        &[0x30, 0x81],
        &[0x30, 0x84, 0x01],
    ] {
        refused(&s, "A11", Req::Post(crasher.to_vec()), BAD).await;
    }
    // A12: lengths that overflow or promise far more than is there.
    for lie in [
        &[0x30u8, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff],
    ] {
        refused(&s, "A12", Req::Post(lie.to_vec()), BAD).await;
    }
    // A13: nesting bombs, BER indefinite and DER definite.
    refused(&s, "A13 BER", Req::Post([0x30, 0x80].repeat(100_000)), BAD).await;
    let mut der_bomb = vec![0x30, 0x00];
    for _ in 0..10_000 {
        der_bomb = writer::tlv(tag::SEQUENCE, &der_bomb);
    }
    refused(&s, "A13 DER", Req::Post(der_bomb), BAD).await;
    // A14: a valid message followed by anything.
    let mut trailing = good_request("a14", "a-c1");
    trailing.extend_from_slice(&[0x00, 0x00]);
    refused(&s, "A14", Req::Post(trailing), BAD).await;
    // A16: the outer ContentInfo is not SignedData.
    let p = pki();
    refused(&s, "A16 EnvelopedData", Req::Post(envelope("a-c1")), BAD).await;
    let data = forge::content_info(oid::DATA, &writer::octet_string(b"hello"));
    refused(&s, "A16 Data", Req::Post(data), BAD).await;
    const DIGESTED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x05];
    let digested = forge::content_info(
        DIGESTED_DATA,
        &writer::sequence(&[
            &writer::small_integer(0),
            &writer::algorithm(oid::SHA256, None),
            &writer::sequence(&[&writer::oid(oid::DATA)]),
            &writer::octet_string(&[0; 32]),
        ]),
    );
    refused(&s, "A16 DigestedData", Req::Post(digested), BAD).await;
    // A18: no SignerInfo at all: nothing to address a CertRep to.
    let none = forge::signed_data(Some(b"x"), oid::SHA256, &[&p.ra_combined], &[]);
    refused(&s, "A18 zero signerInfos", Req::Post(none), BAD).await;
    assert_eq!(crate::harness::Snapshot::of(&s).await.issued(), 0);
}

#[tokio::test]
async fn a4_a5_a6_a10_every_encoding_clients_use_enrolls() {
    capture_logs();
    let challenges: Vec<String> = (0..9).map(|i| format!("a-enc-{i}")).collect();
    let list: Vec<&str> = challenges.iter().map(String::as_str).collect();
    let s = Server::start(&list).await;
    let get = |_: &[u8], encoded: String| {
        Req::Get(format!("/scep?operation=PKIOperation&message={encoded}"))
    };
    // A4: the RFC form, standard base64 percent-encoded.
    let der = good_request("a4", &challenges[0]);
    accepted(&s, "A4", get(&der, encode_get_message(&der))).await;
    // A5: raw '+' and '/' with %3D padding (macOS; '+' may arrive as a space).
    let der = good_request("a5", &challenges[1]);
    let raw = STANDARD.encode(&der).replace('=', "%3D");
    assert!(raw.contains('+') || raw.contains('/'));
    accepted(&s, "A5", get(&der, raw)).await;
    // A6 (decision: accept): URL-safe alphabet, no padding, CR/LF every 64 characters.
    let der = good_request("a6-url", &challenges[2]);
    accepted(&s, "A6 url-safe", get(&der, URL_SAFE_NO_PAD.encode(&der))).await;
    let der = good_request("a6-lines", &challenges[3]);
    let folded = fold_crlf(&encode_get_message(&der));
    assert!(folded.contains("%0D%0A"));
    accepted(&s, "A6 CR/LF", get(&der, folded)).await;
    // A10: any Content-Type on POST.
    for (i, ct) in [
        Some("application/octet-stream"),
        None,
        Some("text/plain"),
        Some("application/x-pki-message"),
    ]
    .into_iter()
    .enumerate()
    {
        let der = good_request(&format!("a10-{i}"), &challenges[4 + i]);
        accepted(&s, &format!("A10 {ct:?}"), Req::PostAs(ct, der)).await;
    }
}

/// Insert `%0D%0A` after every 64 characters of base64, never inside a `%XX` escape.
fn fold_crlf(encoded: &str) -> String {
    let mut out = String::new();
    let mut since = 0;
    let mut chars = encoded.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.push(chars.next().unwrap());
            out.push(chars.next().unwrap());
        }
        since += 1;
        if since == 64 {
            out.push_str("%0D%0A");
            since = 0;
        }
    }
    out
}

/// Send `head` then `body` over raw TCP (a client no library would be), and return the status
/// of the answer and whether the server then closed the connection.
async fn raw_exchange(s: &Server, head: &str, body: Vec<Vec<u8>>) -> (u16, bool) {
    let addr = s.url.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = head.replace("{addr}", &addr);
    conn.write_all(head.as_bytes()).await.unwrap();
    let (mut rd, mut wr) = conn.into_split();
    let writer = tokio::spawn(async move {
        for chunk in body {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        // Keep the write half open: a body that never ends.
        tokio::time::sleep(HANG_GUARD).await;
        drop(wr);
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut closed = false;
    let read = tokio::time::timeout(HANG_GUARD, async {
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    closed = true;
                    break;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed");
    writer.abort();
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    (status, closed)
}

#[tokio::test]
async fn a8_huge_queries_and_bodies_are_refused_without_reading_them_all() {
    capture_logs();
    let settings = ndes_proxy::Settings {
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let s = Server::start_with(&[], settings).await;
    // A GET query of 1 MiB.
    let target = format!(
        "/scep?operation=PKIOperation&message={}",
        "A".repeat(1 << 20)
    );
    let (code, _) = raw_exchange(
        &s,
        &format!("GET {target} HTTP/1.1\r\nHost: {{addr}}\r\n\r\n"),
        vec![],
    )
    .await;
    assert!(matches!(code, 414 | 431), "1 MiB query: {code}");
    // A declared 2 GiB body: refused from the header, the body is never awaited.
    let (code, closed) = raw_exchange(
        &s,
        "POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2147483648\r\n\r\n",
        vec![vec![0x30; 1024]],
    )
    .await;
    assert_eq!(code, 413, "2 GiB declared");
    assert!(closed);
    // A chunked body that goes on past the cap (2 MiB sent in 16 KiB chunks, then silence).
    let chunk = {
        let mut c = format!("{:x}\r\n", 16 * 1024).into_bytes();
        c.extend(std::iter::repeat_n(0x41u8, 16 * 1024));
        c.extend_from_slice(b"\r\n");
        c
    };
    let (code, closed) = raw_exchange(
        &s,
        "POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n",
        vec![chunk; 128],
    )
    .await;
    assert_eq!(code, 413, "endless chunked body");
    assert!(closed);
    // A chunked body under the cap that never ends: cut off at the request deadline.
    let (code, closed) = raw_exchange(
        &s,
        "POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n",
        vec![b"4\r\n0\x80\x30\x80\r\n".to_vec()],
    )
    .await;
    assert_eq!(code, 408, "stalled chunked body");
    assert!(closed, "the connection is closed at the deadline");
    assert!(s.ca.issued.lock().unwrap().is_empty());
}

/// Re-encode a DER pkiMessage the way streaming BER encoders do: indefinite lengths for the
/// ContentInfo, its `[0]` and the SignedData, and the eContent as a constructed OCTET STRING
/// of 100-byte chunks. Signature and messageDigest are untouched (they cover neither).
fn to_streamed_ber(der: &[u8]) -> Vec<u8> {
    let ci = parse_single(der).unwrap();
    let mut r = ci.children().unwrap();
    let oid_tlv = r.read_any().unwrap();
    let explicit = r.read_any().unwrap();
    let sd = parse_single(explicit.content).unwrap();
    let mut parts = sd.children().unwrap();
    let mut sd_content = Vec::new();
    while !parts.is_empty() {
        let t = parts.read_any().unwrap();
        if t.tag == tag::SEQUENCE && t.content.starts_with(&writer::oid(oid::DATA)) {
            // encapContentInfo { id-data, [0] EXPLICIT OCTET STRING }
            let mut e = t.children().unwrap();
            let ct = e.read_any().unwrap();
            let inner = e.read_any().unwrap();
            let octets = parse_single(inner.content).unwrap().content;
            let mut chunks = vec![0x24, 0x80];
            for c in octets.chunks(100) {
                chunks.extend(writer::octet_string(c));
            }
            chunks.extend([0, 0]);
            let mut encap = vec![0x30, 0x80];
            encap.extend_from_slice(ct.raw);
            encap.extend([0xa0, 0x80]);
            encap.extend(chunks);
            encap.extend([0, 0, 0, 0]);
            sd_content.extend(encap);
        } else {
            sd_content.extend_from_slice(t.raw);
        }
    }
    let mut out = vec![0x30, 0x80];
    out.extend_from_slice(oid_tlv.raw);
    out.extend([0xa0, 0x80, 0x30, 0x80]);
    out.extend(sd_content);
    out.extend([0, 0, 0, 0, 0, 0]);
    out
}

#[tokio::test]
async fn a15_a_streamed_ber_request_enrolls() {
    capture_logs();
    let s = Server::start(&["a15"]).await;
    let der = good_request("a15", "a15");
    let ber = to_streamed_ber(&der);
    assert_ne!(ber, der);
    assert!(ber.starts_with(&[0x30, 0x80]));
    accepted(&s, "A15", Req::Post(ber)).await;
}

/// A PKCSReq built field by field: the fresh device's certificate and key sign `spec` over a
/// good envelope for `challenge`.
fn forged(spec: &SignerSpec, challenge: &str) -> Vec<u8> {
    let d = fresh(0, "forged");
    forge::message(spec, &d.signer, &d.key, &envelope(challenge))
}

#[tokio::test]
async fn a18_a20_signer_faults_are_bad_message_check() {
    capture_logs();
    let s = Server::start(&["a18", "a18-u"]).await;
    let p = pki();
    let d = fresh(0, "a18");
    let content = envelope("a18");
    let spec = SignerSpec::pkcs_req(d.tx.transaction_id.as_str());
    let good_si = forge::signer_info(&spec, &d.signer, &d.key, Some(&content));
    // The forge itself is sound: the same parts, correctly assembled, enroll.
    let sound = forge::signed_data(
        Some(&content),
        oid::SHA256,
        &[&d.signer],
        std::slice::from_ref(&good_si),
    );
    // Two SignerInfos, one of them garbage (a SignerInfo-shaped SEQUENCE that verifies nothing).
    let mut garbage = good_si.clone();
    let n = garbage.len();
    garbage[n - 5] ^= 0xff;
    let two = forge::signed_data(
        Some(&content),
        oid::SHA256,
        &[&d.signer],
        &[good_si.clone(), garbage],
    );
    // Which of two signers would a CertRep answer? None: a second SignerInfo is T1, 400.
    refused(&s, "A18 two signerInfos", Req::Post(two), BAD).await;
    let fail = Outcome::Failure(FailInfo::BadMessageCheck);
    // Signer certificate absent; sid naming a certificate that is not the signer's.
    let absent = forge::signed_data(
        Some(&content),
        oid::SHA256,
        &[],
        std::slice::from_ref(&good_si),
    );
    refused(&s, "A18 signer cert absent", Req::Post(absent), fail).await;
    let other = forge::signed_data(Some(&content), oid::SHA256, &[&p.ra_combined], &[good_si]);
    refused(&s, "A18 sid matches no cert", Req::Post(other), fail).await;
    // A20: messageDigest that is not the content's.
    let mut wrong_digest = SignerSpec::pkcs_req("a20-digest");
    wrong_digest.message_digest = Some(vec![0; 32]);
    refused(
        &s,
        "A20 messageDigest",
        Req::Post(forged(&wrong_digest, "a18")),
        fail,
    )
    .await;
    // A20 (decision: tolerant, consistently): signed attributes in non-DER order verify over
    // the bytes as sent, as RFC 5652 §5.4 and OpenSSL do; the request then goes on as usual.
    let mut unsorted = SignerSpec::pkcs_req("a20-unsorted");
    unsorted.attrs.reverse();
    unsorted.unsorted = true;
    accepted(
        &s,
        "A20 unsorted signed attributes",
        Req::Post(forged(&unsorted, "a18-u")),
    )
    .await;
    accepted(&s, "A18 control", Req::Post(sound)).await;
}

#[tokio::test]
async fn a21_a24_a25_attribute_values_are_refused() {
    capture_logs();
    let s = Server::start(&["a21"]).await;
    let p = writer::printable_string;
    let nonce = writer::octet_string(&[1; 16]);
    let req = |mt: Vec<u8>, tx: Vec<u8>, nonce: Vec<u8>| {
        Req::Post(forged(&SignerSpec::scep(mt, tx, nonce), "a21"))
    };
    let bad_request = Outcome::Failure(FailInfo::BadRequest);
    // A21: messageTypes that are not a request this server handles (UpdateReq 18, CertRep 3,
    // out of range, or not the canonical decimal text) are badRequest, never an issuance.
    for mt in ["18", "3", "99", "019", "19 ", "-1", "1e1", "+19"] {
        refused(
            &s,
            &format!("A21 {mt:?}"),
            req(p(mt), p("a21"), nonce.clone()),
            bad_request,
        )
        .await;
    }
    // Decision: an empty messageType is a missing one (T1): no CertRep can be typed, 400.
    refused(&s, "A21 empty", req(p(""), p("a21"), nonce.clone()), BAD).await;
    // A24: a 64 KiB transactionID cannot be echoed: refused before any CertRep.
    let long = "A".repeat(64 * 1024);
    refused(&s, "A24 64 KiB", req(p("19"), p(&long), nonce.clone()), BAD).await;
    // Control characters and ANSI escapes (IA5String) are not PrintableString: refused, and
    // they never reach the logs (checked in `nothing_secret_reaches_the_logs`).
    let escape = forge::ia5(b"tx\n\x1b[31mINJECTED\x1b[0m");
    refused(&s, "A24 escapes", req(p("19"), escape, nonce.clone()), BAD).await;
    // A25: senderNonce of the wrong size.
    for len in [0usize, 15, 17] {
        let n = writer::octet_string(&vec![9; len]);
        refused(
            &s,
            &format!("A25 {len}"),
            req(p("19"), p("a25"), n),
            bad_request,
        )
        .await;
    }
    let huge = writer::octet_string(&vec![9; 100 * 1024]);
    refused(&s, "A25 100 KiB", req(p("19"), p("a25"), huge), BAD).await;
}

#[tokio::test]
async fn a24_printable_punctuation_in_a_transaction_id_is_just_text() {
    capture_logs();
    let s = Server::start(&["a24"]).await;
    let spec = SignerSpec::pkcs_req("x') OR ('1'='1");
    accepted(
        &s,
        "A24 quotes and parentheses",
        Req::Post(forged(&spec, "a24")),
    )
    .await;
    assert!(s.ca.issued.lock().unwrap().contains_key("x') OR ('1'='1"));
}

#[tokio::test]
async fn a27_a28_digest_and_signature_algorithms_are_decided_from_oids() {
    capture_logs();
    let s = Server::start(&["a27"]).await;
    let bad_alg = Outcome::Failure(FailInfo::BadAlg);
    let with = |digest_oid: &[u8], md: MessageDigest| {
        let mut spec = SignerSpec::pkcs_req("a27");
        spec.digest_oid = digest_oid.to_vec();
        spec.md = md;
        spec
    };
    refused(
        &s,
        "A27 MD5",
        Req::Post(forged(&with(oid::MD5, MessageDigest::md5()), "a27")),
        bad_alg,
    )
    .await;
    let unknown = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x7f];
    refused(
        &s,
        "A27 unknown OID",
        Req::Post(forged(&with(&unknown, MessageDigest::sha256()), "a27")),
        bad_alg,
    )
    .await;
    const SHA224: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04];
    refused(
        &s,
        "A27 SHA-224 (known, not offered)",
        Req::Post(forged(&with(SHA224, MessageDigest::sha224()), "a27")),
        bad_alg,
    )
    .await;
    // SHA-1 is refused in strict mode (and accepted by default: micromdm's scepclient).
    let strict = Server::start_with(
        &["a27"],
        ndes_proxy::Settings {
            strict_algorithms: true,
            ..Default::default()
        },
    )
    .await;
    refused(
        &strict,
        "A27 SHA-1 strict",
        Req::Post(forged(&with(oid::SHA1, MessageDigest::sha1()), "a27")),
        bad_alg,
    )
    .await;
    // A28: an ECDSA signatureAlgorithm on an RSA key.
    let mut ecdsa = SignerSpec::pkcs_req("a28");
    ecdsa.signature_alg = writer::algorithm(oid::ECDSA_WITH_SHA256, None);
    refused(
        &s,
        "A28 ECDSA OID, RSA key",
        Req::Post(forged(&ecdsa, "a27")),
        bad_alg,
    )
    .await;
    // A28: a signer certificate with a hostile key, refused before any RSA operation with it.
    for (label, key) in [
        (
            "A28 e = 2^64+1",
            hostile_rsa(2048, &{
                let mut e = vec![1u8];
                e.extend([0; 7]);
                e.push(1);
                e
            }),
        ),
        ("A28 20000-bit modulus", hostile_rsa(20_000, &[1, 0, 1])),
    ] {
        let d = fresh(0, "a28");
        let cert = forge_cert_with_key(&key, &d.key);
        let spec = SignerSpec::pkcs_req("a28-hostile");
        let msg = forge::message(&spec, &cert, &d.key, &envelope("a27"));
        refused(&s, label, Req::Post(msg), bad_alg).await;
    }
}

/// An RSA public key with a random odd modulus of `bits` and exponent `e` (no private key: the
/// server must refuse it from its shape).
fn hostile_rsa(bits: i32, e: &[u8]) -> openssl::pkey::PKey<openssl::pkey::Public> {
    let mut n = openssl::bn::BigNum::new().unwrap();
    n.rand(bits, openssl::bn::MsbOption::ONE, true).unwrap();
    let e = openssl::bn::BigNum::from_slice(e).unwrap();
    let rsa = openssl::rsa::Rsa::from_public_components(n, e).unwrap();
    openssl::pkey::PKey::from_rsa(rsa).unwrap()
}

/// A certificate for `public`, signed by `signer` (a hostile key cannot self-sign).
fn forge_cert_with_key(
    public: &openssl::pkey::PKey<openssl::pkey::Public>,
    signer: &openssl::pkey::PKey<openssl::pkey::Private>,
) -> openssl::x509::X509 {
    let mut b = openssl::x509::X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = openssl::bn::BigNum::from_u32(7).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    let name = crate::common::name("hostile");
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(public).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::from_unix(now() - 60).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::from_unix(now() + 3600).unwrap())
        .unwrap();
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

/// A self-signed signer certificate for `key` shaped by `f` (validity, extensions).
fn signer_cert(
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    not_before: i64,
    not_after: i64,
    f: impl FnOnce(&mut openssl::x509::X509Builder),
) -> openssl::x509::X509 {
    let mut b = openssl::x509::X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = openssl::bn::BigNum::from_u32(9).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    let name = crate::common::name("key carrier");
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::from_unix(not_before).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::from_unix(not_after).unwrap())
        .unwrap();
    f(&mut b);
    b.sign(key, MessageDigest::sha256()).unwrap();
    b.build()
}

/// Shapes a signer certificate under construction.
type Shape = dyn Fn(&mut openssl::x509::X509Builder);

#[tokio::test]
async fn a29_the_pkcsreq_signer_certificate_is_only_a_key_carrier() {
    capture_logs();
    let s = Server::start(&["a29-0", "a29-1", "a29-2", "a29-3"]).await;
    let t = now();
    let critical_aki = |b: &mut openssl::x509::X509Builder| {
        let ext = openssl::x509::extension::AuthorityKeyIdentifier::new()
            .critical()
            .keyid(true)
            .build(&b.x509v3_context(None, None));
        // A self-signed certificate has no issuer key id to point at without an SKI: add one.
        let ski = openssl::x509::extension::SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(ski).unwrap();
        if let Ok(e) = ext {
            b.append_extension(e).unwrap();
        }
    };
    let unknown_critical = |b: &mut openssl::x509::X509Builder| {
        let oid = openssl::asn1::Asn1Object::from_str("1.3.6.1.4.1.99999.1").unwrap();
        let value = openssl::asn1::Asn1OctetString::new_from_bytes(&[0x05, 0x00]).unwrap();
        let ext = openssl::x509::X509Extension::new_from_der(&oid, true, &value).unwrap();
        b.append_extension(ext).unwrap();
    };
    let cases: [(&str, i64, i64, &Shape); 4] = [
        ("A29 expired", t - 7200, t - 3600, &|_| {}),
        ("A29 not yet valid", t + 3600, t + 7200, &|_| {}),
        ("A29 critical AKI", t - 60, t + 3600, &critical_aki),
        (
            "A29 unknown critical extension",
            t - 60,
            t + 3600,
            &unknown_critical,
        ),
    ];
    for (i, (row, nb, na, f)) in cases.into_iter().enumerate() {
        let mut d = fresh(0, &format!("a29-{i}"));
        d.signer = signer_cert(&d.key, nb, na, f);
        let der = d.request(&RequestBody::PkcsReq(d.csr(Some(&format!("a29-{i}")))));
        accepted(&s, row, Req::Post(der)).await;
    }
}

#[tokio::test]
async fn a30_signing_time_is_checked_only_when_configured_and_malformed_is_refused() {
    capture_logs();
    let lenient = Server::start(&["a30-0", "a30-1", "a30-2", "a30-3"]).await;
    let strict = Server::start_with(
        &["a30-s0", "a30-s1"],
        ndes_proxy::Settings {
            signing_time_tolerance: Some(600),
            ..Default::default()
        },
    )
    .await;
    let with_time = |tx: &str, time: Vec<u8>| {
        let mut spec = SignerSpec::pkcs_req(tx);
        spec.attrs.push(forge::attr(oid::SIGNING_TIME, &[time]));
        spec
    };
    let year = 365 * 86_400;
    let at = |t: i64| scep::time::encode_time(t).unwrap();
    // Decision (docs/decisions.md #6: signingTime not enforced by default): ±1 year is accepted...
    accepted(
        &lenient,
        "A30 +1y lenient",
        Req::Post(forged(&with_time("a30-p", at(now() + year)), "a30-0")),
    )
    .await;
    accepted(
        &lenient,
        "A30 -1y lenient",
        Req::Post(forged(&with_time("a30-m", at(now() - year)), "a30-1")),
    )
    .await;
    // ...and badTime when a tolerance is configured.
    let bad_time = Outcome::Failure(FailInfo::BadTime);
    refused(
        &strict,
        "A30 +1y strict",
        Req::Post(forged(&with_time("a30-sp", at(now() + year)), "a30-s0")),
        bad_time,
    )
    .await;
    refused(
        &strict,
        "A30 -1y strict",
        Req::Post(forged(&with_time("a30-sm", at(now() - year)), "a30-s0")),
        bad_time,
    )
    .await;
    // A malformed signingTime is badRequest, whether or not the time is enforced.
    let bad_request = Outcome::Failure(FailInfo::BadRequest);
    for (i, text) in ["991301000000Z", "991231000000"].into_iter().enumerate() {
        for (label, s, challenge) in [
            ("lenient", &lenient, "a30-2"),
            ("strict", &strict, "a30-s1"),
        ] {
            let spec = with_time(&format!("a30-bad-{i}-{label}"), forge::utc_time(text));
            refused(
                s,
                &format!("A30 {text:?} {label}"),
                Req::Post(forged(&spec, challenge)),
                bad_request,
            )
            .await;
        }
    }
    // The control: an honest signingTime enrolls under the tolerance.
    accepted(
        &strict,
        "A30 now strict",
        Req::Post(forged(&with_time("a30-now", at(now())), "a30-s1")),
    )
    .await;
}

#[tokio::test]
async fn nothing_secret_reaches_the_logs() {
    capture_logs();
    let challenge = "S3cret-Challenge-Never-Logged-9f27";
    let s = Server::start(&[challenge]).await;
    let d = fresh(1, "log-check");
    // A refusal (wrong challenge, which carries a secret too), an issuance, a replay, a
    // tampered message, and an envelope the RA cannot open.
    let wrong = "Wrong-Challenge-Also-Secret-51c0";
    let r = crate::harness::send(
        &s,
        Req::Post(d.request(&RequestBody::PkcsReq(d.csr(Some(wrong))))),
    )
    .await;
    assert_eq!(r, Outcome::Failure(FailInfo::BadRequest));
    let d = fresh(1, "log-check-ok");
    let body = RequestBody::PkcsReq(d.csr(Some(challenge)));
    assert_eq!(
        crate::harness::send(&s, Req::Post(d.request(&body))).await,
        Outcome::Success
    );
    assert_eq!(
        crate::harness::send(&s, Req::Post(d.request(&body))).await,
        Outcome::Success
    );
    let mut tampered = d.request(&body);
    let n = tampered.len();
    tampered[n - 10] ^= 1;
    // A40's diagnosis: the refusal is logged with the client's User-Agent.
    let r = s
        .http
        .post(format!("{}/scep?operation=PKIOperation", s.url))
        .header("user-agent", "catalogue-client/4.0")
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let escape = forge::ia5(b"tx\n\x1b[31mINJECTED\x1b[0m");
    let spec = SignerSpec::scep(
        writer::printable_string("19"),
        escape,
        writer::octet_string(&[1; 16]),
    );
    let _ = crate::harness::send(&s, Req::Post(forged(&spec, challenge))).await;

    let logs = crate::harness::captured_logs();
    // The capture works: the refusal and the issuance were logged with their transactionIDs.
    assert!(logs.contains("refused"), "{logs}");
    assert!(logs.contains(d.tx.transaction_id.as_str()), "{logs}");
    assert!(
        logs.lines()
            .any(|l| l.contains("refused") && l.contains("catalogue-client/4.0")),
        "the refusal names the client's User-Agent"
    );
    for secret in [challenge, wrong] {
        assert!(!logs.contains(secret), "a challenge reached the logs");
    }
    let p = pki();
    for key in [
        &p.ra_enc_key,
        &p.ra_sign_key,
        &p.device_keys[0],
        &p.device_keys[1],
    ] {
        let rsa = key.rsa().unwrap();
        let d_hex = hex::encode(rsa.d().to_vec());
        let der = key.private_key_to_der().unwrap();
        let der_b64 = STANDARD.encode(&der);
        for needle in [
            &d_hex[..32],
            &d_hex[d_hex.len() - 32..],
            &der_b64[40..80],
            &hex::encode(&der[40..60]),
        ] {
            assert!(
                !logs.contains(needle),
                "private key material reached the logs"
            );
        }
    }
    assert!(
        !logs.contains('\x1b'),
        "an ANSI escape from a request reached the logs"
    );
    assert!(
        !logs.contains("INJECTED"),
        "request text reached the logs unescaped"
    );
}
