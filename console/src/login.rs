//! Sign-in and sign-out. The secret typed in is checked once and never echoed back, logged or
//! kept: the session holds only the role.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use crate::html::{esc, page};
use crate::{COOKIE, ConsoleState, auth, redirect};

fn login_page(status: StatusCode, message: Option<&str>, user: &str) -> Response {
    let error = message
        .map(|m| format!(r#"<p class="msg error" role="alert">{}</p>"#, esc(m)))
        .unwrap_or_default();
    let body = format!(
        r#"<section class="login"><h1>Sign in</h1>{error}
<form method="post" action="/login">
<label for="user">User name <span class="hint">(leave empty to sign in with a token)</span></label>
<input type="text" id="user" name="user" autocomplete="username" value="{user}">
<label for="secret">Password or token</label>
<input type="password" id="secret" name="secret" autocomplete="current-password" required>
<p><button type="submit" id="sign-in">Sign in</button></p>
</form>
<p class="hint">The lab writes its console tokens under <code>secrets/</code> in its data directory:
<code>console-admin.token</code> (admin) and <code>console-readonly.token</code> (read-only).</p></section>"#,
        user = esc(user),
    );
    (status, Html(page("Sign in", None, &body))).into_response()
}

/// `GET /login`.
pub(crate) async fn form(State(s): State<ConsoleState>, headers: HeaderMap) -> Response {
    if s.session(&headers).is_some() {
        return redirect("/");
    }
    login_page(StatusCode::OK, None, "")
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    secret: String,
}

/// `POST /login`: rate-limited per source, then the credential; a new session (a fresh id,
/// never one the browser brought) on success.
pub(crate) async fn submit(
    State(s): State<ConsoleState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Form(f): Form<LoginForm>,
) -> Response {
    let source = peer.map(|Extension(ConnectInfo(a))| a.ip());
    if let Err(limited) = s.login_limiter.check(source) {
        tracing::warn!(source = ?source, "console sign-in rate-limited");
        let mut r = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many sign-in attempts; wait a minute and try again."),
            "",
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(limited.retry_after_secs),
        );
        return r;
    }
    let user = f.user.trim();
    let Some(role) = s.credentials.check(user, &f.secret) else {
        tracing::warn!(source = ?source, "console sign-in failed");
        let shown = if user.len() <= 64 { user } else { "" };
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("Wrong user name, password or token."),
            shown,
        );
    };
    let who = if user.is_empty() {
        format!("{} token", role.as_str())
    } else {
        user.to_owned()
    };
    let Ok(id) = s.sessions.create(role, who, s.clock.now()) else {
        return crate::pages::error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "No session could be made (random source unavailable).",
        );
    };
    tracing::info!(role = role.as_str(), "console sign-in");
    let secure = if s.secure_cookie { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        id.expose(),
        auth::SESSION_SECS
    );
    let mut r = redirect("/");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
pub(crate) struct LogoutForm {
    csrf: Option<String>,
}

/// `POST /logout` (with the session's CSRF token, so another page cannot sign you out).
pub(crate) async fn logout(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Response {
    let Some((cookie, session)) = s.session(&headers) else {
        return redirect("/login");
    };
    if !session.csrf_matches(f.csrf.as_deref()) {
        return crate::pages::error_page(
            StatusCode::FORBIDDEN,
            Some(&session),
            "This form did not come from the console (CSRF token).",
        );
    }
    s.sessions.remove(&cookie);
    let secure = if s.secure_cookie { "; Secure" } else { "" };
    let mut r = redirect("/login");
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
