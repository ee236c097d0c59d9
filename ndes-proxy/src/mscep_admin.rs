//! `/certsrv/mscep_admin/`: NDES's page that hands an administrator (or an MDM connector) a
//! one-time enrollment challenge for the configured template.
//!
//! The password comes from the policy module (`generate_challenge`), so PasswordMax and
//! PasswordValidity are enforced in its shared store, not per server as NDES does. The HTML
//! keeps NDES's shape and encoding (UTF-16LE with a BOM) because connectors scrape it with
//! `challenge password is: <B> ([A-Z0-9]{16,32}) </B>`; NDES's "The password cache is full."
//! page (HTTP 200, as NDES answers) when PasswordMax is reached. Scripts get JSON with
//! `?format=json` or `Accept: application/json`.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use policy_api::{ChallengeError, ChallengeRequest};
use tracing::{info, warn};

use crate::AppState;

/// The paths NDES answers on (with and without the trailing slash).
pub const PATHS: [&str; 2] = ["/certsrv/mscep_admin/", "/certsrv/mscep_admin"];

/// The HTML text of the cache-full page that connectors look for.
pub const CACHE_FULL: &str = "The password cache is full.";

/// GET `/certsrv/mscep_admin/`.
pub async fn page(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(admin) = state.mscep_admin() else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let json = wants_json(query.as_deref(), &headers);
    // Reliability P32: NDES mints on an authenticated GET, and a browser replays a cached
    // Basic password on any request to this page, so another site's image, link or form
    // would spend PasswordMax. Whatever a browser labels as coming from another site is
    // refused before the credentials are even looked at (POST is 405: the route is GET only).
    if foundation::http::cross_site::is_cross_site(&headers) {
        warn!("cross-site request to mscep_admin refused");
        return if json {
            json_error(StatusCode::FORBIDDEN, "cross_site")
        } else {
            (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response()
        };
    }
    let requester = match admin.users.authenticate(&headers) {
        Some(user) => user,
        None if admin.token.as_ref().is_some_and(|t| t.authorizes(&headers)) => "bearer".to_owned(),
        None => {
            let mut r = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
            let scheme = if admin.users.is_empty() {
                "Bearer"
            } else {
                "Basic realm=\"NDES\", charset=\"UTF-8\""
            };
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
            return r;
        }
    };
    let req = ChallengeRequest {
        template: admin.template.clone(),
        requester: requester.clone(),
    };
    let mut resp = match state.policy().generate_challenge(req).await {
        Ok(issued) => {
            info!(requester = %requester, template = %issued.template, "challenge handed out");
            let minutes = (issued.expires_at_unix.saturating_sub(state.now()).max(0) + 59) / 60;
            if json {
                Json(serde_json::json!({
                    "challenge": issued.challenge.expose(),
                    "template": issued.template,
                    "expires_at": issued.expires_at,
                    "expires_at_unix": issued.expires_at_unix,
                    "validity_minutes": minutes,
                }))
                .into_response()
            } else {
                html(
                    StatusCode::OK,
                    &password_body(ca_fingerprint(&state), issued.challenge.expose(), minutes),
                )
            }
        }
        Err(ChallengeError::CacheFull) => {
            info!(requester = %requester, "challenge refused: the password cache is full");
            if json {
                json_error(StatusCode::TOO_MANY_REQUESTS, "cache_full")
            } else {
                html(StatusCode::OK, &cache_full_body())
            }
        }
        Err(ChallengeError::InvalidTemplate) => {
            warn!(requester = %requester, template = %admin.template, "policy module refused the template");
            if json {
                json_error(StatusCode::FORBIDDEN, "template_not_permitted")
            } else {
                html(StatusCode::FORBIDDEN, &no_permission_body())
            }
        }
        Err(ChallengeError::Unavailable) => {
            warn!("policy module unavailable for a challenge");
            let mut r = if json {
                json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service temporarily unavailable\n",
                )
                    .into_response()
            };
            if let Ok(v) = HeaderValue::from_str(&state.settings().retry_after_secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    };
    // A one-time password must not be cached by anything on the way.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn wants_json(query: Option<&str>, headers: &HeaderMap) -> bool {
    let by_query = query
        .unwrap_or("")
        .split('&')
        .any(|p| p.eq_ignore_ascii_case("format=json"));
    let by_accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    by_query || by_accept
}

fn json_error(status: StatusCode, code: &'static str) -> Response {
    (status, Json(serde_json::json!({ "error": code }))).into_response()
}

/// The page as NDES sends it: UTF-16LE with a byte-order mark.
fn html(status: StatusCode, body: &str) -> Response {
    let page = format!(
        "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-16\">\
         <Title>Network Device Enrollment Service</Title></Head>\r\n\
         <Body BgColor=#FFFFFF><Font ID=locPageFont Face=\"Arial\">\r\n\
         <P ID=locPageTitle> Network Device Enrollment Service allows you to obtain certificates \
         for routers or other network devices using the Simple Certificate Enrollment Protocol \
         (SCEP). </P>\r\n{body}\r\n</Font></Body></HTML>\r\n"
    );
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(page.encode_utf16().flat_map(u16::to_le_bytes));
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-16")],
        bytes,
    )
        .into_response()
}

fn password_body((label, thumbprint): (&str, String), password: &str, minutes: i64) -> String {
    format!(
        "<P> To complete certificate enrollment for your network device you will need the \
         following information: <P> The thumbprint (hash value) for the {label} is: \
         <B> {thumbprint} </B> <P> The enrollment challenge password is: <B> {password} </B> \
         <P> This password can be used only once and will expire within {minutes} minutes. \
         <P> Each enrollment requires a new challenge password. You can refresh this web page \
         to obtain a new challenge password. </P>"
    )
}

fn cache_full_body() -> String {
    format!(
        "<P> {CACHE_FULL} <P> Network Device Enrollment Service stores unused passwords for \
         later use. Wait until a password is used or expires, then refresh this page. </P>"
    )
}

fn no_permission_body() -> String {
    "<P> You do not have sufficient permission to enroll with SCEP. Please contact your \
     system administrator. </P>"
        .to_owned()
}

/// The one fingerprint the page names, with its certificate: the root's, what clients pin
/// (the last certificate of the RA's chain when it is self-issued). Only when the chain stops
/// below the root is it the issuing CA's, and then labelled so. SHA-256, uppercase hex in
/// groups of eight as NDES shows its thumbprint.
fn ca_fingerprint(state: &AppState) -> (&'static str, String) {
    let chain = state.ra().chain();
    let (label, cert) = match chain.last() {
        Some(last) if self_issued(last) => ("root CA certificate (SHA-256; pin this)", last),
        _ => match chain.first() {
            Some(first) => ("issuing CA certificate (SHA-256)", first),
            None => return ("CA certificate", String::new()),
        },
    };
    let Ok(digest) = cert.digest(openssl::hash::MessageDigest::sha256()) else {
        return (label, String::new());
    };
    let hex = hex::encode_upper(&*digest);
    let grouped = hex
        .as_bytes()
        .chunks(8)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    (label, grouped)
}

/// Subject equals issuer: a root (a chain's self-signed anchor).
fn self_issued(cert: &openssl::x509::X509) -> bool {
    matches!(
        (cert.subject_name().to_der(), cert.issuer_name().to_der()),
        (Ok(s), Ok(i)) if s == i
    )
}
