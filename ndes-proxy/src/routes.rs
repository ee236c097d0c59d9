//! The SCEP HTTP binding (RFC 8894 §4) on the paths clients use: NDES's
//! `/certsrv/mscep/mscep.dll` (also with `/pkiclient.exe` appended), the RFC's
//! `/cgi-bin/pkiclient.exe`, and micromdm's `/scep`.
//!
//! Errors before a CertRep can be addressed are short, generic plain-text 4xx bodies; nothing
//! internal ever reaches a client.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use foundation::http::ready::{self, Readiness};
use policy_api::RequesterInfo;
use scep::http::{
    CONTENT_TYPE_CAPS, CONTENT_TYPE_NEXT_CA_CERT, CONTENT_TYPE_PKI_MESSAGE, Operation, QueryError,
    ScepQuery,
};
use tracing::{Instrument, warn};

use crate::AppState;
use crate::metrics::RequestLabels;
use crate::pipeline::{self, RepStatus, Reply};

/// Paths SCEP clients are pointed at.
pub const SCEP_PATHS: [&str; 4] = [
    "/certsrv/mscep/mscep.dll",
    "/certsrv/mscep/mscep.dll/pkiclient.exe",
    "/cgi-bin/pkiclient.exe",
    "/scep",
];

/// The router: SCEP on every path of [`SCEP_PATHS`], `/healthz`, `/readyz`, `/metrics`, and when
/// configured `/certsrv/mscep_admin/` and the approval API under `/admin/v1/`.
pub fn router(state: AppState) -> Router {
    let limit = state.settings().max_body_bytes;
    let timeout = state.settings().request_timeout;
    let mut r = Router::new();
    for path in SCEP_PATHS {
        r = r.route(path, get(scep_get).post(scep_post));
    }
    if state.mscep_admin().is_some() {
        for path in crate::mscep_admin::PATHS {
            r = r.route(path, get(crate::mscep_admin::page));
        }
    }
    if state.admin_token().is_some() {
        r = r.merge(crate::admin::routes(state.clone()));
    }
    r.route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limit))
        // Refuses a declared Content-Length over the limit with 413 before reading any of the
        // body, and cuts a chunked body off at the limit (reliability catalogue A8); the
        // extractor limit above alone would wait for a declared 2 GiB until the deadline.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(state)
}

/// The plain-HTTP listener when TLS is on: SCEP (RFC 8894 runs over plain HTTP, as NDES
/// allows) and `/healthz`; any other path is refused with 403 naming its HTTPS URL, so that
/// passwords and tokens never travel in clear (issue 17 item 4).
pub fn scep_only(app: Router, https_base: &str) -> Router {
    foundation::tls::plain_only(
        app,
        https_base,
        |path| SCEP_PATHS.contains(&path) || path == "/healthz",
        "SCEP",
    )
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Ready when the policy, the CA and the pending store each answer within their own bound
/// (foundation::http::ready): 200 or 503, the JSON body naming what failed.
async fn readyz(State(state): State<AppState>) -> Response {
    let (policy, ca, pending) = tokio::join!(
        ready::check("policy", state.policy().ready()),
        ready::check("ca", state.ca().ready()),
        ready::check("pending_store", state.pending().ready()),
    );
    let r = Readiness::of([policy, ca, pending]);
    (r.status_code(), axum::Json(r)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
        .into_response()
}

fn operation_label(op: Option<Operation>) -> &'static str {
    match op {
        Some(Operation::GetCaCaps) => "GetCACaps",
        Some(Operation::GetCaCert) => "GetCACert",
        Some(Operation::GetNextCaCert) => "GetNextCACert",
        Some(Operation::PkiOperation) => "PKIOperation",
        None => "invalid",
    }
}

/// Count a SCEP answer that carries no CertRep.
fn observe(state: &AppState, op: Option<Operation>, started: Instant, resp: Response) -> Response {
    let labels = RequestLabels {
        operation: operation_label(op),
        message_type: "",
        pki_status: "",
        fail_info: "",
        http_status: resp.status().as_u16(),
    };
    state.metrics().observe(labels, started.elapsed());
    resp
}

fn query(raw: Option<&str>) -> Result<ScepQuery, Box<Response>> {
    ScepQuery::parse(raw.unwrap_or("")).map_err(|e| {
        Box::new(match e {
            QueryError::TooLong => text(StatusCode::URI_TOO_LONG, "query too long\n"),
            QueryError::MissingOperation => text(StatusCode::BAD_REQUEST, "missing operation\n"),
            QueryError::UnknownOperation => text(StatusCode::BAD_REQUEST, "unknown operation\n"),
            QueryError::Repeated => text(StatusCode::BAD_REQUEST, "repeated parameter\n"),
        })
    })
}

/// The peer's address (absent only when the router is driven without [`crate::serve`]).
fn source_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn requester(extensions: &axum::http::Extensions, headers: &HeaderMap) -> RequesterInfo {
    let addr = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().filter(|c| !c.is_control()).take(256).collect());
    RequesterInfo {
        remote_addr: addr.map(|a| a.ip().to_string()),
        user_agent,
        ..RequesterInfo::default()
    }
}

