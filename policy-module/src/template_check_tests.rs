//! `compare` field by field, under both usage sources.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ca_api::template::TemplateKeys;
use foundation::names::{SanKind, SubjectAttr};

use super::*;
use crate::model::{CertificateType, HashAlgorithm, SanTemplate};

const CLIENT: &str = "1.3.6.1.5.5.7.3.2";
const SERVER: &str = "1.3.6.1.5.5.7.3.1";
const IKE_INTERMEDIATE: &str = "1.3.6.1.5.5.8.2.2";

/// Shaped like the lab's IPSECIntermediateOffline.
fn ipsec() -> TemplateInfo {
    TemplateInfo {
        name: "IPSECIntermediateOffline".into(),
        description: String::new(),
        validity_days: 365,
        key_usage: vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment],
        extended_key_usage: vec![CLIENT.into(), SERVER.into(), IKE_INTERMEDIATE.into()],
        keys: TemplateKeys {
            rsa_min_bits: Some(2048),
            ec_curves: vec![Curve::P256, Curve::P384],
        },
        subject_required: vec![],
        subject_allowed: vec![SubjectAttr::CN, SubjectAttr::O, SubjectAttr::OU],
        san_allowed: vec![SanKind::Dns, SanKind::Upn],
        san_max: 10,
        usages: UsageSource::Template,
    }
}

/// A profile that asks exactly what `ipsec()` gives an RSA key.
fn matching() -> ProfileSpec {
    ProfileSpec {
        name: "Wi-Fi".into(),
        certificate_type: CertificateType::Device,
        subject_name_format: "CN={{DeviceName}},O=Contoso".into(),
        subject_alternative_names: vec![SanTemplate {
            kind: SanKind::Dns,
            value: "{{DeviceName}}.contoso.example".into(),
        }],
        key_usage: vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment],
        extended_key_usages: vec![CLIENT.into(), SERVER.into(), IKE_INTERMEDIATE.into()],
        key_algorithm: KeyAlgorithm::Rsa,
        key_size: 2048,
        hash_algorithm: HashAlgorithm::Sha256,
        validity_days: 365,
        renewal_threshold_percent: 20,
        template: "IPSECIntermediateOffline".into(),
        scep_server_urls: vec!["http://127.0.0.1/certsrv/mscep/mscep.dll".into()],
        ca_thumbprint: "a".repeat(40),
        retry_count: 3,
        retry_delay_minutes: 5,
    }
}

fn only(w: &[ProfileWarning], field: &str) -> ProfileWarning {
    let of: Vec<_> = w.iter().filter(|w| w.field == field).collect();
    assert_eq!(of.len(), 1, "{field}: {w:#?}");
    assert_eq!(w.len(), 1, "only {field} differs: {w:#?}");
    of[0].clone()
}

#[test]
fn a_profile_that_asks_what_the_template_gives_has_no_warning() {
    assert_eq!(compare(&matching(), &ipsec()), []);
    let mut shorter = matching();
    shorter.validity_days = 30;
    assert_eq!(
        compare(&shorter, &ipsec()),
        [],
        "a shorter validity is granted"
    );
}

#[test]
fn extra_template_ekus_are_named_and_a_missing_one_too() {
    let mut p = matching();
    p.extended_key_usages = vec![CLIENT.into()];
    let w = only(&compare(&p, &ipsec()), "extended_key_usages");
    assert_eq!(w.consequence, Consequence::Differs);
    assert_eq!(w.profile, "clientAuth");
    assert_eq!(w.template, "clientAuth, serverAuth, ipsecIKEIntermediate");
    assert_eq!(
        w.effect,
        "the certificate will carry serverAuth, ipsecIKEIntermediate too"
    );
    p.extended_key_usages = vec![CLIENT.into(), "1.3.6.1.5.5.7.3.4".into()];
    let w = only(&compare(&p, &ipsec()), "extended_key_usages");
    assert!(
        w.effect.contains("it will not carry emailProtection"),
        "{w:?}"
    );
    let mut t = ipsec();
    t.extended_key_usage.clear();
    let w = only(&compare(&matching(), &t), "extended_key_usages");
    assert!(w.effect.contains("valid for any purpose"), "{w:?}");
}

#[test]
fn key_usage_follows_the_template_and_the_key_family() {
    let mut p = matching();
    p.key_usage = vec![KeyUsage::DigitalSignature];
    let w = only(&compare(&p, &ipsec()), "key_usage");
    assert_eq!(w.consequence, Consequence::Differs);
    assert_eq!(w.effect, "the certificate will carry keyEncipherment too");
    // An EC key never gets keyEncipherment (RFC 5480), so digitalSignature alone matches.
    p.key_algorithm = KeyAlgorithm::Ec;
    p.key_size = 256;
    assert_eq!(compare(&p, &ipsec()), []);
    p.key_usage = vec![KeyUsage::KeyEncipherment];
    let w = only(&compare(&p, &ipsec()), "key_usage");
    assert_eq!(
        w.effect,
        "the certificate will carry digitalSignature too; it will not carry keyEncipherment"
    );
}

