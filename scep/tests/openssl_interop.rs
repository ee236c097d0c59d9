//! The `openssl` CLI as an oracle, both ways: what `scep` signs and encrypts, OpenSSL verifies
//! and decrypts; what OpenSSL signs and encrypts (DER and streamed BER), `scep` opens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit::pki;

use std::path::{Path, PathBuf};

use openssl::hash::MessageDigest;
use scep::cms::enveloped::{DecryptionKey, EnvelopedData};
use scep::cms::signed::{CertsOnly, SignedData, SignerIdentity, certs_only};
use scep::csr::{ChallengePassword, Csr, build};
use scep::http::{CONTENT_TYPE_CA_RA_CERT, CaCertificates};
use scep::server::{DecodedRequest, Responder};
use scep::{
    AlgorithmPolicy, ContentCipher, DigestAlgorithm, FailInfo, Nonce, RequestBody, TransactionId,
    client,
};

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run openssl and require success.
fn openssl(args: &[&str]) -> Vec<u8> {
    let out = testkit::openssl(args, None).unwrap();
    assert!(
        out.success(),
        "openssl {args:?} failed: {}",
        out.stderr_str()
    );
    out.stdout
}

fn pkcs_req(
    digest: DigestAlgorithm,
    cipher: ContentCipher,
) -> (Vec<u8>, Vec<u8>, openssl::x509::X509) {
    let p = pki::ra_hierarchy();
    let key = &p.device_keys[0];
    let subject = pki::name("device-interop");
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
    let tx = client::Transaction {
        transaction_id: TransactionId::new("interop-1").unwrap(),
        sender_nonce: Nonce::random().unwrap(),
    };
    let opts = client::RequestOptions {
        digest,
        cipher,
        signing_time: Some(1_700_000_100),
    };
    let body = RequestBody::PkcsReq(Csr::from_der(&csr_der).unwrap());
    let der = client::build_request(
        &body,
        SignerIdentity { cert: &signer, key },
        &[&p.ra_enc],
        &tx,
        &opts,
    )
    .unwrap();
    (der, csr_der, signer)
}

#[test]
fn openssl_verifies_and_decrypts_what_scep_builds() {
    let p = pki::ra_hierarchy();
    let dir = Dir::new();
    let ra = dir.write("ra.pem", &pki::pem(&p.ra_enc));
    let ra_key = dir.write("ra.key", &pki::key_pem(&p.ra_enc_key));
    let combos = [
        (DigestAlgorithm::Sha1, ContentCipher::DesCbc),
        (DigestAlgorithm::Sha1, ContentCipher::DesEde3Cbc),
        (DigestAlgorithm::Sha256, ContentCipher::Aes128Cbc),
        (DigestAlgorithm::Sha384, ContentCipher::Aes192Cbc),
        (DigestAlgorithm::Sha512, ContentCipher::Aes256Cbc),
    ];
    for (digest, cipher) in combos {
        let (der, csr_der, _) = pkcs_req(digest, cipher);
        let req = dir.write("req.der", &der);
        let env = dir.path("env.der");
        openssl(&[
            "cms",
            "-verify",
            "-noverify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            s(&req),
            "-out",
            s(&env),
        ]);
        let csr = dir.path("csr.der");
        let mut args = vec![
            "cms",
            "-decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            s(&env),
        ];
        args.extend(["-recip", s(&ra), "-inkey", s(&ra_key), "-out", s(&csr)]);
        if cipher == ContentCipher::DesCbc {
            args.extend(["-provider", "legacy", "-provider", "default"]);
        }
        openssl(&args);
        assert_eq!(
            std::fs::read(&csr).unwrap(),
            csr_der,
            "{digest:?} {cipher:?}"
        );
        let dump = String::from_utf8(openssl(&[
            "cms",
            "-cmsout",
            "-print",
            "-inform",
            "DER",
            "-in",
            s(&req),
        ]))
        .unwrap();
        for oid in [
            "2.16.840.1.113733.1.9.2",
            "2.16.840.1.113733.1.9.5",
            "2.16.840.1.113733.1.9.7",
        ] {
            assert!(dump.contains(oid), "{oid} missing from the dump");
        }
    }
    // The CSR with its challengePassword reads as a valid request in OpenSSL.
    let (_, csr_der, _) = pkcs_req(DigestAlgorithm::Sha256, ContentCipher::Aes128Cbc);
    let csr = dir.write("plain.csr", &csr_der);
    let text = String::from_utf8(openssl(&[
        "req",
        "-inform",
        "DER",
        "-in",
        s(&csr),
        "-verify",
        "-noout",
        "-text",
    ]))
    .unwrap();
    assert!(text.contains("challengePassword"), "{text}");
}

