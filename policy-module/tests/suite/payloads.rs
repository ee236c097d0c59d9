//! Payload formats: snapshots, and parsing by independent parsers (Python's plistlib and
//! xml.etree) that check the documented keys and CSP node paths.

use foundation::secret::Secret;
use policy_module::checkin::{CheckinResponse, RenderedProfile};
use policy_module::model::*;
use policy_module::payload::{mobileconfig, syncml};
use policy_module::render::Expected;

fn fixed_checkin() -> CheckinResponse {
    let expected = Expected {
        subject: vec![
            NameAttr {
                attr: SubjectAttr::CN,
                value: "LAPTOP, 7 <&>".into(),
            },
            NameAttr {
                attr: SubjectAttr::O,
                value: "Contoso".into(),
            },
        ],
        subject_alternative_names: vec![
            San {
                kind: SanKind::Dns,
                value: "laptop-7.contoso.example".into(),
            },
            San {
                kind: SanKind::Upn,
                value: "alice@contoso.example".into(),
            },
            San {
                kind: SanKind::Email,
                value: "alice@contoso.example".into(),
            },
        ],
        key_algorithm: KeyAlgorithm::Rsa,
        key_size: 2048,
        key_usage: vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment],
        extended_key_usages: vec!["1.3.6.1.5.5.7.3.2".into(), "1.3.6.1.4.1.311.20.2.2".into()],
        template: "DeviceAuth".into(),
        validity_days: 365,
    };
    CheckinResponse {
        device_id: "dev-7".into(),
        state: DeviceState::Active,
        profiles: vec![RenderedProfile {
            profile_id: "wifi".into(),
            version: 3,
            name: "Corporate Wi-Fi".into(),
            certificate_type: CertificateType::Device,
            expected,
            hash_algorithm: HashAlgorithm::Sha256,
            renewal_threshold_percent: 20,
            scep_server_urls: vec![
                "https://ndes.contoso.example/certsrv/mscep/mscep.dll".into(),
                "https://ndes2.contoso.example/certsrv/mscep/mscep.dll".into(),
            ],
            ca_thumbprint: "0123456789abcdef0123456789abcdef01234567".into(),
            retry_count: 3,
            retry_delay_minutes: 5,
            challenge: Secret::new("00112233445566778899AABBCCDDEEFF00112233"),
            challenge_expires_at: 1_800_003_600,
            revoked_thumbprints: vec![],
        }],
        unrenderable: vec![],
        commands: vec![],
    }
}

/// Compares with `tests/snapshots/<name>`; `UPDATE_SNAPSHOTS=1` rewrites it.
fn snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual, expected,
        "snapshot {name} differs (UPDATE_SNAPSHOTS=1 to accept)"
    );
}

