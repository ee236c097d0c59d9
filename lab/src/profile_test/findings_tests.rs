//! The classes no lab can issue (ca-mock refuses SHA-1, small keys, CA certificates for
//! devices and a subject other than the grant's, and lints before it signs), checked on a
//! certificate made here and linted by the CA's own lint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use policy_module::model::{DeviceSpec, Platform, ProfileSpec};
use policy_module::render::Expected;

use super::cert::decode;
use super::findings::{Severity, analyse};
use super::runner::{Issued, Outcome};
use ca_api::wire::LintViolation;
use foundation::names::{NameAttr, San, SanKind, SubjectAttr};

fn weak_ca_cert() -> X509 {
    let key = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "someone-else").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(800).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .dns("evil.test")
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, MessageDigest::sha1()).unwrap();
    b.build()
}

fn spec() -> ProfileSpec {
    serde_json::from_value(serde_json::json!({
        "name": "p", "certificate_type": "device", "subject_name_format": "CN={{DeviceName}}",
        "key_usage": ["digitalSignature"], "extended_key_usages": ["1.3.6.1.5.5.7.3.2"],
        "key_algorithm": "rsa", "key_size": 2048, "hash_algorithm": "sha256",
        "validity_days": 365, "renewal_threshold_percent": 20, "template": "T",
        "scep_server_urls": ["http://127.0.0.1:1/"], "ca_thumbprint": "00".repeat(32)
    }))
    .unwrap()
}

#[test]
fn weak_and_foreign_certificates_are_found_with_the_cas_lint() {
    let cert = weak_ca_cert();
    let der = cert.to_der().unwrap();
    let profile = ca_mock::lint::Profile::new(&cert, 300).unwrap();
    // Mapped as ca-mock's GET /api/v1/certificates/{serial}/lint maps it.
    let lint: Vec<LintViolation> = profile
        .lint(&der, foundation::clock::unix_now())
        .into_iter()
        .map(|v| LintViolation {
            check: format!("{:?}", v.check),
            detail: v.detail,
        })
        .collect();
    assert!(!lint.is_empty());
    let spec = spec();
    let outcome = Outcome {
        profile_id: "p".into(),
        source: "file".into(),
        rendered: Some(Expected {
            subject: vec![NameAttr::new(SubjectAttr::CN, "DEV-1")],
            subject_alternative_names: vec![San::new(SanKind::Dns, "dev-1.test")],
            key_algorithm: spec.key_algorithm,
            key_size: 2048,
            key_usage: spec.key_usage.clone(),
            extended_key_usages: spec.extended_key_usages.clone(),
            template: "T".into(),
            validity_days: 365,
        }),
        spec,
        unmodelled: Vec::new(),
        device: DeviceSpec {
            id: None,
            name: "DEV-1".into(),
            platform: Platform::Windows,
            serial_number: None,
            owner_upn: None,
            owner_email: None,
            aad_device_id: None,
            user_name: None,
        },
        device_id: "d".into(),
        template: Err("not read".into()),
        render_error: None,
        warnings: Vec::new(),
        enrollment: Ok(Issued {
            cert: decode(&cert).unwrap(),
            chain: Vec::new(),
            chain_verified: Err("the chain has no root".into()),
        }),
        lint: Some(Ok(lint)),
    };
    let found: Vec<(String, Severity)> = analyse(&outcome)
        .into_iter()
        .map(|f| (f.id, f.severity))
        .collect();
    for (id, sev) in [
        ("strength.weak_hash", Severity::High),
        ("strength.small_key", Severity::High),
        ("strength.ca_certificate", Severity::High),
        ("strength.long_validity", Severity::Low),
        ("difference.subject", Severity::High),
        ("difference.san_extra", Severity::High),
        ("difference.san_missing", Severity::Medium),
        ("difference.key", Severity::Medium),
        ("difference.validity_longer", Severity::Medium),
        ("difference.eku_missing", Severity::Medium),
        ("difference.key_usage_missing", Severity::Low),
        ("lint.BasicConstraints", Severity::High),
        ("lint.Serial", Severity::High),
        ("run.chain", Severity::High),
    ] {
        assert!(
            found.contains(&(id.to_owned(), sev)),
            "no {sev:?} {id} in {found:?}"
        );
    }
}
