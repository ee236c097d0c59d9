//! The sections of `lab.toml` (the `LabConfig` file) and what each turns into.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use ca_mock::keys::KeySpec;
use foundation::secret::Secret;
use serde::{Deserialize, Deserializer};

use crate::LabOptions;
use crate::hierarchy::CaHierarchy;

/// `[store]`: SQLite in the data directory unless a PostgreSQL URL is given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// A PostgreSQL server URL (its database is used only to create the lab's own).
    #[serde(default)]
    pub postgres_url: Option<Secret>,
    /// A file whose first line is that URL (URLs carry passwords).
    #[serde(default)]
    pub postgres_url_file: Option<PathBuf>,
    /// Prefix of the three databases (`<prefix>_ca`, `_policy`, `_pending`).
    #[serde(default)]
    pub database_prefix: Option<String>,
}

/// `[listen]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenSection {
    pub bind: IpAddr,
    pub ca_port: u16,
    pub policy_port: u16,
    pub scep_port: u16,
    pub console_port: u16,
}

impl Default for ListenSection {
    /// `scep-lab serve`'s: loopback, 8180, 8280, 8080, 8380.
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ca_port: 8180,
            policy_port: 8280,
            scep_port: 8080,
            console_port: 8380,
        }
    }
}

/// `[ca]`: the hierarchy made on first start.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSection {
    #[serde(default)]
    pub key_type: Option<KeySpec>,
    #[serde(default)]
    pub root_validity_days: Option<u32>,
    #[serde(default)]
    pub issuing_validity_days: Option<u32>,
    #[serde(default)]
    pub root_common_name: Option<String>,
    #[serde(default)]
    pub issuing_common_name: Option<String>,
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(default)]
    pub rollover: Option<RolloverSection>,
}

/// `[ca.rollover]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloverSection {
    /// When the next issuing CA takes over (RFC 3339 text only).
    #[serde(deserialize_with = "rfc3339_only")]
    pub switch_at: i64,
}

/// `[tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    pub enabled: bool,
    pub mutual: bool,
    pub scep_https_port: u16,
    /// ca-mock's plain-HTTP port for the CRL, OCSP and CA-certificate URLs in certificates.
    pub ca_plain_port: u16,
}

/// One `[[templates]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    pub file: PathBuf,
}

/// `[policy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    #[serde(default)]
    pub password_max: Option<i64>,
    #[serde(default)]
    pub password_validity_minutes: Option<i64>,
    #[serde(default)]
    pub profile_challenge_validity_minutes: Option<i64>,
    #[serde(default)]
    pub admin_validity_days: Option<i64>,
    #[serde(default)]
    pub admin_renewal_window_percent: Option<u8>,
    #[serde(default)]
    pub challenges_per_minute: Option<u32>,
    #[serde(default)]
    pub challenges_burst: Option<u32>,
    #[serde(default)]
    pub challenges_exempt_loopback: Option<bool>,
    #[serde(default)]
    pub outbox_poll_interval_ms: Option<u64>,
}

/// `[scep]`: ndes-proxy's admission of PKIOperations.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScepSection {
    /// PKIOperations admitted at once; beyond it 503 with Retry-After at once.
    #[serde(default)]
    pub max_concurrent_pki_operations: Option<usize>,
    /// Of those, how many run at once (0: twice the cores); the rest wait in arrival order.
    #[serde(default)]
    pub pki_workers: Option<usize>,
}

impl ScepSection {
    pub(super) fn apply(&self, settings: &mut ndes_proxy::Settings) -> Result<()> {
        if let Some(n) = self.max_concurrent_pki_operations {
            if n == 0 {
                anyhow::bail!("scep.max_concurrent_pki_operations must be at least 1");
            }
            settings.max_concurrent_pki_operations = n;
        }
        match self.pki_workers {
            Some(0) => settings.pki_workers = ndes_proxy::default_pki_workers(),
            Some(n) => settings.pki_workers = n,
            None => {}
        }
        Ok(())
    }
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    #[serde(default)]
    pub format: Option<LogFormatName>,
    #[serde(default)]
    pub level: Option<LogLevel>,
}

/// `text` or `json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatName {
    Text,
    Json,
}

