//! scep-console: the lab seen and driven from a browser (issue 18).
//!
//! Server-rendered HTML over the services' own authenticated APIs: the policy module's admin
//! API ([`clients::PolicyAdmin`]), ca-mock's API (`ca_api::CaClient`) and ndes-proxy's admin
//! API ([`clients::NdesAdmin`]). The console keeps no state but its sessions, so it adds no
//! second way to change anything: an action here is the same audited API call a script makes.
//!
//! Security (see [`auth`] and the middleware below): sign-in with a configured credential and
//! a role; the session cookie is HttpOnly, SameSite=Strict, and Secure when served over TLS;
//! every state-changing form carries the session's CSRF token, checked in constant time;
//! sign-in attempts are rate-limited per source; a request a browser labels as another site's
//! is refused (`foundation::http::is_cross_site`); pages are `no-store` under a strict CSP.

pub mod auth;
pub mod clients;
pub mod config;
pub mod html;
mod login;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use foundation::Clock;
use foundation::rate_limit::{RateLimit, SourceLimiter};

use crate::auth::{Credentials, Role, Session, Sessions};
use crate::clients::{ChallengeMinter, NdesAdmin, PolicyAdmin};

/// The session cookie's name.
pub const COOKIE: &str = "scep_console_session";

/// Sign-in attempts per source by default: 5 at once, 10 a minute, loopback included (the
/// lab's console listens on loopback, where every browser is a loopback source).
pub const LOGIN_LIMIT: RateLimit = RateLimit {
    per_minute: 10,
    burst: 5,
    exempt_loopback: false,
};

/// What the console shows next to the numbers it reads.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// The SCEP URL devices are given.
    pub scep_url: String,
    /// NDES's mscep_admin page.
    pub mscep_admin_url: String,
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct ConsoleState {
    pub(crate) policy: PolicyAdmin,
    pub(crate) ca: ca_api::CaClient,
    pub(crate) ndes: NdesAdmin,
    pub(crate) minter: Option<ChallengeMinter>,
    pub(crate) links: Arc<Links>,
    pub(crate) credentials: Arc<Credentials>,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) login_limiter: Arc<SourceLimiter>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) secure_cookie: bool,
}

impl std::fmt::Debug for ConsoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleState")
            .field("links", &self.links)
            .finish_non_exhaustive()
    }
}

impl ConsoleState {
    /// A console over the three services' clients.
    pub fn new(
        policy: PolicyAdmin,
        ca: ca_api::CaClient,
        ndes: NdesAdmin,
        links: Links,
        credentials: Credentials,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            policy,
            ca,
            ndes,
            minter: None,
            links: Arc::new(links),
            credentials: Arc::new(credentials),
            sessions: Arc::new(Sessions::default()),
            login_limiter: Arc::new(SourceLimiter::new(LOGIN_LIMIT)),
            clock,
            secure_cookie: false,
        }
    }

    /// Offer the mscep_admin challenge page (ndes-proxy's mscep_admin bearer token).
    pub fn with_challenge_minter(mut self, minter: ChallengeMinter) -> Self {
        self.minter = Some(minter);
        self
    }

    /// Sign-in attempts allowed per source.
    pub fn with_login_limit(mut self, limit: RateLimit) -> Self {
        self.login_limiter = Arc::new(SourceLimiter::new(limit));
        self
    }

    /// Mark the session cookie Secure (the console is reached over TLS, e.g. behind a
    /// TLS-terminating proxy).
    pub fn with_secure_cookie(mut self, secure: bool) -> Self {
        self.secure_cookie = secure;
        self
    }

    /// The session the request's cookie names, if it is live.
    pub(crate) fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let cookie = session_cookie(headers)?;
        let s = self.sessions.get(cookie, self.clock.now())?;
        Some((cookie.to_owned(), s))
    }

    /// The session, or a redirect to the sign-in page.
    pub(crate) fn require(&self, headers: &HeaderMap) -> Result<Session, Box<Response>> {
        self.session(headers)
            .map(|(_, s)| s)
            .ok_or_else(|| Box::new(redirect("/login")))
    }

    /// The session of an admin whose form carries its CSRF token; otherwise the refusal
    /// (403 for a missing or wrong token and for the read-only role, checked server-side).
    pub(crate) fn require_action(
        &self,
        headers: &HeaderMap,
        csrf: Option<&str>,
    ) -> Result<Session, Box<Response>> {
        let session = self.require(headers)?;
        if !session.csrf_matches(csrf) {
            tracing::warn!("console form without a valid CSRF token refused");
            return Err(Box::new(pages::error_page(
                StatusCode::FORBIDDEN,
                Some(&session),
                "This form has expired or did not come from the console (CSRF token). Nothing was changed.",
            )));
        }
        if session.role != Role::Admin {
            return Err(Box::new(pages::error_page(
                StatusCode::FORBIDDEN,
                Some(&session),
                "Your role is read-only: this action is refused. Nothing was changed.",
            )));
        }
        Ok(session)
    }
}