#[test]
fn openssl_verifies_certreps_and_opens_success() {
    let p = pki::ra_hierarchy();
    let dir = Dir::new();
    let (der, _, signer_cert) = pkcs_req(DigestAlgorithm::Sha256, ContentCipher::Aes256Cbc);
    let policy = AlgorithmPolicy::default();
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
    let responder = Responder {
        signer: SignerIdentity {
            cert: &p.ra_sign,
            key: &p.ra_sign_key,
        },
        sender_nonce: Nonce::random().unwrap(),
        signing_time: Some(1_700_000_200),
        no_envelope: Default::default(),
    };
    let issued = pki::ra_hierarchy().issue(&p.device_keys[0], "device-interop", 77);
    let ca = dir.write("ca.pem", &pki::pem(&p.ca));
    let replies = [
        (
            "success",
            opened
                .reply
                .success(&responder, &[&issued, &p.ca], &[])
                .unwrap(),
        ),
        (
            "failure",
            opened
                .reply
                .failure(
                    &responder,
                    FailInfo::BadRequest,
                    Some("Request not permitted"),
                )
                .unwrap(),
        ),
        ("pending", opened.reply.pending(&responder).unwrap()),
    ];
    for (name, rep) in &replies {
        let f = dir.write(&format!("{name}.der"), rep);
        let out = dir.path(&format!("{name}.out"));
        let mut args = vec![
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            s(&f),
            "-CAfile",
            s(&ca),
        ];
        args.extend(["-purpose", "any", "-attime", "1700000300", "-out", s(&out)]);
        openssl(&args);
        // FAILURE and PENDING carry no pkcsPKIEnvelope (RFC 8894 §3.3.2): an empty eContent,
        // present, so OpenSSL needs no detached content (docs/decisions.md #1).
        if *name != "success" {
            assert_eq!(std::fs::read(&out).unwrap(), b"", "{name}");
        }
    }
    // SUCCESS: the envelope opens with the device key, the payload is certs-only.
    let env = dir.path("success.out");
    let dev = dir.write("dev.pem", &pki::pem(&signer_cert));
    let dev_key = dir.write("dev.key", &pki::key_pem(&p.device_keys[0]));
    let p7 = dir.path("payload.der");
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
        s(&p7),
    ]);
    let certs = String::from_utf8(openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        s(&p7),
        "-print_certs",
        "-noout",
    ]))
    .unwrap();
    assert!(
        certs.contains("device-interop") && certs.contains("Test Root CA"),
        "{certs}"
    );
    let dump = String::from_utf8(openssl(&[
        "cms",
        "-cmsout",
        "-print",
        "-inform",
        "DER",
        "-in",
        s(&dir.path("failure.der")),
    ]))
    .unwrap();
    assert!(dump.contains("Request not permitted"));
}

#[test]
fn scep_opens_what_openssl_encrypts() {
    let p = pki::ra_hierarchy();
    let dir = Dir::new();
    let ra = dir.write("ra.pem", &pki::pem(&p.ra_enc));
    let data: Vec<u8> = (0..1000u32)
        .map(|i| (i * 7 % 251) as u8)
        .chain([0x0a, 0x0d, 0x0a])
        .collect();
    let input = dir.write("data", &data);
    let ciphers = [
        ("-aes128", ContentCipher::Aes128Cbc),
        ("-aes192", ContentCipher::Aes192Cbc),
        ("-aes256", ContentCipher::Aes256Cbc),
        ("-des3", ContentCipher::DesEde3Cbc),
        ("-des", ContentCipher::DesCbc),
    ];
    for (flag, expected) in ciphers {
        for extra in [&[][..], &["-keyid"][..], &["-stream"][..]] {
            let out = dir.path("env.der");
            let mut args = vec![
                "cms",
                "-encrypt",
                "-binary",
                "-outform",
                "DER",
                flag,
                "-in",
                s(&input),
                "-out",
                s(&out),
            ];
            args.extend(extra);
            if flag == "-des" {
                args.extend(["-provider", "legacy", "-provider", "default"]);
            }
            args.push(s(&ra));
            openssl(&args);
            let env_der = std::fs::read(&out).unwrap();
            let env = EnvelopedData::from_content_info(&env_der).unwrap();
            let (plain, cipher) = env
                .open(
                    &[DecryptionKey {
                        cert: &p.ra_enc,
                        key: &p.ra_enc_key,
                    }],
                    &AlgorithmPolicy::default(),
                )
                .unwrap();
            assert_eq!(plain, data, "{flag} {extra:?}");
            assert_eq!(cipher, expected);
        }
    }
}

