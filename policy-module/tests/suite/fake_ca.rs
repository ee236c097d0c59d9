//! A stand-in for ca-mock's revocation API on 127.0.0.1, and an in-process fake revoker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use policy_module::outbox::{RevokeAck, RevokeError, Revoker};

pub const CA_TOKEN: &str = "ca-test-token";

/// What the fake CA answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Ok,
    Unavailable,
    UnknownSerial,
    Unauthorized,
}

#[derive(Default)]
pub struct Calls {
    /// serial -> number of revocations that changed state (first) or were repeats.
    pub revoked: HashMap<String, (String, u32)>,
    pub attempts: u32,
    /// Every delivery, in order: `revoke <serial> <reason>` or `release <serial>`.
    pub log: Vec<String>,
}

#[derive(Clone)]
pub struct FakeCa {
    pub mode: Arc<Mutex<Mode>>,
    pub calls: Arc<Mutex<Calls>>,
}

impl FakeCa {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode: Arc::new(Mutex::new(mode)),
            calls: Arc::new(Mutex::new(Calls::default())),
        }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// (serial, reason, times revoked)
    pub fn revoked(&self) -> Vec<(String, String, u32)> {
        let calls = self.calls.lock().unwrap();
        let mut v: Vec<_> = calls
            .revoked
            .iter()
            .map(|(s, (r, n))| (s.clone(), r.clone(), *n))
            .collect();
        v.sort();
        v
    }

    fn answer(&self, serial: &str, reason: &str) -> Result<RevokeAck, (StatusCode, &'static str)> {
        let mode = *self.mode.lock().unwrap();
        let mut calls = self.calls.lock().unwrap();
        calls.attempts += 1;
        match mode {
            Mode::Unavailable => Err((StatusCode::SERVICE_UNAVAILABLE, "unavailable")),
            Mode::UnknownSerial => Err((StatusCode::NOT_FOUND, "unknown_serial")),
            Mode::Unauthorized => Err((StatusCode::UNAUTHORIZED, "unauthorized")),
            Mode::Ok => {
                let entry = calls
                    .revoked
                    .entry(serial.to_string())
                    .or_insert((reason.to_string(), 0));
                entry.1 += 1;
                let already_revoked = entry.1 > 1;
                calls.log.push(format!("revoke {serial} {reason}"));
                Ok(RevokeAck {
                    revoked_at: 1_800_000_100,
                    already_revoked,
                })
            }
        }
    }

    /// The deliveries so far, in order.
    pub fn log(&self) -> Vec<String> {
        self.calls.lock().unwrap().log.clone()
    }

    /// Releases a hold as ca-mock does: the certificate is good again.
    fn release_answer(&self, serial: &str) -> Result<(), RevokeError> {
        let mode = *self.mode.lock().unwrap();
        let mut calls = self.calls.lock().unwrap();
        calls.attempts += 1;
        match mode {
            Mode::Unavailable => Err(RevokeError::Transient("unavailable".into())),
            Mode::UnknownSerial => Err(RevokeError::Permanent("unknown_serial".into())),
            Mode::Unauthorized => Err(RevokeError::Permanent("unauthorized".into())),
            Mode::Ok => {
                calls.revoked.remove(serial);
                calls.log.push(format!("release {serial}"));
                Ok(())
            }
        }
    }

    /// Serves `POST /api/v1/revocations` on `listener`.
    pub fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let app = Router::new()
            .route("/api/v1/revocations", post(revoke))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
    }
}

async fn revoke(
    State(ca): State<FakeCa>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Result<Json<serde_json::Value>, (StatusCode, Json<serde_json::Value>)> {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {CA_TOKEN}"));
    if !authorized {
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "unauthorized"})),
        ));
    }
    let serial = body["serial"].as_str().unwrap_or_default().to_string();
    let reason = body["reason"].as_str().unwrap_or_default().to_string();
    match ca.answer(&serial, &reason) {
        Ok(ack) => Ok(Json(serde_json::json!({
            "serial": serial, "reason": reason,
            "revoked_at": foundation::time::rfc3339(ack.revoked_at),
            "revoked_at_unix": ack.revoked_at, "already_revoked": ack.already_revoked
        }))),
        Err((status, code)) => Err((status, Json(serde_json::json!({"error": code})))),
    }
}

#[async_trait::async_trait]
impl Revoker for FakeCa {
    async fn revoke(&self, serial: &str, reason: &str) -> Result<RevokeAck, RevokeError> {
        self.answer(serial, reason).map_err(|(status, code)| {
            if status.is_server_error() {
                RevokeError::Transient(code.into())
            } else {
                RevokeError::Permanent(code.into())
            }
        })
    }

    async fn release(&self, serial: &str) -> Result<(), RevokeError> {
        self.release_answer(serial)
    }
}
