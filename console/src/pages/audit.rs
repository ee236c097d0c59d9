//! `/audit?device=&event=`: the policy module's audit log, newest first, filtered by device
//! (by the API) and by event name (within the window read).

use std::fmt::Write;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{api_error, error_page, html};
use crate::ConsoleState;
use crate::clients::PathId;
use crate::html::{esc, time, url_part};

/// Records read per page.
const WINDOW: u32 = 500;

#[derive(Deserialize)]
pub(crate) struct Filter {
    device: Option<String>,
    event: Option<String>,
}

/// `GET /audit`.
pub(crate) async fn list(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Query(f): Query<Filter>,
) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let device = f.device.as_deref().map(str::trim).filter(|d| !d.is_empty());
    let event = f
        .event
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .to_lowercase();
    let events = match device {
        Some(d) => {
            let Some(id) = PathId::parse(d) else {
                return error_page(StatusCode::BAD_REQUEST, Some(&session), "Not a device id.");
            };
            s.policy.device_audit(&id, WINDOW).await
        }
        None => s.policy.audit(WINDOW).await,
    };
    let events = match events {
        Ok(e) => e,
        Err(e) => return api_error(&session, &e),
    };
    let mut body = format!(
        r#"<h1>Audit log</h1><form method="get" action="/audit" class="inline" role="search">
<label for="device">Device id</label><input type="search" id="device" name="device" value="{d}">
<label for="event">Event</label><input type="search" id="event" name="event" value="{e}" placeholder="e.g. rejected">
<button type="submit">Filter</button></form>
<table id="audit"><thead><tr><th>Time</th><th>Event</th><th>Device</th><th>Profile</th><th>Transaction</th><th>Detail</th></tr></thead><tbody>"#,
        d = esc(device.unwrap_or("")),
        e = esc(&event),
    );
    for a in events
        .iter()
        .filter(|a| event.is_empty() || a.event.contains(&event))
    {
        let _ = write!(
            body,
            r#"<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td class="mono">{}</td><td>{}</td></tr>"#,
            time(a.at),
            esc(&a.event),
            a.device_id
                .as_deref()
                .map(|d| format!(r#"<a href="/devices/{}">{}</a>"#, url_part(d), esc(d)))
                .unwrap_or_default(),
            esc(a.profile_id.as_deref().unwrap_or("")),
            a.transaction_id
                .as_deref()
                .map(|t| format!(r#"<a href="/transactions/{}">{}</a>"#, url_part(t), esc(t)))
                .unwrap_or_default(),
            esc(a.detail.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</tbody></table>");
    html("Audit", &session, &body)
}
