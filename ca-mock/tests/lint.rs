//! Reliability catalogue P35: the RFC 5280 profile lint (`ca_mock::lint`). Each check fires on
//! a certificate crafted with exactly that defect and on nothing else; what the CA issues is
//! clean for every template and key type (EC device keys get no keyEncipherment, fixed here);
//! and a candidate that fails the lint is never issued nor stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use ca_mock::keys::KeySpec;
use ca_mock::lint::{Check, Profile};
use ca_mock::store::{CertStore, ListFilter, NewCertificate, SqlStore};
use ca_mock::template::Template;
use ca_mock::{CaMaterial, CaSettings, CertificateAuthority, InitSource};
use common::*;
use foundation::clock::ManualClock;
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

const SKEW: i64 = 300;

/// A certificate shaped like ca-mock's, with knobs for one defect at a time.
struct Parts {
    version: i32,
    serial: Asn1Integer,
    other_issuer: bool,
    not_before: i64,
    not_after: i64,
    empty_subject: bool,
    san_critical: Option<bool>,
    ski: bool,
    aki_of_ca: Option<bool>,
    basic_constraints: Option<(bool, Option<u32>)>,
    key_usage: fn(&mut KeyUsage) -> &mut KeyUsage,
    duplicate_ski: bool,
    subject_key: PKey<Private>,
    signer: PKey<Private>,
}

fn serial(hex: &str) -> Asn1Integer {
    BigNum::from_hex_str(hex)
        .unwrap()
        .to_asn1_integer()
        .unwrap()
}

fn good(issuing: &X509, now: i64) -> Parts {
    Parts {
        version: 2,
        serial: serial("1f2e3d4c5b6a79881f2e3d4c5b6a7988"),
        other_issuer: false,
        not_before: now - SKEW,
        not_after: now + 86_400,
        empty_subject: false,
        san_critical: Some(false),
        ski: true,
        aki_of_ca: Some(true),
        basic_constraints: Some((false, None)),
        key_usage: |k| k.critical().digital_signature(),
        duplicate_ski: false,
        subject_key: ec_key(),
        // The lint does not verify the signature (the reconciler does), so any key of the
        // CA's type signs; the algorithm fields are what is checked.
        signer: if issuing.public_key().unwrap().ec_key().is_ok() {
            ec_key()
        } else {
            rsa_key(2048)
        },
    }
}

fn craft(issuing: &X509, p: Parts) -> Vec<u8> {
    let mut b = X509Builder::new().unwrap();
    b.set_version(p.version).unwrap();
    b.set_serial_number(&p.serial).unwrap();
    if p.other_issuer {
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_text("CN", "Someone Else").unwrap();
        b.set_issuer_name(&n.build()).unwrap();
    } else {
        b.set_issuer_name(issuing.subject_name()).unwrap();
    }
    let mut n = X509NameBuilder::new().unwrap();
    if !p.empty_subject {
        n.append_entry_by_text("CN", "lint-device").unwrap();
    }
    b.set_subject_name(&n.build()).unwrap();
    b.set_pubkey(&p.subject_key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(p.not_before).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(p.not_after).unwrap())
        .unwrap();
    if let Some((ca, path_len)) = p.basic_constraints {
        let mut bc = BasicConstraints::new();
        bc.critical();
        if ca {
            bc.ca();
        }
        if let Some(l) = path_len {
            bc.pathlen(l);
        }
        b.append_extension(bc.build().unwrap()).unwrap();
    }
    let mut ku = KeyUsage::new();
    b.append_extension((p.key_usage)(&mut ku).build().unwrap())
        .unwrap();
    if p.ski {
        for _ in 0..if p.duplicate_ski { 2 } else { 1 } {
            let ski = SubjectKeyIdentifier::new()
                .build(&b.x509v3_context(Some(issuing), None))
                .unwrap();
            b.append_extension(ski).unwrap();
        }
    }
    match p.aki_of_ca {
        Some(true) => {
            let aki = AuthorityKeyIdentifier::new()
                .keyid(true)
                .build(&b.x509v3_context(Some(issuing), None))
                .unwrap();
            b.append_extension(aki).unwrap();
        }
        Some(false) => {
            // The AKI of a different CA (a self-signed one: its own SKI).
            let other = self_signed(&p.signer);
            let aki = AuthorityKeyIdentifier::new()
                .keyid(true)
                .build(&b.x509v3_context(Some(&other), None))
                .unwrap();
            b.append_extension(aki).unwrap();
        }
        None => {}
    }
    if let Some(critical) = p.san_critical {
        let mut san = SubjectAlternativeName::new();
        if critical {
            san.critical();
        }
        let san = san
            .dns("lint.example")
            .build(&b.x509v3_context(Some(issuing), None))
            .unwrap();
        b.append_extension(san).unwrap();
    }
    b.sign(&p.signer, MessageDigest::sha256()).unwrap();
    let der = b.build().to_der().unwrap();
    if p.version == 2 {
        der
    } else {
        with_version(&der, p.version, &p.signer)
    }
}

