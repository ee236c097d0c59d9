//! MDM payloads for a check-in: Windows ClientCertificateInstall CSP as OMA-DM SyncML, and an
//! Apple configuration profile with `com.apple.security.scep` payloads. (The native JSON form
//! is [`crate::checkin::CheckinResponse`] itself.)
//!
//! Output is deterministic for a given check-in (UUIDs derive from device, profile and
//! version), so snapshot tests can pin it.

use std::fmt::Write as _;

use base64::Engine;

use crate::checkin::{CheckinResponse, RenderedProfile, apple_key_type, key_usage_mask};
use crate::model::{CertificateType, HashAlgorithm, KeyUsage, SanKind};
use crate::render::{csp_san_type, subject_string};
use foundation::secret::sha256;

/// Escapes text for XML element content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn stable_uuid(parts: &[&str]) -> String {
    let d = sha256(parts.join("\u{1f}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(d.get(..16).unwrap_or(&[0; 16]));
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string().to_uppercase()
}

fn csp_hash(h: HashAlgorithm) -> &'static str {
    match h {
        HashAlgorithm::Sha1 => "SHA-1",
        HashAlgorithm::Sha256 | HashAlgorithm::Sha384 | HashAlgorithm::Sha512 => "SHA-2",
    }
}

/// The Windows ClientCertificateInstall CSP SCEP nodes of every profile, each in an Atomic
/// block ending with `Exec .../Install/Enroll` as the CSP requires.
pub fn syncml(c: &CheckinResponse) -> String {
    let mut cmd = 1u32;
    let mut body = String::new();
    for p in &c.profiles {
        let scope = match p.certificate_type {
            CertificateType::Device => "Device",
            CertificateType::User => "User",
        };
        let base = format!(
            "./{scope}/Vendor/MSFT/ClientCertificateInstall/SCEP/{}",
            p.profile_id
        );
        let sans = p
            .expected
            .subject_alternative_names
            .iter()
            .map(|s| format!("{}+{}", csp_san_type(s.kind), s.value))
            .collect::<Vec<_>>()
            .join(";");
        let nodes: Vec<(&str, &str, String)> = vec![
            ("ServerURL", "chr", p.scep_server_urls.join(";")),
            ("Challenge", "chr", p.challenge.expose().to_string()),
            (
                "EKUMapping",
                "chr",
                p.expected.extended_key_usages.join("+"),
            ),
            (
                "KeyUsage",
                "int",
                key_usage_mask(&p.expected.key_usage).to_string(),
            ),
            ("SubjectName", "chr", subject_string(&p.expected.subject)),
            ("SubjectAlternativeNames", "chr", sans),
            ("KeyLength", "int", p.expected.key_size.to_string()),
            (
                "HashAlgorithm",
                "chr",
                csp_hash(p.hash_algorithm).to_string(),
            ),
            ("CAThumbprint", "chr", p.ca_thumbprint.to_uppercase()),
            ("ValidPeriod", "chr", "Days".to_string()),
            (
                "ValidPeriodUnits",
                "int",
                p.expected.validity_days.to_string(),
            ),
            ("RetryCount", "int", p.retry_count.to_string()),
            (
                "RetryDelay",
                "int",
                p.retry_delay_minutes.max(1).to_string(),
            ),
            ("TemplateName", "chr", p.expected.template.clone()),
        ];
        let _ = write!(body, "    <Atomic>\n      <CmdID>{cmd}</CmdID>\n");
        cmd += 1;
        let _ = write!(
            body,
            "      <Add>\n        <CmdID>{cmd}</CmdID>\n        <Item>\n          <Target><LocURI>{}</LocURI></Target>\n          <Meta><Format xmlns=\"syncml:metinf\">node</Format></Meta>\n        </Item>\n      </Add>\n",
            xml_escape(&base)
        );
        cmd += 1;
        for (node, format, value) in nodes {
            let _ = write!(
                body,
                "      <Add>\n        <CmdID>{cmd}</CmdID>\n        <Item>\n          <Target><LocURI>{}/Install/{node}</LocURI></Target>\n          <Meta><Format xmlns=\"syncml:metinf\">{format}</Format></Meta>\n          <Data>{}</Data>\n        </Item>\n      </Add>\n",
                xml_escape(&base),
                xml_escape(&value)
            );
            cmd += 1;
        }
        let _ = write!(
            body,
            "      <Exec>\n        <CmdID>{cmd}</CmdID>\n        <Item>\n          <Target><LocURI>{}/Install/Enroll</LocURI></Target>\n        </Item>\n      </Exec>\n    </Atomic>\n",
            xml_escape(&base)
        );
        cmd += 1;
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SyncML xmlns=\"SYNCML:SYNCML1.2\">\n  <SyncHdr>\n    <VerDTD>1.2</VerDTD>\n    <VerProto>DM/1.2</VerProto>\n    <SessionID>1</SessionID>\n    <MsgID>1</MsgID>\n    <Target><LocURI>{}</LocURI></Target>\n    <Source><LocURI>policy-module</LocURI></Source>\n  </SyncHdr>\n  <SyncBody>\n{body}    <Final/>\n  </SyncBody>\n</SyncML>\n",
        xml_escape(&c.device_id)
    )
}

