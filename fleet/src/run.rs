//! The fleet run: N simulated devices enrolled concurrently, to load-test a SCEP deployment.
//!
//! Two phases, timed apart: keys first ([`crate::key_pool`]), then the enrollments, at most
//! `concurrency` in flight. Each device has its own state directory under `state_root`. After
//! the timed phase every installed certificate is checked ([`crate::check`]) and, when asked,
//! the enrolled devices renew all at once ([`crate::herd`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use device_agent::agent::{Agent, SyncOptions};
use device_agent::csr::CsrSpec;
use device_agent::enroll::{EnrollConfig, enroll};
use device_agent::error::{Error, Result};
use device_agent::key::{DeviceKey, KeySpec};
use device_agent::mdm::{DeviceRegistration, MdmClient, SecretString};
use device_agent::state::{DEFAULT_SLOT, DeviceDir};
use device_agent::transport::ScepTransport;
use scep::csr::ChallengePassword;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::check::{CertCheck, check};
use crate::herd::{HerdOptions, HerdReport};
use crate::key_pool::keys;
use crate::latency::{Latency, latency};

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
            config.csr = CsrSpec::common_name(name);
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