/// The certificate re-signed with another version number: OpenSSL 3.6 (unlike 3.0) writes v3
/// whenever a certificate has extensions (`X509_sign`), so an older version beside
/// extensions, as a careless CA could issue it, is made from the DER here.
fn with_version(der: &[u8], version: i32, signer: &PKey<Private>) -> Vec<u8> {
    use der::{Decode, Encode};
    let mut cert = x509_cert::Certificate::from_der(der).unwrap();
    cert.tbs_certificate.version = match version {
        0 => x509_cert::Version::V1,
        1 => x509_cert::Version::V2,
        _ => x509_cert::Version::V3,
    };
    let tbs = cert.tbs_certificate.to_der().unwrap();
    let mut s = openssl::sign::Signer::new(MessageDigest::sha256(), signer).unwrap();
    s.update(&tbs).unwrap();
    cert.signature = der::asn1::BitString::from_bytes(&s.sign_to_vec().unwrap()).unwrap();
    cert.to_der().unwrap()
}

fn self_signed(key: &PKey<Private>) -> X509 {
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_pubkey(key).unwrap();
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(ski).unwrap();
    b.sign(key, MessageDigest::sha256()).unwrap();
    b.build()
}

fn hierarchy(key: KeySpec) -> (tempfile::TempDir, CaMaterial) {
    let dir = tempfile::tempdir().unwrap();
    let source = InitSource::Generate {
        key,
        root_cn: "Lint Root".into(),
        issuing_cn: "Lint Issuing".into(),
        org: None,
        root_days: 3650,
        issuing_days: 365,
    };
    ca_mock::init(dir.path(), &source, None).unwrap();
    let material = CaMaterial::load(dir.path(), None).unwrap();
    (dir, material)
}

fn now() -> i64 {
    foundation::clock::unix_now()
}

fn checks(profile: &Profile, der: &[u8], issued_at: i64) -> Vec<Check> {
    let mut c: Vec<Check> = profile
        .lint(der, issued_at)
        .iter()
        .map(|v| v.check)
        .collect();
    c.dedup();
    c
}