/// The default level when `RUST_LOG` is unset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The `EnvFilter` directive.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// Where the lab keeps its state, before any database is created.
#[derive(Debug, Clone)]
pub enum StorePlan {
    /// SQLite files in the data directory.
    Sqlite,
    /// Databases to create and migrate on this server ([`crate::pg_setup::provision`]).
    Postgres { url: Secret, prefix: String },
}

impl CaSection {
    pub(super) fn hierarchy(&self) -> CaHierarchy {
        let d = CaHierarchy::default();
        CaHierarchy {
            key: self.key_type.unwrap_or(d.key),
            root_cn: self.root_common_name.clone().unwrap_or(d.root_cn),
            issuing_cn: self.issuing_common_name.clone().unwrap_or(d.issuing_cn),
            org: self.organization.clone().or(d.org),
            root_days: self.root_validity_days.unwrap_or(d.root_days),
            issuing_days: self.issuing_validity_days.unwrap_or(d.issuing_days),
        }
    }
}

impl StoreSection {
    pub(super) fn plan(&self, base: &Path) -> Result<StorePlan> {
        let url = match (&self.postgres_url, &self.postgres_url_file) {
            (Some(_), Some(_)) => {
                anyhow::bail!("[store]: postgres_url or postgres_url_file, not both")
            }
            (Some(url), None) => url.clone(),
            (None, Some(file)) => foundation::secret::read_secret_file(&base.join(file))
                .context("[store] postgres_url_file")?,
            (None, None) => {
                ensure!(
                    self.database_prefix.is_none(),
                    "[store] database_prefix needs postgres_url or postgres_url_file"
                );
                return Ok(StorePlan::Sqlite);
            }
        };
        ensure!(
            foundation::sql::is_postgres_url(url.expose()),
            "[store] postgres_url: must start with postgres:// or postgresql://"
        );
        let prefix = self
            .database_prefix
            .clone()
            .unwrap_or_else(|| crate::pg_setup::DEFAULT_PREFIX.to_owned());
        crate::pg_setup::database_names(&prefix)?;
        Ok(StorePlan::Postgres { url, prefix })
    }
}

impl PolicySection {
    pub(super) fn apply(&self, o: &mut LabOptions) -> Result<()> {
        let challenge_keys = [
            self.password_max,
            self.password_validity_minutes,
            self.profile_challenge_validity_minutes,
            self.admin_validity_days,
        ];
        if challenge_keys.iter().any(Option::is_some) {
            let d = policy_module::ChallengeSettings::default();
            let settings = policy_module::ChallengeSettings {
                password_max: self.password_max.unwrap_or(d.password_max),
                password_validity_minutes: self
                    .password_validity_minutes
                    .unwrap_or(d.password_validity_minutes),
                profile_challenge_validity_minutes: self
                    .profile_challenge_validity_minutes
                    .unwrap_or(d.profile_challenge_validity_minutes),
                admin_validity_days: self.admin_validity_days.unwrap_or(d.admin_validity_days),
            };
            settings
                .validate()
                .map_err(|e| anyhow::anyhow!("[policy] {e}"))?;
            o.challenge_settings = Some(settings);
        }
        if let Some(p) = self.admin_renewal_window_percent {
            ensure!(
                (1..=100).contains(&p),
                "[policy] admin_renewal_window_percent: 1..=100"
            );
            o.admin_renewal_window_percent = p;
        }
        let limit = &mut o.challenge_mint_limit;
        limit.per_minute = self.challenges_per_minute.unwrap_or(limit.per_minute);
        limit.burst = self.challenges_burst.unwrap_or(limit.burst);
        limit.exempt_loopback = self
            .challenges_exempt_loopback
            .unwrap_or(limit.exempt_loopback);
        if let Some(ms) = self.outbox_poll_interval_ms {
            ensure!(ms > 0, "[policy] outbox_poll_interval_ms: above 0");
            o.outbox_poll = std::time::Duration::from_millis(ms);
        }
        Ok(())
    }
}

/// An RFC 3339 string, as unix seconds (no bare numbers: docs/decisions.md #12).
fn rfc3339_only<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let text = String::deserialize(d)?;
    foundation::time::parse_rfc3339(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{text:?} is not an RFC 3339 time (e.g. 2027-01-01T00:00:00Z)"
        ))
    })
}