/// Every operation but PKIOperation, for GET and POST alike: GetCACaps, GetCACert and
/// GetNextCACert, or 400 when `operation` is missing or unknown.
fn not_pki_operation(state: &AppState, op: Option<Operation>, started: Instant) -> Response {
    match op {
        Some(op) => observe(state, Some(op), started, informational(state, op)),
        None => {
            let r = text(StatusCode::BAD_REQUEST, "unknown operation\n");
            observe(state, None, started, r)
        }
    }
}

async fn scep_get(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let q = match query(raw.as_deref()) {
        Ok(q) => q,
        Err(resp) => return observe(&state, None, started, *resp),
    };
    match q.operation {
        Some(op @ Operation::PkiOperation) => {
            let Some(message) = q.message.filter(|m| !m.is_empty()) else {
                let r = text(StatusCode::BAD_REQUEST, "missing message\n");
                return observe(&state, Some(op), started, r);
            };
            let der = match scep::http::decode_get_message(&message) {
                Ok(d) => d,
                Err(scep::DecodeError::TooLarge) => {
                    let r = text(StatusCode::URI_TOO_LONG, "message too large\n");
                    return observe(&state, Some(op), started, r);
                }
                Err(_) => {
                    let r = text(StatusCode::BAD_REQUEST, "message is not base64\n");
                    return observe(&state, Some(op), started, r);
                }
            };
            let source = source_ip(&extensions);
            pki_operation(
                &state,
                &der,
                requester(&extensions, &headers),
                source,
                started,
            )
            .await
        }
        other => not_pki_operation(&state, other, started),
    }
}

async fn scep_post(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let q = match query(raw.as_deref()) {
        Ok(q) => q,
        Err(resp) => return observe(&state, None, started, *resp),
    };
    match q.operation {
        // Any Content-Type: clients send application/x-pki-message, octet-stream or nothing.
        Some(Operation::PkiOperation) => {
            let source = source_ip(&extensions);
            pki_operation(
                &state,
                &body,
                requester(&extensions, &headers),
                source,
                started,
            )
            .await
        }
        other => not_pki_operation(&state, other, started),
    }
}

/// GetCACaps, GetCACert, GetNextCACert. A `message` parameter is ignored (clients send `0`,
/// `ca`, `CAIdentifier`, or nothing).
fn informational(state: &AppState, op: Operation) -> Response {
    match op {
        Operation::GetCaCaps => (
            [(header::CONTENT_TYPE, CONTENT_TYPE_CAPS)],
            state.caps().to_owned(),
        )
            .into_response(),
        Operation::GetCaCert => {
            let (ct, body) = state.ra().ca_cert_response();
            (
                [(header::CONTENT_TYPE, HeaderValue::from_static(ct))],
                body.to_vec(),
            )
                .into_response()
        }
        Operation::GetNextCaCert => match state.ra().next_ca_response() {
            Some(body) => (
                [(header::CONTENT_TYPE, CONTENT_TYPE_NEXT_CA_CERT)],
                body.to_vec(),
            )
                .into_response(),
            None => text(StatusCode::NOT_FOUND, "no CA rollover in progress\n"),
        },
        Operation::PkiOperation => text(StatusCode::BAD_REQUEST, "unknown operation\n"),
    }
}

