//! The pages. Each reads through the services' APIs and renders with [`crate::html`].

pub(crate) mod audit;
pub(crate) mod certificate;
pub(crate) mod certificates;
mod chain;
pub(crate) mod challenge;
pub(crate) mod devices;
pub(crate) mod overview;
pub(crate) mod pending;
mod profile_form;
pub(crate) mod profiles;
pub(crate) mod transaction;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::auth::Session;
use crate::clients::ApiError;
use crate::html::{esc, page};

/// A page saying what went wrong, with `status`.
pub(crate) fn error_page(status: StatusCode, session: Option<&Session>, message: &str) -> Response {
    let body = format!(
        r#"<h1>{}</h1><p class="msg error" role="alert">{}</p><p><a href="/">Back to the overview</a></p>"#,
        status.canonical_reason().unwrap_or("Error"),
        esc(message)
    );
    (status, Html(page("Error", session, &body))).into_response()
}

/// A service's failure as a page: its 404 stays a 404, anything else is 502 naming the
/// service (never its internal text).
pub(crate) fn api_error(session: &Session, e: &ApiError) -> Response {
    tracing::warn!(error = %e, "console: service call failed");
    match e.status() {
        Some(404) => error_page(StatusCode::NOT_FOUND, Some(session), "Not found."),
        Some(400) => error_page(StatusCode::BAD_REQUEST, Some(session), &e.to_string()),
        Some(409) => error_page(StatusCode::CONFLICT, Some(session), &e.to_string()),
        _ => error_page(StatusCode::BAD_GATEWAY, Some(session), &e.to_string()),
    }
}

/// A page of HTML.
pub(crate) fn html(title: &str, session: &Session, body: &str) -> Response {
    Html(page(title, Some(session), body)).into_response()
}
