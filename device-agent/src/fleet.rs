//! Fleet mode: N simulated devices enrolled concurrently, to load-test a SCEP deployment.
//!
//! Two phases, timed apart (RSA key generation costs ~100 ms of CPU per 2048-bit key and would
//! otherwise dominate what is measured): keys first, from a key pool directory (generated
//! once, reused across runs) or generated in parallel; then the enrollments, at most
//! `concurrency` in flight. Each device has its own state directory under `state_root`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scep::csr::ChallengePassword;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::agent::{Agent, SyncOptions};
use crate::enroll::{EnrollConfig, enroll};
use crate::error::{Error, Result};
use crate::fleet_check::{CertCheck, check};
use crate::herd::{HerdOptions, HerdReport};
use crate::key::{DeviceKey, KeySpec, scrub};
use crate::mdm::{DeviceRegistration, MdmClient, SecretString};
use crate::state::{DEFAULT_SLOT, DeviceDir};
use crate::transport::ScepTransport;

/// How the simulated devices get their certificates.
#[derive(Clone, Debug)]
pub enum FleetMode {
    /// Plain SCEP: one URL, a static challenge, CN = device name.
    Plain {
        /// Enrollment settings (the CN is replaced per device).
        config: EnrollConfig,
        /// The static challenge.
        challenge: Option<Arc<ChallengePassword>>,
    },
    /// MDM: each device is registered, added to `group`, checked in and enrolled per its
    /// profiles.
    Mdm {
        /// MDM base URL.
        mdm_url: String,
        /// Admin token (registration and group membership).
        admin_token: SecretString,
        /// Group the profiles are assigned to.
        group: String,
        /// Device platform.
        platform: String,
    },
}

/// A fleet run.
#[derive(Clone, Debug)]
pub struct FleetOptions {
    /// How many devices.
    pub devices: usize,
    /// Enrollments in flight at most.
    pub concurrency: usize,
    /// Key type of every device.
    pub key: KeySpec,
    /// Directory of pre-generated keys (`key-00000.pem`, ...), filled as needed.
    pub key_pool: Option<PathBuf>,
    /// Parent of the per-device state directories.
    pub state_root: PathBuf,
    /// Device names are `<prefix>-<index>`.
    pub prefix: String,
    /// Plain or MDM.
    pub mode: FleetMode,
    /// MDM mode: after enrolling, every enrolled device renews at once (the L5 herd).
    pub herd: Option<HerdOptions>,
}

/// Called as each device finishes (progress display).
pub type OnResult = Arc<dyn Fn(&DeviceResult) + Send + Sync>;

/// One device's outcome.
#[derive(Clone, Debug)]
pub struct DeviceResult {
    /// Device name.
    pub name: String,
    /// Wall time of its enrollment (registration and check-ins included in MDM mode).
    pub latency: Duration,
    /// `None` on success, else the failure reason label.
    pub failure: Option<String>,
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// The summary of a run (`--json` prints exactly this).
#[derive(Clone, Debug, Default, Serialize)]
pub struct FleetReport {
    /// Devices attempted.
    pub devices: usize,
    /// Enrolled.
    pub succeeded: usize,
    /// Not enrolled.
    pub failed: usize,
    /// Failures by reason label.
    pub failures: BTreeMap<String, usize>,
    /// Concurrency bound.
    pub concurrency: usize,
    /// Key type.
    pub key: String,
    /// Seconds spent obtaining keys (pool or generation), not part of the rate.
    pub key_phase_secs: f64,
    /// Keys generated in the key phase (0 when the pool had them all).
    pub keys_generated: usize,
    /// Seconds of the enrollment phase.
    pub enroll_phase_secs: f64,
    /// Successful enrollments per second of the enrollment phase.
    pub enrollments_per_sec: f64,
    /// Per-device latency (successful devices).
    pub latency: Latency,
    /// The installed certificates, checked after the timed phase (signature, key, serial).
    pub certificates: CertCheck,
    /// Certificates that passed the check, per second of the enrollment phase.
    pub valid_per_sec: f64,
    /// The renewal herd, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub herd: Option<HerdReport>,
}

/// Obtain `n` keys of `spec`: from `pool` (generating and saving the missing ones, 0600), or
/// generated in memory; in parallel on every core either way.
pub async fn keys(spec: KeySpec, n: usize, pool: Option<&Path>) -> Result<(Vec<DeviceKey>, usize)> {
    let workers = std::thread::available_parallelism().map_or(2, |p| p.get());
    let pool_dir = pool.map(|p| p.join(spec.to_string()));
    if let Some(dir) = &pool_dir {
        DeviceDir::open(dir)?;
    }
    let generated = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    let chunk = n.div_ceil(workers.max(1)).max(1);
    for start in (0..n).step_by(chunk) {
        let end = (start + chunk).min(n);
        let dir = pool_dir.clone();
        let generated = generated.clone();
        handles.push(tokio::task::spawn_blocking(
            move || -> Result<Vec<DeviceKey>> {
                (start..end)
                    .map(|i| pooled_key(spec, dir.as_deref(), i, &generated))
                    .collect()
            },
        ));
    }
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.extend(h.await.map_err(|e| Error::Crypto(e.to_string()))??);
    }
    Ok((out, generated.load(std::sync::atomic::Ordering::Relaxed)))
}

