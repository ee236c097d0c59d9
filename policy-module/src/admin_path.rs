//! The mscep_admin path (NDES's admin page): which templates it may serve, and the names a CSR
//! presented with one of its challenges may carry. The template decides (docs/decisions.md #7):
//! a template serves the admin path only with an administrator's name policy
//! ([`NamePolicy`]), and every subject attribute and SAN of the CSR is checked against it.

use serde::{Deserialize, Serialize};

use crate::error::{AdminError, Rejection, StoreError, VerifyError};
use crate::model::is_identifier;
use crate::name_policy::{NamePolicy, NameRefusal};
use crate::rules;
use crate::service::PolicyService;
use crate::store::{AuditEvent, ChallengeRow, NamePolicyRow};
use foundation::names::{San, subject_text};
use policy_api::contract::{Grant, VerifyRequest};
use policy_api::csr::CsrFacts;

/// How much of an ESC1-exposed grant's names the audit repeats, in characters.
const MAX_AUDIT_NAMES: usize = 512;

/// A template's name policy as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredNamePolicy {
    pub template: String,
    /// The last change; RFC 3339 on the wire (docs/decisions.md #12).
    #[serde(with = "foundation::time::rfc3339_serde")]
    pub updated_at: i64,
    #[serde(flatten)]
    pub policy: NamePolicy,
}

/// The marks the policy module keeps beside a grant in its request row (read back at Notify):
/// the grant is the contract's, the exposure is the policy module's own record.
#[derive(Deserialize)]
struct GrantMarks {
    #[serde(default)]
    esc1_exposed: bool,
}

/// The request row's body: the grant, marked `esc1_exposed` when the names were unchecked.
pub(crate) fn grant_body(grant: &Grant, esc1_exposed: bool) -> Result<String, VerifyError> {
    let mut body = serde_json::to_value(grant).map_err(|_| VerifyError::Unavailable)?;
    if esc1_exposed && let Some(map) = body.as_object_mut() {
        map.insert("esc1_exposed".into(), serde_json::Value::Bool(true));
    }
    serde_json::to_string(&body).map_err(|_| VerifyError::Unavailable)
}

fn parse_row(row: NamePolicyRow) -> Option<StoredNamePolicy> {
    match serde_json::from_str::<NamePolicy>(&row.body) {
        Ok(policy) => Some(StoredNamePolicy {
            template: row.template,
            updated_at: row.updated_at,
            policy,
        }),
        Err(e) => {
            // Fail closed: a body this version cannot read serves nothing.
            tracing::error!(template = %row.template, error = %e, "stored name policy unreadable");
            None
        }
    }
}

fn sans_text(sans: &[San]) -> String {
    let parts: Vec<String> = sans
        .iter()
        .map(|s| format!("{:?}:{}", s.kind, s.value).to_ascii_lowercase())
        .collect();
    parts.join(",")
}

impl PolicyService {
    /// The name policy of a template, if the admin path may serve it.
    pub async fn name_policy(
        &self,
        template: &str,
    ) -> Result<Option<StoredNamePolicy>, StoreError> {
        Ok(self
            .store
            .get_name_policy(template)
            .await?
            .and_then(parse_row))
    }

    /// Every template's name policy.
    pub async fn name_policies(&self) -> Result<Vec<StoredNamePolicy>, StoreError> {
        Ok(self
            .store
            .list_name_policies()
            .await?
            .into_iter()
            .filter_map(parse_row)
            .collect())
    }

    /// Validates and stores a template's policy (replacing one, unless `only_if_absent`:
    /// then an existing policy, an administrator's choice, is kept and `None` returned).
    pub async fn set_name_policy(
        &self,
        template: &str,
        policy: &NamePolicy,
        only_if_absent: bool,
    ) -> Result<Option<StoredNamePolicy>, AdminError> {
        if !is_identifier(template) {
            return Err(AdminError::Invalid(
                "template: 1-64 letters, digits, '_', '.', '-'".into(),
            ));
        }
        policy.validate().map_err(AdminError::Invalid)?;
        let body = serde_json::to_string(policy).map_err(|_| AdminError::Internal)?;
        if !self
            .store
            .put_name_policy(template, &body, only_if_absent)
            .await?
        {
            return Ok(None);
        }
        if policy.enrollee_supplies_subject {
            tracing::warn!(
                template,
                "name policy lets the enrollee supply the subject (ESC1)"
            );
        }
        self.record_audit(AuditEvent {
            event: "name_policy_set".into(),
            detail: Some(format!("template={template} {body}")),
            esc1_exposed: policy.enrollee_supplies_subject,
            ..AuditEvent::default()
        })
        .await;
        Ok(self.name_policy(template).await?)
    }

