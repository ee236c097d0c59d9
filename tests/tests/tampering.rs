//! P6, P7, P8, P10: a request that differs from what the profile renders for the device is
//! refused, even with a valid, unused challenge from that device's own check-in. Each request
//! is built by hand (device-agent only sends what the profile says): the subject or SAN
//! changed -> CertRep FAILURE badRequest with SubjectNameMismatch / SubjectAltNameMismatch in
//! the policy module's audit; a key of the wrong size or type -> KeyLengthMismatch; an EKU
//! the profile does not grant -> EnhancedKeyUsageMismatch; an RSA key under 2048 bits or a
//! ROCA-weak one is refused by ndes-proxy before the policy module (badAlg: docs/decisions.md
//! #6); a key already certified to another device -> KeyCertifiedToAnotherDevice. Nothing is
//! issued; the honest request with the same kind of challenge then is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use device_agent::csr::{CsrSpec, NameAttr, San, SanKind, SubjectAttr};
use openssl::pkey::{PKey, Private};
use scep::FailInfo;
use scep_lab_tests::*;

const NAME: &str = "TAMPER-01";

struct Case {
    what: &'static str,
    edit: fn(&mut CsrSpec),
    key: &'static str,
    fail_info: FailInfo,
    reason: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    let bad = |what, edit: fn(&mut CsrSpec), reason| Case {
        what,
        edit,
        key: "rsa2048",
        fail_info: FailInfo::BadRequest,
        reason: Some(reason),
    };
    vec![
        bad(
            "CN of another machine",
            |s| s.subject[0].value = "DC01".into(),
            "SubjectNameMismatch",
        ),
        bad(
            "extra RDN OU=Domain Admins",
            |s| {
                s.subject
                    .insert(1, NameAttr::new(SubjectAttr::OU, "Domain Admins"))
            },
            "SubjectNameMismatch",
        ),
        bad(
            "CN in another case",
            |s| s.subject[0].value = s.subject[0].value.to_lowercase(),
            "SubjectNameMismatch",
        ),
        bad(
            "trailing space in CN",
            |s| s.subject[0].value.push(' '),
            "SubjectNameMismatch",
        ),
        bad(
            "homoglyph CN (a Cyrillic A for the Latin one)",
            |s| s.subject[0].value = s.subject[0].value.replacen('A', "\u{0410}", 1),
            "SubjectNameMismatch",
        ),
        bad(
            "RDNs reordered",
            |s| s.subject.swap(1, 2),
            "SubjectNameMismatch",
        ),
        bad(
            "DNS SAN of a domain controller",
            |s| s.subject_alternative_names[0].value = "dc01.corp.scep-lab.test".into(),
            "SubjectAltNameMismatch",
        ),
        bad(
            "extra UPN SAN of an admin",
            |s| {
                s.subject_alternative_names.push(San {
                    kind: SanKind::Upn,
                    value: "administrator@scep-lab.test".into(),
                })
            },
            "SubjectAltNameMismatch",
        ),
        bad(
            "SAN removed",
            |s| s.subject_alternative_names.clear(),
            "SubjectAltNameMismatch",
        ),
        bad(
            "codeSigning EKU",
            |s| s.extended_key_usages.push("1.3.6.1.5.5.7.3.3".into()),
            "EnhancedKeyUsageMismatch",
        ),
        bad(
            "serverAuth EKU",
            |s| s.extended_key_usages.push("1.3.6.1.5.5.7.3.1".into()),
            "EnhancedKeyUsageMismatch",
        ),
        bad(
            "Certificate Request Agent EKU",
            |s| s.extended_key_usages.push("1.3.6.1.4.1.311.20.2.1".into()),
            "EnhancedKeyUsageMismatch",
        ),
        bad(
            "Smart Card Logon EKU",
            |s| s.extended_key_usages.push("1.3.6.1.4.1.311.20.2.2".into()),
            "EnhancedKeyUsageMismatch",
        ),
        Case {
            what: "RSA 3072 where the profile says 2048",
            edit: |_| {},
            key: "rsa3072",
            fail_info: FailInfo::BadRequest,
            reason: Some("KeyLengthMismatch"),
        },
        Case {
            what: "EC P-256 where the profile says RSA",
            edit: |_| {},
            key: "ec256",
            fail_info: FailInfo::BadRequest,
            reason: Some("KeyLengthMismatch"),
        },
        Case {
            what: "RSA 1024",
            edit: |_| {},
            key: "rsa1024",
            fail_info: FailInfo::BadAlg,
            reason: None,
        },
        Case {
            what: "ROCA-weak RSA 2048 (Infineon RSALib structure, CVE-2017-15361)",
            edit: |_| {},
            key: "roca2048",
            fail_info: FailInfo::BadAlg,
            reason: None,
        },
    ]
}

