//! Certificate templates (the AD CS analogue): what a certificate issued under a name contains.
//! The CSR only proposes a public key; everything else comes from here or from the granted
//! subject and SANs, checked against the template's rules.

use std::collections::HashSet;
use std::path::Path;

use openssl::nid::Nid;
use openssl::pkey::{Id, PKeyRef, Public};
use openssl::x509::X509Extension;
use openssl::x509::extension::{ExtendedKeyUsage, KeyUsage as KeyUsageExt};
use serde::{Deserialize, Serialize};

use crate::error::CaError;
use crate::keys::HashAlg;
use ca_api::template::{
    KeyFamily, TemplateInfo, TemplateKeys, UsageSource, issued_extended_key_usage,
    issued_key_usage, key_usage_applies,
};
use foundation::names::{KeyUsage, NameAttr, San, SanKind, SubjectAttr, eku_oid};

/// Named elliptic curves a template may accept (the CA contract's vocabulary).
pub use ca_api::template::Curve;

/// Which CSR public keys a template accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRules {
    /// Smallest RSA modulus in bits; absent means RSA keys are refused. Never below 2048.
    #[serde(default)]
    pub rsa_min_bits: Option<u32>,
    /// Accepted curves; empty means EC keys are refused.
    #[serde(default)]
    pub ec_curves: Vec<Curve>,
}

/// Which subject attributes a request may carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectRules {
    /// Attributes that must be present.
    #[serde(default)]
    pub required: Vec<SubjectAttr>,
    /// Attributes that may be present (required ones are implied).
    pub allowed: Vec<SubjectAttr>,
}

/// Which subject alternative names a request may carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanRules {
    /// SAN kinds that may be present.
    #[serde(default)]
    pub allowed: Vec<SanKind>,
    /// Most SAN entries in one certificate.
    #[serde(default = "default_max_sans")]
    pub max: usize,
}

fn default_max_sans() -> usize {
    10
}

fn yes() -> bool {
    true
}

/// A certificate template as written in TOML. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The name callers ask for (AD CS template name).
    pub name: String,
    /// Free text for listings.
    #[serde(default)]
    pub description: String,
    /// Validity of issued certificates; requests may only shorten it.
    pub validity_days: u32,
    /// Digest the CA signs these certificates with.
    #[serde(default = "default_hash")]
    pub hash: HashAlg,
    /// Key usage bits.
    pub key_usage: Vec<KeyUsage>,
    /// Whether the key usage extension is critical (RFC 5280 recommends so).
    #[serde(default = "yes")]
    pub key_usage_critical: bool,
    /// Extended key usages by name (serverAuth, clientAuth, ...) or dotted OID.
    #[serde(default)]
    pub extended_key_usage: Vec<String>,
    /// Accepted public keys.
    pub keys: KeyRules,
    /// Subject rules.
    pub subject: SubjectRules,
    /// SAN rules.
    #[serde(default = "no_sans")]
    pub sans: SanRules,
    /// Where issued key usage and EKUs come from: `"template"` (default, AD CS) or
    /// `"request_within_template"` (the grant's, within this template's; docs/decisions.md #7).
    #[serde(default)]
    pub usages: UsageSource,
}

fn default_hash() -> HashAlg {
    HashAlg::Sha256
}

fn no_sans() -> SanRules {
    SanRules {
        allowed: Vec::new(),
        max: default_max_sans(),
    }
}

/// The NDES-shaped templates shipped with the crate (also written by `init`).
pub const BUILTIN_TEMPLATES: [(&str, &str); 3] = [
    (
        "IPSECIntermediateOffline.toml",
        include_str!("../config/templates/IPSECIntermediateOffline.toml"),
    ),
    (
        "EnrollmentAgentOffline.toml",
        include_str!("../config/templates/EnrollmentAgentOffline.toml"),
    ),
    (
        "CEPEncryption.toml",
        include_str!("../config/templates/CEPEncryption.toml"),
    ),
];

impl Template {
    /// Parses and validates one template file's text.
    pub fn from_toml(text: &str) -> Result<Self, CaError> {
        let t: Self = toml::from_str(text).map_err(|e| CaError::Config(e.to_string()))?;
        t.validate()?;
        Ok(t)
    }