fn python(script: &str, input: &str) -> Option<String> {
    let python = testkit::binary("python3")?;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload");
    std::fs::write(&file, input).unwrap();
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn syncml_matches_its_snapshot_and_is_well_formed_with_the_csp_nodes() {
    let xml = syncml(&fixed_checkin());
    snapshot("checkin.syncml.xml", &xml);
    let script = r#"
import sys, xml.etree.ElementTree as ET
ns = {"s": "SYNCML:SYNCML1.2"}
root = ET.parse(sys.argv[1]).getroot()
for item in root.iter("{SYNCML:SYNCML1.2}Item"):
    uri = item.find("s:Target/s:LocURI", ns).text
    data = item.find("s:Data", ns)
    print(uri + "=" + ("" if data is None or data.text is None else data.text))
print("EXEC=" + root.find("s:SyncBody/s:Atomic/s:Exec/s:Item/s:Target/s:LocURI", ns).text)
"#;
    let Some(out) = python(script, &xml) else {
        return;
    };
    let base = "./Device/Vendor/MSFT/ClientCertificateInstall/SCEP/wifi/Install/";
    for (node, value) in [
        (
            "ServerURL",
            "https://ndes.contoso.example/certsrv/mscep/mscep.dll;https://ndes2.contoso.example/certsrv/mscep/mscep.dll",
        ),
        ("Challenge", "00112233445566778899AABBCCDDEEFF00112233"),
        ("EKUMapping", "1.3.6.1.5.5.7.3.2+1.3.6.1.4.1.311.20.2.2"),
        ("KeyUsage", "160"),
        ("SubjectName", "CN=LAPTOP\\, 7 <&>,O=Contoso"),
        (
            "SubjectAlternativeNames",
            "3+laptop-7.contoso.example;11+alice@contoso.example;2+alice@contoso.example",
        ),
        ("KeyLength", "2048"),
        ("HashAlgorithm", "SHA-2"),
        ("CAThumbprint", "0123456789ABCDEF0123456789ABCDEF01234567"),
        ("ValidPeriod", "Days"),
        ("ValidPeriodUnits", "365"),
        ("RetryCount", "3"),
        ("RetryDelay", "5"),
        ("TemplateName", "DeviceAuth"),
    ] {
        let line = format!("{base}{node}={value}");
        assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
    }
    assert!(out.contains(&format!("EXEC={base}Enroll")));
}

#[test]
fn mobileconfig_matches_its_snapshot_and_plistlib_reads_the_scep_payload() {
    let plist = mobileconfig(&fixed_checkin());
    snapshot("checkin.mobileconfig", &plist);
    let script = r#"
import sys, plistlib, json
with open(sys.argv[1], "rb") as f:
    p = plistlib.load(f)
inner = p["PayloadContent"][0]
c = inner["PayloadContent"]
c["CAFingerprint"] = c["CAFingerprint"].hex()
print(json.dumps({"outer": p["PayloadType"], "type": inner["PayloadType"], "uuid": inner["PayloadUUID"], "content": c}, sort_keys=True))
"#;
    let Some(out) = python(script, &plist) else {
        return;
    };
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outer"], "Configuration");
    assert_eq!(v["type"], "com.apple.security.scep");
    let c = &v["content"];
    assert_eq!(
        c["URL"],
        "https://ndes.contoso.example/certsrv/mscep/mscep.dll"
    );
    assert_eq!(c["Challenge"], "00112233445566778899AABBCCDDEEFF00112233");
    assert_eq!(
        c["Subject"],
        serde_json::json!([[["CN", "LAPTOP, 7 <&>"]], [["O", "Contoso"]]])
    );
    assert_eq!(
        c["SubjectAltName"]["dNSName"],
        serde_json::json!(["laptop-7.contoso.example"])
    );
    assert_eq!(
        c["SubjectAltName"]["ntPrincipalName"],
        "alice@contoso.example"
    );
    assert_eq!(
        c["SubjectAltName"]["rfc822Name"],
        serde_json::json!(["alice@contoso.example"])
    );
    assert_eq!(c["Keysize"], 2048);
    assert_eq!(c["Key Type"], "RSA");
    assert_eq!(c["Key Usage"], 5);
    assert_eq!(c["Retries"], 3);
    assert_eq!(c["RetryDelay"], 300);
    assert_eq!(
        c["CAFingerprint"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(c["Name"], "DeviceAuth");
}

#[test]
fn json_checkin_carries_the_rendered_profile_and_challenge() {
    let v = serde_json::to_value(fixed_checkin()).unwrap();
    let p = &v["profiles"][0];
    assert_eq!(p["challenge"], "00112233445566778899AABBCCDDEEFF00112233");
    assert_eq!(
        p["subject"][0],
        serde_json::json!({"attr": "CN", "value": "LAPTOP, 7 <&>"})
    );
    assert_eq!(
        p["key_usage"],
        serde_json::json!(["digitalSignature", "keyEncipherment"])
    );
    assert_eq!(p["template"], "DeviceAuth");
    assert_eq!(p["version"], 3);
}