#[test]
fn each_check_fires_on_a_certificate_with_exactly_that_defect() {
    let (_dir, m) = hierarchy(KeySpec::EcP256);
    let issuing = &m.issuing;
    let profile = Profile::new(issuing, SKEW).unwrap();
    let t = now();
    assert_eq!(checks(&profile, &craft(issuing, good(issuing, t)), t), []);

    type Mutation = Box<dyn Fn(&mut Parts)>;
    let cases: Vec<(Check, &str, Mutation)> = vec![
        (Check::Version, "v2", Box::new(|p| p.version = 1)),
        (
            Check::Serial,
            "negative",
            Box::new(|p| {
                let mut bn = BigNum::from_hex_str("1f2e3d4c5b6a79881f2e").unwrap();
                bn.set_negative(true);
                p.serial = bn.to_asn1_integer().unwrap();
            }),
        ),
        (Check::Serial, "zero", Box::new(|p| p.serial = serial("0"))),
        (
            Check::Serial,
            "21 octets",
            Box::new(|p| p.serial = serial(&"7f".repeat(21))),
        ),
        (
            Check::Serial,
            "8 octets",
            Box::new(|p| p.serial = serial("7f2e3d4c5b6a7988")),
        ),
        (Check::Issuer, "other", Box::new(|p| p.other_issuer = true)),
        (
            Check::AuthorityKeyId,
            "absent",
            Box::new(|p| p.aki_of_ca = None),
        ),
        (
            Check::AuthorityKeyId,
            "another CA's",
            Box::new(|p| p.aki_of_ca = Some(false)),
        ),
        (Check::SubjectKeyId, "absent", Box::new(|p| p.ski = false)),
        (
            Check::Validity,
            "outlives the CA",
            Box::new(|p| p.not_after += 400 * 86_400),
        ),
        (
            Check::Backdate,
            "beyond the configured skew",
            Box::new(|p| p.not_before -= 1),
        ),
        (
            Check::BasicConstraints,
            "cA",
            Box::new(|p| p.basic_constraints = Some((true, None))),
        ),
        (
            Check::BasicConstraints,
            "pathLen without cA",
            Box::new(|p| p.basic_constraints = Some((false, Some(0)))),
        ),
        (
            Check::DuplicateExtension,
            "two SKIs",
            Box::new(|p| p.duplicate_ski = true),
        ),
        (
            Check::SanCriticality,
            "non-critical with empty subject",
            Box::new(|p| p.empty_subject = true),
        ),
        (
            Check::SanCriticality,
            "empty subject, no SAN",
            Box::new(|p| {
                p.empty_subject = true;
                p.san_critical = None;
            }),
        ),
        (
            Check::SanCriticality,
            "critical with a subject",
            Box::new(|p| p.san_critical = Some(true)),
        ),
        (
            Check::KeyUsage,
            "keyEncipherment on EC",
            Box::new(|p| p.key_usage = |k| k.digital_signature().key_encipherment()),
        ),
        (
            Check::KeyUsage,
            "keyAgreement on RSA",
            Box::new(|p| {
                p.subject_key = rsa_key(2048);
                p.key_usage = |k| k.key_agreement();
            }),
        ),
        (
            Check::KeyUsage,
            "keyCertSign",
            Box::new(|p| p.key_usage = |k| k.digital_signature().key_cert_sign()),
        ),
        (
            Check::SignatureAlgorithm,
            "RSA signature under an EC CA",
            Box::new(|p| p.signer = rsa_key(2048)),
        ),
    ];
    for (check, what, mutate) in cases {
        let mut p = good(issuing, t);
        mutate(&mut p);
        let der = craft(issuing, p);
        assert_eq!(checks(&profile, &der, t), [check], "{what}");
    }

    // Starting before the CA (created a day backdated), issued within the skew of that.
    let mut p = good(issuing, t);
    p.not_before = t - 86_400 - 100;
    assert_eq!(
        checks(&profile, &craft(issuing, p), t - 86_400 - 100 + SKEW),
        [Check::Validity],
        "before the CA"
    );

    // signatureAlgorithm differing from the TBS's signature field: patch the outer OID
    // (ecdsa-with-SHA256, the last occurrence) to ecdsa-with-SHA384.
    let mut der = craft(issuing, good(issuing, t));
    let oid = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    let at = der.windows(oid.len()).rposition(|w| w == oid).unwrap();
    der[at + oid.len() - 1] = 0x03;
    assert_eq!(
        checks(&profile, &der, t),
        [Check::SignatureAlgorithm],
        "outer differs from TBS"
    );
    // Backdated a day: fails even when the configuration would allow more.
    let lenient = Profile::new(issuing, 10 * 86_400).unwrap();
    let p = good(issuing, t);
    assert_eq!(
        checks(&lenient, &craft(issuing, p), t - SKEW + 86_400),
        [Check::Backdate],
        "a day"
    );
    assert_eq!(
        checks(&profile, b"\x30\x03\x02\x01\x01", t),
        [Check::Decode]
    );
}

#[tokio::test]
async fn what_the_ca_issues_is_lint_clean_for_every_template_and_key_type() {
    for ca_key in [KeySpec::EcP256, KeySpec::Rsa2048] {
        let test_ca = start(ca_key).await;
        let ca = test_ca.ca();
        let profile = Profile::new(&ca.material().issuing, SKEW).unwrap();
        let device_keys = [("ec", ec_key()), ("rsa", rsa_key(2048))];
        for (i, (kind, key)) in device_keys.iter().enumerate() {
            let req = issue_request(
                &format!("lint-{i}"),
                "IPSECIntermediateOffline",
                &csr(key, "lint", false),
                kind,
            );
            // Read the clock before the CA does: linting at a later `now()` adds the seconds
            // that ticked over in between to the backdate and fails at 301 s against 300 s.
            let issued_at = now();
            let out = ca.issue("ndes", &call(&req)).await.unwrap();
            let der = out.der.clone();
            assert_eq!(profile.lint(&der, issued_at), [], "{kind} device key");
            let ku = X509::from_der(&der)
                .unwrap()
                .to_text()
                .map(|t| String::from_utf8(t).unwrap())
                .unwrap();
            assert_eq!(ku.contains("Key Encipherment"), *kind == "rsa", "{ku}");
        }
        for template in ["EnrollmentAgentOffline", "CEPEncryption"] {
            let mut req =
                issue_request(template, template, &csr(&rsa_key(2048), "ra", false), "ra");
            req.sans.clear();
            let issued_at = now();
            let out = ca.issue("ndes", &call(&req)).await.unwrap();
            assert_eq!(profile.lint(&out.der, issued_at), [], "{template}");
        }
        test_ca.stop().await;
    }
}

