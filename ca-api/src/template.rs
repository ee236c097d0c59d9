//! A CA template as the CA describes it to its callers (`GET /api/v1/templates[/{name}]`): what
//! a certificate issued under it will contain, so the policy module can tell an admin how a
//! profile and its template differ before any device enrols (docs/decisions.md #7).

use serde::{Deserialize, Serialize};

use foundation::names::{KeyUsage, SanKind, SubjectAttr};

/// Named elliptic curves a template may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Curve {
    /// NIST P-256 (prime256v1)
    #[serde(rename = "P-256")]
    P256,
    /// NIST P-384 (secp384r1)
    #[serde(rename = "P-384")]
    P384,
}

impl Curve {
    /// The curve's size in bits (what an Intune profile's key size names).
    pub fn bits(self) -> u32 {
        match self {
            Self::P256 => 256,
            Self::P384 => 384,
        }
    }
}

/// The two public key families the CA certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyFamily {
    /// RSA
    Rsa,
    /// EC (named curves)
    Ec,
}

/// Whether a key usage bit may appear in a certificate for a key of `family`: RFC 5480 section
/// 3 forbids keyEncipherment and dataEncipherment with id-ecPublicKey, RFC 3279 2.3.1 leaves
/// keyAgreement out for RSA. The CA drops the bits that do not apply; the policy module reports
/// it. One rule for both, here.
pub fn key_usage_applies(bit: KeyUsage, family: KeyFamily) -> bool {
    match bit {
        KeyUsage::KeyEncipherment | KeyUsage::DataEncipherment => family != KeyFamily::Ec,
        KeyUsage::KeyAgreement => family != KeyFamily::Rsa,
        KeyUsage::DigitalSignature | KeyUsage::NonRepudiation => true,
    }
}

/// Where an issued certificate's key usage and EKUs come from (docs/decisions.md #7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    /// The template's lists, whatever was granted: what AD CS does, and the default.
    #[default]
    Template,
    /// The granted key usage and EKUs, kept only where the template also lists them: a CA
    /// that lets the request narrow the template (off in every sample).
    RequestWithinTemplate,
}

/// Which public keys a template accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateKeys {
    /// Smallest RSA modulus in bits; absent means RSA keys are refused.
    pub rsa_min_bits: Option<u32>,
    /// Accepted curves; empty means EC keys are refused.
    pub ec_curves: Vec<Curve>,
}

/// One template, as `GET /api/v1/templates/{name}` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateInfo {
    /// The template name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Longest validity; a longer one is refused, not capped.
    pub validity_days: u32,
    /// Key usage bits as configured (before [`key_usage_applies`] filters them per key).
    pub key_usage: Vec<KeyUsage>,
    /// Extended key usages, dotted OIDs, in certificate order.
    pub extended_key_usage: Vec<String>,
    /// Accepted public keys.
    pub keys: TemplateKeys,
    /// Subject attributes that must be present.
    pub subject_required: Vec<SubjectAttr>,
    /// Subject attributes that may be present.
    pub subject_allowed: Vec<SubjectAttr>,
    /// SAN kinds that may be present.
    pub san_allowed: Vec<SanKind>,
    /// Most SAN entries in one certificate.
    pub san_max: usize,
    /// Where the issued key usage and EKUs come from.
    pub usages: UsageSource,
}

impl TemplateInfo {
    /// The key usage bits a certificate for a key of `family` gets when the template decides.
    pub fn key_usage_for(&self, family: KeyFamily) -> Vec<KeyUsage> {
        self.key_usage
            .iter()
            .copied()
            .filter(|b| key_usage_applies(*b, family))
            .collect()
    }
}

/// Why the CA refuses the granted usages under [`UsageSource::RequestWithinTemplate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsageRefusal {
    /// No granted key usage bit is allowed for this key (a certificate needs at least one).
    #[error("none of the granted key usages is allowed by the template for this key")]
    KeyUsage,
    /// EKUs were granted and none is allowed (issuing without an EKU would widen them).
    #[error("none of the granted extended key usages is allowed by the template")]
    ExtendedKeyUsage,
}