fn plist_string(key: &str, value: &str) -> String {
    format!(
        "<key>{}</key><string>{}</string>",
        xml_escape(key),
        xml_escape(value)
    )
}

fn plist_int(key: &str, value: impl std::fmt::Display) -> String {
    format!("<key>{}</key><integer>{value}</integer>", xml_escape(key))
}

/// Apple's `Key Usage` mask: 1 signing, 4 encryption (profiles offer no other bits; the rest
/// of the vocabulary maps to the nearer of the two).
fn apple_key_usage(usages: &[KeyUsage]) -> u32 {
    usages
        .iter()
        .map(|u| match u {
            KeyUsage::DigitalSignature | KeyUsage::NonRepudiation => 1,
            KeyUsage::KeyEncipherment | KeyUsage::DataEncipherment | KeyUsage::KeyAgreement => 4,
        })
        .fold(0, |a, b| a | b)
}

fn apple_scep_payload(device_id: &str, p: &RenderedProfile) -> String {
    let e = &p.expected;
    let subject: String = e
        .subject
        .iter()
        .map(|a| {
            format!(
                "<array><array><string>{}</string><string>{}</string></array></array>",
                a.attr.name(),
                xml_escape(&a.value)
            )
        })
        .collect();
    let mut alt = String::new();
    for (kind, key) in [
        (SanKind::Dns, "dNSName"),
        (SanKind::Email, "rfc822Name"),
        (SanKind::Uri, "uniformResourceIdentifier"),
    ] {
        let values: String = e
            .subject_alternative_names
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| format!("<string>{}</string>", xml_escape(&s.value)))
            .collect();
        if !values.is_empty() {
            let _ = write!(alt, "<key>{key}</key><array>{values}</array>");
        }
    }
    if let Some(upn) = e
        .subject_alternative_names
        .iter()
        .find(|s| s.kind == SanKind::Upn)
    {
        alt.push_str(&plist_string("ntPrincipalName", &upn.value));
    }
    let fingerprint = hex::decode(&p.ca_thumbprint).unwrap_or_default();
    let url = p
        .scep_server_urls
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let ident = format!("scep-lab.policy-module.{}.{}", device_id, p.profile_id);
    format!(
        "<dict><key>PayloadContent</key><dict>{}{}{}<key>Subject</key><array>{subject}</array>{}{}{}{}{}{}<key>CAFingerprint</key><data>{}</data></dict>{}{}{}{}{}</dict>",
        plist_string("URL", url),
        plist_string("Name", &e.template),
        plist_string("Challenge", p.challenge.expose()),
        if alt.is_empty() {
            String::new()
        } else {
            format!("<key>SubjectAltName</key><dict>{alt}</dict>")
        },
        plist_int("Keysize", e.key_size),
        plist_string("Key Type", apple_key_type(e.key_algorithm)),
        plist_int("Key Usage", apple_key_usage(&e.key_usage)),
        plist_int("Retries", p.retry_count),
        plist_int("RetryDelay", u64::from(p.retry_delay_minutes) * 60),
        base64::engine::general_purpose::STANDARD.encode(fingerprint),
        plist_string("PayloadType", "com.apple.security.scep"),
        plist_string("PayloadIdentifier", &ident),
        plist_string(
            "PayloadUUID",
            &stable_uuid(&[device_id, &p.profile_id, &p.version.to_string()])
        ),
        plist_int("PayloadVersion", 1),
        plist_string("PayloadDisplayName", &p.name),
    )
}

/// An Apple configuration profile (.mobileconfig, XML plist) with one SCEP payload per
/// rendered profile. Apple documents `Key Type` RSA; EC profiles say `ECSECPrimeRandom`.
pub fn mobileconfig(c: &CheckinResponse) -> String {
    let payloads: String = c
        .profiles
        .iter()
        .map(|p| apple_scep_payload(&c.device_id, p))
        .collect();
    let versions: Vec<String> = c
        .profiles
        .iter()
        .map(|p| format!("{}:{}", p.profile_id, p.version))
        .collect();
    let mut ids = vec![c.device_id.as_str()];
    ids.extend(versions.iter().map(String::as_str));
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict><key>PayloadContent</key><array>{payloads}</array>{}{}{}{}{}</dict></plist>\n",
        plist_string("PayloadDisplayName", "scep-lab certificates"),
        plist_string(
            "PayloadIdentifier",
            &format!("scep-lab.policy-module.{}", c.device_id)
        ),
        plist_string("PayloadType", "Configuration"),
        plist_string("PayloadUUID", &stable_uuid(&ids)),
        plist_int("PayloadVersion", 1),
    )
}
