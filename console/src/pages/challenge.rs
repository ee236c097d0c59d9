//! `/challenge`: mint an mscep_admin challenge for a plain SCEP client (a router, sscep). The
//! challenge is rendered once, in the answer to the admin's POST (`no-store`), and kept
//! nowhere: it is not in any other page, log line or the session.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{api_error, error_page, html};
use crate::ConsoleState;
use crate::html::{csrf_field, esc, time};

/// `GET /challenge`: what it is, and the form.
pub(crate) async fn form(State(s): State<ConsoleState>, headers: HeaderMap) -> Response {
    let session = match s.require(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let body = format!(
        r#"<h1>mscep_admin challenge</h1>
<p>A one-time password for a plain SCEP client (no MDM), as NDES's admin page hands out: it
authorises one request under the admin page's template, within its name policy. It is shown
once, on the next page, and never again.</p>
<form method="post" action="/challenge">{csrf}<button type="submit" id="mint">Mint a challenge</button></form>
<p class="hint">SCEP URL: <code>{scep}</code></p>"#,
        csrf = csrf_field(&session),
        scep = esc(&s.links.scep_url),
    );
    html("Challenge", &session, &body)
}

#[derive(Deserialize)]
pub(crate) struct MintForm {
    csrf: Option<String>,
}

/// `POST /challenge`: admin role and CSRF token; the challenge in this answer only.
pub(crate) async fn mint(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Form(f): Form<MintForm>,
) -> Response {
    let session = match s.require_action(&headers, f.csrf.as_deref()) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Some(minter) = &s.minter else {
        return error_page(
            StatusCode::NOT_FOUND,
            Some(&session),
            "This console is not configured with ndes-proxy's mscep_admin token.",
        );
    };
    match minter.mint().await {
        Ok(c) => {
            tracing::info!(who = %session.who, template = %c.template, "console minted a challenge");
            let body = format!(
                r#"<h1>mscep_admin challenge</h1>
<p class="msg ok">Give this to the SCEP client now; it is not shown again.</p>
<dl class="facts"><dt>Challenge</dt><dd class="mono" id="challenge">{challenge}</dd>
<dt>Template</dt><dd>{template}</dd><dt>Valid until</dt><dd>{until}</dd>
<dt>SCEP URL</dt><dd class="mono">{scep}</dd></dl>"#,
                challenge = esc(c.challenge.expose()),
                template = esc(&c.template),
                until = time(c.expires_at),
                scep = esc(&s.links.scep_url),
            );
            html("Challenge", &session, &body)
        }
        Err(e) => api_error(&session, &e),
    }
}