fn pooled_key(
    spec: KeySpec,
    dir: Option<&Path>,
    i: usize,
    generated: &std::sync::atomic::AtomicUsize,
) -> Result<DeviceKey> {
    let Some(dir) = dir else {
        generated.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return DeviceKey::generate(spec);
    };
    let path = dir.join(format!("key-{i:05}.pem"));
    if let Ok(pem) = std::fs::read(&path) {
        let key = DeviceKey::from_pem(&pem);
        scrub(pem);
        if let Ok(k) = key
            && k.spec().ok() == Some(spec)
        {
            return Ok(k);
        }
    }
    let key = DeviceKey::generate(spec)?;
    generated.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pem = key.to_pkcs8_pem()?;
    let written = write_0600(&path, &pem);
    scrub(pem);
    written?;
    Ok(key)
}

fn write_0600(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let tmp = path.with_extension("tmp");
    let mut f = opts.open(&tmp).map_err(|e| Error::state("key pool", e))?;
    f.write_all(bytes)
        .map_err(|e| Error::state("key pool", e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::state("key pool", e))
}

/// Run the fleet; `on_result` is called as each device finishes (progress display).
pub async fn run(
    scep: Arc<dyn ScepTransport>,
    http: reqwest::Client,
    options: &FleetOptions,
    on_result: OnResult,
) -> Result<FleetReport> {
    let key_start = Instant::now();
    // With a herd, the renewal keys come from the same pool, after the enrollment keys.
    let wanted = options.devices * if options.herd.is_some() { 2 } else { 1 };
    let (mut keys, keys_generated) = keys(options.key, wanted, options.key_pool.as_deref()).await?;
    let renewal_keys = keys.split_off(options.devices.min(keys.len()));
    let key_phase_secs = key_start.elapsed().as_secs_f64();

    let gate = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for (i, key) in keys.into_iter().enumerate() {
        let permit = gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::State(e.to_string()))?;
        let (scep, http, options, on_result) = (
            scep.clone(),
            http.clone(),
            options.clone(),
            on_result.clone(),
        );
        tasks.spawn(async move {
            let name = format!("{}-{i:05}", options.prefix);
            let t0 = Instant::now();
            let outcome = one_device(scep, http, &options, &name, key).await;
            drop(permit);
            let result = DeviceResult {
                name,
                latency: t0.elapsed(),
                failure: outcome.err().map(|e| {
                    tracing::warn!(error = %e, "device failed");
                    e.reason()
                }),
            };
            on_result(&result);
            result
        });
    }
    let mut results = Vec::with_capacity(options.devices);
    while let Some(r) = tasks.join_next().await {
        results.push(r.map_err(|e| Error::State(format!("device task: {e}")))?);
    }
    let enroll_phase_secs = start.elapsed().as_secs_f64();
    let mut report = summarize(
        &results,
        options,
        key_phase_secs,
        keys_generated,
        enroll_phase_secs,
    );
    // Outside the timed phase: every certificate a device reported is read back and checked.
    let enrolled: Vec<String> = results
        .iter()
        .filter(|r| r.failure.is_none())
        .map(|r| r.name.clone())
        .collect();
    let root = options.state_root.clone();
    report.certificates = tokio::task::spawn_blocking(move || check(&root, &enrolled))
        .await
        .map_err(|e| Error::State(format!("certificate check: {e}")))?;
    if enroll_phase_secs > 0.0 {
        report.valid_per_sec = report.certificates.valid as f64 / enroll_phase_secs;
    }
    if let (Some(herd), FleetMode::Mdm { mdm_url, .. }) = (options.herd, &options.mode) {
        let names: Vec<String> = results
            .iter()
            .filter(|r| r.failure.is_none())
            .map(|r| r.name.clone())
            .collect();
        report.herd = Some(
            crate::herd::run(
                scep,
                http,
                mdm_url,
                &options.state_root,
                names,
                renewal_keys,
                herd,
            )
            .await?,
        );
    }
    Ok(report)
}

