//! `/devices`: the list (search, paged), one device (profiles, certificates, history) and its
//! lifecycle actions, each behind a confirmation page whose form carries the CSRF token.

use std::fmt::Write;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{api_error, error_page, html};
use crate::ConsoleState;
use crate::clients::{Action, PathId};
use crate::html::{badge, csrf_field, esc, time, url_part};
use crate::redirect;

/// Devices per page.
pub(crate) const PAGE: usize = 50;
/// Largest page number asked for (past the end shows the last page anyway).
const MAX_PAGE_NUMBER: usize = 1_000_000;
/// History events shown on a device's page.
const HISTORY: u32 = 50;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    q: Option<String>,
    page: Option<usize>,
}

/// `GET /devices?q=&page=`: matches id, name, serial number or owner (case-insensitive), one
/// page read from the policy module at a time.
pub(crate) async fn list(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let needle = q.q.as_deref().unwrap_or("").trim().to_owned();
    // Paged by the policy module (by id, through its index); a page past the end shows the
    // last one, at the cost of a second call.
    let want = q.page.unwrap_or(1).clamp(1, MAX_PAGE_NUMBER);
    let mut fetched = s.policy.device_page(&needle, (want - 1) * PAGE, PAGE).await;
    if let Ok((_, total)) = &fetched {
        let last = total.div_ceil(PAGE).max(1);
        if want > last {
            fetched = s.policy.device_page(&needle, (last - 1) * PAGE, PAGE).await;
        }
    }
    let (devices, total) = match fetched {
        Ok(d) => d,
        Err(e) => return api_error(&session, &e),
    };
    let pages = total.div_ceil(PAGE).max(1);
    let page = want.clamp(1, pages);
    let mut body = format!(
        r#"<h1>Devices</h1><form method="get" action="/devices" class="inline" role="search">
<label for="q">Search</label><input type="search" id="q" name="q" value="{}" placeholder="id, name, serial number, owner">
<button type="submit">Search</button></form>
<p>{} device(s){}</p>"#,
        esc(&needle),
        total,
        if needle.is_empty() { "" } else { " matching" },
    );
    body.push_str(
        r#"<table id="devices"><thead><tr><th>Name</th><th>Id</th><th>Platform</th><th>Owner</th><th>State</th><th>Registered</th></tr></thead><tbody>"#,
    );
    for d in &devices {
        let _ = write!(
            body,
            r#"<tr><td><a href="/devices/{}">{}</a></td><td class="mono">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            url_part(&d.id),
            esc(&d.name),
            esc(&d.id),
            esc(&d.platform),
            esc(d.owner_upn.as_deref().unwrap_or("")),
            badge(&d.state),
            time(d.created_at),
        );
    }
    body.push_str("</tbody></table>");
    let link = |p: usize| format!("/devices?q={}&amp;page={p}", url_part(&needle));
    let _ = write!(body, r#"<nav class="pager" aria-label="Pages">"#);
    if page > 1 {
        let _ = write!(
            body,
            r#"<a href="{}" rel="prev">Previous</a>"#,
            link(page - 1)
        );
    }
    let _ = write!(body, "<span>Page {page} of {pages}</span>");
    if page < pages {
        let _ = write!(body, r#"<a href="{}" rel="next">Next</a>"#, link(page + 1));
    }
    body.push_str("</nav>");
    html("Devices", &session, &body)
}

fn device_id(session: &crate::auth::Session, id: &str) -> Result<PathId, Box<Response>> {
    PathId::parse(id).ok_or_else(|| {
        Box::new(error_page(
            StatusCode::BAD_REQUEST,
            Some(session),
            "Not a device id.",
        ))
    })
}

/// `GET /devices/{id}`.
pub(crate) async fn detail(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let id = match device_id(&session, &id) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let (view, history) = tokio::join!(s.policy.device(&id), s.policy.device_history(&id, HISTORY));
    let view = match view {
        Ok(v) => v,
        Err(e) => return api_error(&session, &e),
    };
    let d = &view.device;
    let mut body = format!(
        r#"<h1>Device {name}</h1><dl class="facts">
<dt>Id</dt><dd class="mono">{id}</dd><dt>State</dt><dd id="device-state">{state}</dd>
<dt>Platform</dt><dd>{platform}</dd><dt>Serial number</dt><dd>{serial}</dd>
<dt>Owner</dt><dd>{owner}</dd><dt>Registered</dt><dd>{created}</dd>
<dt>Profiles</dt><dd>{profiles}</dd></dl>"#,
        name = esc(&d.name),
        id = esc(&d.id),
        state = badge(&d.state),
        platform = esc(&d.platform),
        serial = esc(d.serial_number.as_deref().unwrap_or("")),
        owner = esc(d.owner_upn.as_deref().unwrap_or("")),
        created = time(d.created_at),
        profiles = if view.profiles.is_empty() {
            "none".to_owned()
        } else {
            view.profiles
                .iter()
                .map(|p| format!(r#"<a href="/profiles/{}">{}</a>"#, url_part(p), esc(p)))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    body.push_str(r#"<h2>Actions</h2><p class="inline">"#);
    for a in Action::ALL {
        let _ = write!(
            body,
            r#"<a href="/devices/{}/{a}" id="action-{a}">{A}</a> "#,
            url_part(&d.id),
            a = a.as_str(),
            A = capitalise(a.as_str()),
        );
    }
    body.push_str("</p>");

    body.push_str(
        r#"<h2>Certificates</h2><table id="certificates"><thead><tr><th>Serial</th><th>Profile</th><th>Status</th><th>Issued</th><th>Expires</th><th>Transaction</th></tr></thead><tbody>"#,
    );
    for c in &view.certificates {
        let _ = write!(
            body,
            r#"<tr><td class="mono"><a href="/certificates/{s}">{S}</a></td><td>{p}</td><td>{st}{r}</td><td>{i}</td><td>{e}</td><td class="mono"><a href="/transactions/{t}">{T}</a></td></tr>"#,
            s = url_part(&c.serial_hex),
            S = esc(&c.serial_hex),
            p = esc(&match (&c.profile_id, c.profile_version) {
                (Some(p), Some(v)) => format!("{p} v{v}"),
                (Some(p), None) => p.clone(),
                _ => String::new(),
            }),
            st = badge(&c.status),
            r = c
                .revocation_reason
                .as_deref()
                .map(|r| format!(" ({})", esc(r)))
                .unwrap_or_default(),
            i = time(c.issued_at),
            e = time(c.not_after),
            t = url_part(&c.transaction_id),
            T = esc(&c.transaction_id),
        );
    }
    body.push_str("</tbody></table><h2>History</h2>");
    match history {
        Ok(h) => {
            body.push_str(
                r#"<table id="history"><thead><tr><th>Time</th><th>Source</th><th>Event</th><th>Transaction</th><th>Reason</th></tr></thead><tbody>"#,
            );
            for e in &h.events {
                let _ = write!(
                    body,
                    r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="mono">{}</td><td>{}</td></tr>"#,
                    esc(&e.at),
                    esc(&format!("{:?}", e.source)),
                    esc(&e.event),
                    e.transaction_id
                        .as_deref()
                        .map(|t| format!(
                            r#"<a href="/transactions/{}">{}</a>"#,
                            url_part(t),
                            esc(t)
                        ))
                        .unwrap_or_default(),
                    esc(e.reason.as_deref().unwrap_or("")),
                );
            }
            body.push_str("</tbody></table>");
        }
        Err(e) => {
            let _ = write!(body, r#"<p class="msg error">{}</p>"#, esc(&e.to_string()));
        }
    }
    html("Device", &session, &body)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn action_of(session: &crate::auth::Session, action: &str) -> Result<Action, Box<Response>> {
    Action::parse(action).ok_or_else(|| {
        Box::new(error_page(
            StatusCode::NOT_FOUND,
            Some(session),
            "No such action (retire, wipe, block, unblock, delete).",
        ))
    })
}

/// `GET /devices/{id}/{action}`: the confirmation.
pub(crate) async fn confirm(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let (id, action) = match (device_id(&session, &id), action_of(&session, &action)) {
        (Ok(i), Ok(a)) => (i, a),
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    let body = format!(
        r#"<h1>{A} device <code>{id}</code>?</h1><p>{what}</p>
<form method="post" action="/devices/{uid}/{a}">{csrf}
<button type="submit" class="danger" id="confirm">{A} the device</button>
<a href="/devices/{uid}">Cancel</a></form>"#,
        A = capitalise(action.as_str()),
        a = action.as_str(),
        id = esc(id.as_str()),
        uid = url_part(id.as_str()),
        what = esc(action.consequence()),
        csrf = csrf_field(&session),
    );
    html("Confirm", &session, &body)
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    csrf: Option<String>,
}

/// `POST /devices/{id}/{action}`: admin role and CSRF token, then the policy module's API.
pub(crate) async fn act(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    let session = match s.require_action(&headers, f.csrf.as_deref()) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let (id, action) = match (device_id(&session, &id), action_of(&session, &action)) {
        (Ok(i), Ok(a)) => (i, a),
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    match s.policy.lifecycle(&id, action).await {
        Ok(()) => {
            tracing::info!(device = id.as_str(), action = action.as_str(), who = %session.who, "console action");
            if action == Action::Delete {
                redirect("/devices")
            } else {
                redirect(&format!("/devices/{}", url_part(id.as_str())))
            }
        }
        Err(e) => api_error(&session, &e),
    }
}
