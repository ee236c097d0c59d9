//! The audit records of one VerifyRequest: `request_received` (what ndes-proxy reported) and
//! the decision, keyed by the client's transactionID with the request id beside it, and
//! naming the challenge's owner even on a refusal (issue 16 item 1). A grant's records are
//! written in the transaction that records the grant (docs/decisions.md #12); a refusal
//! changes nothing, so its two records are written together on their own.

use serde_json::{Map, Value, json};

use crate::admin_path::esc1_names;
use crate::service::PolicyService;
use crate::store::AuditEvent;
use policy_api::contract::{Grant, VerifyRequest};

/// Longest text kept of a reported field (instance, user agent, algorithm names).
const MAX_FIELD: usize = 256;

/// What verification learned before deciding, so that the decision names it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Seen {
    pub device_id: Option<String>,
    pub profile_id: Option<String>,
    pub profile_version: Option<i64>,
    /// `challenge_ref` of the challenge presented (never the value).
    pub challenge: Option<String>,
    /// The certificate a renewal renews (its signer), lowercase hex serial.
    pub renews_serial: Option<String>,
    /// Who minted the admin challenge (the NDES requester).
    pub minted_by: Option<String>,
}

fn bounded(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_FIELD)
        .collect()
}

/// The client's transactionID (a renewal's request id is not it), bounded and printable.
pub(crate) fn client_transaction_id(req: &VerifyRequest) -> Option<String> {
    let t = req
        .requester
        .client_transaction_id
        .as_deref()
        .unwrap_or(&req.transaction_id);
    let ok = !t.is_empty()
        && t.len() <= crate::model::MAX_TRANSACTION_ID
        && t.bytes().all(|b| (0x21..0x7f).contains(&b));
    ok.then(|| t.to_string())
}

/// The request id, when it differs from the client's transactionID.
fn request_id(req: &VerifyRequest, client: Option<&str>) -> Option<String> {
    let id = req.transaction_id.as_str();
    (Some(id) != client && id.len() <= crate::model::MAX_TRANSACTION_ID).then(|| bounded(id))
}

fn base(event: &str, req: &VerifyRequest, seen: &Seen) -> AuditEvent {
    let tx = client_transaction_id(req);
    AuditEvent {
        event: event.into(),
        device_id: seen.device_id.clone(),
        profile_id: seen.profile_id.clone(),
        profile_version: seen.profile_version,
        request_id: request_id(req, tx.as_deref()),
        transaction_id: tx,
        challenge: seen.challenge.clone(),
        ..AuditEvent::default()
    }
}

/// An event keyed as the decision records are: the client's transactionID, with the request id
/// beside it when the two differ (a renewal's), so a refusal found on the way is in the trace.
pub(crate) fn keyed(event: &str, req: &VerifyRequest) -> AuditEvent {
    base(event, req, &Seen::default())
}

/// `request_received`, as ndes-proxy reported it.
pub(crate) fn received(req: &VerifyRequest, seen: &Seen) -> AuditEvent {
    let r = &req.requester;
    let mut facts = Map::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            facts.insert(k.into(), Value::String(bounded(v)));
        }
    };
    put("message_type", r.message_type.as_deref());
    put("client_address", r.remote_addr.as_deref());
    put("user_agent", r.user_agent.as_deref());
    put("renews_serial", seen.renews_serial.as_deref());
    if let Some(a) = &r.algorithms {
        facts.insert(
            "algorithms".into(),
            json!({
                "signature": bounded(&a.signature),
                "digest": bounded(&a.digest),
                "content_encryption": bounded(&a.content_encryption),
            }),
        );
    }
    AuditEvent {
        actor: r.instance.as_deref().map(bounded),
        source: Some("ndes-proxy".into()),
        facts: Some(Value::Object(facts).to_string()),
        ..base("request_received", req, seen)
    }
}

/// The grant's record (`challenge_verified` or `renewal_verified` in the audit log,
/// `request_granted` in a trace): template, and the signed grant's key id and expiry.
pub(crate) fn granted(
    event: &str,
    req: &VerifyRequest,
    seen: &Seen,
    template: &str,
    signed: Option<(&str, i64)>,
    detail: String,
    esc1_exposed: bool,
) -> AuditEvent {
    let mut facts = json!({ "template": template });
    if let Some((kid, expires)) = signed {
        facts["grant_kid"] = json!(kid);
        facts["grant_expires_at"] = json!(foundation::time::rfc3339(expires));
        facts["grant_expires_at_unix"] = json!(expires);
    }
    if let Some(s) = &seen.renews_serial {
        facts["renews_serial"] = json!(s);
    }
    AuditEvent {
        actor: seen.minted_by.clone(),
        facts: Some(facts.to_string()),
        detail: Some(detail),
        esc1_exposed,
        ..base(event, req, seen)
    }
}

/// `request_rejected` with its named reason.
pub(crate) fn rejected(
    req: &VerifyRequest,
    seen: &Seen,
    reason: &str,
    detail: String,
) -> AuditEvent {
    let facts = seen
        .renews_serial
        .as_ref()
        .map(|s| json!({ "renews_serial": s }).to_string());
    AuditEvent {
        reason: Some(reason.into()),
        detail: Some(detail),
        facts,
        ..base("request_rejected", req, seen)
    }
}

/// `reply_sent`: the CertRep ndes-proxy answered with, as it reported it.
pub(crate) fn reply_sent(r: &policy_api::contract::ReplyReport) -> AuditEvent {
    let mut facts = json!({
        "message_type": bounded(&r.message_type),
        "pki_status": bounded(&r.pki_status),
    });
    if let Some(f) = &r.fail_info {
        facts["fail_info"] = json!(bounded(f));
    }
    let tx = bounded(&r.transaction_id);
    let request_id = r.request_id.as_deref().map(bounded).filter(|id| *id != tx);
    AuditEvent {
        event: "reply_sent".into(),
        transaction_id: Some(tx),
        request_id,
        actor: r.instance.as_deref().map(bounded),
        source: Some("ndes-proxy".into()),
        facts: Some(facts.to_string()),
        ..AuditEvent::default()
    }
}

impl PolicyService {
    /// The records a grant is written with, in its transaction: the request as received and
    /// the decision (docs/decisions.md #12).
    pub(crate) fn grant_events(
        &self,
        req: &VerifyRequest,
        seen: &Seen,
        grant: &Grant,
        esc1_exposed: bool,
        signed_at: i64,
    ) -> Vec<AuditEvent> {
        let event = if grant.renewal {
            "renewal_verified"
        } else {
            "challenge_verified"
        };
        let from = requester_text(req);
        let detail = if esc1_exposed {
            let names = esc1_names(grant);
            tracing::warn!(
                transaction_id = %req.transaction_id,
                "ESC1-exposed: the enrollee supplied the names"
            );
            format!("{from} esc1_exposed {names}")
        } else {
            from
        };
        let signed = self.config.grant_key.as_ref().map(|k| {
            (
                k.key_id(),
                signed_at.saturating_add(self.config.grant_lifetime_secs),
            )
        });
        vec![
            received(req, seen),
            granted(
                event,
                req,
                seen,
                &grant.template,
                signed,
                detail,
                esc1_exposed,
            ),
        ]
    }
}

/// Where a request came from, as the audit's detail has always said it.
pub(crate) fn requester_text(req: &VerifyRequest) -> String {
    format!(
        "remote={} ua={}",
        req.requester.remote_addr.as_deref().unwrap_or("-"),
        req.requester.user_agent.as_deref().unwrap_or("-")
    )
}