async fn one_device(
    scep: Arc<dyn ScepTransport>,
    http: reqwest::Client,
    options: &FleetOptions,
    name: &str,
    key: DeviceKey,
) -> Result<()> {
    let dir = DeviceDir::open(options.state_root.join(name))?;
    match &options.mode {
        FleetMode::Plain { config, challenge } => {
            let mut config = config.clone();
            config.csr = crate::csr::CsrSpec::common_name(name);
            let slot = dir.slot(DEFAULT_SLOT)?;
            enroll(
                scep.as_ref(),
                &slot,
                &config,
                challenge.as_deref(),
                Some(key),
            )
            .await?;
            Ok(())
        }
        FleetMode::Mdm {
            mdm_url,
            admin_token,
            group,
            platform,
        } => {
            let mdm = MdmClient::new(http, mdm_url);
            let registration = DeviceRegistration {
                id: Some(name.to_owned()),
                name: name.to_owned(),
                platform: platform.clone(),
                serial_number: Some(format!("SN-{name}")),
                owner_upn: Some(format!("{name}@fleet.example")),
                owner_email: Some(format!("{name}@fleet.example")),
            };
            mdm.register(&dir, admin_token, &registration).await?;
            mdm.add_to_group(admin_token, group, name).await?;
            let agent = Agent::new(dir, mdm, scep);
            let summary = agent
                .sync(SyncOptions {
                    force_renew: false,
                    key: Some(key),
                })
                .await?;
            if let Some(e) = summary.errors.first() {
                return Err(Error::Protocol(e.message.clone()));
            }
            if summary.installed.is_empty() {
                return Err(Error::Missing("no profile targets the device"));
            }
            Ok(())
        }
    }
}

fn summarize(
    results: &[DeviceResult],
    options: &FleetOptions,
    key_phase_secs: f64,
    keys_generated: usize,
    enroll_phase_secs: f64,
) -> FleetReport {
    let mut failures = BTreeMap::new();
    let mut ok_latencies: Vec<f64> = Vec::new();
    for r in results {
        match &r.failure {
            None => ok_latencies.push(r.latency.as_secs_f64() * 1000.0),
            Some(reason) => *failures.entry(reason.clone()).or_insert(0) += 1,
        }
    }
    ok_latencies.sort_by(f64::total_cmp);
    let succeeded = ok_latencies.len();
    FleetReport {
        devices: results.len(),
        succeeded,
        failed: results.len() - succeeded,
        failures,
        concurrency: options.concurrency,
        key: options.key.to_string(),
        key_phase_secs,
        keys_generated,
        enroll_phase_secs,
        enrollments_per_sec: if enroll_phase_secs > 0.0 {
            succeeded as f64 / enroll_phase_secs
        } else {
            0.0
        },
        latency: latency(&ok_latencies),
        certificates: CertCheck::default(),
        valid_per_sec: 0.0,
        herd: None,
    }
}

/// Nearest-rank percentiles of sorted values.
pub fn latency(sorted_ms: &[f64]) -> Latency {
    let pick = |p: f64| {
        if sorted_ms.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * sorted_ms.len() as f64).ceil() as usize;
        sorted_ms[rank.clamp(1, sorted_ms.len()) - 1]
    };
    Latency {
        p50_ms: pick(50.0),
        p90_ms: pick(90.0),
        p99_ms: pick(99.0),
        max_ms: sorted_ms.last().copied().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let l = latency(&v);
        assert_eq!(
            (l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(latency(&[]), Latency::default());
        assert_eq!(latency(&[7.0]).p99_ms, 7.0);
    }

    #[tokio::test]
    async fn a_key_pool_is_filled_once_then_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let (first, made) = keys(KeySpec::EcP256, 5, Some(tmp.path())).await.unwrap();
        assert_eq!((first.len(), made), (5, 5));
        let (again, made) = keys(KeySpec::EcP256, 6, Some(tmp.path())).await.unwrap();
        assert_eq!(made, 1, "only the missing key is generated");
        for (a, b) in first.iter().zip(&again) {
            assert_eq!(a.public_key_der().unwrap(), b.public_key_der().unwrap());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let f = tmp.path().join("ec256/key-00000.pem");
            assert_eq!(
                std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
