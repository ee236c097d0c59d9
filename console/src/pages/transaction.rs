//! `/transactions/{txid}`: Figure 7's seven steps as a timeline for one transactionID, from
//! the policy module's transaction trace (events of all three services). Each step is lit by
//! the event that shows it happened, with its time and what was checked or decided; a refusal
//! lights its step as failed with the reason, and the steps after it stay dark. Revocations
//! follow.

use std::fmt::Write;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use policy_api::trace::{Source, TraceEvent, TransactionTrace};
use serde::Deserialize;
use serde_json::Value;

use super::{api_error, error_page, html};
use crate::ConsoleState;
use crate::clients::PathId;
use crate::html::{esc, url_part};
use crate::redirect;

/// The seven steps: title, what the step is, and the events that light it (the first found).
const STEPS: [(&str, &str, &[&str]); 7] = [
    (
        "1 · Challenge",
        "The policy module minted a one-time challenge for the device's profile.",
        &["challenge_issued"],
    ),
    (
        "2 · Check-in",
        "The device checked in and received the profile with its challenge.",
        &["checkin_delivered"],
    ),
    (
        "3 · PKCSReq",
        "ndes-proxy received the device's signed, encrypted request.",
        &["request_received"],
    ),
    (
        "4 · VerifyRequest",
        "The policy module checked challenge, device, profile and CSR: grant or named rejection.",
        &["request_granted", "request_rejected"],
    ),
    (
        "5 · Issuance",
        "The CA issued under the grant and recorded it before answering.",
        &["issued", "replayed", "issuance_failed"],
    ),
    (
        "6 · CertRep",
        "ndes-proxy answered the device with a signed CertRep.",
        &["reply_sent"],
    ),
    (
        "7 · Notify",
        "The policy module was told the serial and filed it in the device's inventory.",
        &["notified"],
    ),
];

/// Events that happen to the certificate after the enrollment.
const AFTER: [&str; 5] = [
    "revocation_queued",
    "revoked",
    "held",
    "released",
    "release_queued",
];

#[derive(Deserialize)]
pub(crate) struct Search {
    txid: Option<String>,
}

/// `GET /transactions?txid=`: the search form's target.
pub(crate) async fn search(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<Search>,
) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    match q.txid.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => redirect(&format!("/transactions/{}", url_part(t))),
        None => html(
            "Transactions",
            &session,
            r#"<h1>Transactions</h1><form method="get" action="/transactions" class="inline">
<label for="txid">transactionID</label><input type="search" id="txid" name="txid" required>
<button type="submit">Open</button></form><p class="hint">The overview lists the latest ones.</p>"#,
        ),
    }
}

/// `GET /transactions/{txid}`.
pub(crate) async fn show(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path(txid): Path<String>,
) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Some(id) = PathId::parse(&txid) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "A transactionID is 1-128 characters.",
        );
    };
    match s.policy.transaction(&id).await {
        Ok(t) => html("Transaction", &session, &render(&t)),
        Err(e) => api_error(&session, &e),
    }
}

fn text<'a>(e: &'a TraceEvent, key: &str) -> Option<&'a str> {
    e.detail
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn source(s: Source) -> &'static str {
    match s {
        Source::PolicyModule => "policy-module",
        Source::NdesProxy => "ndes-proxy",
        Source::CaMock => "ca-mock",
    }
}

/// What an event checked or decided, as short facts.
fn facts(e: &TraceEvent) -> Vec<String> {
    let mut f = Vec::new();
    if let Some(d) = &e.device_id {
        f.push(format!(
            r#"device <a href="/devices/{}">{}</a>"#,
            url_part(d),
            esc(d)
        ));
    }
    match (&e.profile_id, e.profile_version) {
        (Some(p), Some(v)) => f.push(format!("profile {} v{v}", esc(p))),
        (Some(p), None) => f.push(format!("profile {}", esc(p))),
        _ => {}
    }
    for (key, label) in [
        ("message_type", "message"),
        ("client_address", "from"),
        ("template", "template"),
        ("subject", "subject"),
        ("pki_status", "pkiStatus"),
        ("fail_info", "failInfo"),
        ("renews_serial", "renews"),
        ("action", "action"),
        ("issued_under", "under"),
    ] {
        if let Some(v) = text(e, key) {
            f.push(format!("{label} {}", esc(v)));
        }
    }
    if let Some(Value::Object(a)) = e.detail.get("algorithms") {
        let names: Vec<String> = ["signature", "digest", "content_encryption"]
            .iter()
            .filter_map(|k| a.get(*k).and_then(Value::as_str))
            .map(esc)
            .collect();
        if !names.is_empty() {
            f.push(format!("algorithms {}", names.join("/")));
        }
    }
    if let Some(serial) = &e.serial {
        f.push(format!(
            r#"serial <a class="mono" href="/certificates/{}">{}</a>"#,
            url_part(serial),
            esc(serial)
        ));
    }
    if let Some(r) = e.reason.as_deref().or_else(|| text(e, "reason")) {
        f.push(format!("<strong>reason {}</strong>", esc(r)));
    }
    if let Some(a) = &e.actor {
        f.push(format!("by {}", esc(a)));
    }
    f
}

