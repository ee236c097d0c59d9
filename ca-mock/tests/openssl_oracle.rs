//! What ca-mock produces, checked by the `openssl` CLI: chains, CRLs, OCSP, template shape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ca_mock::keys::KeySpec;
use ca_mock::store::RevocationReason;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_certificates_verify_against_root_and_issuing_ca() {
    for key in [KeySpec::Rsa2048, KeySpec::EcP384] {
        let ca = start(key).await;
        let (root, issuing, _) = ca.write_ca_pems();
        for (i, leaf_key) in [rsa_key(2048), ec_key()].iter().enumerate() {
            let req = granted_request(
                &format!("tx-{i}"),
                "IPSECIntermediateOffline",
                &csr(leaf_key, "dev", false),
                "dev-1",
            );
            let out = ca.ndes.issue(&req).await.unwrap();
            assert!(out.created);
            // The chain in the response is issuing then root.
            assert_eq!(
                b64d(&out.response.chain[0]),
                ca.ca().material().issuing_der().unwrap()
            );
            assert_eq!(
                b64d(&out.response.chain[1]),
                ca.ca().material().root_der().unwrap()
            );
            let leaf = write_cert_pem(
                ca.dir.path(),
                &format!("leaf{i}.pem"),
                &out.response.certificate,
            );
            let (ok, text) = openssl(vec![
                "verify".into(),
                "-CAfile".into(),
                s(&root),
                "-untrusted".into(),
                s(&issuing),
                s(&leaf),
            ])
            .await;
            assert!(ok && text.contains(": OK"), "{key:?}: {text}");
        }
        ca.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crl_check_passes_before_and_fails_after_revocation_and_shows_reasons() {
    let ca = start(KeySpec::Rsa2048).await;
    let (_, _, chain) = ca.write_ca_pems();
    let mut serials = Vec::new();
    let mut leaves = Vec::new();
    for i in 0..3 {
        let req = granted_request(
            &format!("crl-{i}"),
            "IPSECIntermediateOffline",
            &csr(&ec_key(), "d", false),
            &format!("dev-{i}"),
        );
        let out = ca.ndes.issue(&req).await.unwrap().response;
        leaves.push(write_cert_pem(
            ca.dir.path(),
            &format!("crl-leaf{i}.pem"),
            &out.certificate,
        ));
        serials.push(out.serial);
    }
    let crl_path = ca.path("fetched.crl");
    let verify = |leaf: std::path::PathBuf, crl: std::path::PathBuf| {
        vec![
            "verify".into(),
            "-crl_check".into(),
            "-CAfile".into(),
            s(&chain),
            "-CRLfile".into(),
            s(&crl),
            s(&leaf),
        ]
    };

    std::fs::write(&crl_path, ca.anonymous.crl().await.unwrap()).unwrap();
    let (ok, text) = openssl(verify(leaves[0].clone(), crl_path.clone())).await;
    assert!(ok && text.contains(": OK"), "before revocation: {text}");

    ca.policy
        .revoke(&serials[0], RevocationReason::KeyCompromise)
        .await
        .unwrap();
    ca.policy
        .revoke(&serials[1], RevocationReason::CessationOfOperation)
        .await
        .unwrap();
    ca.policy
        .revoke(&serials[2], RevocationReason::CertificateHold)
        .await
        .unwrap();
    let crl_der = ca.anonymous.crl().await.unwrap();
    std::fs::write(&crl_path, &crl_der).unwrap();
    // The file written atomically by the CA holds the same CRL.
    assert_eq!(std::fs::read(ca.path("issuing.crl")).unwrap(), crl_der);

    let (ok, text) = openssl(verify(leaves[0].clone(), crl_path.clone())).await;
    assert!(
        !ok && text.contains("certificate revoked"),
        "after revocation: {text}"
    );

    let (ok, text) = openssl(vec![
        "crl".into(),
        "-inform".into(),
        "DER".into(),
        "-in".into(),
        s(&crl_path),
        "-noout".into(),
        "-text".into(),
        "-CAfile".into(),
        s(&chain),
    ])
    .await;
    assert!(ok, "{text}");
    assert!(text.contains("verify OK"), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("Cessation Of Operation"), "{text}");
    assert!(text.contains("Certificate Hold"), "{text}");
    assert!(text.contains("X509v3 CRL Number"), "{text}");
    for serial in &serials {
        assert!(
            text.to_lowercase().contains(&serial.to_lowercase()),
            "{serial} missing: {text}"
        );
    }

    // Releasing the hold removes that entry and the number still grows.
    let before = ca.ca().crl().await.unwrap().number;
    ca.policy.release(&serials[2]).await.unwrap();
    let after = ca.ca().crl().await.unwrap();
    assert!(after.number > before);
    assert_eq!(after.entries, 2);
    std::fs::write(&crl_path, &after.der).unwrap();
    let (ok, text) = openssl(verify(leaves[2].clone(), crl_path.clone())).await;
    assert!(ok && text.contains(": OK"), "released hold: {text}");
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_ocsp_reports_good_revoked_with_reason_and_unknown() {
    for key in [KeySpec::Rsa2048, KeySpec::EcP256] {
        let ca = start(key).await;
        let (_, issuing, chain) = ca.write_ca_pems();
        let req = granted_request(
            "ocsp-1",
            "IPSECIntermediateOffline",
            &csr(&ec_key(), "d", false),
            "dev-1",
        );
        let out = ca.ndes.issue(&req).await.unwrap().response;
        let leaf = write_cert_pem(ca.dir.path(), "ocsp-leaf.pem", &out.certificate);
        let url = format!("{}/ocsp", ca.base);
        let ask = |target: Vec<String>| {
            let mut args: Vec<String> = vec![
                "ocsp".into(),
                "-issuer".into(),
                s(&issuing),
                "-url".into(),
                url.clone(),
                "-CAfile".into(),
                s(&chain),
            ];
            args.extend(target);
            args
        };

        let (ok, text) = openssl(ask(vec!["-cert".into(), s(&leaf)])).await;
        assert!(ok && text.contains("Response verify OK"), "{text}");
        assert!(text.contains(": good"), "{text}");
        assert!(
            !text.contains("WARNING: no nonce"),
            "nonce must be echoed: {text}"
        );

        ca.policy
            .revoke(&out.serial, RevocationReason::KeyCompromise)
            .await
            .unwrap();
        let (ok, text) = openssl(ask(vec!["-cert".into(), s(&leaf)])).await;
        assert!(ok && text.contains("Response verify OK"), "{text}");
        assert!(text.contains(": revoked"), "{text}");
        assert!(text.contains("Reason: keyCompromise"), "{text}");
        assert!(text.contains("Revocation Time"), "{text}");

        // A serial this CA never issued is unknown, never good.
        let (ok, text) = openssl(ask(vec!["-serial".into(), "0x1234567890abcdef".into()])).await;
        assert!(ok && text.contains("Response verify OK"), "{text}");
        assert!(text.contains(": unknown"), "{text}");
        ca.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_decides_and_greedy_csr_gets_none_of_what_it_asked() {
    let ca = start(KeySpec::Rsa2048).await;
    let req = granted_request(
        "greedy-1",
        "IPSECIntermediateOffline",
        &csr(&rsa_key(2048), "evil-cn", true),
        "dev-1",
    );
    let out = ca.ndes.issue(&req).await.unwrap().response;
    let leaf = write_cert_pem(ca.dir.path(), "greedy.pem", &out.certificate);
    let (ok, text) = openssl(vec![
        "x509".into(),
        "-in".into(),
        s(&leaf),
        "-noout".into(),
        "-text".into(),
    ])
    .await;
    assert!(ok, "{text}");
    for absent in [
        "CA:TRUE",
        "Any Extended Key Usage",
        "Certificate Sign",
        "CRL Sign",
        "evil.example",
        "evil-cn",
        "othername",
        "admin@contoso.com",
    ] {
        assert!(
            !text.contains(absent),
            "{absent} must not be in the certificate:\n{text}"
        );
    }
    for present in [
        "CA:FALSE",
        "Digital Signature, Key Encipherment",
        "TLS Web Client Authentication",
        "TLS Web Server Authentication",
        "DNS:dev-1.example.com",
        "CN = dev-1",
        "CA Issuers - URI:http://127.0.0.1",
        "OCSP - URI:http://127.0.0.1",
        "/crl/issuing.crl",
        "X509v3 Authority Key Identifier",
        "X509v3 Subject Key Identifier",
        "1.3.6.1.4.1.311.20.2",
    ] {
        assert!(text.contains(present), "{present} missing:\n{text}");
    }
    ca.stop().await;
}

/// The extensions of a certificate as `openssl x509` prints them, without the subject key
/// identifier (it is derived from the key, which differs between requests).
async fn extensions_text(dir: &std::path::Path, name: &str, cert_b64: &str) -> String {
    let pem = write_cert_pem(dir, name, cert_b64);
    let (ok, text) = openssl(vec![
        "x509".into(),
        "-in".into(),
        s(&pem),
        "-noout".into(),
        "-text".into(),
        "-certopt".into(),
        "no_header,no_version,no_serial,no_signame,no_validity,no_subject,no_issuer,no_pubkey,no_sigdump,no_aux".into(),
    ])
    .await;
    assert!(ok, "{text}");
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.contains("X509v3 Subject Key Identifier") {
            lines.next();
        } else {
            out.push(line);
        }
    }
    out.join("\n")
}

/// P8: a CSR asking for everything an AD CS attacker would (NameConstraints, Application
/// Policies, a template extension and a v1 template name naming another template, the EKUs
/// Certificate Request Agent, Smart Card Logon, codeSigning and serverAuth, cA=TRUE) gets a
/// certificate whose extensions are exactly those of an honest request's under the same
/// template and grant, byte for byte as `openssl x509` prints them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p8_requested_extensions_leave_the_certificate_as_the_template_makes_it() {
    use testkit::greedy;
    let ca = start(KeySpec::Rsa2048).await;
    let template = "IPSECIntermediateOffline";
    let honest = ca
        .ndes
        .issue(&granted_request(
            "p8-honest",
            template,
            &csr(&rsa_key(2048), "dev-1", false),
            "dev-1",
        ))
        .await
        .unwrap()
        .response;

    let key = rsa_key(2048);
    let mut b = openssl::x509::X509ReqBuilder::new().unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "dev-1").unwrap();
    b.set_subject_name(&name.build()).unwrap();
    b.set_pubkey(&key).unwrap();
    let mut exts = openssl::stack::Stack::new().unwrap();
    let mut requested = greedy::non_eku_extensions();
    requested.push(greedy::eku_extension(&[
        greedy::EKU_CERTIFICATE_REQUEST_AGENT,
        greedy::EKU_SMART_CARD_LOGON,
        greedy::EKU_CODE_SIGNING,
        greedy::EKU_SERVER_AUTH,
    ]));
    for r in &requested {
        let oid = openssl::asn1::Asn1Object::from_str(r.oid).unwrap();
        let value = openssl::asn1::Asn1OctetString::new_from_bytes(&r.der).unwrap();
        exts.push(openssl::x509::X509Extension::new_from_der(&oid, false, &value).unwrap())
            .unwrap();
    }
    exts.push(
        openssl::x509::extension::BasicConstraints::new()
            .critical()
            .ca()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.add_extensions(&exts).unwrap();
    b.sign(&key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    let greedy_csr = b.build().to_der().unwrap();
    let greedy = ca
        .ndes
        .issue(&granted_request(
            "p8-greedy",
            template,
            &greedy_csr,
            "dev-1",
        ))
        .await
        .unwrap()
        .response;

    let honest_text = extensions_text(ca.dir.path(), "p8-honest.pem", &honest.certificate).await;
    let greedy_text = extensions_text(ca.dir.path(), "p8-greedy.pem", &greedy.certificate).await;
    assert_eq!(greedy_text, honest_text);
    for absent in [
        "Name Constraints",
        "evil.example",
        "1.3.6.1.4.1.311.21.10",
        "1.3.6.1.4.1.311.21.7",
        "S.u.b.C.A",
        "Code Signing",
        "1.3.6.1.4.1.311.20.2.1",
        "1.3.6.1.4.1.311.20.2.2",
        "Microsoft Smartcard Login",
        "CA:TRUE",
    ] {
        assert!(!greedy_text.contains(absent), "{absent}:\n{greedy_text}");
    }
    assert!(
        greedy_text.contains("TLS Web Client Authentication"),
        "{greedy_text}"
    );
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndes_ra_templates_have_the_ndes_shape() {
    let ca = start(KeySpec::Rsa2048).await;
    let key = rsa_key(2048);
    for (template, usage, not) in [
        (
            "EnrollmentAgentOffline",
            "Digital Signature",
            "Key Encipherment",
        ),
        ("CEPEncryption", "Key Encipherment", "Digital Signature"),
    ] {
        let mut req = issue_request(
            &format!("ra-{template}"),
            template,
            &csr(&key, "ra", true),
            "NDES RA",
        );
        req.sans.clear();
        let out = ca.ndes.issue(&granted(req)).await.unwrap().response;
        let pem = write_cert_pem(ca.dir.path(), &format!("{template}.pem"), &out.certificate);
        let (ok, text) = openssl(vec![
            "x509".into(),
            "-in".into(),
            s(&pem),
            "-noout".into(),
            "-text".into(),
        ])
        .await;
        assert!(ok, "{text}");
        assert!(text.contains("CA:FALSE"), "{template}: {text}");
        let ku_line = text
            .lines()
            .skip_while(|l| !l.contains("X509v3 Key Usage"))
            .nth(1)
            .unwrap();
        assert_eq!(ku_line.trim(), usage, "{template}: {text}");
        assert!(!ku_line.contains(not));
        assert!(
            text.contains("1.3.6.1.4.1.311.20.2.1")
                || text.contains("Certificate Request Agent")
                || text.contains("Microsoft"),
            "{template}: {text}"
        );
    }
    ca.stop().await;
}
