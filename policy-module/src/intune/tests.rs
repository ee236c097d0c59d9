//! Import/export over the fixtures written from the published Graph schema
//! (`testdata/intune/`): a round trip per platform type, the unmodelled list, variables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::*;
use crate::model::{CertificateType, HashAlgorithm, KeyAlgorithm, KeyUsage, SanKind};

const FIXTURES: [(IntunePlatform, &str); 6] = [
    (
        IntunePlatform::Windows,
        include_str!("../../testdata/intune/windows.json"),
    ),
    (
        IntunePlatform::Ios,
        include_str!("../../testdata/intune/ios.json"),
    ),
    (
        IntunePlatform::Macos,
        include_str!("../../testdata/intune/macos.json"),
    ),
    (
        IntunePlatform::AndroidDeviceOwner,
        include_str!("../../testdata/intune/android-device-owner.json"),
    ),
    (
        IntunePlatform::AndroidWorkProfile,
        include_str!("../../testdata/intune/android-work-profile.json"),
    ),
    (
        IntunePlatform::AndroidForWork,
        include_str!("../../testdata/intune/android-for-work.json"),
    ),
];

fn options() -> ImportOptions {
    ImportOptions {
        id: None,
        template: "IntuneSCEP".into(),
        ca_thumbprint: "ab".repeat(32),
    }
}

fn fixture(p: IntunePlatform) -> Value {
    let (_, text) = FIXTURES.iter().find(|(q, _)| *q == p).unwrap();
    serde_json::from_str(text).unwrap()
}

fn unmodelled_names(i: &Imported) -> Vec<&str> {
    i.unmodelled.iter().map(|u| u.property.as_str()).collect()
}

#[test]
fn every_platform_round_trips_and_export_keeps_each_modelled_property() {
    for (platform, text) in FIXTURES {
        let doc: Value = serde_json::from_str(text).unwrap();
        let first = import(&doc, &options()).unwrap();
        assert_eq!(first.platform, platform);
        let exported = export(&first.spec, platform).unwrap();
        let out = exported.document.as_object().unwrap();
        // Every property export writes is the fixture's own value, unchanged.
        for (key, value) in out {
            assert_eq!(&doc[key], value, "{platform:?}: {key} changed on export");
        }
        // Every fixture property is either given back or listed as unmodelled.
        let listed = unmodelled_names(&first);
        for (key, value) in doc.as_object().unwrap() {
            assert!(
                value.is_null() || out.contains_key(key) || listed.contains(&key.as_str()),
                "{platform:?}: {key} dropped silently"
            );
        }
        let second = import(&exported.document, &options()).unwrap();
        assert_eq!(second.spec, first.spec, "{platform:?}");
        assert_eq!(second.platform, platform);
        assert!(second.unmodelled.is_empty(), "{:?}", second.unmodelled);
    }
}

#[test]
fn windows_fixture_maps_to_the_expected_profile() {
    let i = import(&fixture(IntunePlatform::Windows), &options()).unwrap();
    assert_eq!(i.id, "windows-user-scep");
    let s = &i.spec;
    assert_eq!(s.name, "Windows user SCEP");
    assert_eq!(s.certificate_type, CertificateType::User);
    assert_eq!(
        s.subject_name_format,
        "CN={{UserName}},E={{EmailAddress}},OU=Users,O=Contoso,C=US"
    );
    let sans: Vec<_> = s
        .subject_alternative_names
        .iter()
        .map(|s| (s.kind, s.value.as_str()))
        .collect();
    assert_eq!(
        sans,
        [
            (SanKind::Upn, "{{UserPrincipalName}}"),
            (SanKind::Email, "{{EmailAddress}}")
        ]
    );
    assert_eq!(
        s.key_usage,
        [KeyUsage::KeyEncipherment, KeyUsage::DigitalSignature]
    );
    assert_eq!(s.extended_key_usages, ["1.3.6.1.5.5.7.3.2"]);
    assert_eq!((s.key_algorithm, s.key_size), (KeyAlgorithm::Rsa, 2048));
    assert_eq!(s.hash_algorithm, HashAlgorithm::Sha256);
    assert_eq!(s.validity_days, 365);
    assert_eq!(s.renewal_threshold_percent, 20);
    assert_eq!(s.template, "IntuneSCEP");
    assert_eq!(s.ca_thumbprint, "ab".repeat(32));
}