/// Whether an event lights its step as failed.
fn failed(e: &TraceEvent) -> bool {
    matches!(e.event.as_str(), "request_rejected" | "issuance_failed")
        || text(e, "pki_status") == Some("FAILURE")
}

fn item(out: &mut String, class: &str, title: &str, what: &str, e: Option<&TraceEvent>) {
    let _ = write!(
        out,
        r#"<li class="{class}"><span class="step-title">{}</span>"#,
        esc(title)
    );
    match e {
        Some(e) => {
            let _ = write!(
                out,
                r#"<span class="step-time">{} · {} · <code>{}</code></span><div class="step-facts">{}</div><div class="hint">{}</div>"#,
                esc(&e.at),
                source(e.source),
                esc(&e.event),
                facts(e).join(" · "),
                esc(what),
            );
        }
        None => {
            let _ = write!(
                out,
                r#"<span class="step-time">not reached</span><div class="hint">{}</div>"#,
                esc(what)
            );
        }
    }
    out.push_str("</li>");
}

/// The timeline.
pub(crate) fn render(t: &TransactionTrace) -> String {
    let mut out = format!(
        r#"<h1>Transaction <code id="txid">{}</code></h1><ol class="timeline" id="steps" aria-label="The seven steps">"#,
        esc(&t.transaction_id)
    );
    for (title, what, events) in STEPS {
        let e = events
            .iter()
            .find_map(|name| t.events.iter().find(|e| e.event == *name));
        match e {
            Some(e) if failed(e) => item(&mut out, "step failed", title, what, Some(e)),
            Some(e) => item(&mut out, "step lit", title, what, Some(e)),
            None => item(&mut out, "step unlit", title, what, None),
        }
    }
    out.push_str("</ol>");
    let later: Vec<&TraceEvent> = t
        .events
        .iter()
        .filter(|e| AFTER.contains(&e.event.as_str()))
        .collect();
    if !later.is_empty() {
        out.push_str(r#"<h2>After the enrollment</h2><ol class="timeline" id="revocations">"#);
        for e in later {
            item(
                &mut out,
                "revocation",
                &e.event.replace('_', " "),
                "",
                Some(e),
            );
        }
        out.push_str("</ol>");
    }
    if !t.unavailable.is_empty() {
        let names: Vec<&str> = t.unavailable.iter().map(|s| source(*s)).collect();
        let _ = write!(
            out,
            r#"<p class="msg error">Could not be read: {} (its events are missing above).</p>"#,
            names.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ev(event: &str, detail: Value) -> TraceEvent {
        serde_json::from_value(serde_json::json!({
            "at": "2026-12-07T08:00:00Z", "at_unix": 0, "source": "policy-module",
            "event": event, "detail": detail
        }))
        .unwrap()
    }

    #[test]
    fn a_rejection_fails_step_four_and_leaves_the_rest_dark() {
        let mut rejected = ev("request_rejected", serde_json::json!({}));
        rejected.reason = Some("challenge_expired<x>".into());
        let t = TransactionTrace {
            transaction_id: "tx-1".into(),
            events: vec![
                ev("challenge_issued", serde_json::json!({})),
                ev("checkin_delivered", serde_json::json!({})),
                ev(
                    "request_received",
                    serde_json::json!({"message_type": "PKCSReq"}),
                ),
                rejected,
            ],
            unavailable: vec![],
        };
        let html = render(&t);
        assert_eq!(html.matches(r#"class="step lit""#).count(), 3);
        assert_eq!(html.matches(r#"class="step failed""#).count(), 1);
        assert_eq!(html.matches(r#"class="step unlit""#).count(), 3);
        assert!(html.contains("reason challenge_expired&lt;x&gt;"));
    }
}
