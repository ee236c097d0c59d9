//! Signing what VerifyRequest granted, for the CA (docs/decisions.md #10).
//!
//! The stored grant (what a retransmission is answered with) stays unsigned; every answer is
//! signed afresh, so a retransmission, a queued retry or an approval of a PENDING request
//! always carries a grant that is current for its one CA call.

use ca_api::GrantStatement;
use policy_api::contract::Grant;
use policy_api::error::{Rejection, VerifyError};

use crate::service::PolicyService;

impl PolicyService {
    /// `grant` with its signed statement, bound to the key whose SubjectPublicKeyInfo hashes to
    /// `spki_sha256`, issued at `now` on this instance's clock (`Store::local_now`: the CA
    /// checks the expiry against its own clock, so no database round trip for it). Unchanged
    /// when no signing key is configured.
    pub(crate) fn sign_grant(
        &self,
        mut grant: Grant,
        spki_sha256: &[u8],
        now: i64,
    ) -> Result<Grant, VerifyError> {
        let Some(key) = &self.config.grant_key else {
            return Ok(grant);
        };
        let statement = GrantStatement {
            v: 0,
            key_id: String::new(),
            request_id: grant.transaction_id.clone(),
            spki_sha256: hex::encode(spki_sha256),
            template: grant.template.clone(),
            subject: grant.subject.clone(),
            sans: grant.subject_alternative_names.clone(),
            key_usage: grant.key_usage.clone(),
            extended_key_usages: grant.extended_key_usages.clone(),
            validity_days: grant.validity_days,
            issued_at: now,
            expires_at: now.saturating_add(self.config.grant_lifetime_secs),
        };
        grant.signed = Some(key.sign(statement).map_err(|e| {
            tracing::error!(error = %e, "signing a grant failed");
            VerifyError::Unavailable
        })?);
        Ok(grant)
    }

    /// The stored grant of `transaction_id`, signed afresh: only while the request waits to be
    /// issued (granted, not yet notified) and, for a device's grant, while the device is
    /// active and the profile still targets it (docs/decisions.md #10, #11).
    pub(crate) async fn regrant_inner(&self, transaction_id: &str) -> Result<Grant, VerifyError> {
        let unavailable = |e: crate::error::StoreError| {
            tracing::error!(error = %e, "policy store unavailable");
            VerifyError::Unavailable
        };
        let row = self
            .store
            .get_request(transaction_id)
            .await
            .map_err(unavailable)?
            .ok_or(Rejection::CertificateRequestDecodingFailed)?;
        if row.state != "granted" {
            return Err(Rejection::ChallengeAlreadyUsed.into());
        }
        let grant: Grant =
            serde_json::from_str(&row.grant_body).map_err(|_| VerifyError::Unavailable)?;
        if let (Some(device), Some(profile)) = (&grant.device_id, &grant.profile_id) {
            self.check_targeting(device, profile).await?;
        }
        self.sign_grant(grant, &row.spki_hash, self.store.local_now())
    }
}
