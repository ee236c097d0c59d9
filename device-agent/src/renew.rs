//! Renewal: when the profile's threshold of the lifetime remains, a new key and a RenewalReq
//! signed by the current certificate (RFC 8894 §3.3.1.2).
//!
//! Each certificate renews at its own point in the renewal window: the window opens when
//! `threshold %` of the lifetime remains, and the point is drawn within the first half of
//! it from the certificate's own hash, so a fleet enrolled together spreads its renewals,
//! a restarted agent picks the same point, and the second half is left for retries.
//!
//! An EC certificate cannot open a CertRep sealed to it (RSA key transport only), so an EC
//! slot renews with a PKCSReq and a fresh challenge, as Intune devices do.

use openssl::hash::MessageDigest;
use openssl::x509::X509;
use scep::csr::ChallengePassword;
use serde::{Deserialize, Serialize};

use crate::enroll::{EnrollConfig, Enrolled, now, resume, start, unix};
use crate::error::{Error, Result};
use crate::key::DeviceKey;
use crate::state::Slot;
use crate::transport::ScepTransport;

/// When a certificate should renew.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalWindow {
    /// The window opens (threshold reached). Unix seconds here, RFC 3339 in JSON
    /// (docs/decisions.md #12), as all three.
    #[serde(with = "foundation::time::rfc3339_serde")]
    pub opens_at: i64,
    /// This certificate's own point in the window.
    #[serde(with = "foundation::time::rfc3339_serde")]
    pub renew_at: i64,
    /// Expiry.
    #[serde(with = "foundation::time::rfc3339_serde")]
    pub not_after: i64,
}

impl RenewalWindow {
    /// The window of `cert` for `threshold_percent` (1..=100).
    pub fn of(cert: &X509, threshold_percent: u8) -> Result<Self> {
        let not_before = unix(cert.not_before())?;
        let not_after = unix(cert.not_after())?;
        let lifetime = (not_after - not_before).max(0);
        let share = i64::from(threshold_percent.clamp(1, 100));
        let window = lifetime * share / 100;
        let opens_at = not_after - window;
        let digest = cert.digest(MessageDigest::sha256())?;
        let mut b = [0u8; 8];
        b.copy_from_slice(&digest[..8]);
        let fraction = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
        let renew_at = opens_at + (fraction * (window / 2) as f64) as i64;
        Ok(Self {
            opens_at,
            renew_at,
            not_after,
        })
    }

    /// Whether renewal is due at `now`.
    pub fn due(&self, now: i64) -> bool {
        now >= self.renew_at
    }
}

/// What `renew` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RenewOutcome {
    /// Not yet: the certificate's renewal point is later.
    NotDue {
        /// The window.
        window: RenewalWindow,
    },
    /// A new certificate (and key) is installed.
    Renewed {
        /// The new certificate.
        certificate: Enrolled,
    },
}

/// Options of one renewal run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenewOptions {
    /// Renew now whatever the window says.
    pub force: bool,
    /// The time to decide with (tests); the system clock when `None`.
    pub now: Option<i64>,
}

/// Renew the slot's certificate if due (or forced): resumes an in-flight renewal, else a new
/// key and a RenewalReq signed with the installed certificate (PKCSReq with `challenge` for
/// EC keys or servers without `Renewal`). 503 and PENDING back off per the slot's policy.
pub async fn renew(
    transport: &dyn ScepTransport,
    slot: &Slot,
    config: &EnrollConfig,
    challenge: Option<&ChallengePassword>,
    options: RenewOptions,
) -> Result<RenewOutcome> {
    renew_with_key(transport, slot, config, challenge, options, None).await
}

/// [`renew`] with the new key supplied (fleet mode keeps key generation out of what it
/// measures); `None` generates one. A key of the wrong type for the profile is not used.
pub async fn renew_with_key(
    transport: &dyn ScepTransport,
    slot: &Slot,
    config: &EnrollConfig,
    challenge: Option<&ChallengePassword>,
    options: RenewOptions,
    new_key: Option<DeviceKey>,
) -> Result<RenewOutcome> {
    let (current_key, chain) = slot
        .installed()?
        .ok_or(Error::Missing("no certificate to renew"))?;
    if slot.path().join("transaction.json").exists() {
        let certificate = resume(transport, slot, config).await?;
        return Ok(RenewOutcome::Renewed { certificate });
    }
    let window = RenewalWindow::of(&chain[0], config.renewal_threshold_percent)?;
    if !options.force && !window.due(options.now.unwrap_or_else(now)) {
        return Ok(RenewOutcome::NotDue { window });
    }
    let spec = config.key_spec()?;
    let new_key = match new_key {
        Some(k) if k.spec().ok() == Some(spec) => k,
        _ => DeviceKey::generate(spec)?,
    };
    let renewal_req = current_key.spec()?.is_rsa();
    if !renewal_req && challenge.is_none() {
        return Err(Error::Invalid(
            "an EC certificate renews with a PKCSReq, which needs a challenge".into(),
        ));
    }
    drop(current_key);
    let certificate = start(transport, slot, config, challenge, new_key, renewal_req).await?;
    Ok(RenewOutcome::Renewed { certificate })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::key::KeySpec;

    fn cert(not_before: i64, not_after: i64, cn: &str) -> X509 {
        let key = DeviceKey::generate(KeySpec::EcP256).unwrap();
        let mut n = openssl::x509::X509Name::builder().unwrap();
        n.append_entry_by_text("CN", cn).unwrap();
        scep::client::self_signed_certificate(key.pkey(), &n.build(), not_before, not_after)
            .unwrap()
    }

    #[test]
    fn renewal_point_is_in_the_first_half_of_the_window() {
        let (nb, na) = (1_800_000_000, 1_800_000_000 + 100 * 86_400);
        let mut points = std::collections::HashSet::new();
        for i in 0..20 {
            let w = RenewalWindow::of(&cert(nb, na, &format!("d{i}")), 20).unwrap();
            assert_eq!(w.opens_at, na - 20 * 86_400);
            assert!(w.renew_at >= w.opens_at && w.renew_at <= w.opens_at + 10 * 86_400);
            assert!(!w.due(w.opens_at - 1) && w.due(w.renew_at));
            points.insert(w.renew_at);
        }
        assert!(points.len() > 15, "a fleet spreads its renewals");
    }

    #[test]
    fn the_same_certificate_always_gets_the_same_point() {
        let c = cert(1_800_000_000, 1_800_864_000, "same");
        assert_eq!(
            RenewalWindow::of(&c, 50).unwrap(),
            RenewalWindow::of(&c, 50).unwrap()
        );
    }
}
