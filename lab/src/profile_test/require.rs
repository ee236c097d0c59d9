//! Named relying-party requirements (`--require`): whether the certificate is one that relying
//! party accepts, with the reasons when it is not.

use foundation::names::SanKind;
use serde::Serialize;

use super::cert::CertView;
use super::exposure::CLIENT_AUTH;
use super::findings::{Finding, Section, Severity};

/// IKE intermediate / IPsec IKE (RFC 4945 section 5.1.3.12).
const IPSEC_IKE: &str = "1.3.6.1.5.5.7.3.17";

/// A relying party a certificate can be checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Requirement {
    /// 802.1X / EAP-TLS client: clientAuth and a SAN a RADIUS server can map (UPN, DNS, email).
    #[value(name = "802.1x")]
    #[serde(rename = "802.1x")]
    Dot1x,
    /// VPN IKEv2 client: clientAuth or ipsecIKE, digitalSignature, and a SAN identity.
    #[value(name = "ikev2")]
    #[serde(rename = "ikev2")]
    Ikev2,
}

impl Requirement {
    /// The name `--require` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dot1x => "802.1x",
            Self::Ikev2 => "ikev2",
        }
    }
}

/// Whether one requirement is met.
#[derive(Debug, Clone, Serialize)]
pub struct RequirementResult {
    /// Which requirement.
    pub requirement: Requirement,
    /// Met or not.
    pub met: bool,
    /// Why not (empty when met).
    pub reasons: Vec<String>,
}

/// Checks `req` against `cert` (no certificate: not met).
pub fn check(req: Requirement, cert: Option<&CertView>) -> RequirementResult {
    let mut reasons = Vec::new();
    match cert {
        None => reasons.push("no certificate was issued".into()),
        Some(c) => {
            let has = |oid: &str| c.extended_key_usage.iter().any(|e| e == oid);
            let san = |kinds: &[SanKind]| c.sans.iter().any(|s| kinds.contains(&s.kind));
            match req {
                Requirement::Dot1x => {
                    if !has(CLIENT_AUTH) {
                        reasons.push("no clientAuth EKU (1.3.6.1.5.5.7.3.2)".into());
                    }
                    if !san(&[SanKind::Upn, SanKind::Dns, SanKind::Email]) {
                        reasons.push(
                            "no SAN the RADIUS server can map to an account (UPN, DNS or email)"
                                .into(),
                        );
                    }
                }
                Requirement::Ikev2 => {
                    if !has(CLIENT_AUTH) && !has(IPSEC_IKE) {
                        reasons.push(format!(
                            "neither clientAuth ({CLIENT_AUTH}) nor ipsecIKE ({IPSEC_IKE}) EKU"
                        ));
                    }
                    if !c.key_usage.iter().any(|k| k == "digitalSignature") {
                        reasons.push(
                            "no digitalSignature key usage (IKEv2 AUTH is a signature)".into(),
                        );
                    }
                    if !san(&[SanKind::Dns, SanKind::Email, SanKind::Upn, SanKind::Ip]) {
                        reasons
                            .push("no SAN identity (DNS, email, UPN or IP) for the IKE ID".into());
                    }
                }
            }
        }
    }
    RequirementResult {
        requirement: req,
        met: reasons.is_empty(),
        reasons,
    }
}

/// A requirement not met is a high finding: the one thing asked of the certificate fails.
pub fn finding(r: &RequirementResult) -> Option<Finding> {
    (!r.met).then(|| {
        Finding::new(
            &format!("require.{}", r.requirement.name()),
            Section::Requirement,
            Severity::High,
            format!("{} not met: {}", r.requirement.name(), r.reasons.join("; ")),
        )
    })
}
