//! HTTP: the admin REST API (admin bearer token), the NDES contract for a remote ndes-proxy
//! (NDES bearer token), and the device check-in (per-device credential). OpenAPI at
//! `/openapi.json`. Every error is a short JSON body; store failures are 503, never a 500
//! with internal text.

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::admin::Lifecycle;
use crate::checkin::StatusReport;
use crate::error::{AdminError, ChallengeError, NotifyError, VerifyError};
use crate::intune::routes as intune;
use crate::model::{DeviceSpec, Group, ProfileSpec};
use crate::name_policy::NamePolicy;
use crate::payload;
use crate::profile_view::PreviewRequest;
use crate::service::{ChallengeSettings, PolicyService};
use crate::store::Assignment;
use foundation::http::ready::Readiness;
use foundation::secret::Secret;
use policy_api::contract::{
    ChallengeRequest, Grant, NdesPolicy, Notification, RegrantRequest, ReplyReport, VerifyRequest,
};

/// The OpenAPI 3 document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route as (method, path in OpenAPI form); a test checks the document lists each.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/openapi.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/profiles"),
    ("post", "/api/v1/profiles"),
    ("post", "/api/v1/profiles/preview"),
    ("post", "/api/v1/profiles/import"),
    ("get", "/api/v1/profiles/{id}/export"),
    ("get", "/api/v1/profiles/{id}"),
    ("put", "/api/v1/profiles/{id}"),
    ("get", "/api/v1/profiles/{id}/versions"),
    ("get", "/api/v1/profiles/{id}/assignments"),
    ("post", "/api/v1/profiles/{id}/assignments"),
    (
        "delete",
        "/api/v1/profiles/{id}/assignments/{kind}/{target}",
    ),
    ("get", "/api/v1/devices"),
    ("post", "/api/v1/devices"),
    ("get", "/api/v1/devices/{id}"),
    ("delete", "/api/v1/devices/{id}"),
    ("post", "/api/v1/devices/{id}/{action}"),
    ("get", "/api/v1/groups"),
    ("post", "/api/v1/groups"),
    ("put", "/api/v1/groups/{id}/members/{device}"),
    ("delete", "/api/v1/groups/{id}/members/{device}"),
    ("get", "/api/v1/settings/challenges"),
    ("put", "/api/v1/settings/challenges"),
    ("get", "/api/v1/name-policies"),
    ("get", "/api/v1/name-policies/{template}"),
    ("put", "/api/v1/name-policies/{template}"),
    ("delete", "/api/v1/name-policies/{template}"),
    ("get", "/api/v1/outbox"),
    ("post", "/api/v1/outbox/{id}/requeue"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/transactions/{transaction_id}"),
    ("get", "/api/v1/devices/{id}/history"),
    ("get", "/api/v1/certificates"),
    ("post", "/api/v1/certificates/{serial}/revoke"),
    ("post", "/internal/v1/challenges"),
    ("post", "/internal/v1/verify"),
    ("post", "/internal/v1/regrant"),
    ("post", "/internal/v1/notify"),
    ("post", "/internal/v1/replies"),
    ("post", "/mdm/v1/devices/{id}/checkin"),
];

/// Shared state of the HTTP layer.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub service: PolicyService,
    /// Bearer token of the admin API.
    pub admin_token: Secret,
    /// Bearer token ndes-proxy presents on `/internal/v1/*`.
    pub ndes_token: Secret,
}

/// The Intune import/export routes (`crate::intune::routes`) take the service alone.
impl axum::extract::FromRef<ApiState> for PolicyService {
    fn from_ref(state: &ApiState) -> Self {
        state.service.clone()
    }
}