#[test]
fn scep_verifies_what_openssl_signs_in_der_and_streamed_ber() {
    let p = pki::ra_hierarchy();
    let dir = Dir::new();
    let key = &p.device_keys[1];
    let cert = pki::ra_hierarchy().issue(key, "openssl-signer", 90);
    let cert_pem = dir.write("signer.pem", &pki::pem(&cert));
    let key_pem = dir.write("signer.key", &pki::key_pem(key));
    let input = dir.write("data", b"pkcsPKIEnvelope stand-in\n\x00\x0a");
    for (tool, md, extra) in [
        ("cms", "sha256", &[][..]),
        ("cms", "sha1", &["-keyid"][..]),
        ("cms", "sha512", &["-stream"][..]),
        ("smime", "sha256", &[][..]),
    ] {
        let out = dir.path("signed.der");
        let mut args = vec![
            tool,
            "-sign",
            "-binary",
            "-nodetach",
            "-md",
            md,
            "-outform",
            "DER",
        ];
        args.extend([
            "-signer",
            s(&cert_pem),
            "-inkey",
            s(&key_pem),
            "-in",
            s(&input),
            "-out",
            s(&out),
        ]);
        args.extend(extra);
        openssl(&args);
        let der = std::fs::read(&out).unwrap();
        let sd = SignedData::from_content_info(&der).unwrap();
        let content = sd.content.as_deref().unwrap();
        assert_eq!(content, b"pkcsPKIEnvelope stand-in\n\x00\x0a");
        let si = &sd.signer_infos[0];
        assert!(
            si.sid.find(&sd.parsed_certificates()).is_some(),
            "{tool} {md} {extra:?}"
        );
        let pubkey = cert.public_key().unwrap();
        si.verify(
            scep::oid::DATA,
            content,
            &pubkey,
            &AlgorithmPolicy::default(),
        )
        .unwrap();
        // Tampered content fails the messageDigest check.
        assert!(
            si.verify(
                scep::oid::DATA,
                b"other",
                &pubkey,
                &AlgorithmPolicy::default()
            )
            .is_err()
        );
    }
}

#[test]
fn certs_only_interoperates_with_openssl() {
    let p = pki::ra_hierarchy();
    let dir = Dir::new();
    let body = CaCertificates::new(vec![p.ra_sign.clone(), p.ra_enc.clone(), p.ca.clone()]);
    let (ct, der) = body.to_response().unwrap();
    assert_eq!(ct, CONTENT_TYPE_CA_RA_CERT);
    let f = dir.write("getcacert.p7b", &der);
    let listed = String::from_utf8(openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        s(&f),
        "-print_certs",
        "-noout",
    ]))
    .unwrap();
    for cn in ["NDES RA signing", "NDES RA encryption", "Test Root CA"] {
        assert!(listed.contains(cn), "{cn} not in {listed}");
    }
    let parsed = CaCertificates::from_response(ct, &der).unwrap();
    assert_eq!(
        parsed.encryption_recipient().unwrap().to_der().unwrap(),
        p.ra_enc.to_der().unwrap()
    );
    assert_eq!(
        parsed.reply_signers().len(),
        2,
        "RA signing cert and the CA"
    );
    // And the reverse: a certs-only made by OpenSSL.
    let chain = dir.write(
        "chain.pem",
        &[pki::pem(&p.ra_sign), pki::pem(&p.ca)].concat(),
    );
    let out = dir.path("o.p7b");
    openssl(&[
        "crl2pkcs7",
        "-nocrl",
        "-certfile",
        s(&chain),
        "-outform",
        "DER",
        "-out",
        s(&out),
    ]);
    let ours = CertsOnly::from_der(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(ours.certificates.len(), 2);
    assert_eq!(
        ours.certificates[1].to_der().unwrap(),
        p.ca.to_der().unwrap()
    );
    // With a CRL, as a GetCRL reply carries it.
    let crl_pem = openssl_crl();
    let crl = openssl::x509::X509Crl::from_pem(&crl_pem)
        .unwrap()
        .to_der()
        .unwrap();
    let with_crl = certs_only(&[], &[&crl]).unwrap();
    let f = dir.write("crl.p7b", &with_crl);
    let text = String::from_utf8(openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        s(&f),
        "-print_certs",
        "-noout",
    ]))
    .unwrap();
    assert!(text.contains("Test Root CA"), "CRL issuer printed: {text}");
    assert_eq!(CertsOnly::from_der(&with_crl).unwrap().crls, vec![crl]);
}

/// A CRL signed by the test CA (built with the openssl crate: `openssl crl` cannot sign).
fn openssl_crl() -> Vec<u8> {
    let p = pki::ra_hierarchy();
    let mut b = openssl::x509::X509CrlBuilder::new().unwrap();
    b.set_issuer_name(p.ca.subject_name()).unwrap();
    b.set_last_update(&openssl::asn1::Asn1Time::from_unix(1_700_000_000).unwrap())
        .unwrap();
    b.set_next_update(&openssl::asn1::Asn1Time::from_unix(1_800_000_000).unwrap())
        .unwrap();
    let ctx_holder = openssl::x509::X509Builder::new().unwrap();
    let ctx = ctx_holder.x509v3_context(Some(&p.ca), None);
    let aki = openssl::x509::extension::AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&ctx)
        .unwrap();
    b.append_extension(aki).unwrap();
    let number = openssl::bn::BigNum::from_u32(1).unwrap();
    b.append_extension(
        openssl::x509::extension::CrlNumber::new(number)
            .unwrap()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.sign(&p.ca_key, MessageDigest::sha256()).unwrap();
    b.build().unwrap().to_pem().unwrap()
}