#[tokio::test]
async fn a_candidate_failing_the_lint_is_neither_issued_nor_stored() {
    // A clock past the issuing CA's expiry: NotAfter is capped to the CA's, NotBefore is
    // later, so the candidate is invalid. Before the lint this was signed and handed out.
    let (dir, material) = hierarchy(KeySpec::EcP256);
    drop(material);
    let after_expiry = now() + 400 * 86_400;
    let store = SqlStore::sqlite("sqlite::memory:").await.unwrap();
    let ca = CertificateAuthority::new(
        CaMaterial::load(dir.path(), None).unwrap(),
        Template::builtin().unwrap(),
        Arc::new(store.clone()),
        Arc::new(ManualClock::new(after_expiry)),
        CaSettings::new("http://127.0.0.1:9"),
    )
    .unwrap();
    let req = issue_request(
        "late",
        "IPSECIntermediateOffline",
        &csr(&ec_key(), "late", false),
        "late",
    );
    let err = ca.issue("ndes", &call(&req)).await.unwrap_err();
    assert!(
        matches!(err, ca_mock::error::CaError::ProfileViolation(ref d) if d.contains("Validity")),
        "{err:?}"
    );
    let stored = store
        .list(&ListFilter {
            request_id: None,
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
    // On the wire it is a plain internal error, no lint text.
    let api: ca_mock::api::ApiError = err.into();
    let body = format!("{api:?}");
    assert!(!body.contains("Validity"), "{body}");
}

#[tokio::test]
async fn the_lint_of_a_stored_certificate_is_served_to_its_readers() {
    // GET /api/v1/certificates/{serial}/lint: what `scep-lab profile test` shows for a running
    // lab. What the CA issues is clean; a defective record (one an older CA left in the store)
    // is named by check; an unknown serial is 404 and an anonymous caller is refused.
    let ca = start(KeySpec::EcP256).await;
    let req = granted_request(
        "lint-api",
        "IPSECIntermediateOffline",
        &csr(&ec_key(), "lint-api", false),
        "lint-api",
    );
    let issued = ca.ndes.issue(&req).await.unwrap().response;
    let clean = ca.ndes.lint(&issued.serial).await.unwrap();
    assert_eq!(
        (clean.serial.as_str(), clean.violations.len()),
        (issued.serial.as_str(), 0)
    );

    let issuing = ca.state.ca.material().issuing.clone();
    let t = now();
    let mut parts = good(&issuing, t);
    parts.basic_constraints = Some((true, None));
    let serial = "1f2e3d4c5b6a79881f2e3d4c5b6a7988";
    let stored = NewCertificate {
        serial: serial.into(),
        request_id: "crafted".into(),
        csr_sha256: "00".repeat(32),
        template: "IPSECIntermediateOffline".into(),
        subject: "CN=lint-device".into(),
        sans: "[]".into(),
        public_key_sha256: "00".repeat(32),
        der: craft(&issuing, parts),
        not_before: t - SKEW,
        not_after: t + 86_400,
        issued_at: t,
        issued_to: "operator".into(),
        issued_under: "operator".into(),
    };
    ca.state.ca.store().insert_issued(&stored).await.unwrap();
    let report = ca.ndes.lint(serial).await.unwrap();
    let checks: Vec<&str> = report.violations.iter().map(|v| v.check.as_str()).collect();
    assert_eq!(checks, ["BasicConstraints"], "{report:?}");

    let unknown = ca.ndes.lint("0123abcd").await.unwrap_err();
    assert_eq!(unknown.code(), Some("unknown_serial"));
    assert!(ca.anonymous.lint(serial).await.is_err());
    ca.stop().await;
}
