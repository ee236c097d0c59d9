//! The renewal herd (reliability catalogue L5): a fleet enrolled together reaches its renewal
//! window together, and every device renews at once against a server with admission control.
//!
//! Each device syncs with a forced renewal (its check-in, then a RenewalReq signed by its
//! current certificate; 503 answers are retried after `Retry-After` with jitter, per the
//! profile's retry count). A device whose run ends without a new certificate (retries used
//! up) tries again in the next round, as a real device does at its next check-in, resuming
//! its transaction. The herd is counted through the transport: every PKIOperation sent, every
//! 503 and whether it carried `Retry-After`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::Semaphore;

use device_agent::agent::{Agent, SyncOptions};
use device_agent::enroll::{Enrolled, now};
use device_agent::error::{Error, Result};
use device_agent::key::DeviceKey;
use device_agent::mdm::MdmClient;
use device_agent::state::DeviceDir;
use device_agent::transport::{ScepRequest, ScepResponse, ScepTransport};

use crate::latency::{Latency, latency};

/// How the herd runs.
#[derive(Clone, Copy, Debug)]
pub struct HerdOptions {
    /// Devices renewing at the same moment (the herd; bounded by file descriptors only).
    pub concurrency: usize,
    /// Rounds at most: devices not renewed in one round retry in the next.
    pub rounds: usize,
    /// Pause between rounds (the "next check-in").
    pub round_pause: Duration,
}

/// What the herd did (`herd` in the fleet report).
#[derive(Clone, Debug, Default, Serialize)]
pub struct HerdReport {
    /// Devices that took part (the enrolled ones).
    pub devices: usize,
    /// Devices with a new certificate, valid now, that differs from the one they had.
    pub renewed: usize,
    /// Devices without one after the last round.
    pub not_renewed: usize,
    /// Renewed devices per round.
    pub renewed_per_round: Vec<usize>,
    /// Device runs that ended without a new certificate, by reason, over all rounds (a device
    /// counts once per round it failed; the next round tries it again).
    pub ended_without_certificate: BTreeMap<String, usize>,
    /// PKIOperation requests sent (first tries, retries and polls).
    pub pki_operations: usize,
    /// PKIOperations answered 503.
    pub answered_503: usize,
    /// Of which carried `Retry-After`.
    pub retry_after: usize,
    /// Seconds from the first renewal to the last.
    pub renew_phase_secs: f64,
    /// Renewals per second of that phase.
    pub renewals_per_sec: f64,
    /// Per-device time to its new certificate, across rounds.
    pub latency: Latency,
    /// Earliest NotAfter of a renewed certificate minus the end of the herd, seconds (> 0:
    /// every renewed device holds a certificate valid past the herd).
    pub min_remaining_validity_secs: i64,
}

/// Counts what the herd sends and what the server answers.
struct Counting {
    inner: Arc<dyn ScepTransport>,
    pki: AtomicUsize,
    unavailable: AtomicUsize,
    retry_after: AtomicUsize,
}

