//! The lab's CA hierarchy settings (`[ca]` of `scep-lab serve --config`): what the first start
//! generates, and the check that a kept data directory holds a hierarchy of the key type asked
//! for (a different one is an error, never a silent mismatch).

use anyhow::{Result, bail};
use ca_mock::keys::KeySpec;
use openssl::nid::Nid;
use openssl::pkey::Id;
use openssl::x509::X509Ref;

/// How the lab's root and issuing CA are made on first start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaHierarchy {
    /// Key type of both CAs.
    pub key: KeySpec,
    /// The root's common name.
    pub root_cn: String,
    /// The issuing CA's common name.
    pub issuing_cn: String,
    /// Organisation of both, if any.
    pub org: Option<String>,
    /// Root validity, days.
    pub root_days: u32,
    /// Issuing CA validity, days.
    pub issuing_days: u32,
}

impl Default for CaHierarchy {
    /// What the lab has always made: RSA 2048, ten-year root, five-year issuing CA.
    fn default() -> Self {
        Self {
            key: KeySpec::Rsa2048,
            root_cn: "scep-lab Root CA".into(),
            issuing_cn: "scep-lab Issuing CA".into(),
            org: Some("scep-lab".into()),
            root_days: 3650,
            issuing_days: 1825,
        }
    }
}

impl CaHierarchy {
    /// What `ca_mock::init` generates from.
    pub fn init_source(&self) -> ca_mock::InitSource {
        ca_mock::InitSource::Generate {
            key: self.key,
            root_cn: self.root_cn.clone(),
            issuing_cn: self.issuing_cn.clone(),
            org: self.org.clone(),
            root_days: self.root_days,
            issuing_days: self.issuing_days,
        }
    }

    /// Fails, naming both, when an existing CA certificate's key (root or issuing: both have
    /// one type) is not of [`Self::key`]'s type.
    pub fn check_existing(&self, ca: &X509Ref) -> Result<()> {
        let found = key_spec_of(ca)?;
        if found != Some(self.key) {
            let found = found.map_or_else(|| "another key type".to_owned(), spec_name);
            bail!(
                "the data directory's CA hierarchy has {found} keys, but the configuration asks \
                 for {} (ca.key_type): use another data directory, or the key type it was made with",
                spec_name(self.key)
            );
        }
        Ok(())
    }
}

/// The name `KeySpec` parses from (`rsa2048`, `ec-p256`, ...).
pub fn spec_name(spec: KeySpec) -> String {
    let names = KeySpec::NAMES;
    let i = match spec {
        KeySpec::Rsa2048 => 0,
        KeySpec::Rsa3072 => 1,
        KeySpec::Rsa4096 => 2,
        KeySpec::EcP256 => 3,
        KeySpec::EcP384 => 4,
    };
    names[i].to_owned()
}

/// The key type of a certificate's public key, if it is one the lab can make.
fn key_spec_of(cert: &X509Ref) -> Result<Option<KeySpec>> {
    let key = cert.public_key()?;
    Ok(match key.id() {
        Id::RSA => match key.bits() {
            2048 => Some(KeySpec::Rsa2048),
            3072 => Some(KeySpec::Rsa3072),
            4096 => Some(KeySpec::Rsa4096),
            _ => None,
        },
        Id::EC => match key.ec_key()?.group().curve_name() {
            Some(Nid::X9_62_PRIME256V1) => Some(KeySpec::EcP256),
            Some(Nid::SECP384R1) => Some(KeySpec::EcP384),
            _ => None,
        },
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_existing_hierarchy_of_another_key_type_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let ec = CaHierarchy {
            key: KeySpec::EcP256,
            ..CaHierarchy::default()
        };
        ca_mock::init(dir.path(), &ec.init_source(), None).unwrap();
        let m = ca_mock::CaMaterial::load(dir.path(), None).unwrap();
        ec.check_existing(&m.issuing).unwrap();
        ec.check_existing(&m.root).unwrap();
        let err = CaHierarchy::default()
            .check_existing(&m.issuing)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ec-p256") && err.contains("rsa2048") && err.contains("ca.key_type"),
            "{err}"
        );
    }
}
