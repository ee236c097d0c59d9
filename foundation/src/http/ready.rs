//! `/readyz`, alike on every service: each dependency is probed concurrently under its own
//! [`CHECK_TIMEOUT`], so the answer comes within 2 s even when a store hangs (a stopped
//! PostgreSQL makes a pool wait up to its acquire timeout). 200 when every check passed, else
//! 503; the JSON body names each check and what failed, never why (details go to the log,
//! the route is unauthenticated).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use http::StatusCode;
use serde::Serialize;

/// How long one check may take; checks run concurrently, so this bounds the whole answer.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(1500);

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The dependency answered as expected.
    Ok,
    /// It answered with an error, or could not be reached.
    Failed,
    /// It did not answer within [`CHECK_TIMEOUT`].
    TimedOut,
}

/// One named check and its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked: `store`, `ca`, `policy`, `crl_file`, ...
    pub name: &'static str,
    /// How it went.
    pub outcome: Outcome,
}

/// Runs `probe` under [`CHECK_TIMEOUT`]; a failure is logged (warn) with its error, which
/// stays out of the response.
pub async fn check<E: Display>(
    name: &'static str,
    probe: impl Future<Output = Result<(), E>>,
) -> Check {
    let outcome = match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(e)) => {
            tracing::warn!(check = name, error = %e, "readiness check failed");
            Outcome::Failed
        }
        Err(_) => {
            tracing::warn!(check = name, timeout = ?CHECK_TIMEOUT, "readiness check timed out");
            Outcome::TimedOut
        }
    };
    Check { name, outcome }
}

/// The `/readyz` body: `{"status":"ready"|"not_ready","failed":[...],"checks":{name: outcome}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// The names of the checks that did not pass.
    pub failed: Vec<&'static str>,
    /// Every check's outcome.
    pub checks: BTreeMap<&'static str, Outcome>,
}

impl Readiness {
    /// The verdict over `checks`.
    pub fn of(checks: impl IntoIterator<Item = Check>) -> Self {
        let checks: BTreeMap<_, _> = checks.into_iter().map(|c| (c.name, c.outcome)).collect();
        let failed: Vec<_> = checks
            .iter()
            .filter(|(_, o)| **o != Outcome::Ok)
            .map(|(n, _)| *n)
            .collect();
        Self {
            status: if failed.is_empty() {
                "ready"
            } else {
                "not_ready"
            },
            failed,
            checks,
        }
    }

    /// 200 when ready, 503 otherwise.
    pub fn status_code(&self) -> StatusCode {
        if self.failed.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_hung_probe_times_out_and_a_failed_one_is_named() {
        let hung = check("store", std::future::pending::<Result<(), String>>()).await;
        assert_eq!(hung.outcome, Outcome::TimedOut);
        let failed = check("ca", async { Err::<(), _>("refused") }).await;
        let ok = check("policy", async { Ok::<(), String>(()) }).await;
        let r = Readiness::of([hung, failed, ok]);
        assert_eq!(r.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.failed, ["ca", "store"]);
        assert_eq!(r.checks["policy"], Outcome::Ok);
        let all_ok = Readiness::of([ok]);
        assert_eq!(all_ok.status_code(), StatusCode::OK);
        assert_eq!(all_ok.status, "ready");
    }
}
