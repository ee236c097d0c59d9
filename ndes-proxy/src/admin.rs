//! The approval API on the SCEP listener, for requests under templates that need manual
//! approval (bearer token from the configuration; mounted only when one is configured):
//!
//! - `GET  /admin/v1/pending[?state=awaiting_approval]`: list (oldest first, at most 500);
//! - `GET  /admin/v1/pending/{request_id}`: one request;
//! - `POST /admin/v1/pending/{request_id}/approve`: approve and try the CA at once (idempotent:
//!   approving an approved request answers its state);
//! - `POST /admin/v1/pending/{request_id}/deny`: deny (idempotent likewise).
//!
//! `request_id` is percent-encoded in the path (transactionIDs may hold `/` or `+`). Errors are
//! `{"error": "<code>"}` with 401, 404, 409 or 503; nothing internal is ever sent.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::AppState;
use crate::pending::{PendingRecord, PendingState, StateKind, StoreError};
use crate::queue;

/// Rows returned by one list call.
const LIST_LIMIT: u32 = 500;

/// The admin routes, behind the bearer-token check.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/v1/pending", get(list))
        .route("/admin/v1/pending/{request_id}", get(show))
        .route("/admin/v1/pending/{request_id}/approve", post(approve))
        .route("/admin/v1/pending/{request_id}/deny", post(deny))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match state.admin_token() {
        Some(t) if t.authorizes(req.headers()) => next.run(req).await,
        _ => {
            let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized");
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
            r
        }
    }
}

/// A pending request as the API shows it (no CSR, no certificate bytes).
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingView {
    /// Key for the approve/deny calls.
    pub request_id: String,
    /// The device's transactionID.
    pub transaction_id: String,
    /// awaiting_approval, queued_for_ca, issued, denied or failed.
    pub state: StateKind,
    /// The CA template.
    pub template: String,
    /// The granted subject, e.g. `CN=device-1, O=Example`.
    pub subject: String,
    /// The device the policy module bound the request to.
    pub device_id: Option<String>,
    /// The profile it came from.
    pub profile_id: Option<String>,
    /// Authorised by a current certificate rather than a challenge.
    pub renewal: bool,
    /// Issued: the serial (lowercase hex).
    pub serial: Option<String>,
    /// Failed: why.
    pub reason: Option<String>,
    /// Failed CA attempts.
    pub attempts: u32,
    /// RFC 3339 UTC (docs/decisions.md #12).
    pub created_at: String,
    /// The same instant in unix seconds, for machines.
    pub created_at_unix: i64,
    /// RFC 3339 UTC.
    pub updated_at: String,
    /// The same instant in unix seconds, for machines.
    pub updated_at_unix: i64,
}

impl From<&PendingRecord> for PendingView {
    fn from(r: &PendingRecord) -> Self {
        let subject = r
            .grant
            .subject
            .iter()
            .map(|a| {
                let attr = serde_json::to_value(a.attr).unwrap_or_default();
                format!("{}={}", attr.as_str().unwrap_or("?"), a.value)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let (serial, reason) = match &r.state {
            PendingState::Issued { serial_hex, .. } => (Some(serial_hex.clone()), None),
            PendingState::Failed { reason } => (None, Some(reason.clone())),
            _ => (None, None),
        };
        Self {
            request_id: r.request_id.clone(),
            transaction_id: r.transaction_id.clone(),
            state: r.state.kind(),
            template: r.template.clone(),
            subject,
            device_id: r.grant.device_id.clone(),
            profile_id: r.grant.profile_id.clone(),
            renewal: r.grant.renewal,
            serial,
            reason,
            attempts: r.attempts,
            created_at: foundation::time::rfc3339(r.created_at),
            created_at_unix: r.created_at,
            updated_at: foundation::time::rfc3339(r.updated_at),
            updated_at_unix: r.updated_at,
        }
    }
}

fn error(status: StatusCode, code: &'static str) -> Response {
    (status, Json(serde_json::json!({ "error": code }))).into_response()
}

fn unavailable(state: &AppState, e: &StoreError) -> Response {
    warn!(error = %e, "pending store unavailable for the admin API");
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    if let Ok(v) = axum::http::HeaderValue::from_str(&state.settings().retry_after_secs.to_string())
    {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    r
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
}

async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    let filter = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => match StateKind::parse(s) {
            Some(k) => Some(k),
            None => return error(StatusCode::BAD_REQUEST, "unknown_state"),
        },
    };
    match state.pending().list(filter, LIST_LIMIT).await {
        Ok(rows) => Json(rows.iter().map(PendingView::from).collect::<Vec<_>>()).into_response(),
        Err(e) => unavailable(&state, &e),
    }
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.pending().get(&id).await {
        Ok(Some(r)) => Json(PendingView::from(&r)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "unknown_request"),
        Err(e) => unavailable(&state, &e),
    }
}

async fn approve(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let moved = state
        .pending()
        .transition(
            &id,
            StateKind::AwaitingApproval,
            &PendingState::QueuedForCa,
            state.now(),
        )
        .await;
    match moved {
        Ok(true) => info!(request_id = %id, "request approved"),
        Ok(false) => {}
        Err(e) => return unavailable(&state, &e),
    }
    let rec = match state.pending().get(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return error(StatusCode::NOT_FOUND, "unknown_request"),
        Err(e) => return unavailable(&state, &e),
    };
    if rec.state == PendingState::Denied {
        return error(StatusCode::CONFLICT, "already_denied");
    }
    // Issue now if the CA is up; otherwise the retry task or the device's next poll will.
    match queue::attempt(&state, rec).await {
        Ok(r) => Json(PendingView::from(&r)).into_response(),
        Err(e) => unavailable(&state, &e),
    }
}

async fn deny(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let moved = state
        .pending()
        .transition(
            &id,
            StateKind::AwaitingApproval,
            &PendingState::Denied,
            state.now(),
        )
        .await;
    match moved {
        Ok(true) => info!(request_id = %id, "request denied"),
        Ok(false) => {}
        Err(e) => return unavailable(&state, &e),
    }
    match state.pending().get(&id).await {
        Ok(Some(mut r)) if r.state == PendingState::Denied => {
            // Owed until the policy module hears; the retry task delivers it otherwise.
            if let Err(e) = queue::deliver(&state, &mut r).await {
                return unavailable(&state, &e);
            }
            Json(PendingView::from(&r)).into_response()
        }
        Ok(Some(_)) => error(StatusCode::CONFLICT, "already_approved"),
        Ok(None) => error(StatusCode::NOT_FOUND, "unknown_request"),
        Err(e) => unavailable(&state, &e),
    }
}