#[test]
fn unmodelled_properties_are_listed_with_reasons() {
    let expect: [(IntunePlatform, &[&str]); 4] = [
        (
            IntunePlatform::Windows,
            &[
                "keyStorageProvider",
                "description",
                "deviceManagementApplicabilityRuleOsVersion",
                "id",
                "roleScopeTagIds",
            ],
        ),
        (IntunePlatform::Macos, &["allowAllAppsAccess", "version"]),
        (
            IntunePlatform::AndroidDeviceOwner,
            &["certificateAccessType", "silentCertificateAccessDetails"],
        ),
        (IntunePlatform::Ios, &["createdDateTime", "description"]),
    ];
    for (platform, names) in expect {
        let i = import(&fixture(platform), &options()).unwrap();
        let listed = unmodelled_names(&i);
        for n in names {
            assert!(
                listed.contains(n),
                "{platform:?}: {n} not listed: {listed:?}"
            );
        }
        assert!(i.unmodelled.iter().all(|u| !u.reason.is_empty()));
        // Null properties hold nothing and are not listed.
        assert!(!listed.contains(&"subjectAlternativeNameFormatString"));
    }
    // A property of no schema, a SAN type and an EKU label scep-lab does not keep.
    let mut doc = fixture(IntunePlatform::Ios);
    doc["madeUpSetting"] = json!(1);
    doc["hashAlgorithm"] = json!("sha2");
    doc["customSubjectAlternativeNames"]
        .as_array_mut()
        .unwrap()
        .push(json!({"sanType": "customAzureADAttribute", "name": "onPremisesSamAccountName"}));
    doc["extendedKeyUsages"][0]["name"] = json!("Wi-Fi auth");
    let i = import(&doc, &options()).unwrap();
    let listed = unmodelled_names(&i);
    for n in [
        "madeUpSetting",
        "hashAlgorithm",
        "customSubjectAlternativeNames[1]",
        "extendedKeyUsages[0].name",
    ] {
        assert!(listed.contains(&n), "{n} not listed: {listed:?}");
    }
    let hash = i.unmodelled.iter().find(|u| u.property == "hashAlgorithm");
    assert!(hash.unwrap().reason.contains("iosScepCertificateProfile"));
    // iOS profiles have no hash algorithm: the default is said, not hidden.
    assert!(i.defaulted.iter().any(|d| d.property == "hash_algorithm"));
}

#[test]
fn intune_variables_map_to_render_variables() {
    let mut doc = fixture(IntunePlatform::Windows);
    doc["subjectNameFormatString"] =
        json!("CN={{devicename}},OU={{AzureADDeviceId}},O={{Device_Serial}},L={{DeviceId}}");
    doc["customSubjectAlternativeNames"][0]["name"] = json!("{{userprincipalname}}");
    let i = import(&doc, &options()).unwrap();
    assert_eq!(
        i.spec.subject_name_format,
        "CN={{DeviceName}},OU={{AAD_Device_ID}},O={{SerialNumber}},L={{DeviceId}}"
    );
    assert_eq!(
        i.spec.subject_alternative_names[0].value,
        "{{UserPrincipalName}}"
    );
}

#[test]
fn unknown_and_unmodellable_variables_are_errors_that_name_them() {
    let mut doc = fixture(IntunePlatform::Windows);
    doc["subjectNameFormatString"] = json!("CN={{DeviceName}},OU={{FavouriteColour}}");
    let e = import(&doc, &options()).unwrap_err();
    assert_eq!(e.property, "subjectNameFormatString");
    assert!(e.to_string().contains("{{FavouriteColour}}"), "{e}");

    doc["subjectNameFormatString"] = json!("CN={{IMEI}}");
    let e = import(&doc, &options()).unwrap_err();
    assert!(e.to_string().contains("{{IMEI}}"), "{e}");

    let mut doc = fixture(IntunePlatform::Ios);
    doc["customSubjectAlternativeNames"][0]["name"] = json!("{{WiFiMacAddress}}.contoso");
    let e = import(&doc, &options()).unwrap_err();
    assert_eq!(e.property, "customSubjectAlternativeNames[0].name");
    assert!(e.to_string().contains("{{WiFiMacAddress}}"), "{e}");

    // Export: scep-lab's {{Platform}} has no Intune counterpart.
    let mut spec = import(&fixture(IntunePlatform::Ios), &options())
        .unwrap()
        .spec;
    spec.subject_name_format = "CN={{DeviceName}},OU={{Platform}}".into();
    let e = export(&spec, IntunePlatform::Ios).unwrap_err();
    assert_eq!(e.property, "subject_name_format");
    assert!(e.to_string().contains("{{Platform}}"), "{e}");
}

