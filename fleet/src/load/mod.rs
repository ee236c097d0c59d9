//! The light load client (`device-fleet load`, issue 19): measures a SCEP server, not the
//! client. Everything a device computes is done before the timed window ([`prepare`]: keys
//! from the pool, CSR, envelope to the RA, signature; one-time challenges fetched from
//! mscep_admin); the window only POSTs the prebuilt pkiMessages over one keep-alive client,
//! `concurrency` in flight ([`send`]); after it every reply is checked ([`validate`]) and
//! only valid certificates count. The client's and the server's CPU over the window come
//! from `/proc` ([`proc`]).
//!
//! No module here imports one that imports it back: [`proc`], [`prepare`] and [`send`] stand
//! alone, [`validate`] reads the last two, and this one uses all four.

pub mod prepare;
pub mod proc;
pub mod send;
pub mod validate;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use device_agent::ca::{CaInfo, Thumbprint, discover};
use device_agent::error::{Error, Result};
use device_agent::key::KeySpec;
use device_agent::transport::HttpTransport;
use foundation::secret::Secret;
use scep::csr::ChallengePassword;
use serde::Serialize;

use crate::check::CertCheck;
use crate::key_pool::keys;
use crate::latency::{Latency, latency};

/// Where each request's challenge comes from.
#[derive(Clone, Debug)]
pub enum Challenges {
    /// No challenge attribute.
    None,
    /// One static challenge for every request (plain mode).
    Static(Arc<ChallengePassword>),
    /// A one-time challenge per request from NDES's admin page, fetched before the window.
    MscepAdmin {
        /// `/certsrv/mscep_admin/` URL.
        url: String,
        /// Its bearer token.
        token: Secret,
    },
}

/// A load run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// SCEP URL (PKIOperation is appended).
    pub url: String,
    /// Requests (one device key each).
    pub requests: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// CA thumbprint to pin at discovery (hex SHA-1 or SHA-256); `None` trusts GetCACert.
    pub ca_thumbprint: Option<String>,
    /// Directory of pre-generated RSA-2048 keys, filled on first use.
    pub key_pool: Option<PathBuf>,
    /// Device names are `<prefix>-<index>` (the CSR's CN).
    pub prefix: String,
    /// The challenges.
    pub challenges: Challenges,
    /// The server's process id, for its CPU time and peak memory.
    pub server_pid: Option<u32>,
    /// Per-request HTTP timeout.
    pub timeout: Duration,
}

/// What a load run measured (`device-fleet load --json` prints exactly this).
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// Requests sent.
    pub requests: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Seconds building requests and fetching challenges (not timed).
    pub prepare_secs: f64,
    /// Seconds of the timed window.
    pub window_secs: f64,
    /// Seconds checking the replies (not timed).
    pub validate_secs: f64,
    /// Every reply's verdict: valid certificates, and the rest by reason.
    pub certificates: CertCheck,
    /// Valid certificates per second of the window.
    pub valid_per_sec: f64,
    /// Latency of the requests whose certificate passed its checks.
    pub latency: Latency,
    /// The client's CPU seconds in the window (all its threads).
    pub client_cpu_secs: f64,
    /// The client's CPU milliseconds per valid enrollment.
    pub client_cpu_ms_per_valid: f64,
    /// The server's CPU seconds in the window, given its pid.
    pub server_cpu_secs: Option<f64>,
    /// The server's CPU milliseconds per valid enrollment.
    pub server_cpu_ms_per_valid: Option<f64>,
    /// The server's peak resident set after the window (VmHWM), KiB.
    pub server_peak_rss_kib: Option<u64>,
}

impl LoadReport {
    /// The header of [`LoadReport::table_row`].
    pub const TABLE_HEADER: &'static str = "| requests | conc | valid | invalid | valid/s | p50 ms | p90 ms | p99 ms | client CPU ms/enr | server CPU ms/enr | server peak RSS MiB |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

    /// One Markdown table row.
    pub fn table_row(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
        format!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {} | {} |",
            self.requests,
            self.concurrency,
            self.certificates.valid,
            self.certificates.invalid.values().sum::<usize>(),
            self.valid_per_sec,
            self.latency.p50_ms,
            self.latency.p90_ms,
            self.latency.p99_ms,
            self.client_cpu_ms_per_valid,
            opt(self.server_cpu_ms_per_valid),
            self.server_peak_rss_kib
                .map_or("-".to_owned(), |k| (k / 1024).to_string()),
        )
    }
}