/// The router.
pub fn router(state: ApiState) -> Router {
    let admin = Router::new()
        .route("/api/v1/profiles", get(list_profiles).post(create_profile))
        .route("/api/v1/profiles/preview", post(preview_profile))
        .route("/api/v1/profiles/import", post(intune::import_profile))
        .route("/api/v1/profiles/{id}/export", get(intune::export_profile))
        .route(
            "/api/v1/profiles/{id}",
            get(get_profile).put(update_profile),
        )
        .route("/api/v1/profiles/{id}/versions", get(profile_versions))
        .route(
            "/api/v1/profiles/{id}/assignments",
            get(list_assignments).post(assign),
        )
        .route(
            "/api/v1/profiles/{id}/assignments/{kind}/{target}",
            axum::routing::delete(unassign),
        )
        .route("/api/v1/devices", get(list_devices).post(register_device))
        .route(
            "/api/v1/devices/{id}",
            get(get_device).delete(delete_device),
        )
        .route("/api/v1/devices/{id}/{action}", post(lifecycle))
        .route("/api/v1/groups", get(list_groups).post(create_group))
        .route(
            "/api/v1/groups/{id}/members/{device}",
            put(add_member).delete(remove_member),
        )
        .route(
            "/api/v1/settings/challenges",
            get(get_settings).put(put_settings),
        )
        .route("/api/v1/name-policies", get(list_name_policies))
        .route(
            "/api/v1/name-policies/{template}",
            get(get_name_policy)
                .put(put_name_policy)
                .delete(delete_name_policy),
        )
        .route("/api/v1/outbox", get(list_outbox))
        .route("/api/v1/outbox/{id}/requeue", post(requeue))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/transactions/{transaction_id}", get(transaction))
        .route("/api/v1/devices/{id}/history", get(device_history))
        .route("/api/v1/certificates", get(search_certificates))
        .route(
            "/api/v1/certificates/{serial}/revoke",
            post(revoke_certificate),
        )
        .route_layer(axum::middleware::from_fn(require_json_body))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_admin,
        ));
    let internal = Router::new()
        .route(
            "/internal/v1/challenges",
            post(generate_challenge).layer(axum::middleware::from_fn_with_state(
                state.clone(),
                limit_minting,
            )),
        )
        .route("/internal/v1/verify", post(verify))
        .route("/internal/v1/regrant", post(regrant))
        .route("/internal/v1/notify", post(notify))
        .route("/internal/v1/replies", post(reply_sent))
        .route_layer(axum::middleware::from_fn(require_json_body))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_ndes,
        ));
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/mdm/v1/devices/{id}/checkin",
            post(checkin).layer(axum::middleware::from_fn_with_state(
                state.clone(),
                limit_minting,
            )),
        )
        .merge(admin)
        .merge(internal)
        .layer(DefaultBodyLimit::max(256 * 1024))
        .layer(axum::middleware::from_fn(refuse_cross_site))
        .with_state(state)
}

/// Ready when the store answers and, if templates are read from the CA, the CA answers, each
/// within its own bound (foundation::http::ready): 200 or 503, the JSON body naming what failed.
async fn readyz(State(s): State<ApiState>) -> Response {
    let r = Readiness::of(s.service.readiness_checks().await);
    (r.status_code(), Json(r)).into_response()
}

/// Prometheus text: decisions by reason, and the outbox backlog when the store answers in time.
async fn metrics(State(s): State<ApiState>) -> Response {
    let store = s.service.store();
    let backlog = match tokio::time::timeout(
        foundation::http::ready::CHECK_TIMEOUT,
        store.outbox_backlog(),
    )
    .await
    {
        Ok(Ok(b)) => Some(b),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: outbox backlog unavailable");
            None
        }
        Err(_) => None,
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.service.metrics().render(backlog, store.local_now()),
    )
        .into_response()
}

/// Reliability P32: nothing here serves a browser, so a request a browser labels as made for
/// another site's page is refused (403) before anything else, credentials or not.
async fn refuse_cross_site(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if foundation::http::cross_site::is_cross_site(req.headers()) {
        tracing::warn!(path = %req.uri().path(), "cross-site request refused");
        return err(StatusCode::FORBIDDEN, "cross_site", None);
    }
    next.run(req).await
}

/// The authenticated APIs speak JSON only: a body of another type (what an HTML form can
/// send) is 415 once the caller is authenticated, even on routes that read no body.
async fn require_json_body(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let writes = matches!(
        *req.method(),
        axum::http::Method::POST | axum::http::Method::PUT | axum::http::Method::PATCH
    );
    if writes
        && req.headers().contains_key(header::CONTENT_TYPE)
        && !foundation::http::cross_site::is_json(req.headers())
    {
        return unsupported_media_type();
    }
    next.run(req).await
}

