//! The HTTP face of the CA: `router(state)` and `serve(listener, state, shutdown)`.
//! Authenticated JSON API under `/api/v1`; public CA certificates, CRL and OCSP.

use std::future::Future;
use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use base64::Engine;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::auth::{Caller, Operation};
use crate::error::CaError;
use crate::records::{self, RecordParams};
use crate::store::ListFilter;
use base64::engine::general_purpose::STANDARD as B64;
use ca_api::IssueCall;
use ca_api::template::TemplateList;
use ca_api::wire::{
    CertificateInfo, CertificateList, ErrorBody, IssueRequest, IssueResponse, LintReport,
    LintViolation, RevokeRequest,
};
use foundation::Serial;
use foundation::time::rfc3339;
use foundation::tls::PeerIdentity;

use crate::state::AppState;
use crate::store::CertificateRecord;

/// Largest JSON body accepted (a CSR is at most 16 KiB of DER).
const MAX_BODY: usize = 64 * 1024;

/// An error on the wire: status plus `{"error", "message"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown bearer token",
        )
    }

    fn certificate_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a client certificate from the lab's CA is required",
        )
    }

    fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "not entitled to this template or operation",
        )
    }
}

impl From<CaError> for ApiError {
    /// The one place CA errors become wire codes. Internal details are logged, never sent.
    fn from(e: CaError) -> Self {
        use StatusCode as S;
        let status = match &e {
            CaError::Forbidden => return Self::forbidden(),
            CaError::Grant(_) => S::FORBIDDEN,
            CaError::UnknownTemplate
            | CaError::InvalidCsr(_)
            | CaError::KeyNotAllowed(_)
            | CaError::SubjectNotAllowed(_)
            | CaError::SanNotAllowed(_)
            | CaError::InvalidValidity(_)
            | CaError::UsageNotAllowed(_)
            | CaError::InvalidRequest(_)
            | CaError::InvalidSerial => S::BAD_REQUEST,
            CaError::RequestIdConflict | CaError::NotOnHold => S::CONFLICT,
            CaError::UnknownSerial => S::NOT_FOUND,
            CaError::Store(_) => {
                tracing::error!(error = ?e, "store failure");
                return Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "store unavailable; retry later",
                );
            }
            _ => {
                tracing::error!(error = ?e, "internal failure");
                return Self::new(S::INTERNAL_SERVER_ERROR, "internal_error", "internal error");
            }
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// The caller behind the request, if entitled to `op`: with client certificates required
/// (mutual TLS, docs/decisions.md #18), the verified peer certificate's name and nothing else;
/// otherwise the bearer token.
fn authenticate<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
    peer: Option<&PeerIdentity>,
    op: Operation,
) -> Result<&'a Caller, ApiError> {
    let caller = if state.callers.certificates_required() {
        // No fallback to the token: a bearer token alone is refused here.
        let peer = peer.ok_or_else(ApiError::certificate_required)?;
        state
            .callers
            .by_certificate(peer)
            .ok_or_else(ApiError::forbidden)?
    } else {
        let token = foundation::http::bearer(headers)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        state
            .callers
            .authenticate(token)
            .ok_or_else(ApiError::unauthorized)?
    };
    if !caller.may(op) {
        return Err(ApiError::forbidden());
    }
    Ok(caller)
}

/// The body, or a JSON 413/400 instead of axum's plain-text rejection.
type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

fn json_body<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "request body too large",
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "unreadable request body",
            )
        }
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))
}