#[test]
fn a_longer_validity_is_refused_not_capped() {
    let mut p = matching();
    p.validity_days = 730;
    let w = only(&compare(&p, &ipsec()), "validity_days");
    assert_eq!(w.consequence, Consequence::Refused);
    assert_eq!((w.profile.as_str(), w.template.as_str()), ("730", "365"));
    assert!(w.effect.contains("enrollment will fail"), "{w:?}");
}

#[test]
fn key_types_and_sizes_the_template_refuses() {
    let mut t = ipsec();
    t.keys.rsa_min_bits = Some(3072);
    let w = only(&compare(&matching(), &t), "key_size");
    assert_eq!(w.consequence, Consequence::Refused);
    assert_eq!(w.profile, "RSA 2048");
    assert_eq!(w.template, "RSA at least 3072; EC 256, EC 384");
    t.keys.rsa_min_bits = None;
    let w = only(&compare(&matching(), &t), "key_algorithm");
    assert!(w.effect.contains("refuses RSA keys"), "{w:?}");
    let mut p = matching();
    p.key_algorithm = KeyAlgorithm::Ec;
    p.key_size = 384;
    p.key_usage = vec![KeyUsage::DigitalSignature];
    t.keys.ec_curves = vec![Curve::P256];
    let w = only(&compare(&p, &t), "key_size");
    assert_eq!(w.profile, "EC 384");
    t.keys.ec_curves.clear();
    t.keys.rsa_min_bits = Some(2048);
    let w = only(&compare(&p, &t), "key_algorithm");
    assert!(w.effect.contains("refuses EC keys"), "{w:?}");
}

#[test]
fn san_kinds_counts_and_subject_attributes_the_template_refuses() {
    let mut p = matching();
    p.subject_alternative_names.push(SanTemplate {
        kind: SanKind::Email,
        value: "{{EmailAddress}}".into(),
    });
    let w = only(&compare(&p, &ipsec()), "subject_alternative_names");
    assert_eq!(w.consequence, Consequence::Refused);
    assert_eq!(w.profile, "dns, email");
    assert!(w.effect.contains("email not allowed"), "{w:?}");
    let mut t = ipsec();
    t.san_max = 0;
    let w = only(&compare(&matching(), &t), "subject_alternative_names");
    assert!(w.effect.contains("more than 0 SANs"), "{w:?}");

    let mut p = matching();
    p.subject_name_format = "CN={{DeviceName}},L=Paris".into();
    let w = only(&compare(&p, &ipsec()), "subject_name_format");
    assert!(w.effect.contains("L not allowed"), "{w:?}");
    let mut t = ipsec();
    t.subject_required = vec![SubjectAttr::OU];
    let w = only(&compare(&matching(), &t), "subject_name_format");
    assert!(w.effect.contains("OU required"), "{w:?}");
}

#[test]
fn a_template_that_narrows_to_the_request_reports_only_what_it_drops() {
    let mut t = ipsec();
    t.usages = UsageSource::RequestWithinTemplate;
    let mut p = matching();
    p.key_usage = vec![KeyUsage::DigitalSignature];
    p.extended_key_usages = vec![CLIENT.into()];
    assert_eq!(
        compare(&p, &t),
        [],
        "the certificate carries exactly the profile's"
    );
    p.extended_key_usages = vec![CLIENT.into(), "1.3.6.1.5.5.7.3.4".into()];
    let w = only(&compare(&p, &t), "extended_key_usages");
    assert_eq!(w.consequence, Consequence::Differs);
    assert!(
        w.effect.starts_with("it will not carry emailProtection"),
        "{w:?}"
    );
    assert!(w.effect.contains("narrows"), "{w:?}");
    p.extended_key_usages = vec!["1.3.6.1.5.5.7.3.4".into()];
    let w = only(&compare(&p, &t), "extended_key_usages");
    assert_eq!(w.consequence, Consequence::Refused);
    // EC and keyEncipherment only: nothing of it can be issued.
    let mut p = matching();
    p.key_algorithm = KeyAlgorithm::Ec;
    p.key_size = 256;
    p.key_usage = vec![KeyUsage::KeyEncipherment];
    let w = only(&compare(&p, &t), "key_usage");
    assert_eq!(w.consequence, Consequence::Refused);
}
