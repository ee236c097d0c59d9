//! `scep-lab serve --config lab.toml`: everything the lab can do, from one file (issue 17
//! item 1). [`LabConfig`] is the file (unknown keys are errors; times are RFC 3339, durations
//! carry their unit in the key name); [`LabConfig::resolve`] turns it into [`crate::LabOptions`],
//! the store to open and the log settings, with relative paths taken from the file's directory.
//! Flags the user gave win over the file ([`ServeOverrides`]). `lab/lab.sample.toml`
//! ([`SAMPLE`], `scep-lab sample-config`) documents every key.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use ca_mock::keys::KeySpec;
use foundation::log::LogFormat;
use foundation::secret::Secret;
use serde::{Deserialize, Deserializer};

use crate::hierarchy::CaHierarchy;
use crate::{LabOptions, RolloverPlan, TlsOptions};

/// The committed, commented sample (`lab/lab.sample.toml`).
pub const SAMPLE: &str = include_str!("../lab.sample.toml");

/// The file as written. Every section is optional; absent keys keep `scep-lab serve`'s defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabConfig {
    /// Data directory (CA material, SQLite files, RA keys, secrets).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Templates whose requests wait for an administrator's approval (PENDING).
    #[serde(default)]
    pub approval_templates: Vec<String>,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub listen: ListenSection,
    #[serde(default)]
    pub ca: CaSection,
    #[serde(default)]
    pub tls: TlsSection,
    /// More device templates, each a file in ca-mock's template format.
    #[serde(default)]
    pub templates: Vec<TemplateFile>,
    /// Template name to a policy-module name-policy JSON file.
    #[serde(default)]
    pub name_policies: BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub policy: PolicySection,
    #[serde(default)]
    pub log: LogSection,
}

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

/// What a configuration resolves to.
#[derive(Debug)]
pub struct ServePlan {
    /// The lab's options (databases still SQLite until the store is provisioned).
    pub options: LabOptions,
    pub store: StorePlan,
    /// Log format and default level from the file; flags and `RUST_LOG` win.
    pub log_format: Option<LogFormat>,
    pub log_level: Option<LogLevel>,
}

/// Flags of `scep-lab serve` the user actually gave; each replaces the file's value.
#[derive(Debug, Default, Clone)]
pub struct ServeOverrides {
    pub data: Option<PathBuf>,
    pub ports: Option<[u16; 3]>,
    pub console_port: Option<u16>,
    /// A file holding a PostgreSQL URL, in place of the file's `[store]` (its prefix is kept).
    pub postgres_url_file: Option<PathBuf>,
}

impl LabConfig {
    /// Parses TOML; errors name the key and line.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Reads and parses `path`; also returns the directory relative paths start from.
    pub fn load(path: &Path) -> Result<(Self, PathBuf)> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config = Self::from_toml(&text).with_context(|| format!("in {}", path.display()))?;
        // `lab.toml` has the parent "": its paths are then relative to the working directory.
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((config, base))
    }

    /// The options, store and log settings, reading the files the configuration names
    /// (relative to `base`).
    pub fn resolve(&self, base: &Path) -> Result<ServePlan> {
        let at = |p: &Path| base.join(p);
        let data = self
            .data_dir
            .as_deref()
            .map_or_else(|| PathBuf::from("scep-lab-data"), at);
        let mut o = LabOptions::new(&data);
        let l = &self.listen;
        o.bind = l.bind;
        o.ports = [l.ca_port, l.policy_port, l.scep_port];
        o.console_port = l.console_port;
        o.ca = self.ca.hierarchy();
        o.rollover = self.ca.rollover.as_ref().map(|r| RolloverPlan {
            switch_at_unix: r.switch_at,
        });
        o.tls = self.tls.enabled.then_some(TlsOptions {
            mutual: self.tls.mutual,
            scep_https_port: self.tls.scep_https_port,
        });
        for t in &self.templates {
            let template = ca_mock::template::Template::load(&at(&t.file))
                .with_context(|| format!("templates: {}", t.file.display()))?;
            o.extra_templates.push(template);
        }
        o.ndes_settings.approval_templates = self.approval_templates.iter().cloned().collect();
        for (template, file) in &self.name_policies {
            let path = at(file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("name_policies.{template}: {}", path.display()))?;
            let policy: policy_module::name_policy::NamePolicy = serde_json::from_str(&text)
                .with_context(|| format!("name_policies.{template}: {}", path.display()))?;
            policy
                .validate()
                .map_err(|e| anyhow::anyhow!("name_policies.{template}: {e}"))?;
            o.name_policies.push((template.clone(), policy));
        }
        self.policy.apply(&mut o)?;
        Ok(ServePlan {
            options: o,
            store: self.store.plan(base)?,
            log_format: self.log.format.map(|f| match f {
                LogFormatName::Text => LogFormat::Text,
                LogFormatName::Json => LogFormat::Json,
            }),
            log_level: self.log.level,
        })
    }
}

impl ServePlan {
    /// Applies the flags the user gave over the file's values.
    pub fn override_with(&mut self, flags: &ServeOverrides) -> Result<()> {
        if let Some(file) = &flags.postgres_url_file {
            let prefix = match &self.store {
                StorePlan::Postgres { prefix, .. } => prefix.clone(),
                StorePlan::Sqlite => crate::pg_setup::DEFAULT_PREFIX.to_owned(),
            };
            let url = foundation::secret::read_secret_file(file).context("--postgres-url-file")?;
            ensure!(
                foundation::sql::is_postgres_url(url.expose()),
                "--postgres-url-file: must start with postgres:// or postgresql://"
            );
            self.store = StorePlan::Postgres { url, prefix };
        }
        if let Some(data) = &flags.data {
            self.options.data_dir.clone_from(data);
        }
        if let Some(ports) = flags.ports {
            self.options.ports = ports;
        }
        if let Some(port) = flags.console_port {
            self.options.console_port = port;
        }
        Ok(())
    }
}

impl CaSection {
    fn hierarchy(&self) -> CaHierarchy {
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
    fn plan(&self, base: &Path) -> Result<StorePlan> {
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
    fn apply(&self, o: &mut LabOptions) -> Result<()> {
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

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