/// The key usage bits a certificate gets: the template's that apply to the key, or under
/// [`UsageSource::RequestWithinTemplate`] the granted ones among those (nothing granted, as in
/// plain mode and on the admin page, leaves the template's). The CA issues by this rule and the
/// policy module warns by it, so the two cannot drift.
pub fn issued_key_usage(
    source: UsageSource,
    template: &[KeyUsage],
    family: KeyFamily,
    granted: &[KeyUsage],
) -> Result<Vec<KeyUsage>, UsageRefusal> {
    let usable = template
        .iter()
        .copied()
        .filter(|b| key_usage_applies(*b, family));
    match source {
        UsageSource::Template => Ok(usable.collect()),
        UsageSource::RequestWithinTemplate if granted.is_empty() => Ok(usable.collect()),
        UsageSource::RequestWithinTemplate => {
            let bits: Vec<_> = usable.filter(|b| granted.contains(b)).collect();
            if bits.is_empty() {
                return Err(UsageRefusal::KeyUsage);
            }
            Ok(bits)
        }
    }
}

/// The EKUs (dotted OIDs) a certificate gets: the template's, or under
/// [`UsageSource::RequestWithinTemplate`] the granted ones the template allows (a template
/// without EKUs allows any; nothing granted leaves the template's). Empty means no extension.
pub fn issued_extended_key_usage(
    source: UsageSource,
    template: &[String],
    granted: &[String],
) -> Result<Vec<String>, UsageRefusal> {
    match source {
        UsageSource::RequestWithinTemplate if !granted.is_empty() => {
            let mut ekus: Vec<String> = Vec::new();
            for g in granted {
                if (template.is_empty() || template.contains(g)) && !ekus.contains(g) {
                    ekus.push(g.clone());
                }
            }
            if ekus.is_empty() {
                return Err(UsageRefusal::ExtendedKeyUsage);
            }
            Ok(ekus)
        }
        _ => Ok(template.to_vec()),
    }
}

/// `GET /api/v1/templates`: the templates the caller is entitled to, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateList {
    /// Ordered by name.
    pub templates: Vec<TemplateInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "1.3.6.1.5.5.7.3.2";
    const SERVER: &str = "1.3.6.1.5.5.7.3.1";

    #[test]
    fn the_template_decides_unless_told_to_narrow_to_the_grant() {
        use KeyUsage::*;
        let t = [DigitalSignature, KeyEncipherment, KeyAgreement];
        let s = UsageSource::Template;
        let n = UsageSource::RequestWithinTemplate;
        assert_eq!(
            issued_key_usage(s, &t, KeyFamily::Rsa, &[DigitalSignature]),
            Ok(vec![DigitalSignature, KeyEncipherment])
        );
        assert_eq!(
            issued_key_usage(s, &t, KeyFamily::Ec, &[]),
            Ok(vec![DigitalSignature, KeyAgreement])
        );
        assert_eq!(
            issued_key_usage(n, &t, KeyFamily::Rsa, &[DigitalSignature]),
            Ok(vec![DigitalSignature])
        );
        assert_eq!(
            issued_key_usage(n, &t, KeyFamily::Rsa, &[]),
            Ok(vec![DigitalSignature, KeyEncipherment]),
            "nothing granted (plain mode, admin page): the template's"
        );
        assert_eq!(
            issued_key_usage(n, &t, KeyFamily::Ec, &[KeyEncipherment]),
            Err(UsageRefusal::KeyUsage),
            "keyEncipherment never applies to EC"
        );
        let both = [CLIENT.to_owned(), SERVER.to_owned()];
        let client = [CLIENT.to_owned()];
        assert_eq!(
            issued_extended_key_usage(s, &both, &client),
            Ok(both.to_vec())
        );
        assert_eq!(
            issued_extended_key_usage(n, &both, &[CLIENT.into(), CLIENT.into()]),
            Ok(client.to_vec())
        );
        assert_eq!(issued_extended_key_usage(n, &both, &[]), Ok(both.to_vec()));
        assert_eq!(
            issued_extended_key_usage(n, &client, &[SERVER.into()]),
            Err(UsageRefusal::ExtendedKeyUsage)
        );
        assert_eq!(
            issued_extended_key_usage(n, &[], &client),
            Ok(client.to_vec())
        );
    }
}