fn unsupported_media_type() -> Response {
    err(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        Some("application/json only".into()),
    )
}

/// Serves `router(state)` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer address is what challenge minting is limited by.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// [`serve`] over HTTPS with `tls`'s certificate (issue 17 item 4).
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: std::sync::Arc<foundation::tls::ServerTls>,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    foundation::tls::serve_tls(listener, tls, router(state), shutdown).await
}

/// [`serve_tls`] with mutual TLS (docs/decisions.md #18): `/internal/v1/*` takes ndes-proxy's
/// verified client certificate instead of its bearer token, which alone is then refused.
/// `tls` must verify clients ([`foundation::tls::ServerTls::verify_clients`]); the admin API
/// keeps its bearer token.
pub async fn serve_mutual_tls(
    listener: tokio::net::TcpListener,
    tls: std::sync::Arc<foundation::tls::ServerTls>,
    state: ApiState,
    ndes: NdesCertificate,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).layer(axum::Extension(ndes));
    foundation::tls::serve_tls(listener, tls, app, shutdown).await
}

/// ndes-proxy's client certificate under mutual TLS: the name it carries and the SHA-256 (hex)
/// of the certificates that are ndes-proxy, so another certificate from the same CA with that
/// name is not. Set on every request by [`serve_mutual_tls`] (a server-side extension, which
/// a client cannot set or remove).
#[derive(Clone, Debug)]
pub struct NdesCertificate {
    /// The subject CN (or SAN) of ndes-proxy's certificate.
    pub name: String,
    /// SHA-256 of each certificate that is ndes-proxy, lowercase hex.
    pub sha256_hex: Vec<String>,
}

impl NdesCertificate {
    fn accepts(&self, peer: &foundation::tls::PeerIdentity) -> bool {
        !peer.name.is_empty()
            && peer.name == self.name
            && self.sha256_hex.contains(&peer.sha256_hex)
    }
}

fn err(status: StatusCode, code: &str, message: Option<String>) -> Response {
    let mut body = json!({ "error": code });
    if let Some(m) = message {
        body["message"] = json!(m);
    }
    (status, Json(body)).into_response()
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            Self::Invalid(m) => err(StatusCode::BAD_REQUEST, "invalid", Some(m)),
            Self::NotFound => err(StatusCode::NOT_FOUND, "not_found", None),
            Self::Conflict(m) => err(StatusCode::CONFLICT, "conflict", Some(m)),
            Self::Store(e) => {
                tracing::error!(error = %e, "store unavailable");
                err(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None)
            }
            Self::Internal => err(StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        }
    }
}

/// The presented bearer token (the foundation's parsing), refused beyond the longest secret.
fn bearer(headers: &HeaderMap) -> Option<Secret> {
    let token = foundation::http::bearer(headers)?;
    (token.len() <= foundation::secret::MAX_SECRET_LEN).then(|| Secret::new(token))
}