async fn issue(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Option<Extension<PeerIdentity>>,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state, &headers, peer.as_deref(), Operation::Issue)?;
    let req: IssueRequest = json_body(body)?;
    if !caller.may_use(&req.template) {
        return Err(ApiError::forbidden());
    }
    // Base64 is this layer's business: the CA's core takes and returns DER.
    let csr_der = B64
        .decode(req.csr.trim())
        .map_err(|_| CaError::InvalidCsr("csr is not standard base64"))?;
    let call = IssueCall {
        request_id: req.request_id,
        template: req.template,
        csr_der,
        subject: req.subject,
        sans: req.sans,
        validity_days: req.validity_days,
        key_usage: req.key_usage,
        extended_key_usages: req.extended_key_usages,
        grant: req.grant,
    };
    let issued = state
        .ca
        .issue_as(&caller.name, caller.issue_right(), &call)
        .await?;
    let status = if issued.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let response = IssueResponse {
        serial: issued.serial.to_hex(),
        certificate: B64.encode(&issued.der),
        chain: issued.chain.iter().map(|c| B64.encode(c)).collect(),
        not_before: rfc3339(issued.not_before),
        not_before_unix: issued.not_before,
        not_after: rfc3339(issued.not_after),
        not_after_unix: issued.not_after,
        template: call.template,
        request_id: call.request_id,
    };
    Ok((status, axum::Json(response)).into_response())
}

/// The wire view of a record (what `GET /api/v1/certificates/{serial}` answers).
pub fn info_of(r: &CertificateRecord) -> CertificateInfo {
    CertificateInfo {
        serial: r.cert.serial.clone(),
        certificate: B64.encode(&r.cert.der),
        status: r.status,
        revoked_at: r.revoked_at.map(rfc3339),
        revoked_at_unix: r.revoked_at,
        reason: r.reason,
        template: r.cert.template.clone(),
        request_id: r.cert.request_id.clone(),
        subject: r.cert.subject.clone(),
        not_before: rfc3339(r.cert.not_before),
        not_before_unix: r.cert.not_before,
        not_after: rfc3339(r.cert.not_after),
        not_after_unix: r.cert.not_after,
    }
}

async fn get_certificate(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Option<Extension<PeerIdentity>>,
    Path(serial): Path<String>,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state, &headers, peer.as_deref(), Operation::Read)?;
    let record = state.ca.get(&serial).await?;
    if !caller.may_use(&record.cert.template) {
        return Err(ApiError::forbidden());
    }
    Ok(axum::Json(info_of(&record)).into_response())
}

/// The lint the CA ran before issuing, run again on the stored certificate at its issue time,
/// for callers that show it (`scep-lab profile test` against a running lab).
async fn lint_certificate(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Option<Extension<PeerIdentity>>,
    Path(serial): Path<String>,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state, &headers, peer.as_deref(), Operation::Read)?;
    let record = state.ca.get(&serial).await?;
    if !caller.may_use(&record.cert.template) {
        return Err(ApiError::forbidden());
    }
    let violations = state
        .ca
        .lint(&record.cert.der, record.cert.issued_at)
        .into_iter()
        .map(|v| LintViolation {
            check: format!("{:?}", v.check),
            detail: v.detail,
        })
        .collect();
    let report = LintReport {
        serial: record.cert.serial,
        violations,
    };
    Ok(axum::Json(report).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    request_id: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

async fn list_certificates(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Option<Extension<PeerIdentity>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state, &headers, peer.as_deref(), Operation::Read)?;
    let Query(q) = query.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "use request_id, after, limit",
        )
    })?;
    let filter = ListFilter {
        request_id: q.request_id,
        after: q.after,
        limit: q.limit.unwrap_or(100),
    };
    let certificates = state
        .ca
        .list(&filter)
        .await?
        .iter()
        .filter(|r| caller.may_use(&r.cert.template))
        .map(info_of)
        .collect();
    Ok(axum::Json(CertificateList { certificates }).into_response())
}

/// The CA's records (issued, revoked, held, released), oldest first, for any caller that may
/// read; like the certificate listing, only those of templates the caller may use.
async fn list_records(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Option<Extension<PeerIdentity>>,
    query: Result<Query<RecordParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state, &headers, peer.as_deref(), Operation::Read)?;
    let Query(params) = query.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "use serial, request_id, since, until (RFC 3339), after, limit",
        )
    })?;
    let filter = records::filter_of(&params.into())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string()))?;
    let list = records::read(state.ca.store().as_ref(), &filter, |template| {
        template.is_some_and(|t| caller.may_use(t))
    })
    .await?;
    Ok(axum::Json(list).into_response())
}

