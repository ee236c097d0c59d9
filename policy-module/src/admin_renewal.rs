//! Renewal without a challenge (docs/decisions.md #5): the window both kinds of certificate
//! renew in, and the renewal of admin-path (mscep_admin, plain SCEP client) certificates.
//!
//! An admin-path certificate has no device or profile: what it was issued for is the grant
//! recorded with its request (template and subject, as the CSR named them within the
//! template's name policy). Its renewal keeps both: same template, same subject, names still
//! inside the template's name policy, inside `admin_renewal_window_percent` of its lifetime.

use foundation::time::rfc3339;
use policy_api::contract::{Grant, VerifyRequest};
use policy_api::csr::CsrFacts;

use crate::error::{Rejection, StoreError, VerifyError};
use crate::model::IssuedCert;
use crate::rules;
use crate::service::PolicyService;
use crate::store::AuditEvent;

fn unavailable(e: StoreError) -> VerifyError {
    tracing::error!(error = %e, "policy store unavailable");
    VerifyError::Unavailable
}

impl PolicyService {
    /// A renewal comes no earlier than when at most `percent` of the signer's lifetime
    /// remains (Intune's renewal threshold). Too early is `RenewalNotAllowed`, with the window
    /// and the remaining time in a `renewal_refused` audit record (the wire says badRequest).
    pub(crate) async fn check_renewal_window(
        &self,
        req: &VerifyRequest,
        cert: &IssuedCert,
        now: i64,
        percent: u8,
        setting: &str,
    ) -> Result<(), VerifyError> {
        let lifetime = (cert.not_after - cert.issued_at).max(1);
        let remaining = cert.not_after - now;
        if i128::from(remaining) * 100 <= i128::from(lifetime) * i128::from(percent) {
            return Ok(());
        }
        let from = cert.not_after - lifetime * i64::from(percent) / 100;
        self.record_audit(AuditEvent {
            device_id: cert.device_id.clone(),
            profile_id: cert.profile_id.clone(),
            serial: Some(cert.serial_hex.clone()),
            detail: Some(format!(
                "too early: signer serial={} has {}% of its lifetime left \
                 (remaining_secs={remaining} of {lifetime}), {setting}={percent}%, \
                 renewable_from={} renewable_from_unix={from} not_after={}",
                cert.serial_hex,
                i128::from(remaining) * 100 / i128::from(lifetime),
                rfc3339(from),
                rfc3339(cert.not_after),
            )),
            ..crate::decision_audit::keyed("renewal_refused", req)
        })
        .await;
        Err(Rejection::RenewalNotAllowed.into())
    }

    /// The grant renewing the admin-path certificate `cert` (current, good, and verified by
    /// ndes-proxy to have signed the request), and whether its names went unchecked (ESC1).
    pub(crate) async fn admin_renewal_grant(
        &self,
        req: &VerifyRequest,
        csr: &CsrFacts,
        spki_hash: &[u8],
        cert: &IssuedCert,
        now: i64,
    ) -> Result<(Grant, bool), VerifyError> {
        let issued_for: Grant = self
            .store
            .get_request(&cert.transaction_id)
            .await
            .map_err(unavailable)?
            .and_then(|row| serde_json::from_str(&row.grant_body).ok())
            .filter(|g: &Grant| g.device_id.is_none())
            .ok_or(Rejection::RenewalNotAllowed)?;
        if let Some(t) = &req.template
            && *t != issued_for.template
        {
            return Err(Rejection::TemplateMismatch.into());
        }
        if csr.subject != issued_for.subject {
            return Err(Rejection::SubjectNameMismatch.into());
        }
        let window = self.config.admin_renewal_window_percent;
        self.check_renewal_window(req, cert, now, window, "admin_renewal_window_percent")
            .await?;
        let esc1 = self
            .check_admin_names(&req.transaction_id, &issued_for.template, csr)
            .await?;
        rules::check_key_floor(csr)?;
        self.check_key_holder(spki_hash, None).await?;
        let settings = self.challenge_settings().await.map_err(unavailable)?;
        Ok((
            Grant {
                transaction_id: req.transaction_id.clone(),
                template: issued_for.template,
                subject: csr.subject.clone(),
                subject_alternative_names: csr.sans.clone(),
                validity_days: u32::try_from(settings.admin_validity_days).unwrap_or(365),
                key_usage: Vec::new(),
                extended_key_usages: Vec::new(),
                device_id: None,
                profile_id: None,
                profile_version: None,
                renewal: true,
                signed: None,
            },
            esc1,
        ))
    }
}
