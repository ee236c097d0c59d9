//! `/pending`: requests ndes-proxy holds for an administrator (templates that need approval),
//! each with Approve and Deny forms (admin role, CSRF token) through ndes-proxy's admin API.

use std::fmt::Write;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{api_error, error_page, html};
use crate::ConsoleState;
use crate::clients::PathId;
use crate::html::{csrf_field, esc, time, url_part};
use crate::redirect;

/// `GET /pending`.
pub(crate) async fn list(State(s): State<ConsoleState>, headers: HeaderMap) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let pending = match s.ndes.pending().await {
        Ok(p) => p,
        Err(e) => return api_error(&session, &e),
    };
    let mut body = format!(
        "<h1>Requests awaiting approval</h1><p>{} request(s).</p>",
        pending.len()
    );
    body.push_str(
        r#"<table id="pending"><thead><tr><th>Received</th><th>Subject</th><th>Template</th><th>Device</th><th>transactionID</th><th>Decision</th></tr></thead><tbody>"#,
    );
    for p in &pending {
        let id = url_part(&p.request_id);
        let _ = write!(
            body,
            r#"<tr><td>{at}</td><td>{subject}{renewal}</td><td>{template}</td><td>{device}</td><td class="mono"><a href="/transactions/{tx}">{TX}</a></td>
<td><form method="post" action="/pending/{id}/approve" class="inline">{csrf}<button type="submit" id="approve-{id}" aria-label="Approve {subject}">Approve</button></form>
<form method="post" action="/pending/{id}/deny" class="inline">{csrf}<button type="submit" class="danger" id="deny-{id}" aria-label="Deny {subject}">Deny</button></form></td></tr>"#,
            at = time(p.created_at),
            subject = esc(&p.subject),
            renewal = if p.renewal { " (renewal)" } else { "" },
            template = esc(&p.template),
            device = p
                .device_id
                .as_deref()
                .map(|d| format!(r#"<a href="/devices/{}">{}</a>"#, url_part(d), esc(d)))
                .unwrap_or_default(),
            tx = url_part(&p.transaction_id),
            TX = esc(&p.transaction_id),
            csrf = csrf_field(&session),
        );
    }
    body.push_str("</tbody></table>");
    html("Pending", &session, &body)
}

#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    csrf: Option<String>,
}

/// `POST /pending/{id}/approve|deny`.
pub(crate) async fn decide(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path((id, decision)): Path<(String, String)>,
    Form(f): Form<DecisionForm>,
) -> Response {
    let session = match s.require_action(&headers, f.csrf.as_deref()) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let approve = match decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return error_page(
                StatusCode::NOT_FOUND,
                Some(&session),
                "No such decision (approve, deny).",
            );
        }
    };
    let Some(id) = PathId::parse(&id) else {
        return error_page(StatusCode::BAD_REQUEST, Some(&session), "Not a request id.");
    };
    match s.ndes.decide(&id, approve).await {
        Ok(()) => {
            tracing::info!(request = id.as_str(), approve, who = %session.who, "console decision");
            redirect("/pending")
        }
        Err(e) => api_error(&session, &e),
    }
}