/// What the run holds when the window opens.
pub struct Ready {
    /// The one keep-alive client of the window.
    pub http: reqwest::Client,
    /// The requests, in order.
    pub prepared: Vec<prepare::Prepared>,
    /// What discovery learned (recipient, reply signers, CA chain).
    pub ca: Arc<CaInfo>,
    /// Seconds it took to get here.
    pub prepare_secs: f64,
}

/// The whole run: prepare, window, validate.
pub async fn run(options: &LoadOptions) -> Result<LoadReport> {
    let Ready {
        http,
        mut prepared,
        ca,
        prepare_secs,
    } = prepare_run(options).await?;
    let bodies: Vec<Vec<u8>> = prepared
        .iter_mut()
        .map(|p| std::mem::take(&mut p.der))
        .collect();

    let (cpu0, server0) = (proc::cpu_secs(None), proc::cpu_secs(options.server_pid));
    let start = Instant::now();
    let replies = send::send_all(&http, &options.url, bodies, options.concurrency).await;
    let window_secs = start.elapsed().as_secs_f64();
    let (cpu1, server1) = (proc::cpu_secs(None), proc::cpu_secs(options.server_pid));
    let server_peak_rss_kib =
        proc::peak_rss_kib(options.server_pid).filter(|_| options.server_pid.is_some());

    let checked = Instant::now();
    let (certificates, ok) = tokio::task::spawn_blocking(move || {
        let verdict = validate::validate(&ca, &prepared, &replies);
        (verdict, replies)
    })
    .await
    .map_err(|e| Error::State(format!("validate: {e}")))
    .map(|((check, ok), replies)| {
        let mut ms: Vec<f64> = replies
            .iter()
            .zip(&ok)
            .filter(|(_, ok)| **ok)
            .map(|(r, _)| r.latency.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        (check, ms)
    })?;
    let validate_secs = checked.elapsed().as_secs_f64();
    let valid = certificates.valid;
    let per_valid = |secs: f64| {
        if valid > 0 {
            secs * 1000.0 / valid as f64
        } else {
            0.0
        }
    };
    let client_cpu_secs = cpu1.zip(cpu0).map_or(0.0, |(b, a)| b - a);
    let server_cpu_secs = server1.zip(server0).map(|(b, a)| b - a);
    Ok(LoadReport {
        requests: options.requests,
        concurrency: options.concurrency,
        prepare_secs,
        window_secs,
        validate_secs,
        valid_per_sec: if window_secs > 0.0 {
            valid as f64 / window_secs
        } else {
            0.0
        },
        latency: latency(&ok),
        certificates,
        client_cpu_secs,
        client_cpu_ms_per_valid: per_valid(client_cpu_secs),
        server_cpu_ms_per_valid: server_cpu_secs.map(per_valid),
        server_cpu_secs,
        server_peak_rss_kib,
    })
}

/// Everything before the window: the client, discovery, keys, challenges, requests.
pub async fn prepare_run(options: &LoadOptions) -> Result<Ready> {
    let t0 = Instant::now();
    let http = device_agent::transport::http_client_builder(options.timeout)
        .pool_max_idle_per_host(options.concurrency.max(1))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| Error::Transport(e.to_string()))?;
    let pin = options
        .ca_thumbprint
        .as_deref()
        .map(Thumbprint::parse)
        .transpose()?;
    let transport = HttpTransport::with_client(http.clone());
    let ca = Arc::new(discover(&transport, &options.url, pin.as_ref()).await?);
    let (keys, _) = keys(
        KeySpec::Rsa(2048),
        options.requests,
        options.key_pool.as_deref(),
    )
    .await?;
    let challenges = match &options.challenges {
        Challenges::None => Vec::new(),
        Challenges::Static(c) => vec![ChallengePassword::clone(c)],
        Challenges::MscepAdmin { url, token } => {
            prepare::mscep_admin_challenges(&http, url, token, options.requests).await?
        }
    };
    let prepared =
        prepare::build_all(ca.clone(), &options.prefix, keys, Arc::new(challenges)).await?;
    Ok(Ready {
        http,
        prepared,
        ca,
        prepare_secs: t0.elapsed().as_secs_f64(),
    })
}