/// The value of the session cookie, if the request carries one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// 303 See Other to `to`.
pub(crate) fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The router.
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(pages::overview::show))
        // Liveness, without a session, as every service answers it (docs/decisions.md #15).
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/transactions", get(pages::transaction::search))
        .route("/transactions/{txid}", get(pages::transaction::show))
        .route("/devices", get(pages::devices::list))
        .route("/devices/{id}", get(pages::devices::detail))
        .route(
            "/devices/{id}/{action}",
            get(pages::devices::confirm).post(pages::devices::act),
        )
        .route(
            "/profiles",
            get(pages::profiles::list).post(pages::profiles::create),
        )
        .route("/profiles/new", get(pages::profiles::new))
        .route("/profiles/{id}", get(pages::profiles::detail))
        .route(
            "/profiles/{id}/edit",
            get(pages::profiles::edit).post(pages::profiles::update),
        )
        .route("/profiles/{id}/assign", post(pages::profiles::assign))
        .route("/profiles/{id}/unassign", post(pages::profiles::unassign))
        .route("/pending", get(pages::pending::list))
        .route("/audit", get(pages::audit::list))
        .route(
            "/challenge",
            get(pages::challenge::form).post(pages::challenge::mint),
        )
        .route("/pending/{id}/{decision}", post(pages::pending::decide))
        .route("/certificates", get(pages::certificates::list))
        .route(
            "/certificates/{serial}/revoke",
            get(pages::certificates::confirm).post(pages::certificates::revoke),
        )
        .route("/certificates/{serial}", get(pages::certificate::show))
        .route("/certificates/{serial}/pem", get(pages::certificate::pem))
        .route("/static/console.css", get(css))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::from_fn(guard))
        .with_state(state)
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        html::CSS,
    )
        .into_response()
}

/// Refuses what a browser labels as another site's request (login CSRF, clickjacked forms)
/// before anything else, and sets the headers every answer carries.
async fn guard(req: Request, next: Next) -> Response {
    if foundation::http::is_cross_site(req.headers()) {
        tracing::warn!(path = %req.uri().path(), "cross-site request to the console refused");
        return pages::error_page(StatusCode::FORBIDDEN, None, "Cross-site request refused.");
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser sends `Origin: null`
    // with the console's own form posts, which the cross-site check refuses.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Serves `router(state)` on `listener` until `shutdown` resolves (with peer addresses, which
/// the sign-in limit is kept by).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ConsoleState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// [`serve`] over HTTPS with `tls`'s certificate (issue 17 item 4); give the state
/// [`ConsoleState::with_secure_cookie`] so the session cookie is `Secure`.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<foundation::tls::ServerTls>,
    state: ConsoleState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    foundation::tls::serve_tls(listener, tls, router(state), shutdown).await
}
