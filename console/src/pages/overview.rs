//! `/`: the lab at a glance. Each panel reads one API; a service that cannot be read shows as
//! unavailable in its panel rather than failing the page.

use std::fmt::Write;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use ca_api::wire::RecordQuery;

use super::html;
use crate::ConsoleState;
use crate::clients::AuditEvent;
use crate::html::{badge, esc, time, url_part};

/// Record pages read to count certificates (1,000 records each); past them the count is a floor.
const RECORD_PAGES: usize = 5;
/// Transactions listed.
const LATEST: usize = 10;

pub(crate) async fn show(State(s): State<ConsoleState>, headers: HeaderMap) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let (devices, audit, pending, outbox, certs, ca) = tokio::join!(
        s.policy.device_page("", 0, 1),
        s.policy.audit(300),
        s.ndes.pending(),
        s.policy.outbox_pending(),
        count_certificates(&s.ca),
        ca_status(&s.ca),
    );
    let now = s.clock.now();
    let n = |r: Option<String>| r.unwrap_or_else(|| "unavailable".into());
    let mut body = String::from("<h1>Overview</h1>");
    let _ = write!(
        body,
        r#"<section class="cards" aria-label="Counts">
<div class="card"><div class="n" id="count-devices">{}</div><div class="l">devices</div></div>
<div class="card"><div class="n" id="count-certificates">{}</div><div class="l">certificates issued</div></div>
<div class="card"><div class="n" id="count-pending">{}</div><div class="l">requests awaiting approval</div></div>
<div class="card"><div class="n" id="count-outbox">{}</div><div class="l">revocations not yet delivered{}</div></div>
</section>
<p class="hint">Manage <a href="/devices">devices</a> and the <a href="/profiles" id="overview-profiles">certificate profiles</a> they are assigned.</p>"#,
        n(devices.as_ref().ok().map(|(_, total)| total.to_string())),
        n(certs),
        n(pending.as_ref().ok().map(|p| p.len().to_string())),
        n(outbox.as_ref().ok().map(|o| o.len().to_string())),
        outbox
            .as_ref()
            .ok()
            .and_then(|o| o.iter().filter_map(|e| e.created_at).min())
            .map(|t| format!(" (oldest {}s old)", (now - t).max(0)))
            .unwrap_or_default(),
    );

    body.push_str(r#"<h2 id="latest">Latest transactions</h2>"#);
    match &audit {
        Ok(events) => body.push_str(&latest_transactions(events)),
        Err(e) => {
            let _ = write!(body, "<p class=\"msg error\">{}</p>", esc(&e.to_string()));
        }
    }

    body.push_str(r#"<h2 id="ca">Certificate authority</h2><dl class="facts">"#);
    match ca {
        Ok(c) => {
            let _ = write!(
                body,
                r#"<dt>Root CA SHA-256 (pin this)</dt><dd class="mono" id="root-fingerprint">{}</dd>
<dt>Issuing CA</dt><dd>{}</dd>
<dt>CRL number</dt><dd id="crl-number">{}</dd>
<dt>CRL next update</dt><dd id="crl-next-update">{}</dd>"#,
                esc(&c.root_fingerprint),
                esc(&c.issuing_subject),
                c.crl_number.map_or("none".into(), |n| n.to_string()),
                c.next_update.map_or("none".into(), time),
            );
        }
        Err(e) => {
            let _ = write!(
                body,
                "<dt>Status</dt><dd class=\"msg error\">{}</dd>",
                esc(&e)
            );
        }
    }
    let _ = write!(
        body,
        r#"<dt>SCEP URL</dt><dd class="mono" id="scep-url">{}</dd><dt>mscep_admin</dt><dd class="mono">{}</dd></dl>"#,
        esc(&s.links.scep_url),
        esc(&s.links.mscep_admin_url)
    );
    body.push_str(
        r#"<h2>Open a transaction</h2><form method="get" action="/transactions" class="inline">
<label for="txid">transactionID</label><input type="search" id="txid" name="txid" required>
<button type="submit">Open</button></form>"#,
    );
    html("Overview", &session, &body)
}

/// What became of a transaction, from its audit records in the window (the policy module's
/// own names: `challenge_consumed` is its Notify, `*_verified` its grant).
fn outcome(events: &[&AuditEvent]) -> &'static str {
    let has = |names: &[&str]| events.iter().any(|e| names.contains(&e.event.as_str()));
    if has(&["request_rejected"]) {
        "rejected"
    } else if has(&["challenge_consumed", "notify_repeated"]) {
        "issued"
    } else if has(&["issuance_failed"]) {
        "failed"
    } else if has(&["challenge_verified", "renewal_verified"]) {
        "granted"
    } else {
        "in progress"
    }
}

