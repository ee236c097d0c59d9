//! After a fleet run: is every certificate the devices installed actually usable?
//!
//! A load test that counts SUCCESS replies would count certificates a server got wrong under
//! concurrency (micromdm's depot hands out the same serial to overlapping requests). Each
//! installed certificate is checked for what a relying party depends on: it is signed by a
//! CA certificate the device received from the server, it certifies the device's own key, and
//! its serial is unique among its issuer's certificates in the run (every holder of a shared
//! serial is counted invalid: revoking one would revoke the others).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use device_agent::key::DeviceKey;
use device_agent::state::DeviceDir;
use openssl::x509::X509;
use serde::Serialize;

/// What the check found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CertCheck {
    /// Certificates that passed every check.
    pub valid: usize,
    /// Certificates that failed, by reason.
    pub invalid: BTreeMap<String, usize>,
}

/// One certificate, reduced to what the serial check needs.
pub(crate) struct Seen {
    issuer_serial: (Vec<u8>, Vec<u8>),
    verdict: Result<(), &'static str>,
}

impl Seen {
    /// Examine `leaf`, which should certify `key` and be signed by one of `cas`.
    pub(crate) fn examine(leaf: &X509, cas: &[X509], key: &DeviceKey) -> Self {
        let issuer_serial = (
            leaf.issuer_name().to_der().unwrap_or_default(),
            leaf.serial_number()
                .to_bn()
                .map(|b| b.to_vec())
                .unwrap_or_default(),
        );
        Self {
            issuer_serial,
            verdict: verdict(leaf, cas, key),
        }
    }

    /// Whether the certificate passed its own checks (the serial check is run-wide).
    pub(crate) fn is_ok(&self) -> bool {
        self.verdict.is_ok()
    }
}

/// Check every certificate installed under `state_root/<name>` for `names`.
pub fn check(state_root: &Path, names: &[String]) -> CertCheck {
    let mut seen = Vec::new();
    let mut out = CertCheck::default();
    for name in names {
        match installed(&state_root.join(name)) {
            Ok(certs) if certs.is_empty() => bump(&mut out, "not_installed"),
            Ok(certs) => seen.extend(certs),
            Err(reason) => bump(&mut out, reason),
        }
    }
    tally(&seen, &mut out);
    out
}

/// Count `seen` into `out`: each certificate's own verdict, then the serial check across all
/// of them (every holder of a shared serial is invalid).
pub(crate) fn tally(seen: &[Seen], out: &mut CertCheck) {
    let mut holders: HashMap<&(Vec<u8>, Vec<u8>), usize> = HashMap::new();
    for s in seen {
        *holders.entry(&s.issuer_serial).or_default() += 1;
    }
    for s in seen {
        match s.verdict {
            Err(reason) => bump(out, reason),
            Ok(()) if holders[&s.issuer_serial] > 1 => bump(out, "duplicate_serial"),
            Ok(()) => out.valid += 1,
        }
    }
}

pub(crate) fn bump(out: &mut CertCheck, reason: &str) {
    *out.invalid.entry(reason.to_owned()).or_default() += 1;
}

/// Every slot's installed certificate in one device directory.
fn installed(dir: &Path) -> Result<Vec<Seen>, &'static str> {
    let device = DeviceDir::open(dir).map_err(|_| "unreadable_state")?;
    let mut out = Vec::new();
    for slot in device.slots().map_err(|_| "unreadable_state")? {
        let Some((key, chain)) = slot.installed().map_err(|_| "unreadable_state")? else {
            continue;
        };
        let Some(leaf) = chain.first() else {
            continue;
        };
        out.push(Seen::examine(leaf, &chain[1..], &key));
    }
    Ok(out)
}

/// Why a certificate is not usable, if it is not.
fn verdict(leaf: &X509, cas: &[X509], key: &DeviceKey) -> Result<(), &'static str> {
    if !leaf.public_key().is_ok_and(|k| k.public_eq(key.pkey())) {
        return Err("key_mismatch");
    }
    let signed = cas.iter().any(|ca| {
        ca.subject_name()
            .try_cmp(leaf.issuer_name())
            .is_ok_and(|o| o.is_eq())
            && ca
                .public_key()
                .and_then(|k| leaf.verify(&k))
                .unwrap_or(false)
    });
    if !signed {
        return Err("bad_signature");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use device_agent::key::KeySpec;
    use device_agent::state::DEFAULT_SLOT;
    use openssl::asn1::{Asn1Integer, Asn1Time};
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKeyRef, Private};
    use openssl::x509::{X509Builder, X509Name};

    fn name(cn: &str) -> X509Name {
        let mut b = X509Name::builder().unwrap();
        b.append_entry_by_text("CN", cn).unwrap();
        b.build()
    }

    fn cert(
        subject: &str,
        issuer: &str,
        serial: u32,
        key: &PKeyRef<Private>,
        signer: &PKeyRef<Private>,
    ) -> X509 {
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let sn = Asn1Integer::from_bn(&BigNum::from_u32(serial).unwrap()).unwrap();
        b.set_serial_number(&sn).unwrap();
        b.set_subject_name(&name(subject)).unwrap();
        b.set_issuer_name(&name(issuer)).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(signer, MessageDigest::sha256()).unwrap();
        b.build()
    }

    /// Writes the files an enrollment leaves (the state layout of `device_agent::state`):
    /// installing is the device library's own business, so it is not public.
    fn install(device: &Path, key: &DeviceKey, chain: &[X509]) {
        let slot = DeviceDir::open(device).unwrap().slot(DEFAULT_SLOT).unwrap();
        std::fs::create_dir_all(slot.path()).unwrap();
        let chain_pem: Vec<u8> = chain.iter().flat_map(|c| c.to_pem().unwrap()).collect();
        std::fs::write(slot.path().join("cert.pem"), chain_pem).unwrap();
        let key_pem = key.pkey().private_key_to_pem_pkcs8().unwrap();
        std::fs::write(slot.path().join("key.pem"), key_pem).unwrap();
    }

    #[test]
    fn counts_valid_and_names_each_defect() {
        let root = tempfile::tempdir().unwrap();
        let ca_key = DeviceKey::generate(KeySpec::EcP256).unwrap();
        let other_key = DeviceKey::generate(KeySpec::EcP256).unwrap();
        let ca = cert("CA", "CA", 1, ca_key.pkey(), ca_key.pkey());
        // (device, serial, signed by the CA?, certifies the device key?)
        let cases = [
            ("good", 10, true, true),
            ("dup-a", 11, true, true),
            ("dup-b", 11, true, true),
            ("forged", 12, false, true),
            ("wrong-key", 13, true, false),
        ];
        for (dev, serial, by_ca, own_key) in cases {
            let key = DeviceKey::generate(KeySpec::EcP256).unwrap();
            let signer = if by_ca {
                ca_key.pkey()
            } else {
                other_key.pkey()
            };
            let certified = if own_key {
                key.pkey()
            } else {
                other_key.pkey()
            };
            let leaf = cert(dev, "CA", serial, certified, signer);
            install(&root.path().join(dev), &key, &[leaf, ca.clone()]);
        }
        let names: Vec<String> = cases
            .iter()
            .map(|c| c.0.to_owned())
            .chain(["never-enrolled".to_owned()])
            .collect();
        let got = check(root.path(), &names);
        assert_eq!(got.valid, 1);
        let expect: BTreeMap<String, usize> = [
            ("duplicate_serial", 2),
            ("bad_signature", 1),
            ("key_mismatch", 1),
            ("not_installed", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(got.invalid, expect);
    }
}
