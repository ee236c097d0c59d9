//! `/certificates`: the inventory searched by serial, device, subject or status and paged (the
//! policy module's `GET /api/v1/certificates`), and a manual revocation with a reason behind a
//! confirmation whose form carries the CSRF token (`POST /api/v1/certificates/{serial}/revoke`).

use std::fmt::Write;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{api_error, error_page, html};
use crate::ConsoleState;
use crate::auth::Role;
use crate::clients::PathId;
use crate::html::{badge, csrf_field, esc, time, url_part};
use crate::redirect;

/// Certificates per page.
const PAGE: &str = "50";

/// The statuses of the inventory, for the search's select.
const STATUSES: [&str; 6] = [
    "issued",
    "revoking",
    "revoked",
    "revoke_failed",
    "held",
    "releasing",
];

/// The reasons an admin may give (certificateHold is the block action's).
pub(crate) const REASONS: [&str; 7] = [
    "unspecified",
    "keyCompromise",
    "caCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
];

#[derive(Deserialize, Default)]
pub(crate) struct SearchQuery {
    serial: Option<String>,
    device: Option<String>,
    subject: Option<String>,
    status: Option<String>,
    before: Option<String>,
}

/// `GET /certificates?serial=&device=&subject=&status=&before=`.
pub(crate) async fn list(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<SearchQuery>,
) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let field = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_owned();
    let (serial, device, subject, status, before) = (
        field(&q.serial),
        field(&q.device),
        field(&q.subject),
        field(&q.status),
        field(&q.before),
    );
    let mut filters = vec![("limit", PAGE)];
    for (k, v) in [
        ("serial", &serial),
        ("device", &device),
        ("subject", &subject),
        ("status", &status),
        ("before", &before),
    ] {
        if !v.is_empty() {
            filters.push((k, v.as_str()));
        }
    }
    let page = match s.policy.certificates(&filters).await {
        Ok(p) => p,
        Err(e) => return api_error(&session, &e),
    };
    let options: String = std::iter::once(r#"<option value="">any</option>"#.to_owned())
        .chain(STATUSES.iter().map(|st| {
            format!(
                r#"<option value="{st}"{sel}>{st}</option>"#,
                sel = if *st == status { " selected" } else { "" }
            )
        }))
        .collect();
    let mut body = format!(
        r#"<h1>Certificates</h1><form method="get" action="/certificates" class="inline" role="search">
<label for="serial">Serial</label><input type="search" id="serial" name="serial" value="{se}" placeholder="hex">
<label for="device">Device</label><input type="search" id="device" name="device" value="{de}" placeholder="device id">
<label for="subject">Subject</label><input type="search" id="subject" name="subject" value="{su}" placeholder="part of it, any case" maxlength="256">
<label for="status">Status</label><select id="status" name="status">{options}</select>
<button type="submit">Search</button></form>
<table id="certificates"><thead><tr><th>Serial</th><th>Subject</th><th>Device</th><th>Profile</th><th>Status</th><th>Issued</th><th>Expires</th></tr></thead><tbody>"#,
        se = esc(&serial),
        de = esc(&device),
        su = esc(&subject),
    );
    for c in &page.certificates {
        let _ = write!(
            body,
            r#"<tr><td class="mono"><a href="/certificates/{s}">{S}</a></td><td>{sub}</td><td>{d}</td><td>{p}</td><td>{st}{r}</td><td>{i}</td><td>{e}</td></tr>"#,
            s = url_part(&c.serial_hex),
            S = esc(&c.serial_hex),
            sub = esc(c.subject.as_deref().unwrap_or("unknown")),
            d = c
                .device_id
                .as_deref()
                .map(|d| format!(r#"<a href="/devices/{}">{}</a>"#, url_part(d), esc(d)))
                .unwrap_or_else(|| "(mscep_admin)".into()),
            p = esc(c.profile_id.as_deref().unwrap_or("")),
            st = badge(&c.status),
            r = c
                .revocation_reason
                .as_deref()
                .map(|r| format!(" ({})", esc(r)))
                .unwrap_or_default(),
            i = time(c.issued_at),
            e = time(c.not_after),
        );
    }
    body.push_str("</tbody></table>");
    match (page.certificates.is_empty(), &page.next_before) {
        (true, None) => body.push_str(r#"<p id="no-certificates">No certificate matches.</p>"#),
        // A subject search reads a bounded window of certificates per page.
        (true, Some(_)) => body.push_str(
            r#"<p id="no-certificates">None of the newest certificates searched matches; the next page searches older ones.</p>"#,
        ),
        _ => {}
    }
    if let Some(next) = &page.next_before {
        let _ = write!(
            body,
            r#"<p><a id="next-page" href="/certificates?serial={}&amp;device={}&amp;subject={}&amp;status={}&amp;before={}">Next page</a></p>"#,
            url_part(&serial),
            url_part(&device),
            url_part(&subject),
            url_part(&status),
            url_part(next),
        );
    }
    html("Certificates", &session, &body)
}

/// A serial from the URL, or a 400 page.
fn serial_of(session: &crate::auth::Session, raw: &str) -> Result<PathId, Box<Response>> {
    super::certificate::serial(session, raw)
        .ok()
        .and_then(|s| PathId::parse(&s))
        .ok_or_else(|| {
            Box::new(error_page(
                StatusCode::BAD_REQUEST,
                Some(session),
                "A serial is 1-64 hex digits.",
            ))
        })
}

/// `GET /certificates/{serial}/revoke`: the confirmation, with the reason to choose.
pub(crate) async fn confirm(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let serial = match serial_of(&session, &raw) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let options: String = REASONS
        .iter()
        .map(|r| format!(r#"<option value="{r}">{r}</option>"#))
        .collect();
    let note = if session.role == Role::Admin {
        ""
    } else {
        r#"<p class="msg error">Your role is read-only: the CA will not be asked.</p>"#
    };
    let body = format!(
        r#"<h1>Revoke certificate <code>{S}</code>?</h1>{note}
<p>The revocation is queued in the policy module's outbox and delivered to the CA; it cannot be undone.</p>
<form method="post" action="/certificates/{s}/revoke">{csrf}
<label for="reason">Reason</label><select id="reason" name="reason">{options}</select>
<button type="submit" class="danger" id="confirm">Revoke the certificate</button>
<a href="/certificates/{s}">Cancel</a></form>"#,
        S = esc(serial.as_str()),
        s = url_part(serial.as_str()),
        csrf = csrf_field(&session),
    );
    html("Confirm", &session, &body)
}

#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    csrf: Option<String>,
    reason: Option<String>,
}

/// `POST /certificates/{serial}/revoke`: admin role and CSRF token, then the policy module.
pub(crate) async fn revoke(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(f): Form<RevokeForm>,
) -> Response {
    let session = match s.require_action(&headers, f.csrf.as_deref()) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let serial = match serial_of(&session, &raw) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Some(reason) = f.reason.as_deref().filter(|r| REASONS.contains(r)) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "Choose a reason from the list. Nothing was changed.",
        );
    };
    match s.policy.revoke_certificate(&serial, reason).await {
        Ok(()) => {
            tracing::info!(serial = serial.as_str(), reason, who = %session.who, "console revocation");
            redirect(&format!("/certificates/{}", url_part(serial.as_str())))
        }
        Err(e) => api_error(&session, &e),
    }
}
