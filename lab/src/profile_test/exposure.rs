//! Template exposures in the terms of the AD CS attack catalogue (SpecterOps' "Certified
//! Pre-Owned" ESC1-ESC3, and ESC15 for requested application policies), read from the
//! template as the CA describes it (`GET /api/v1/templates/{name}`) and from the certificate.

use ca_api::template::{TemplateInfo, UsageSource};
use foundation::names::{ANY_EKU, SanKind};

use super::cert::CertView;
use super::findings::{Finding, Section, Severity, eku_text};

/// clientAuth.
pub const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
/// Microsoft smart card logon.
const SMARTCARD_LOGON: &str = "1.3.6.1.4.1.311.20.2.2";
/// Kerberos PKINIT client authentication (RFC 4556).
const PKINIT_CLIENT: &str = "1.3.6.1.5.2.3.4";
/// Microsoft certificate request agent (enrollment agent).
pub const REQUEST_AGENT: &str = "1.3.6.1.4.1.311.20.2.1";
/// EKUs that sign code, time stamps or OCSP answers: never for a device.
const SIGNING_EKUS: [&str; 3] = [
    "1.3.6.1.5.5.7.3.3",
    "1.3.6.1.5.5.7.3.8",
    "1.3.6.1.5.5.7.3.9",
];

/// Whether a certificate with these EKUs can authenticate a client to AD, a RADIUS or a TLS
/// server: an authentication EKU, any purpose, or no EKU at all.
fn authenticates(ekus: &[String]) -> bool {
    ekus.is_empty()
        || ekus
            .iter()
            .any(|e| [CLIENT_AUTH, SMARTCARD_LOGON, PKINIT_CLIENT, ANY_EKU].contains(&e.as_str()))
}

/// The exposures of `template`, and of `cert` when one was issued.
pub fn exposures(template: &TemplateInfo, cert: Option<&CertView>) -> Vec<Finding> {
    let mut out = Vec::new();
    let x = |id: &str, sev, detail: String| Finding::new(id, Section::Exposure, sev, detail);
    let ekus = &template.extended_key_usage;
    let narrowable = template.usages == UsageSource::RequestWithinTemplate;
    // ESC1: the enrollee supplies the subject. Every template here takes the subject and SANs
    // from the request (the policy module's grant); what decides the risk is whether those can
    // name an account AD maps (UPN, or a URI carrying a SID, KB5014754) on an authentication
    // certificate.
    let supplied = !template.subject_allowed.is_empty() || !template.san_allowed.is_empty();
    let identities: Vec<&str> = template
        .san_allowed
        .iter()
        .filter_map(|k| match k {
            SanKind::Upn => Some("UPN"),
            SanKind::Uri => Some("URI (SID)"),
            _ => None,
        })
        .collect();
    let auth = authenticates(ekus) || (narrowable && ekus.is_empty());
    if supplied && auth && !identities.is_empty() {
        out.push(x(
            "esc1",
            Severity::High,
            format!(
                "ESC1: template {} takes the subject and SANs from the request, allows {} SANs and issues for client authentication: whoever gets a grant under it can name any account",
                template.name,
                identities.join(" and ")
            ),
        ));
    } else if supplied && auth {
        out.push(x(
            "esc1",
            Severity::Low,
            format!(
                "ESC1 (contained): template {} takes the subject from the request for an authentication certificate; only the policy module binds it to the device, and no account-identity SAN (UPN, URI) is allowed",
                template.name
            ),
        ));
    }
    // ESC2: any purpose or no EKU.
    let any = ekus.iter().any(|e| e == ANY_EKU)
        || cert.is_some_and(|c| c.extended_key_usage.iter().any(|e| e == ANY_EKU));
    if any || ekus.is_empty() || cert.is_some_and(|c| !c.eku_present) {
        out.push(x(
            "esc2",
            Severity::High,
            format!(
                "ESC2: template {} issues {}: the certificate is valid for every purpose, including client authentication and, to some relying parties, signing",
                template.name,
                if any { "the anyExtendedKeyUsage EKU" } else { "no EKU" }
            ),
        ));
    }
    // ESC3: enrollment agent.
    let agent = ekus.iter().any(|e| e == REQUEST_AGENT)
        || cert.is_some_and(|c| c.extended_key_usage.iter().any(|e| e == REQUEST_AGENT));
    if agent {
        out.push(x(
            "esc3",
            Severity::High,
            format!(
                "ESC3: template {} issues the certificate request agent EKU ({REQUEST_AGENT}): the holder can enrol on behalf of any user",
                template.name
            ),
        ));
    }
    // ESC15 class: the request's application policies are honoured.
    if narrowable {
        let (sev, scope) = if ekus.is_empty() {
            (
                Severity::High,
                "any EKU the request names, since the template lists none".to_owned(),
            )
        } else {
            (
                Severity::Medium,
                format!(
                    "any subset of its list ({})",
                    ekus.iter()
                        .map(|e| eku_text(e))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        };
        out.push(x(
            "esc15",
            sev,
            format!(
                "ESC15 class: template {} honours the usages requested (usages = \"request_within_template\"): the grant picks {scope}",
                template.name
            ),
        ));
    }
    let signing: Vec<String> = ekus
        .iter()
        .filter(|e| SIGNING_EKUS.contains(&e.as_str()))
        .map(|e| eku_text(e))
        .collect();
    if !signing.is_empty() {
        out.push(x(
            "template.signing_eku",
            Severity::High,
            format!(
                "template {} issues signing EKUs to devices: {}",
                template.name,
                signing.join(", ")
            ),
        ));
    }
    if template.validity_days > 398 {
        out.push(x(
            "template.long_validity",
            Severity::Low,
            format!(
                "template {} allows certificates valid up to {} days (a request may ask for all of it)",
                template.name, template.validity_days
            ),
        ));
    }
    if template.keys.rsa_min_bits.is_some_and(|b| b < 3072) {
        out.push(x(
            "template.rsa_min",
            Severity::Info,
            format!(
                "template {} accepts RSA keys from {} bits",
                template.name,
                template.keys.rsa_min_bits.unwrap_or_default()
            ),
        ));
    }
    out
}