    /// Removes a template's policy: the admin path stops serving it.
    pub async fn delete_name_policy(&self, template: &str) -> Result<(), AdminError> {
        if !self.store.delete_name_policy(template).await? {
            return Err(AdminError::NotFound);
        }
        self.audit(
            "name_policy_deleted",
            None,
            None,
            None,
            Some(format!("template={template}")),
        )
        .await;
        Ok(())
    }

    /// NDES standalone semantics within the template's name policy: the password authorises
    /// the template, the CSR names itself, and the policy decides which names it may use.
    /// Returns the grant and whether its names went unchecked (ESC1 exposure).
    pub(crate) async fn admin_grant(
        &self,
        req: &VerifyRequest,
        csr: &CsrFacts,
        spki_hash: &[u8],
        row: &ChallengeRow,
    ) -> Result<(Grant, bool), VerifyError> {
        let unavailable = |e: StoreError| {
            tracing::error!(error = %e, "policy store unavailable");
            VerifyError::Unavailable
        };
        let esc1 = self
            .check_admin_names(&req.transaction_id, &row.template, csr)
            .await?;
        rules::check_key_floor(csr)?;
        self.check_key_holder(spki_hash, None).await?;
        let settings = self.challenge_settings().await.map_err(unavailable)?;
        Ok((
            Grant {
                transaction_id: req.transaction_id.clone(),
                template: row.template.clone(),
                subject: csr.subject.clone(),
                subject_alternative_names: csr.sans.clone(),
                validity_days: u32::try_from(settings.admin_validity_days).unwrap_or(365),
                key_usage: Vec::new(),
                extended_key_usages: Vec::new(),
                device_id: None,
                profile_id: None,
                profile_version: None,
                renewal: false,
                signed: None,
            },
            esc1,
        ))
    }

    /// The CSR's names against `template`'s name policy (enrolment and renewal alike);
    /// whether they went unchecked (ESC1 exposure). A refusal is `NameNotPermitted`, with the
    /// name and reason in a `name_refused` audit record.
    pub(crate) async fn check_admin_names(
        &self,
        transaction_id: &str,
        template: &str,
        csr: &CsrFacts,
    ) -> Result<bool, VerifyError> {
        let policy = self.name_policy(template).await.map_err(|e| {
            tracing::error!(error = %e, "policy store unavailable");
            VerifyError::Unavailable
        })?;
        let checked = match &policy {
            Some(p) => p.policy.check(&csr.subject, &csr.sans),
            None => Err(NameRefusal {
                name: format!("template {template}"),
                why: "the template has no admin-path name policy",
            }),
        };
        if let Err(refusal) = checked {
            tracing::warn!(template, %refusal, "admin-path name refused");
            self.audit(
                "name_refused",
                None,
                None,
                Some(transaction_id),
                Some(format!("template={template} {refusal}")),
            )
            .await;
            return Err(Rejection::NameNotPermitted.into());
        }
        Ok(policy.is_some_and(|p| p.policy.enrollee_supplies_subject))
    }
}

/// Whether a stored grant body is marked ESC1-exposed.
pub(crate) fn grant_marked_esc1(grant_body: &str) -> bool {
    serde_json::from_str::<GrantMarks>(grant_body).is_ok_and(|m| m.esc1_exposed)
}

/// The names an ESC1-exposed grant let through unchecked, for the audit: bounded, control
/// characters escaped (CSR-supplied text).
pub(crate) fn esc1_names(g: &Grant) -> String {
    let names = format!(
        "template={} subject=[{}] sans=[{}]",
        g.template,
        subject_text(&g.subject),
        sans_text(&g.subject_alternative_names)
    );
    let mut names: String = names.chars().take(MAX_AUDIT_NAMES).collect();
    if names.chars().any(char::is_control) {
        names = names.escape_default().to_string();
    }
    names
}