    /// Reads and validates a template file.
    pub fn load(path: &Path) -> Result<Self, CaError> {
        let text = std::fs::read_to_string(path).map_err(|e| CaError::io(path, e))?;
        Self::from_toml(&text).map_err(|e| CaError::Config(format!("{}: {e}", path.display())))
    }

    /// The built-in templates, parsed.
    pub fn builtin() -> Result<Vec<Self>, CaError> {
        BUILTIN_TEMPLATES
            .iter()
            .map(|(_, text)| Self::from_toml(text))
            .collect()
    }

    /// Checks what serde cannot: names, ranges and consistency.
    pub fn validate(&self) -> Result<(), CaError> {
        let err = |m: &str| Err(CaError::Config(format!("template {:?}: {m}", self.name)));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return err("name must be non-empty ASCII letters, digits, '-', '_' or '.'");
        }
        if self.validity_days == 0 || self.validity_days > 36_500 {
            return err("validity_days must be between 1 and 36500");
        }
        if self.key_usage.is_empty() {
            return err("key_usage must not be empty");
        }
        if let Some(bad) = self
            .extended_key_usage
            .iter()
            .find(|e| eku_oid(e).is_none())
        {
            return err(&format!("unknown extended key usage {bad:?}"));
        }
        if self
            .extended_key_usage
            .iter()
            .any(|e| eku_oid(e).as_deref() == Some(foundation::names::ANY_EKU))
        {
            return err("anyExtendedKeyUsage is not allowed");
        }
        if self
            .keys
            .rsa_min_bits
            .is_some_and(|b| !(2048..=16384).contains(&b))
        {
            return err("rsa_min_bits must be between 2048 and 16384");
        }
        if self.keys.rsa_min_bits.is_none() && self.keys.ec_curves.is_empty() {
            return err("keys must allow RSA or at least one curve");
        }
        if self.key_usage.is_empty() {
            return err("key_usage must name at least one bit (RFC 5280 4.2.1.3)");
        }
        if !self.keys.ec_curves.is_empty() && self.usable_bits(Id::EC).next().is_none() {
            return err("EC keys are allowed but no key_usage bit applies to them (RFC 5480 3)");
        }
        if self.keys.rsa_min_bits.is_some() && self.usable_bits(Id::RSA).next().is_none() {
            return err(
                "RSA keys are allowed but no key_usage bit applies to them (RFC 3279 2.3.1)",
            );
        }
        if let Some(r) = self
            .subject
            .required
            .iter()
            .find(|r| !self.subject.allowed.contains(r))
        {
            return err(&format!(
                "required subject attribute {r:?} is not in allowed"
            ));
        }
        if self.sans.max > 100 {
            return err("sans.max must be at most 100");
        }
        Ok(())
    }

    /// Checks the CSR's public key against the key rules.
    pub(crate) fn check_key(&self, key: &PKeyRef<Public>) -> Result<(), CaError> {
        match key.id() {
            Id::RSA => match self.keys.rsa_min_bits {
                Some(min) if key.bits() >= min && key.bits() <= 16384 => Ok(()),
                Some(min) => Err(CaError::KeyNotAllowed(format!(
                    "RSA {} bits; this template needs at least {min}",
                    key.bits()
                ))),
                None => Err(CaError::KeyNotAllowed("RSA keys are not accepted".into())),
            },
            Id::EC => {
                let nid = key
                    .ec_key()
                    .ok()
                    .and_then(|k| k.group().curve_name())
                    .ok_or_else(|| CaError::KeyNotAllowed("unnamed EC curve".into()))?;
                let curve = match nid {
                    Nid::X9_62_PRIME256V1 => Curve::P256,
                    Nid::SECP384R1 => Curve::P384,
                    _ => return Err(CaError::KeyNotAllowed("unsupported EC curve".into())),
                };
                if self.keys.ec_curves.contains(&curve) {
                    Ok(())
                } else {
                    Err(CaError::KeyNotAllowed(format!(
                        "curve {curve:?} is not accepted"
                    )))
                }
            }
            _ => Err(CaError::KeyNotAllowed(
                "only RSA and EC keys are accepted".into(),
            )),
        }
    }

    /// Checks granted subject attributes against the subject rules.
    pub(crate) fn check_subject(&self, attrs: &[NameAttr]) -> Result<(), CaError> {
        if attrs.len() > 32 {
            return Err(CaError::SubjectNotAllowed("too many attributes".into()));
        }
        if let Some(a) = attrs
            .iter()
            .find(|a| !self.subject.allowed.contains(&a.attr))
        {
            return Err(CaError::SubjectNotAllowed(format!(
                "{:?} is not allowed",
                a.attr
            )));
        }
        let present: HashSet<_> = attrs.iter().map(|a| a.attr).collect();
        if let Some(r) = self.subject.required.iter().find(|r| !present.contains(r)) {
            return Err(CaError::SubjectNotAllowed(format!("{r:?} is required")));
        }
        Ok(())
    }

    /// Checks granted SANs against the SAN rules.
    pub(crate) fn check_sans(&self, sans: &[San]) -> Result<(), CaError> {
        if sans.len() > self.sans.max {
            return Err(CaError::SanNotAllowed(format!(
                "more than {} entries",
                self.sans.max
            )));
        }
        if let Some(s) = sans.iter().find(|s| !self.sans.allowed.contains(&s.kind)) {
            return Err(CaError::SanNotAllowed(format!(
                "{:?} is not allowed",
                s.kind
            )));
        }
        Ok(())
    }

    /// The template's key usage bits that a key of type `key` can honour. AD CS templates such
    /// as "IPSec (Offline request)" grant keyEncipherment, which an EC key cannot do: RFC 5480
    /// section 3 forbids keyEncipherment and dataEncipherment with id-ecPublicKey, and RFC 3279
    /// 2.3.1 leaves keyAgreement out for RSA. So the bits follow the key the CSR proposes.
    fn usable_bits(&self, key: Id) -> impl Iterator<Item = &KeyUsage> {
        self.key_usage.iter().filter(move |bit| match key {
            Id::EC => key_usage_applies(**bit, KeyFamily::Ec),
            Id::RSA => key_usage_applies(**bit, KeyFamily::Rsa),
            _ => true,
        })
    }

    /// The key usage bits and EKU OIDs a certificate for a key of type `key` gets: the
    /// template's, or with `usages = "request_within_template"` the granted ones within the
    /// template's (docs/decisions.md #7). The rule is the contract's, shared with the policy
    /// module's warnings.
    pub(crate) fn issued_usages(
        &self,
        key: Id,
        granted_ku: &[KeyUsage],
        granted_eku: &[String],
    ) -> Result<(Vec<KeyUsage>, Vec<String>), CaError> {
        let family = if key == Id::EC {
            KeyFamily::Ec
        } else {
            KeyFamily::Rsa
        };
        let refused = |e: ca_api::template::UsageRefusal| CaError::UsageNotAllowed(e.to_string());
        let bits =
            issued_key_usage(self.usages, &self.key_usage, family, granted_ku).map_err(refused)?;
        let template_ekus: Vec<String> = self
            .extended_key_usage
            .iter()
            .filter_map(|e| eku_oid(e))
            .collect();
        let granted: Vec<String> = match self.usages {
            UsageSource::Template => Vec::new(),
            UsageSource::RequestWithinTemplate => granted_eku
                .iter()
                .map(|e| {
                    eku_oid(e).ok_or_else(|| {
                        CaError::InvalidRequest(format!("unknown extended key usage {e:?}"))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let ekus =
            issued_extended_key_usage(self.usages, &template_ekus, &granted).map_err(refused)?;
        Ok((bits, ekus))
    }

    /// The key usage extension with these bits.
    pub(crate) fn key_usage_extension(&self, bits: &[KeyUsage]) -> Result<X509Extension, CaError> {
        let mut ku = KeyUsageExt::new();
        if self.key_usage_critical {
            ku.critical();
        }
        for bit in bits {
            match bit {
                KeyUsage::DigitalSignature => ku.digital_signature(),
                KeyUsage::NonRepudiation => ku.non_repudiation(),
                KeyUsage::KeyEncipherment => ku.key_encipherment(),
                KeyUsage::DataEncipherment => ku.data_encipherment(),
                KeyUsage::KeyAgreement => ku.key_agreement(),
            };
        }
        ku.build().map_err(CaError::crypto)
    }

    /// The EKU extension with these dotted OIDs; none when empty.
    pub(crate) fn eku_extension(oids: &[String]) -> Result<Option<X509Extension>, CaError> {
        if oids.is_empty() {
            return Ok(None);
        }
        let mut eku = ExtendedKeyUsage::new();
        for oid in oids {
            eku.other(oid);
        }
        eku.build().map(Some).map_err(CaError::crypto)
    }

    /// The template as the CA's API describes it: EKUs as dotted OIDs.
    pub fn info(&self) -> TemplateInfo {
        TemplateInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            validity_days: self.validity_days,
            key_usage: self.key_usage.clone(),
            extended_key_usage: self
                .extended_key_usage
                .iter()
                .filter_map(|e| eku_oid(e))
                .collect(),
            keys: TemplateKeys {
                rsa_min_bits: self.keys.rsa_min_bits,
                ec_curves: self.keys.ec_curves.clone(),
            },
            subject_required: self.subject.required.clone(),
            subject_allowed: self.subject.allowed.clone(),
            san_allowed: self.sans.allowed.clone(),
            san_max: self.sans.max,
            usages: self.usages,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn builtin_templates_parse() {
        let all = Template::builtin().unwrap();
        let names: Vec<_> = all.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "IPSECIntermediateOffline",
                "EnrollmentAgentOffline",
                "CEPEncryption"
            ]
        );
        let cep = &all[2];
        assert_eq!(cep.key_usage, [KeyUsage::KeyEncipherment]);
        let agent = &all[1];
        assert_eq!(agent.key_usage, [KeyUsage::DigitalSignature]);
    }

    #[test]
    fn usages_default_to_the_template_and_may_narrow_to_the_request() {
        assert!(
            Template::builtin()
                .unwrap()
                .iter()
                .all(|t| t.usages == UsageSource::Template),
            "off in every built-in template"
        );
        let base = BUILTIN_TEMPLATES[0].1;
        let line = "usages = \"template\"";
        assert!(base.contains(line), "the sample names the default");
        let implicit = Template::from_toml(&base.replace(line, "")).unwrap();
        assert_eq!(implicit.usages, UsageSource::Template);
        let narrowing = base.replace(line, "usages = \"request_within_template\"");
        let t = Template::from_toml(&narrowing).unwrap();
        assert_eq!(t.usages, UsageSource::RequestWithinTemplate);
        assert_eq!(t.info().usages, UsageSource::RequestWithinTemplate);
        assert!(Template::from_toml(&base.replace(line, "usages = \"request\"")).is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = format!("{}\nfavourite_colour = \"blue\"\n", BUILTIN_TEMPLATES[0].1);
        let err = Template::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("favourite_colour"), "{err}");
        let nested = BUILTIN_TEMPLATES[0]
            .1
            .replace("[keys]", "[keys]\nrsa_max_bits = 4096");
        assert!(Template::from_toml(&nested).is_err());
    }

    #[test]
    fn inconsistent_templates_are_rejected() {
        let base = BUILTIN_TEMPLATES[0].1;
        for (from, to) in [
            ("rsa_min_bits = 2048", "rsa_min_bits = 1024"),
            ("validity_days = 365", "validity_days = 0"),
            ("\"clientAuth\"", "\"2.5.29.37.0\""),
            ("\"clientAuth\"", "\"noSuchUsage\""),
            (
                "key_usage = [\"digitalSignature\", \"keyEncipherment\"]",
                "key_usage = [\"keyCertSign\"]",
            ),
        ] {
            assert!(base.contains(from), "{from}");
            assert!(
                Template::from_toml(&base.replace(from, to)).is_err(),
                "{to}"
            );
        }
    }
}