fn with_retry_after(mut r: Response, secs: u32) -> Response {
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

/// Resource limits of PKIOperation, before any decoding: the source's rate (429), then a
/// permit for the RSA work (503 when all are taken; `try_acquire`, so nothing queues beyond
/// the cap). Admitted requests then run [`crate::Settings::pki_workers`] at a time.
async fn pki_operation(
    state: &AppState,
    der: &[u8],
    requester: RequesterInfo,
    source: Option<IpAddr>,
    started: Instant,
) -> Response {
    let op = Some(Operation::PkiOperation);
    if let Err(limited) = state.pki_limiter().check(source) {
        warn!(source = ?source, "PKIOperation rate-limited");
        let r = text(StatusCode::TOO_MANY_REQUESTS, "too many requests\n");
        let r = with_retry_after(r, limited.retry_after_secs);
        return observe(state, op, started, r);
    }
    let Ok(permit) = state.pki_permits().clone().try_acquire_owned() else {
        warn!("PKIOperation refused: the cap on operations in progress is reached");
        let r = text(StatusCode::SERVICE_UNAVAILABLE, "server busy\n");
        let r = with_retry_after(r, state.settings().retry_after_secs);
        return observe(state, op, started, r);
    };
    // The pipeline runs in its own task, holding the permit: a client that hangs up after
    // sending (F11) drops this handler, but the request it sent still runs to its end, so
    // it is never cut off between two of its writes (the reservation, the CA's issuance,
    // the pending row, Notify); its resend then finds the outcome (I5).
    let task = {
        let (state, der) = (state.clone(), der.to_vec());
        tokio::spawn(
            async move {
                // Admitted requests take turns in arrival order, so an old request is not
                // overtaken by newer ones sharing the cores (the semaphore is never closed).
                let turn = state.pki_workers().acquire().await.ok();
                let reply = pipeline::handle(&state, &der, requester).await;
                drop(turn);
                drop(permit);
                reply
            }
            .instrument(tracing::Span::current()),
        )
    };
    let (reply, message_type) = match task.await {
        Ok(done) => done,
        Err(e) => {
            warn!(error = %e, "PKIOperation task failed");
            (Reply::Internal, "unknown")
        }
    };
    let (pki_status, fail_info) = match &reply {
        Reply::CertRep(_, RepStatus::Success) => ("SUCCESS", ""),
        Reply::CertRep(_, RepStatus::Pending) => ("PENDING", ""),
        Reply::CertRep(_, RepStatus::Failure(f)) => ("FAILURE", fail_info_label(*f)),
        _ => ("", ""),
    };
    let resp = reply_response(state, reply);
    let labels = RequestLabels {
        operation: "PKIOperation",
        message_type,
        pki_status,
        fail_info,
        http_status: resp.status().as_u16(),
    };
    state.metrics().observe(labels, started.elapsed());
    resp
}

fn fail_info_label(f: scep::FailInfo) -> &'static str {
    match f.code() {
        0 => "badAlg",
        1 => "badMessageCheck",
        2 => "badRequest",
        3 => "badTime",
        4 => "badCertId",
        _ => "other",
    }
}

fn reply_response(state: &AppState, reply: Reply) -> Response {
    match reply {
        Reply::CertRep(body, _) => {
            ([(header::CONTENT_TYPE, CONTENT_TYPE_PKI_MESSAGE)], body).into_response()
        }
        Reply::BadRequest => text(StatusCode::BAD_REQUEST, "malformed SCEP message\n"),
        Reply::Unavailable => with_retry_after(
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "service temporarily unavailable\n",
            ),
            state.settings().retry_after_secs,
        ),
        Reply::Internal => text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
    }
}