fn key(kind: &str) -> PKey<Private> {
    match kind {
        "rsa2048" => rsa_key(2048).unwrap(),
        "rsa3072" => rsa_key(3072).unwrap(),
        "rsa1024" => rsa_key(1024).unwrap(),
        "roca2048" => PKey::from_rsa(testkit::pki::roca_structured_rsa_2048().unwrap()).unwrap(),
        "ec256" => testkit::pki::ec_key(),
        other => panic!("{other}"),
    }
}

/// One lab for both scenarios.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    requests_that_differ_from_the_rendered_profile_are_refused(&lab).await;
    subjects_encoded_otherwise_than_the_rendering(&lab).await;
    requested_extensions_never_reach_the_certificate(&lab).await;
    a_key_certified_to_one_device_is_refused_to_another(&lab).await;
    lab.shutdown().await;
}

async fn requests_that_differ_from_the_rendered_profile_are_refused(lab: &TestLab) {
    let device = lab.targeted_device(NAME, PROFILE).await.unwrap();
    let raw = lab.raw_scep().await.unwrap();
    let issued_before = lab.ca_records().await.unwrap().len();
    // One RSA-2048 key signs every outer message (as device-agent's transport key does for
    // keys that cannot), so only the CSR differs between cases.
    let transport = key("rsa2048");
    let mut keys = std::collections::HashMap::new();

    let mut failures = Vec::new();
    for case in cases() {
        let checkin = device.checkin().await.unwrap();
        let profile = &checkin.profiles[0];
        let mut spec = profile.enroll_config().unwrap().csr;
        (case.edit)(&mut spec);
        let csr_key = if case.key == "rsa2048" {
            &transport
        } else {
            keys.entry(case.key).or_insert_with(|| key(case.key))
        };
        let csr = build_csr(&spec, csr_key, Some(profile.challenge.expose())).unwrap();
        let (tx, rep) = raw.pkcs_req(&csr, &transport).await.unwrap();
        if !is_failure(&rep, case.fail_info) {
            failures.push(format!(
                "{}: expected {:?}, got {rep:?}",
                case.what, case.fail_info
            ));
            continue;
        }
        let audited = lab.rejection(tx.as_str()).await.unwrap();
        if audited.as_deref() != case.reason {
            failures.push(format!(
                "{}: audit says {audited:?}, expected {:?}",
                case.what, case.reason
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(lab.ca_records().await.unwrap().len(), issued_before);
    assert!(
        lab.policy()
            .device_view(&device.id)
            .await
            .unwrap()
            .certificates
            .is_empty()
    );

    // The same harness with the profile's rendering is issued: the refusals were the edits.
    let checkin = device.checkin().await.unwrap();
    let csr = profile_csr(&checkin, &transport).unwrap();
    let (_, rep) = raw.pkcs_req(&csr, &transport).await.unwrap();
    let cert = issued_cert(&rep, &transport).unwrap();
    assert_eq!(
        name_values(cert.subject_name()),
        [NAME, "Devices", "scep-lab"]
    );
    assert_eq!(lab.ca_records().await.unwrap().len(), issued_before + 1);
}

/// DER of one RDN `SET { SEQUENCE { type, value } ... }` (test-only, short forms only).
fn rdn(atvs: &[(&[u8], u8, &[u8])]) -> Vec<u8> {
    let tlv = |tag: u8, content: &[u8]| {
        let mut out = vec![tag, u8::try_from(content.len()).unwrap()];
        out.extend_from_slice(content);
        out
    };
    let set: Vec<u8> = atvs
        .iter()
        .flat_map(|(oid, tag, value)| tlv(0x30, &[tlv(0x06, oid), tlv(*tag, value)].concat()))
        .collect();
    tlv(0x31, &set)
}

/// P6, the encodings rust-openssl cannot build from text: CN and OU in one multi-valued RDN
/// is another name (SubjectNameMismatch, nothing issued); the CN's exact text as a
/// PrintableString, as Windows and Go clients write it, is the same name, and the CA writes
/// the profile's subject in its own encoding (UTF8String) whatever the CSR used.
async fn subjects_encoded_otherwise_than_the_rendering(lab: &TestLab) {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const OU: &[u8] = &[0x55, 0x04, 0x0B];
    const O: &[u8] = &[0x55, 0x04, 0x0A];
    const UTF8: u8 = 0x0C;
    const PRINTABLE: u8 = 0x13;
    let device = lab.targeted_device("ENCODED-01", PROFILE).await.unwrap();
    let raw = lab.raw_scep().await.unwrap();
    let issued_before = lab.ca_records().await.unwrap().len();
    let key = rsa_key(2048).unwrap();
    let name = |rdns: Vec<Vec<u8>>| {
        let body = rdns.concat();
        let mut der = vec![0x30, u8::try_from(body.len()).unwrap()];
        der.extend(body);
        der
    };
    for what in ["multi-valued RDN CN+OU", "CN as a PrintableString"] {
        let checkin = device.checkin().await.unwrap();
        let profile = &checkin.profiles[0];
        let spec = profile.enroll_config().unwrap().csr;
        let [cn, ou, o] = [0, 1, 2].map(|i| spec.subject[i].value.as_bytes());
        let rdns = if what.starts_with("multi") {
            vec![rdn(&[(CN, UTF8, cn), (OU, UTF8, ou)]), rdn(&[(O, UTF8, o)])]
        } else {
            vec![
                rdn(&[(CN, PRINTABLE, cn)]),
                rdn(&[(OU, UTF8, ou)]),
                rdn(&[(O, UTF8, o)]),
            ]
        };
        let subject = openssl::x509::X509Name::from_der(&name(rdns)).unwrap();
        let csr = scep::csr::build(
            &key,
            &subject,
            Some(&spec.extensions().unwrap()),
            Some(&scep::csr::ChallengePassword::new(
                profile.challenge.expose(),
            )),
            openssl::hash::MessageDigest::sha256(),
        )
        .unwrap();
        let (tx, rep) = raw.pkcs_req(&csr, &key).await.unwrap();
        if what.starts_with("multi") {
            assert!(is_failure(&rep, FailInfo::BadRequest), "{what}: {rep:?}");
            assert_eq!(
                lab.rejection(tx.as_str()).await.unwrap().as_deref(),
                Some("SubjectNameMismatch"),
                "{what}"
            );
            assert_eq!(lab.ca_records().await.unwrap().len(), issued_before);
            continue;
        }
        let cert = issued_cert(&rep, &key).unwrap();
        let expected = name(vec![
            rdn(&[(CN, UTF8, b"ENCODED-01")]),
            rdn(&[(OU, UTF8, b"Devices")]),
            rdn(&[(O, UTF8, b"scep-lab")]),
        ]);
        assert_eq!(
            cert.subject_name().to_der().unwrap(),
            expected,
            "the CA writes the profile's rendering, not the CSR's encoding"
        );
    }
    assert_eq!(lab.ca_records().await.unwrap().len(), issued_before + 1);
}

/// (OID, critical, extnValue) of every extension of `cert` but the subject key identifier,
/// which is derived from the key.
fn extensions_but_ski(cert: &openssl::x509::X509) -> Vec<(String, bool, Vec<u8>)> {
    let der = cert.to_der().unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    parsed
        .extensions()
        .iter()
        .map(|e| (e.oid.to_id_string(), e.critical, e.value.to_vec()))
        .filter(|(oid, _, _)| oid != "2.5.29.14")
        .collect()
}

/// P8: extensions the policy module does not check (BasicConstraints cA=TRUE, the AD CS SID
/// extension, NameConstraints, Application Policies, a template extension and a v1 template
/// name naming another template) are requested in an otherwise honest CSR. The CA builds the
/// certificate from the template and the grant (docs/decisions.md #7): its extensions are
/// exactly those of the same device's honest certificate. (Requested EKUs beyond the
/// profile are refused by the policy module: the EKU cases of `cases()`.)
async fn requested_extensions_never_reach_the_certificate(lab: &TestLab) {
    use x509_parser::prelude::FromDer;
    let device = lab.targeted_device("EXT-01", PROFILE).await.unwrap();
    let raw = lab.raw_scep().await.unwrap();
    let honest_key = rsa_key(2048).unwrap();
    let csr = profile_csr(&device.checkin().await.unwrap(), &honest_key).unwrap();
    let (_, rep) = raw.pkcs_req(&csr, &honest_key).await.unwrap();
    let honest = issued_cert(&rep, &honest_key).unwrap();

    let checkin = device.checkin().await.unwrap();
    let profile = &checkin.profiles[0];
    let spec = profile.enroll_config().unwrap().csr;
    let key = rsa_key(2048).unwrap();
    let mut extensions = spec.extensions().unwrap();
    extensions
        .push(
            openssl::x509::extension::BasicConstraints::new()
                .critical()
                .ca()
                .build()
                .unwrap(),
        )
        .unwrap();
    // szOID_NTDS_CA_SECURITY_EXT (1.3.6.1.4.1.311.25.2), a SID an attacker would like mapped.
    let mut requested = testkit::greedy::non_eku_extensions();
    requested.push(testkit::greedy::RequestedExtension {
        what: "SID extension",
        oid: "1.3.6.1.4.1.311.25.2",
        der: vec![
            0x30, 0x0a, 0xa0, 0x08, 0x06, 0x02, 0x2a, 0x03, 0xa0, 0x02, 0x04, 0x00,
        ],
    });
    for r in &requested {
        let oid = openssl::asn1::Asn1Object::from_str(r.oid).unwrap();
        let value = openssl::asn1::Asn1OctetString::new_from_bytes(&r.der).unwrap();
        extensions
            .push(openssl::x509::X509Extension::new_from_der(&oid, false, &value).unwrap())
            .unwrap();
    }
    let csr = scep::csr::build(
        &key,
        &spec.subject_name().unwrap(),
        Some(&extensions),
        Some(&scep::csr::ChallengePassword::new(
            profile.challenge.expose(),
        )),
        openssl::hash::MessageDigest::sha256(),
    )
    .unwrap();
    let req = x509_parser::certification_request::X509CertificationRequest::from_der(&csr);
    let asked = req
        .unwrap()
        .1
        .requested_extensions()
        .map_or(0, |e| e.count());
    assert_eq!(asked, 3 + requested.len() + 1, "the CSR carries them all");
    let (_, rep) = raw.pkcs_req(&csr, &key).await.unwrap();
    let cert = issued_cert(&rep, &key).unwrap();
    let granted = extensions_but_ski(&honest);
    assert_eq!(extensions_but_ski(&cert), granted);
    let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
    assert!(!text.contains("CA:TRUE"), "{text}");
    assert!(!text.contains("Name Constraints"), "{text}");
    for r in &requested {
        // The template writes its own v1 name (1.3.6.1.4.1.311.20.2); the equality above
        // says it is the template's, not the requested "SubCA".
        if granted.iter().all(|(oid, _, _)| oid != r.oid) {
            assert!(!text.contains(r.oid), "{}: {text}", r.what);
        }
    }
    assert!(!text.contains("Certificate Sign"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(!text.contains("Code Signing"), "{text}");
}

/// P10: device B runs a disk image cloned from device A and asks, with its own fresh
/// challenge and an otherwise honest request, for a certificate on A's key. The policy module
/// knows A holds that key: CertRep FAILURE badRequest, KeyCertifiedToAnotherDevice in the
/// audit, nothing issued. B's own key is then issued under the same kind of challenge.
async fn a_key_certified_to_one_device_is_refused_to_another(lab: &TestLab) {
    let raw = lab.raw_scep().await.unwrap();
    let original = lab.targeted_device("CLONE-A", PROFILE).await.unwrap();
    let clone = lab.targeted_device("CLONE-B", PROFILE).await.unwrap();
    let key = rsa_key(2048).unwrap();
    let csr = profile_csr(&original.checkin().await.unwrap(), &key).unwrap();
    let (_, rep) = raw.pkcs_req(&csr, &key).await.unwrap();
    issued_cert(&rep, &key).unwrap();
    let issued_before = lab.ca_records().await.unwrap().len();

    let csr = profile_csr(&clone.checkin().await.unwrap(), &key).unwrap();
    let (tx, rep) = raw.pkcs_req(&csr, &key).await.unwrap();
    assert!(is_failure(&rep, FailInfo::BadRequest), "{rep:?}");
    assert_eq!(
        lab.rejection(tx.as_str()).await.unwrap().as_deref(),
        Some("KeyCertifiedToAnotherDevice")
    );
    assert_eq!(lab.ca_records().await.unwrap().len(), issued_before);
    assert!(
        lab.policy()
            .device_view(&clone.id)
            .await
            .unwrap()
            .certificates
            .is_empty()
    );

    let own = rsa_key(2048).unwrap();
    let csr = profile_csr(&clone.checkin().await.unwrap(), &own).unwrap();
    let (_, rep) = raw.pkcs_req(&csr, &own).await.unwrap();
    issued_cert(&rep, &own).unwrap();
    assert_eq!(lab.ca_records().await.unwrap().len(), issued_before + 1);
}