#[async_trait]
impl ScepTransport for Counting {
    async fn send(&self, url: &str, request: &ScepRequest) -> Result<ScepResponse> {
        let pki = matches!(
            request,
            ScepRequest::PkiOperationPost(_) | ScepRequest::PkiOperationGet(_)
        );
        let resp = self.inner.send(url, request).await?;
        if pki {
            self.pki.fetch_add(1, Ordering::Relaxed);
            if resp.status == 503 {
                self.unavailable.fetch_add(1, Ordering::Relaxed);
                if resp.retry_after.is_some() {
                    self.retry_after.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(resp)
    }
}

/// Serial (hex) and NotAfter of the first installed certificate of a device.
fn installed_leaf(dir: &Path) -> Option<(String, i64)> {
    let device = DeviceDir::open(dir).ok()?;
    for slot in device.slots().ok()? {
        if let Ok(Some((_, chain))) = slot.installed()
            && let Some(leaf) = chain.first()
        {
            let described = Enrolled::describe(leaf, "", 0).ok()?;
            return Some((described.serial_hex, described.not_after_unix));
        }
    }
    None
}

/// Renews every device in `names` (enrolled under `state_root`) at once; `keys` are the new
/// keys, one per device, in order.
pub async fn run(
    scep: Arc<dyn ScepTransport>,
    http: reqwest::Client,
    mdm_url: &str,
    state_root: &Path,
    names: Vec<String>,
    keys: Vec<DeviceKey>,
    options: HerdOptions,
) -> Result<HerdReport> {
    let counting = Arc::new(Counting {
        inner: scep,
        pki: AtomicUsize::new(0),
        unavailable: AtomicUsize::new(0),
        retry_after: AtomicUsize::new(0),
    });
    let mut before = Vec::with_capacity(names.len());
    for name in &names {
        let leaf = installed_leaf(&state_root.join(name))
            .ok_or(Error::Missing("an enrolled device has no certificate"))?;
        before.push(leaf.0);
    }
    let mut waiting: Vec<(usize, Option<DeviceKey>)> = keys
        .into_iter()
        .map(Some)
        .enumerate()
        .take(names.len())
        .collect();
    let mut report = HerdReport {
        devices: names.len(),
        ..HerdReport::default()
    };
    let mut latencies = Vec::new();
    let mut min_not_after = i64::MAX;
    let start = Instant::now();
    for round in 0..options.rounds.max(1) {
        if round > 0 {
            tokio::time::sleep(options.round_pause).await;
        }
        let gate = Arc::new(Semaphore::new(options.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, key) in waiting.drain(..) {
            let dir = DeviceDir::open(state_root.join(&names[i]))?;
            let mdm = MdmClient::new(http.clone(), mdm_url);
            let agent = Agent::new(dir, mdm, counting.clone() as Arc<dyn ScepTransport>);
            let gate = gate.clone();
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let outcome = agent
                    .sync(SyncOptions {
                        force_renew: true,
                        key,
                    })
                    .await;
                // The run's error, or the first of its profile's enrollment errors.
                let failure = match outcome {
                    Err(e) => {
                        tracing::info!(error = %e, "renewal run ended without a certificate");
                        Some(e.reason())
                    }
                    Ok(summary) => summary.error_reasons.into_iter().next(),
                };
                (i, failure)
            });
        }
        let mut renewed_now = 0;
        while let Some(done) = tasks.join_next().await {
            let (i, failure) = done.map_err(|e| Error::State(format!("herd task: {e}")))?;
            match installed_leaf(&state_root.join(&names[i])) {
                Some((serial, not_after)) if serial != before[i] && not_after > now() => {
                    renewed_now += 1;
                    latencies.push(start.elapsed().as_secs_f64() * 1000.0);
                    min_not_after = min_not_after.min(not_after);
                }
                // Not yet: the next round resumes or starts its renewal (a new key then).
                _ => {
                    let reason = failure.unwrap_or_else(|| "no_new_certificate".into());
                    *report.ended_without_certificate.entry(reason).or_insert(0) += 1;
                    waiting.push((i, None));
                }
            }
        }
        report.renewed_per_round.push(renewed_now);
        if waiting.is_empty() {
            break;
        }
    }
    report.renew_phase_secs = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    report.renewed = latencies.len();
    report.not_renewed = report.devices - report.renewed;
    report.latency = latency(&latencies);
    if report.renew_phase_secs > 0.0 {
        report.renewals_per_sec = report.renewed as f64 / report.renew_phase_secs;
    }
    report.min_remaining_validity_secs = if report.renewed > 0 {
        min_not_after - now()
    } else {
        0
    };
    report.pki_operations = counting.pki.load(Ordering::Relaxed);
    report.answered_503 = counting.unavailable.load(Ordering::Relaxed);
    report.retry_after = counting.retry_after.load(Ordering::Relaxed);
    Ok(report)
}