/// The templates this caller may use, described (docs/decisions.md #7: so the policy module can
/// say how a profile and its template differ).
async fn list_templates(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Option<Extension<PeerIdentity>>,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state, &headers, peer.as_deref(), Operation::Read)?;
    let templates = state
        .ca
        .template_names()
        .filter(|n| caller.may_use(n))
        .filter_map(|n| state.ca.template(n))
        .map(|t| t.info())
        .collect();
    Ok(axum::Json(TemplateList { templates }).into_response())
}

async fn get_template(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Option<Extension<PeerIdentity>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state, &headers, peer.as_deref(), Operation::Read)?;
    if !caller.may_use(&name) {
        return Err(ApiError::forbidden());
    }
    let template = state.ca.template(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_template",
            "no template of that name",
        )
    })?;
    Ok(axum::Json(template.info()).into_response())
}

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Option<Extension<PeerIdentity>>,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state, &headers, peer.as_deref(), Operation::Revoke)?;
    let req: RevokeRequest = json_body(body)?;
    let serial = Serial::from_hex(&req.serial).map_err(CaError::from)?;
    let record = state.ca.record(&serial).await?;
    if !caller.may_use(&record.cert.template) {
        return Err(ApiError::forbidden());
    }
    let resp = state.ca.revoke(&caller.name, &serial, req.reason).await?;
    Ok(axum::Json(resp).into_response())
}

async fn release(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Option<Extension<PeerIdentity>>,
    Path(serial): Path<String>,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state, &headers, peer.as_deref(), Operation::Revoke)?;
    let serial = Serial::from_hex(&serial).map_err(CaError::from)?;
    let record = state.ca.record(&serial).await?;
    if !caller.may_use(&record.cert.template) {
        return Err(ApiError::forbidden());
    }
    Ok(axum::Json(state.ca.release(&caller.name, &serial).await?).into_response())
}

fn typed(content_type: &'static str, body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn pem_of(der: Result<Vec<u8>, CaError>) -> Result<Vec<u8>, ApiError> {
    let der = der?;
    let cert = openssl::x509::X509::from_der(&der).map_err(CaError::crypto)?;
    Ok(cert.to_pem().map_err(CaError::crypto)?)
}

async fn issuing_der(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(typed(
        "application/pkix-cert",
        s.ca.material().issuing_der()?,
    ))
}
async fn issuing_pem(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(typed(
        "application/x-pem-file",
        pem_of(s.ca.material().issuing_der())?,
    ))
}
async fn root_der(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(typed("application/pkix-cert", s.ca.material().root_der()?))
}
async fn root_pem(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(typed(
        "application/x-pem-file",
        pem_of(s.ca.material().root_der())?,
    ))
}
async fn chain_pem(State(s): State<AppState>) -> Result<Response, ApiError> {
    let mut pem = pem_of(s.ca.material().issuing_der())?;
    pem.extend(pem_of(s.ca.material().root_der())?);
    Ok(typed("application/x-pem-file", pem))
}

async fn crl(State(s): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = s.ca.crl().await?;
    Ok(typed("application/pkix-crl", snapshot.der.clone()))
}

/// A retired issuing CA's CRL (after a rollover): `/crl/retired/<serial>.crl`, the serial of
/// the retired CA's certificate in hex, as [`crate::CertificateAuthority::retired`] names it.
async fn retired_crl(
    State(s): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such retired CA");
    let name = file.strip_suffix(".crl").ok_or_else(unknown)?;
    let snapshot = s.ca.retired_crl(name).await?.ok_or_else(unknown)?;
    Ok(typed("application/pkix-crl", snapshot.der.clone()))
}