fn unauthorized() -> Response {
    let mut r = err(StatusCode::UNAUTHORIZED, "unauthorized", None);
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

async fn require_admin(
    State(s): State<ApiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match bearer(req.headers()) {
        Some(t) if t.ct_eq(&s.admin_token) => next.run(req).await,
        _ => unauthorized(),
    }
}

async fn require_ndes(
    State(s): State<ApiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(ndes) = req.extensions().get::<NdesCertificate>() {
        // Mutual TLS: the certificate and nothing else; no fallback to the token.
        return match req.extensions().get::<foundation::tls::PeerIdentity>() {
            None => err(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                Some("a client certificate from the lab's CA is required".into()),
            ),
            Some(p) if ndes.accepts(p) => next.run(req).await,
            Some(_) => err(StatusCode::FORBIDDEN, "forbidden", None),
        };
    }
    match bearer(req.headers()) {
        Some(t) if t.ct_eq(&s.ndes_token) => next.run(req).await,
        _ => unauthorized(),
    }
}

/// Challenge minting (check-in and `/internal/v1/challenges`) per source IP: 429 with
/// Retry-After beyond the limit. Without a peer address (the router used without
/// [`serve`]) nothing is limited.
async fn limit_minting(
    State(s): State<ApiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let source = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    match s.service.mint_limiter().check(source) {
        Ok(()) => next.run(req).await,
        Err(limited) => {
            tracing::warn!(source = ?source, "challenge minting rate-limited");
            let mut r = err(StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(limited.retry_after_secs),
            );
            r
        }
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

type Result<T> = std::result::Result<T, AdminError>;

// Profiles are shown with their warnings: how certificates issued under their template will
// differ from them (docs/decisions.md #7, `template_check`).
async fn list_profiles(State(s): State<ApiState>) -> Result<Response> {
    let profiles = s.service.store().list_profiles().await?;
    Ok(Json(s.service.profile_views(profiles).await).into_response())
}

async fn preview_profile(
    State(s): State<ApiState>,
    Json(req): Json<PreviewRequest>,
) -> Result<Response> {
    Ok(Json(s.service.preview(req).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProfile {
    id: String,
    #[serde(flatten)]
    spec: ProfileSpec,
}

async fn create_profile(State(s): State<ApiState>, Json(p): Json<NewProfile>) -> Result<Response> {
    let profile = s.service.create_profile(&p.id, p.spec).await?;
    let view = s.service.profile_view(profile).await;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn get_profile(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response> {
    let p = s
        .service
        .store()
        .get_profile(&id)
        .await?
        .ok_or(AdminError::NotFound)?;
    Ok(Json(s.service.profile_view(p).await).into_response())
}

async fn update_profile(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(spec): Json<ProfileSpec>,
) -> Result<Response> {
    let profile = s.service.update_profile(&id, spec).await?;
    Ok(Json(s.service.profile_view(profile).await).into_response())
}

async fn profile_versions(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response> {
    let v = s.service.store().profile_versions(&id).await?;
    if v.is_empty() {
        return Err(AdminError::NotFound);
    }
    Ok(Json(v).into_response())
}

async fn list_assignments(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response> {
    Ok(Json(s.service.store().assignments(&id).await?).into_response())
}

async fn assign(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(a): Json<Assignment>,
) -> Result<Response> {
    s.service.assign(&id, a).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn unassign(
    State(s): State<ApiState>,
    Path((id, kind, target)): Path<(String, String, String)>,
) -> Result<Response> {
    let queued = s
        .service
        .unassign(&id, Assignment { kind, id: target })
        .await?;
    Ok(Json(json!({ "revocations_queued": queued })).into_response())
}

/// Deleted devices are tombstones, kept for history and revocation but no longer listed.
/// `GET /api/v1/devices?q=&offset=&limit=` (every one optional: all devices by default).
#[derive(Debug, Default, Deserialize)]
struct DeviceQuery {
    q: Option<String>,
    offset: Option<i64>,
    limit: Option<i64>,
}

/// Largest device page, and longest device search.
const MAX_DEVICE_PAGE: i64 = 1000;
const MAX_DEVICE_QUERY: usize = 256;

/// The devices not deleted, by id, a page at a time if asked; `X-Total-Count` says how many
/// match in all (the console pages and counts with it, issue 18).
async fn list_devices(State(s): State<ApiState>, Query(q): Query<DeviceQuery>) -> Result<Response> {
    let needle =
        q.q.filter(|n| !n.trim().is_empty())
            .map(|n| n.trim().to_owned());
    if needle
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_DEVICE_QUERY)
    {
        return Err(AdminError::Invalid(format!(
            "q: at most {MAX_DEVICE_QUERY} characters"
        )));
    }
    let limit = match q.limit {
        Some(l) if !(1..=MAX_DEVICE_PAGE).contains(&l) => {
            return Err(AdminError::Invalid(format!("limit: 1-{MAX_DEVICE_PAGE}")));
        }
        l => l.unwrap_or(i64::MAX),
    };
    let offset = match q.offset {
        Some(o) if o < 0 => return Err(AdminError::Invalid("offset: 0 or more".into())),
        o => o.unwrap_or(0),
    };
    let search = crate::store::DeviceSearch {
        needle,
        offset,
        limit,
    };
    let (devices, total) = s.service.store().search_devices(&search).await?;
    let mut resp = Json(devices).into_response();
    resp.headers_mut()
        .insert("x-total-count", HeaderValue::from(total));
    Ok(resp)
}

async fn register_device(State(s): State<ApiState>, Json(d): Json<DeviceSpec>) -> Result<Response> {
    let r = s.service.register_device(d).await?;
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

async fn get_device(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response> {
    Ok(Json(s.service.device_view(&id).await?).into_response())
}

async fn lifecycle(
    State(s): State<ApiState>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response> {
    let action: Lifecycle = serde_json::from_value(json!(action)).map_err(|_| {
        AdminError::Invalid("action: retire, wipe, block, unblock or delete".into())
    })?;
    let queued = s.service.lifecycle(&id, action).await?;
    Ok(Json(json!({ "revocations_queued": queued })).into_response())
}

async fn delete_device(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response> {
    let queued = s.service.lifecycle(&id, Lifecycle::Delete).await?;
    Ok(Json(json!({ "revocations_queued": queued })).into_response())
}

async fn list_groups(State(s): State<ApiState>) -> Result<Response> {
    Ok(Json(s.service.store().list_groups().await?).into_response())
}

async fn create_group(State(s): State<ApiState>, Json(g): Json<Group>) -> Result<Response> {
    Ok((StatusCode::CREATED, Json(s.service.create_group(g).await?)).into_response())
}

async fn add_member(
    State(s): State<ApiState>,
    Path((id, device)): Path<(String, String)>,
) -> Result<Response> {
    s.service.set_membership(&id, &device, true).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remove_member(
    State(s): State<ApiState>,
    Path((id, device)): Path<(String, String)>,
) -> Result<Response> {
    let queued = s.service.set_membership(&id, &device, false).await?;
    Ok(Json(json!({ "revocations_queued": queued })).into_response())
}

async fn get_settings(State(s): State<ApiState>) -> Result<Response> {
    Ok(Json(s.service.challenge_settings().await?).into_response())
}

async fn put_settings(
    State(s): State<ApiState>,
    Json(c): Json<ChallengeSettings>,
) -> Result<Response> {
    c.validate().map_err(AdminError::Invalid)?;
    s.service.set_challenge_settings(&c).await?;
    Ok(Json(c).into_response())
}

async fn list_name_policies(State(s): State<ApiState>) -> Result<Response> {
    Ok(Json(s.service.name_policies().await?).into_response())
}

async fn get_name_policy(State(s): State<ApiState>, Path(t): Path<String>) -> Result<Response> {
    let p = s
        .service
        .name_policy(&t)
        .await?
        .ok_or(AdminError::NotFound)?;
    Ok(Json(p).into_response())
}

/// The body is read here, not by the `Json` extractor, so that every malformed policy (syntax,
/// unknown field or kind, bad pattern) is one 400 saying what is wrong.
async fn put_name_policy(
    State(s): State<ApiState>,
    Path(t): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let policy: NamePolicy = serde_json::from_slice(&body)
        .map_err(|e| AdminError::Invalid(format!("name policy: {e}")))?;
    let stored = s
        .service
        .set_name_policy(&t, &policy, false)
        .await?
        .ok_or(AdminError::Internal)?;
    Ok(Json(stored).into_response())
}

async fn delete_name_policy(State(s): State<ApiState>, Path(t): Path<String>) -> Result<Response> {
    s.service.delete_name_policy(&t).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct OutboxQuery {
    state: Option<String>,
}

async fn list_outbox(State(s): State<ApiState>, Query(q): Query<OutboxQuery>) -> Result<Response> {
    Ok(Json(s.service.store().list_outbox(q.state.as_deref()).await?).into_response())
}

async fn requeue(State(s): State<ApiState>, Path(id): Path<i64>) -> Result<Response> {
    if !s.service.store().outbox_requeue(id).await? {
        return Err(AdminError::NotFound);
    }
    s.service.outbox_wake().notify_one();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct AuditQuery {
    device_id: Option<String>,
    limit: Option<i64>,
}

async fn audit(State(s): State<ApiState>, Query(q): Query<AuditQuery>) -> Result<Response> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        s.service
            .store()
            .list_audit(q.device_id.as_deref(), limit)
            .await?,
    )
    .into_response())
}

async fn transaction(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response> {
    if id.is_empty() || id.len() > 128 {
        return Err(AdminError::Invalid(
            "transactionID: 1-128 characters".into(),
        ));
    }
    match s.service.transaction_trace(&id).await? {
        Some(t) => Ok(Json(t).into_response()),
        None => Err(AdminError::NotFound),
    }
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

async fn device_history(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response> {
    let limit = q.limit.unwrap_or(100);
    Ok(Json(s.service.device_history(&id, q.before, limit).await?).into_response())
}

async fn search_certificates(
    State(s): State<ApiState>,
    Query(q): Query<crate::admin_certs::CertQuery>,
) -> Result<Response> {
    let search = q.parse()?;
    Ok(Json(s.service.search_certificates(&search).await?).into_response())
}

async fn revoke_certificate(
    State(s): State<ApiState>,
    Path(serial): Path<String>,
    Json(b): Json<crate::admin_certs::RevokeBody>,
) -> Result<Response> {
    s.service.revoke_certificate(&serial, &b.reason).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// What ndes-proxy answered (best effort on its side; recorded for the trace).
async fn reply_sent(State(s): State<ApiState>, Json(r): Json<ReplyReport>) -> Response {
    s.service.reply_sent(r).await;
    StatusCode::NO_CONTENT.into_response()
}

async fn generate_challenge(
    State(s): State<ApiState>,
    Json(req): Json<ChallengeRequest>,
) -> Response {
    match s.service.generate_challenge(req).await {
        Ok(c) => Json(c).into_response(),
        Err(ChallengeError::CacheFull) => err(StatusCode::TOO_MANY_REQUESTS, "cache_full", None),
        Err(ChallengeError::InvalidTemplate) => {
            err(StatusCode::BAD_REQUEST, "invalid_template", None)
        }
        Err(ChallengeError::Unavailable) => {
            err(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None)
        }
    }
}

/// A grant as the NDES contract answers it: 200 with the grant, 422 with the named rejection,
/// 503 when the store is down.
fn grant_response(result: std::result::Result<Grant, VerifyError>) -> Response {
    match result {
        Ok(g) => Json(g).into_response(),
        Err(VerifyError::Rejected(r)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": "rejected", "reason": r })),
        )
            .into_response(),
        Err(VerifyError::Unavailable) => err(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
    }
}

async fn verify(State(s): State<ApiState>, Json(req): Json<VerifyRequest>) -> Response {
    grant_response(s.service.verify_request(req).await)
}

async fn regrant(State(s): State<ApiState>, Json(req): Json<RegrantRequest>) -> Response {
    grant_response(s.service.regrant(req).await)
}

async fn notify(State(s): State<ApiState>, Json(n): Json<Notification>) -> Response {
    match s.service.notify(n).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(NotifyError::UnknownTransaction) => {
            err(StatusCode::NOT_FOUND, "unknown_transaction", None)
        }
        Err(NotifyError::Conflict) => err(StatusCode::CONFLICT, "conflict", None),
        Err(NotifyError::Unavailable) => err(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
    }
}

#[derive(Deserialize)]
struct CheckinQuery {
    format: Option<String>,
}

async fn checkin(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<CheckinQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response> {
    let Some(credential) = bearer(&headers) else {
        return Ok(unauthorized());
    };
    let Some(device) = s.service.authenticate_device(&credential).await? else {
        return Ok(unauthorized());
    };
    if device.id != id {
        return Ok(err(StatusCode::FORBIDDEN, "forbidden", None));
    }
    if !body.is_empty() && !foundation::http::cross_site::is_json(&headers) {
        return Ok(unsupported_media_type());
    }
    let report: StatusReport = if body.is_empty() {
        StatusReport::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AdminError::Invalid(format!("status report: {e}")))?
    };
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "syncml" | "mobileconfig") {
        return Err(AdminError::Invalid(
            "format: json, syncml or mobileconfig".into(),
        ));
    }
    let answer = s.service.checkin(&device, &report).await?;
    Ok(match format {
        "syncml" => (
            [(header::CONTENT_TYPE, "application/vnd.syncml.dm+xml")],
            payload::syncml(&answer),
        )
            .into_response(),
        "mobileconfig" => (
            [(header::CONTENT_TYPE, "application/x-apple-aspen-config")],
            payload::mobileconfig(&answer),
        )
            .into_response(),
        _ => Json(answer).into_response(),
    })
}
