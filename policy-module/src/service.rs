//! [`PolicyService`]: the in-process policy-module (store + settings + outbox wake-up).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use ca_api::GrantKey;

use crate::error::StoreError;
use crate::store::{AuditEvent, OutOfService, Store};
use foundation::rate_limit::{RateLimit, SourceLimiter};

/// Revocation reasons per lifecycle cause (RFC 5280 names as ca-mock accepts them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// Defaults as Intune: block holds (unblock releases), retire, wipe and delete cease,
/// unassign supersedes (docs/decisions.md #11). Only a `certificateHold` can be released.
#[serde(default, deny_unknown_fields)]
pub struct RevocationReasons {
    pub retire: String,
    pub wipe: String,
    pub block: String,
    pub unassign: String,
    pub delete: String,
}

impl Default for RevocationReasons {
    fn default() -> Self {
        let c = || "cessationOfOperation".to_string();
        Self {
            retire: c(),
            wipe: c(),
            block: HOLD.into(),
            unassign: "superseded".into(),
            delete: c(),
        }
    }
}

/// The one reason a CA can undo.
pub const HOLD: &str = "certificateHold";

impl RevocationReasons {
    /// Every reason is one the CA accepts (`removeFromCRL` is not a revocation).
    pub fn check(&self) -> Result<(), String> {
        let all = [
            ("retire", &self.retire),
            ("wipe", &self.wipe),
            ("block", &self.block),
            ("unassign", &self.unassign),
            ("delete", &self.delete),
        ];
        for (cause, reason) in all {
            if ca_api::RevocationReason::parse(reason).is_none() {
                return Err(format!(
                    "[revocation_reasons] {cause} = {reason:?} is not an RFC 5280 reason name"
                ));
            }
        }
        Ok(())
    }

    /// How a certificate recorded for a device no longer active is revoked (Notify after a
    /// retire, wipe or block: docs/decisions.md #11).
    pub fn out_of_service(&self) -> OutOfService<'_> {
        OutOfService {
            blocked: &self.block,
            retired: &self.retire,
            wiped: &self.wipe,
            deleted: &self.delete,
        }
    }
}

/// The reason names ca-mock's revocation API accepts.
pub const REVOCATION_REASONS: [&str; 7] = [
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
];

/// Static configuration of a policy-module instance.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub revocation_reasons: RevocationReasons,
    /// Challenges minted per source IP (check-in and `/internal/v1/challenges`).
    pub challenge_mint_limit: RateLimit,
    /// The key every grant is signed with for the CA (docs/decisions.md #10). Without one,
    /// grants go unsigned and a CA that requires grants refuses them.
    pub grant_key: Option<Arc<GrantKey>>,
    /// How long a signed grant stays valid: long enough for one CA call, short enough that a
    /// grant copied off the wire is soon worthless.
    pub grant_lifetime_secs: i64,
    /// docs/decisions.md #5: an admin-path (mscep_admin) certificate renews without a
    /// challenge once at most this percentage of its lifetime remains, 1..=100.
    pub admin_renewal_window_percent: u8,
}

/// Default admin-path renewal window: the last 20 % of the lifetime, as Intune's default
/// renewal threshold, so a certificate issued a moment ago is refused as too early.
pub const DEFAULT_ADMIN_RENEWAL_WINDOW_PERCENT: u8 = 20;

/// Default lifetime of a signed grant, seconds.
pub const DEFAULT_GRANT_LIFETIME_SECS: i64 = 300;

/// Default challenge-minting limit: 60 a minute per source after a burst of 30 (a device
/// checks in a few times an hour; an NDES server fetching mscep_admin passwords for people
/// stays far below), loopback exempt.
pub const DEFAULT_CHALLENGE_MINT_LIMIT: RateLimit = RateLimit {
    per_minute: 60,
    burst: 30,
    exempt_loopback: true,
};

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            revocation_reasons: RevocationReasons::default(),
            challenge_mint_limit: DEFAULT_CHALLENGE_MINT_LIMIT,
            grant_key: None,
            grant_lifetime_secs: DEFAULT_GRANT_LIFETIME_SECS,
            admin_renewal_window_percent: DEFAULT_ADMIN_RENEWAL_WINDOW_PERCENT,
        }
    }
}

/// Challenge settings kept in the shared store (NDES keeps them per server in the registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeSettings {
    /// NDES PasswordMax: outstanding mscep_admin passwords.
    pub password_max: i64,
    /// NDES PasswordValidity, minutes, for mscep_admin passwords.
    pub password_validity_minutes: i64,
    /// Validity of the per-device challenges handed out at check-in, minutes.
    pub profile_challenge_validity_minutes: i64,
    /// Validity granted for mscep_admin enrolments (the CA template may cap it).
    pub admin_validity_days: i64,
}

impl Default for ChallengeSettings {
    fn default() -> Self {
        Self {
            password_max: 5,
            password_validity_minutes: 60,
            profile_challenge_validity_minutes: 60,
            admin_validity_days: 365,
        }
    }
}

