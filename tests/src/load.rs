//! Bounded enrollment load whose clients resend their identical request (same transactionID,
//! same CSR) until they get an answer, for the `kill -9` tests: the test kills and restarts
//! services while [`RetryingLoad`] runs, waiting with [`RetryingLoad::wait_for`] until a share
//! of the clients has finished so each fault lands under load.
//!
//! A client that meets a dead server, a 503 or PENDING waits and resends, alternating over
//! the SCEP endpoints it was given; a FAILURE ends it (the test decides whether that is
//! allowed). The number of attempts is bounded, so a server that never recovers fails the
//! test instead of hanging it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use openssl::x509::X509;
use scep::client::CertRep;

use crate::RawScep;
use crate::remote::Enrollment;

/// Resends per client before it gives up (about a minute at [`RESEND_PAUSE`]).
pub const MAX_ATTEMPTS: u32 = 240;
/// Pause between resends.
pub const RESEND_PAUSE: Duration = Duration::from_millis(250);

/// What one client ended with.
#[derive(Debug)]
pub struct Outcome {
    /// The issued certificate's serial (normalized hex).
    pub serial: String,
    /// The issued certificate, DER, as the client received it.
    pub der: Vec<u8>,
    /// How many times the client sent its request.
    pub attempts: u32,
}

/// Clients enrolling concurrently; see the module docs.
pub struct RetryingLoad {
    total: usize,
    done: Arc<AtomicUsize>,
    clients: tokio::task::JoinSet<(usize, Result<Outcome, String>)>,
}

impl RetryingLoad {
    /// Starts one client per enrollment, at most `concurrency` at a time. Client `i`'s
    /// attempt `a` goes to endpoint `(i + a) % endpoints.len()`.
    pub fn start(
        enrollments: Vec<Enrollment>,
        endpoints: Vec<Arc<RawScep>>,
        concurrency: usize,
    ) -> Self {
        let total = enrollments.len();
        let done = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut clients = tokio::task::JoinSet::new();
        for (i, enrollment) in enrollments.into_iter().enumerate() {
            let (endpoints, done, gate) = (endpoints.clone(), done.clone(), gate.clone());
            clients.spawn(async move {
                let outcome = match gate.acquire_owned().await {
                    Ok(_slot) => run_client(i, &enrollment, &endpoints).await,
                    Err(_) => Err("semaphore closed".to_owned()),
                };
                done.fetch_add(1, Ordering::SeqCst);
                (i, outcome)
            });
        }
        Self {
            total,
            done,
            clients,
        }
    }

    /// How many clients have finished (with a certificate or not).
    pub fn finished(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits until `n` clients (at most all) have finished, or two minutes have passed (the
    /// fault then lands later than planned; [`RetryingLoad::finish`] reports what went wrong).
    pub async fn wait_for(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while self.finished() < n.min(self.total) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every client's outcome, in client order; an error names the first client that did not
    /// get a certificate.
    pub async fn finish(mut self) -> Result<Vec<Outcome>> {
        let mut outcomes: Vec<Option<Outcome>> = (0..self.total).map(|_| None).collect();
        while let Some(joined) = self.clients.join_next().await {
            let (i, outcome) = joined.context("a load client panicked")?;
            let outcome = outcome.map_err(|e| anyhow!("client {i}: {e}"))?;
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .enumerate()
            .map(|(i, o)| o.with_context(|| format!("client {i} never reported")))
            .collect()
    }
}

async fn run_client(
    i: usize,
    enrollment: &Enrollment,
    endpoints: &[Arc<RawScep>],
) -> Result<Outcome, String> {
    if endpoints.is_empty() {
        return Err("no SCEP endpoint".into());
    }
    for attempt in 0..MAX_ATTEMPTS {
        let scep = &endpoints[(i + attempt as usize) % endpoints.len()];
        match enrollment.send(scep).await {
            Ok(rep @ CertRep::Success(_)) => {
                let cert = issued_to(&rep, enrollment).map_err(|e| format!("{e:#}"))?;
                return Ok(Outcome {
                    serial: crate::serial_of(&cert).map_err(|e| format!("{e:#}"))?,
                    der: cert.to_der().map_err(|e| e.to_string())?,
                    attempts: attempt + 1,
                });
            }
            Ok(CertRep::Failure { fail_info, text }) => {
                return Err(format!("FAILURE {fail_info:?} {text:?}"));
            }
            // A dead server, a 503 or PENDING: resend the identical request.
            Ok(CertRep::Pending) | Err(_) => tokio::time::sleep(RESEND_PAUSE).await,
        }
    }
    Err(format!("gave up after {MAX_ATTEMPTS} attempts"))
}

/// The certificate of a SUCCESS that carries the enrollment's key.
pub fn issued_to(rep: &CertRep, enrollment: &Enrollment) -> Result<X509> {
    let CertRep::Success(certs) = rep else {
        return Err(anyhow!("expected SUCCESS, got {rep:?}"));
    };
    for c in &certs.certificates {
        if c.public_key()?.public_eq(enrollment.key.pkey()) {
            return Ok(c.clone());
        }
    }
    Err(anyhow!("no certificate for the request's key"))
}
