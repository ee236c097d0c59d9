//! `scep-lab serve --config lab.toml`: everything the lab can do, from one file (issue 17
//! item 1). [`LabConfig`] is the file (unknown keys are errors; times are RFC 3339, durations
//! carry their unit in the key name); [`LabConfig::resolve`] turns it into [`crate::LabOptions`],
//! the store to open and the log settings, with relative paths taken from the file's directory.
//! Flags the user gave win over the file ([`ServeOverrides`]). `lab/lab.sample.toml`
//! ([`SAMPLE`], `scep-lab sample-config`) documents every key.

mod sections;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use foundation::log::LogFormat;
use serde::Deserialize;

use crate::{LabOptions, RolloverPlan, TlsOptions};
pub use sections::{
    CaSection, ListenSection, LogFormatName, LogLevel, LogSection, PolicySection, RolloverSection,
    ScepSection, StorePlan, StoreSection, TemplateFile, TlsSection,
};

/// The committed, commented sample (`lab/lab.sample.toml`).
pub const SAMPLE: &str = include_str!("../../lab.sample.toml");

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
    pub scep: ScepSection,
    #[serde(default)]
    pub log: LogSection,
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
        o.ca_plain_port = self.tls.ca_plain_port;
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
        self.scep.apply(&mut o.ndes_settings)?;
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

#[cfg(test)]
mod tests;