impl ChallengeSettings {
    /// Bounds that keep the numbers meaningful.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=10_000).contains(&self.password_max) {
            return Err("password_max: 1..=10000".into());
        }
        for (name, v) in [
            ("password_validity_minutes", self.password_validity_minutes),
            (
                "profile_challenge_validity_minutes",
                self.profile_challenge_validity_minutes,
            ),
        ] {
            if !(1..=7 * 24 * 60).contains(&v) {
                return Err(format!("{name}: 1..=10080"));
            }
        }
        if !(1..=730).contains(&self.admin_validity_days) {
            return Err("admin_validity_days: 1..=730".into());
        }
        Ok(())
    }
}

/// The policy-module: NDES contract, admin operations and device check-in over one store.
#[derive(Clone, Debug)]
pub struct PolicyService {
    pub(crate) store: Store,
    pub(crate) config: Arc<ServiceConfig>,
    pub(crate) outbox_wake: Arc<Notify>,
    pub(crate) mint_limiter: Arc<SourceLimiter>,
    /// The CA's templates, for profile warnings (`template_check`); none means "not compared".
    pub(crate) templates: Option<Arc<dyn crate::template_source::TemplateSource>>,
    /// The CA's records, for transaction traces; none means "the CA is not read".
    pub(crate) records: Option<Arc<dyn crate::records::RecordSource>>,
    /// VerifyRequest decisions for `/metrics`.
    pub(crate) metrics: Arc<crate::metrics::PolicyMetrics>,
}

impl PolicyService {
    /// A service over `store`.
    pub fn new(store: Store, config: ServiceConfig) -> Self {
        Self {
            store,
            mint_limiter: Arc::new(SourceLimiter::new(config.challenge_mint_limit)),
            config: Arc::new(config),
            outbox_wake: Arc::new(Notify::new()),
            templates: None,
            records: None,
            metrics: Arc::default(),
        }
    }

    /// Its decision counters (`/metrics`).
    pub fn metrics(&self) -> &crate::metrics::PolicyMetrics {
        &self.metrics
    }

    /// The per-source limiter of challenge minting.
    pub fn mint_limiter(&self) -> &SourceLimiter {
        &self.mint_limiter
    }

    /// `/readyz`'s checks, run concurrently, each bounded: the store, and the CA when
    /// templates are read from it.
    pub async fn readiness_checks(&self) -> Vec<foundation::http::ready::Check> {
        use foundation::http::ready::check;
        let store = check("store", self.store.ping());
        match &self.templates {
            Some(ca) => {
                let (store, ca) = tokio::join!(store, check("ca", ca.ready()));
                vec![store, ca]
            }
            None => vec![store.await],
        }
    }

    /// The store (for the outbox worker and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Woken whenever revocations are queued.
    pub fn outbox_wake(&self) -> Arc<Notify> {
        self.outbox_wake.clone()
    }

    /// Current challenge settings (defaults for unset keys).
    pub async fn challenge_settings(&self) -> Result<ChallengeSettings, StoreError> {
        let d = ChallengeSettings::default();
        let s = &self.store;
        Ok(ChallengeSettings {
            password_max: s
                .get_setting("password_max")
                .await?
                .unwrap_or(d.password_max),
            password_validity_minutes: s
                .get_setting("password_validity_minutes")
                .await?
                .unwrap_or(d.password_validity_minutes),
            profile_challenge_validity_minutes: s
                .get_setting("profile_challenge_validity_minutes")
                .await?
                .unwrap_or(d.profile_challenge_validity_minutes),
            admin_validity_days: s
                .get_setting("admin_validity_days")
                .await?
                .unwrap_or(d.admin_validity_days),
        })
    }

    /// Replaces the challenge settings (already validated).
    pub async fn set_challenge_settings(&self, c: &ChallengeSettings) -> Result<(), StoreError> {
        let s = &self.store;
        s.set_setting("password_max", c.password_max).await?;
        s.set_setting("password_validity_minutes", c.password_validity_minutes)
            .await?;
        s.set_setting(
            "profile_challenge_validity_minutes",
            c.profile_challenge_validity_minutes,
        )
        .await?;
        s.set_setting("admin_validity_days", c.admin_validity_days)
            .await?;
        Ok(())
    }

    /// Appends to the audit trail; a failure is logged, never fatal to the caller's answer
    /// (the decision is already durable or refused).
    pub(crate) async fn audit(
        &self,
        event: &str,
        device_id: Option<&str>,
        profile_id: Option<&str>,
        transaction_id: Option<&str>,
        detail: Option<String>,
    ) {
        self.record_audit(AuditEvent {
            event: event.to_string(),
            device_id: device_id.map(str::to_string),
            profile_id: profile_id.map(str::to_string),
            transaction_id: transaction_id.map(str::to_string),
            detail,
            ..AuditEvent::default()
        })
        .await;
    }

    /// Appends a prepared audit record (best effort, as [`Self::audit`]).
    pub(crate) async fn record_audit(&self, e: AuditEvent) {
        tracing::info!(
            event = e.event.as_str(),
            device_id = e.device_id.as_deref(),
            profile_id = e.profile_id.as_deref(),
            transaction_id = e.transaction_id.as_deref(),
            detail = e.detail.as_deref(),
            esc1_exposed = e.esc1_exposed,
            "audit"
        );
        if let Err(err) = self.store.audit(&e).await {
            tracing::warn!(%err, event = e.event.as_str(), "audit record not stored");
        }
    }
}
