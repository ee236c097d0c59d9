//! `/certificates/{serial}`: one certificate as the CA knows it (status, revocation, decoded
//! fields) and its PEM.

use std::fmt::Write;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ca_api::wire::CertificateInfo;
use openssl::x509::X509;

use super::{error_page, html};
use crate::ConsoleState;
use crate::auth::Session;
use crate::html::{badge, esc, url_part};

/// A serial from the URL: 1-64 hex digits (the CA's spelling), lowercased.
pub(crate) fn serial(session: &Session, s: &str) -> Result<String, Box<Response>> {
    let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            Some(session),
            "A serial is 1-64 hex digits.",
        )))
    }
}

async fn fetch(
    s: &ConsoleState,
    session: &Session,
    serial: &str,
) -> Result<(CertificateInfo, X509), Box<Response>> {
    let info = match s.ca.get(serial).await {
        Ok(i) => i,
        Err(e)
            if e.code() == Some("unknown_serial")
                || matches!(e, ca_api::ClientError::Api { status: 404, .. }) =>
        {
            return Err(Box::new(error_page(
                StatusCode::NOT_FOUND,
                Some(session),
                "No such certificate.",
            )));
        }
        Err(e) => {
            tracing::warn!(error = %e, "console: CA read failed");
            return Err(Box::new(error_page(
                StatusCode::BAD_GATEWAY,
                Some(session),
                "ca-mock unavailable.",
            )));
        }
    };
    let der = B64.decode(&info.certificate).ok();
    match der.and_then(|d| X509::from_der(&d).ok()) {
        Some(cert) => Ok((info, cert)),
        None => Err(Box::new(error_page(
            StatusCode::BAD_GATEWAY,
            Some(session),
            "ca-mock answered an unreadable certificate.",
        ))),
    }
}

fn names(cert: &X509) -> (String, Vec<String>) {
    let issuer = cert
        .issuer_name()
        .entries()
        .filter_map(|e| e.data().to_string().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let sans = cert
        .subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| {
                    n.dnsname()
                        .map(|d| format!("DNS:{d}"))
                        .or_else(|| n.email().map(|e| format!("email:{e}")))
                        .or_else(|| n.uri().map(|u| format!("URI:{u}")))
                })
                .collect()
        })
        .unwrap_or_default();
    (issuer, sans)
}

/// `GET /certificates/{serial}`.
pub(crate) async fn show(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let serial = match serial(&session, &raw) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let (info, cert) = match fetch(&s, &session, &serial).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let (issuer, sans) = names(&cert);
    let thumbprint = cert
        .to_der()
        .map(|d| foundation::secret::sha256_hex(&d))
        .unwrap_or_default();
    let mut body = format!(
        r#"<h1>Certificate <code>{S}</code></h1><dl class="facts">
<dt>Status at the CA</dt><dd id="cert-status">{status}</dd>"#,
        S = esc(&serial),
        status = badge(info.status.as_str()),
    );
    if let Some(reason) = info.reason {
        let _ = write!(
            body,
            r#"<dt>Reason</dt><dd id="cert-reason">{}</dd>"#,
            esc(reason.as_str())
        );
    }
    if let Some(at) = info.revoked_at {
        let _ = write!(body, "<dt>Revoked at</dt><dd>{}</dd>", esc(&at));
    }
    let _ = write!(
        body,
        r#"<dt>Subject</dt><dd>{subject}</dd><dt>SANs</dt><dd>{sans}</dd><dt>Issuer</dt><dd>{issuer}</dd>
<dt>Not before</dt><dd>{nb}</dd><dt>Not after</dt><dd>{na}</dd><dt>Template</dt><dd>{template}</dd>
<dt>Request (transactionID)</dt><dd class="mono"><a href="/transactions/{rid}">{RID}</a></dd>
<dt>SHA-256</dt><dd class="mono">{thumb}</dd></dl>
<p><a href="/certificates/{s}/pem" id="download-pem" download="{s}.pem">Download PEM</a>
<a href="/certificates/{s}/revoke" id="revoke">Revoke…</a></p>"#,
        subject = esc(&info.subject),
        sans = esc(&sans.join(", ")),
        issuer = esc(&issuer),
        nb = esc(&info.not_before),
        na = esc(&info.not_after),
        template = esc(&info.template),
        rid = url_part(&info.request_id),
        RID = esc(&info.request_id),
        thumb = esc(&thumbprint),
        s = url_part(&serial),
    );
    body.push_str(&super::chain::sections(&s, &cert).await);
    html("Certificate", &session, &body)
}

/// `GET /certificates/{serial}/pem`.
pub(crate) async fn pem(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let serial = match serial(&session, &raw) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let (_, cert) = match fetch(&s, &session, &serial).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Ok(pem) = cert.to_pem() else {
        return error_page(
            StatusCode::BAD_GATEWAY,
            Some(&session),
            "The certificate could not be encoded.",
        );
    };
    let mut r = ([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{serial}.pem\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