fn ocsp_response(der: Vec<u8>) -> Response {
    let mut resp = typed("application/ocsp-response", der);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn ocsp_post(State(s): State<AppState>, body: Bytes) -> Response {
    ocsp_response(s.ca.ocsp(&body).await)
}

/// RFC 6960 A.1: GET carries the base64 DER request, URL-encoded, as the last path part. Some
/// clients do not URL-encode, so a space (a decoded `+`) is taken as `+`.
async fn ocsp_get(State(s): State<AppState>, Path(encoded): Path<String>) -> Response {
    let text = encoded.replace(' ', "+");
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_default();
    ocsp_response(s.ca.ocsp(&der).await)
}

async fn healthz(State(s): State<AppState>) -> Response {
    match s.ca.store().count().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: store unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/certificates", post(issue).get(list_certificates))
        .route("/api/v1/certificates/{serial}", get(get_certificate))
        .route("/api/v1/records", get(list_records))
        .route("/api/v1/certificates/{serial}/lint", get(lint_certificate))
        .route("/api/v1/templates", get(list_templates))
        .route("/api/v1/templates/{name}", get(get_template))
        .route("/api/v1/revocations", post(revoke))
        .route("/api/v1/revocations/{serial}", delete(release))
        .route("/ca/issuing.crt", get(issuing_der))
        .route("/ca/issuing.pem", get(issuing_pem))
        .route("/ca/root.crt", get(root_der))
        .route("/ca/root.pem", get(root_pem))
        .route("/ca/chain.pem", get(chain_pem))
        .route("/crl/issuing.crl", get(crl))
        .route("/crl/retired/{file}", get(retired_crl))
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .route("/healthz", get(healthz))
        .route("/readyz", get(crate::ops::readyz))
        .route("/metrics", get(crate::ops::metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serves until `shutdown` completes, regenerating the CRL every `state.crl_refresh`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(listener, None, None, state, shutdown).await
}

/// [`serve`] over HTTPS with `tls`'s certificate (issue 17 item 4).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<foundation::tls::ServerTls>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(listener, Some(tls), None, state, shutdown).await
}

/// [`serve_tls`], plus `plain`: a plain-HTTP listener serving only what relying parties fetch
/// without TLS, the URLs written into certificates (CA certificates, CRLs, OCSP; RFC 5280
/// §4.2.1.13, RFC 6960) and `/healthz`; anything else there is a 403 naming its URL under
/// `https_base` (see [`crate::pki_plain`]).
pub async fn serve_tls_with_plain(
    https: TcpListener,
    tls: Arc<foundation::tls::ServerTls>,
    plain: TcpListener,
    https_base: &str,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let plain = Some((plain, https_base.to_owned()));
    serve_on(https, Some(tls), plain, state, shutdown).await
}

async fn serve_on(
    listener: TcpListener,
    tls: Option<Arc<foundation::tls::ServerTls>>,
    plain: Option<(TcpListener, String)>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let (main_stop, plain_stop) = (stopped(stop_rx.clone()), stopped(stop_rx.clone()));
    let ca = Arc::clone(&state.ca);
    let every = state.crl_refresh;
    let refresher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await; // the first tick is immediate; the CRL was published at open
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = ca.regenerate_crl().await {
                        tracing::error!(error = %e, "scheduled CRL regeneration failed");
                    }
                }
                _ = stop_rx.changed() => break,
            }
        }
    });
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let plain_app =
        plain.map(|(l, base)| (l, crate::pki_plain::pki_only(router(state.clone()), &base)));
    let main = async {
        match tls {
            Some(tls) => foundation::tls::serve_tls(listener, tls, router(state), main_stop).await,
            None => {
                axum::serve(listener, router(state))
                    .with_graceful_shutdown(main_stop)
                    .await
            }
        }
    };
    let plain = async {
        match plain_app {
            Some((l, app)) => axum::serve(l, app).with_graceful_shutdown(plain_stop).await,
            None => Ok(()),
        }
    };
    let ((), main, plain) = tokio::join!(shutdown, main, plain);
    refresher.abort();
    main.and(plain)
}