#[test]
fn values_scep_lab_does_not_offer_are_errors_naming_the_property() {
    let cases: [(&str, Value, &str); 7] = [
        ("keySize", json!("size1024"), "keySize"),
        ("hashAlgorithm", json!("sha1"), "hashAlgorithm"),
        (
            "certificateValidityPeriodValue",
            json!(5),
            "certificateValidityPeriodValue",
        ),
        ("certificateStore", json!("tpm"), "certificateStore"),
        (
            "@odata.type",
            json!("#microsoft.graph.iosPkcsCertificateProfile"),
            "@odata.type",
        ),
        (
            "extendedKeyUsages",
            json!([{"name": "Any Purpose", "objectIdentifier": "2.5.29.37.0"}]),
            "extendedKeyUsages",
        ),
        (
            "subjectNameFormat",
            json!("commonNameAsIMEI"),
            "subjectNameFormat",
        ),
    ];
    for (key, value, property) in cases {
        let mut doc = fixture(IntunePlatform::Windows);
        doc[key] = value;
        let e = import(&doc, &options()).unwrap_err();
        assert_eq!(e.property, property, "{key}: {e}");
    }
    assert_eq!(
        import(&json!([1]), &options()).unwrap_err().property,
        "(document)"
    );
    let mut doc = fixture(IntunePlatform::Windows);
    doc.as_object_mut().unwrap().remove("displayName");
    assert_eq!(
        import(&doc, &options()).unwrap_err().property,
        "displayName"
    );
}

#[test]
fn named_subject_formats_and_the_legacy_san_type_are_spelled_out() {
    let mut doc = fixture(IntunePlatform::AndroidDeviceOwner);
    doc["subjectNameFormat"] = json!("commonNameAsIntuneDeviceId");
    doc["subjectAlternativeNameType"] = json!("emailAddress");
    let i = import(&doc, &options()).unwrap();
    assert_eq!(i.spec.subject_name_format, "CN={{DeviceId}}");
    assert!(
        i.spec
            .subject_alternative_names
            .iter()
            .any(|s| s.kind == SanKind::Email && s.value == "{{EmailAddress}}")
    );
    // Apple types have no device-id formats.
    let mut doc = fixture(IntunePlatform::Macos);
    doc["subjectNameFormat"] = json!("commonNameAsAadDeviceId");
    assert_eq!(
        import(&doc, &options()).unwrap_err().property,
        "subjectNameFormat"
    );
}

#[test]
fn export_lists_what_graph_cannot_carry() {
    let mut spec = import(&fixture(IntunePlatform::Windows), &options())
        .unwrap()
        .spec;
    spec.key_algorithm = KeyAlgorithm::Ec;
    spec.key_size = 256;
    spec.hash_algorithm = HashAlgorithm::Sha384;
    spec.subject_alternative_names
        .push(crate::model::SanTemplate {
            kind: SanKind::Ip,
            value: "10.0.0.1".into(),
        });
    let e = export(&spec, IntunePlatform::Windows).unwrap();
    let names: Vec<_> = e.unexported.iter().map(|u| u.property.as_str()).collect();
    for n in [
        "template",
        "ca_thumbprint",
        "key_size",
        "hash_algorithm",
        "subject_alternative_names[2]",
    ] {
        assert!(names.contains(&n), "{n} not listed: {names:?}");
    }
    assert_eq!(e.document["keySize"], "size4096");
    assert_eq!(
        e.document["customSubjectAlternativeNames"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        e.document["@odata.type"],
        IntunePlatform::Windows.odata_type()
    );
    // iOS has no hashAlgorithm property.
    let e = export(&spec, IntunePlatform::Ios).unwrap();
    assert!(e.document.get("hashAlgorithm").is_none());
}

#[test]
fn platform_names_and_odata_types_round_trip() {
    for p in IntunePlatform::ALL {
        assert_eq!(IntunePlatform::parse(p.name()), Some(p));
        assert_eq!(IntunePlatform::from_odata_type(&p.odata_type()), Some(p));
        assert_eq!(
            serde_json::to_value(p).unwrap(),
            json!(p.name()),
            "serde and name agree"
        );
    }
}