/// The newest transactions in the policy module's audit (newest first), each with its device
/// and outcome.
fn latest_transactions(events: &[AuditEvent]) -> String {
    let mut order: Vec<&str> = Vec::new();
    for e in events {
        if let Some(tx) = e.transaction_id.as_deref()
            && !order.contains(&tx)
        {
            order.push(tx);
            if order.len() == LATEST {
                break;
            }
        }
    }
    if order.is_empty() {
        return "<p>No transaction yet.</p>".into();
    }
    let mut t = String::from(
        r#"<table id="transactions"><thead><tr><th>Last seen</th><th>transactionID</th><th>Device</th><th>Outcome</th></tr></thead><tbody>"#,
    );
    for tx in order {
        let of_tx: Vec<&AuditEvent> = events
            .iter()
            .filter(|e| e.transaction_id.as_deref() == Some(tx))
            .collect();
        let device = of_tx.iter().find_map(|e| e.device_id.as_deref());
        let _ = write!(
            t,
            r#"<tr><td class="nowrap">{}</td><td class="mono"><a href="/transactions/{}">{}</a></td><td>{}</td><td>{}</td></tr>"#,
            of_tx.first().map(|e| time(e.at)).unwrap_or_default(),
            url_part(tx),
            esc(tx),
            device
                .map(|d| format!(r#"<a href="/devices/{}">{}</a>"#, url_part(d), esc(d)))
                .unwrap_or_default(),
            badge(outcome(&of_tx)),
        );
    }
    t.push_str("</tbody></table>");
    t
}

/// Certificates the CA issued, from its records; `N+` past [`RECORD_PAGES`].
async fn count_certificates(ca: &ca_api::CaClient) -> Option<String> {
    let mut query = RecordQuery {
        limit: Some(1000),
        ..RecordQuery::default()
    };
    let mut count = 0usize;
    for _ in 0..RECORD_PAGES {
        let page = ca.records(&query).await.ok()?;
        count += page.records.iter().filter(|r| r.action == "issued").count();
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => return Some(count.to_string()),
        }
    }
    Some(format!("{count}+"))
}

struct CaStatus {
    root_fingerprint: String,
    issuing_subject: String,
    crl_number: Option<u64>,
    next_update: Option<i64>,
}

async fn ca_status(ca: &ca_api::CaClient) -> Result<CaStatus, String> {
    let unavailable = |_| "ca-mock unavailable".to_owned();
    let ((issuing, root), crl) =
        tokio::try_join!(ca.ca_certificates(), ca.crl()).map_err(unavailable)?;
    let root_fingerprint = foundation::secret::sha256_hex(&root);
    let issuing_subject = openssl::x509::X509::from_der(&issuing)
        .ok()
        .map(|c| {
            c.subject_name()
                .entries()
                .filter_map(|e| e.data().to_string().ok())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let (crl_number, next_update) = match x509_parser::parse_x509_crl(&crl) {
        Ok((_, c)) => (
            c.crl_number().and_then(|n| u64::try_from(n.clone()).ok()),
            c.next_update().map(|t| t.timestamp()),
        ),
        Err(_) => (None, None),
    };
    Ok(CaStatus {
        root_fingerprint,
        issuing_subject,
        crl_number,
        next_update,
    })
}
