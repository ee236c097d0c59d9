//! The TOML configuration of `policy-module serve --config FILE` (unknown keys are rejected).
//!
//! Relative paths are resolved against the file's directory, so a directory holding the three
//! services' configurations and one `secrets/` folder can be moved as a whole. Tokens and the
//! PostgreSQL URL (which may carry a password) are read from files named here, never written
//! into the file itself, so a configuration can be shared or committed without leaking them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::outbox::OutboxConfig;
use crate::service::{
    DEFAULT_ADMIN_RENEWAL_WINDOW_PERCENT, DEFAULT_CHALLENGE_MINT_LIMIT, RevocationReasons,
    ServiceConfig,
};
use foundation::rate_limit::RateLimit;
use foundation::secret::Secret;

/// The committed sample (`policy-module.sample.toml`), parsed by the tests so it cannot drift.
pub const SAMPLE: &str = include_str!("../policy-module.sample.toml");

/// A configuration that cannot be used; names the file or key, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or has unknown keys.
    #[error("{0}")]
    Parse(String),
    /// Parsed, but inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP API (admin, check-in, and ndes-proxy's internal contract).
    pub listen: SocketAddr,
    /// SQLite file of the embedded store (one instance).
    #[serde(default)]
    pub sqlite: Option<PathBuf>,
    /// File holding a `postgres://` URL: several instances share one database, so a challenge
    /// minted by one is redeemed through another (what NDES's per-server registry cannot do).
    #[serde(default)]
    pub postgres_url_file: Option<PathBuf>,
    /// File with the bearer token of the admin API (`/api/v1/`).
    pub admin_token_file: PathBuf,
    /// File with the bearer token ndes-proxy presents on `/internal/v1/`.
    pub ndes_token_file: PathBuf,
    /// The Ed25519 key (PKCS#8 PEM) every grant is signed with for the CA
    /// (docs/decisions.md #10); `policy-module grant-key` writes one. The CA refuses
    /// unsigned grants, so without it nothing issues through the full pipeline.
    pub grant_signing_key_file: PathBuf,
    /// ca-mock, where lifecycle revocations are delivered.
    pub ca: CaConfig,
    /// The revocation outbox's timing.
    #[serde(default)]
    pub outbox: OutboxSection,
    /// Challenge minting per source IP; defaults are [`DEFAULT_CHALLENGE_MINT_LIMIT`]'s.
    #[serde(default)]
    pub rate_limit: RateLimitSection,
    /// `[revocation_reasons]`: the RFC 5280 reason per lifecycle cause (docs/decisions.md #11).
    #[serde(default)]
    pub revocation_reasons: RevocationReasons,
    /// docs/decisions.md #5: an admin-path certificate renews without a challenge once at most
    /// this percentage of its lifetime remains (1..=100; default
    /// [`DEFAULT_ADMIN_RENEWAL_WINDOW_PERCENT`]).
    #[serde(default)]
    pub admin_renewal_window_percent: Option<u8>,
    /// `[tls]` (issue 17 item 4): `cert_file`/`key_file` make `listen` HTTPS (the certificate
    /// reloaded when its files change); `ca_file` is the root pinned when calling ca-mock.
    #[serde(default)]
    pub tls: foundation::tls_files::TlsFiles,
}

/// `[rate_limit]`: challenges minted per source IP (check-in and `/internal/v1/challenges`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSection {
    /// Challenges regained per minute; 0 turns the limit off.
    #[serde(default)]
    pub challenges_per_minute: Option<u32>,
    /// Challenges a source may mint at once.
    #[serde(default)]
    pub challenges_burst: Option<u32>,
    /// Whether loopback sources are exempt.
    #[serde(default)]
    pub exempt_loopback: Option<bool>,
}

/// The CA the outbox revokes at.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// ca-mock's base URL.
    pub url: String,
    /// File with the bearer token of ca-mock's `policy` caller (revoke, read).
    pub token_file: PathBuf,
}

/// Outbox timing; defaults are [`OutboxConfig::default`]'s.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSection {
    /// How often the worker looks for due revocations when nothing wakes it, milliseconds.
    #[serde(default)]
    pub poll_interval_ms: Option<u64>,
    /// First retry delay after a failed delivery (doubled per attempt), seconds.
    #[serde(default)]
    pub retry_base_secs: Option<i64>,
    /// Largest retry delay, seconds.
    #[serde(default)]
    pub retry_max_secs: Option<i64>,
    /// How long an instance holds a claimed entry before another instance may take it over.
    #[serde(default)]
    pub lease_secs: Option<i64>,
}

impl OutboxSection {
    /// Every timing positive and at most a day (a negative lease would let every instance take
    /// over every claimed revocation at once; a huge one would strand an entry of a dead
    /// instance for good), and the largest retry delay no smaller than the first.
    fn check(&self) -> Result<(), ConfigError> {
        const DAY_SECS: i64 = 86_400;
        let in_range = |key: &str, value: Option<i64>, max: i64| match value {
            Some(v) if !(1..=max).contains(&v) => Err(ConfigError::Invalid(format!(
                "[outbox] {key} = {v} must be between 1 and {max}"
            ))),
            _ => Ok(()),
        };
        let poll = self
            .poll_interval_ms
            .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
        in_range("poll_interval_ms", poll, DAY_SECS * 1000)?;
        in_range("retry_base_secs", self.retry_base_secs, DAY_SECS)?;
        in_range("retry_max_secs", self.retry_max_secs, DAY_SECS)?;
        in_range("lease_secs", self.lease_secs, DAY_SECS)?;
        let defaults = OutboxConfig::default();
        let base = self.retry_base_secs.unwrap_or(defaults.base_delay_secs);
        let max = self.retry_max_secs.unwrap_or(defaults.max_delay_secs);
        if max < base {
            return Err(ConfigError::Invalid(format!(
                "[outbox] retry_max_secs = {max} is smaller than retry_base_secs = {base}"
            )));
        }
        Ok(())
    }
}

/// Where the store lives, once validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A file holding a PostgreSQL URL.
    PostgresUrlFile(PathBuf),
}

impl Config {
    /// Parses TOML text (unknown keys are errors) and checks it; paths stay as written.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.store()?;
        if !(config.ca.url.starts_with("http://") || config.ca.url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "[ca] url {:?} must be an http:// or https:// URL",
                config.ca.url
            )));
        }
        config.outbox.check()?;
        config
            .revocation_reasons
            .check()
            .map_err(ConfigError::Invalid)?;
        if let Some(p) = config.admin_renewal_window_percent
            && !(1..=100).contains(&p)
        {
            return Err(ConfigError::Invalid(format!(
                "admin_renewal_window_percent = {p} must be between 1 and 100"
            )));
        }
        Ok(config)
    }

    /// Reads a file and resolves its relative paths against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::from_toml(&text)
            .map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))?;
        Ok(config.resolve(path.parent().unwrap_or_else(|| Path::new("."))))
    }

    /// Makes every relative path relative to `base`.
    pub fn resolve(mut self, base: &Path) -> Self {
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        self.sqlite = self.sqlite.as_deref().map(abs);
        self.postgres_url_file = self.postgres_url_file.as_deref().map(abs);
        self.admin_token_file = abs(&self.admin_token_file);
        self.ndes_token_file = abs(&self.ndes_token_file);
        self.grant_signing_key_file = abs(&self.grant_signing_key_file);
        self.ca.token_file = abs(&self.ca.token_file);
        self.tls.resolve(base);
        self
    }

    /// The grant signing key, read from its file (the error names the file, never the key).
    pub fn grant_key(&self) -> Result<ca_api::GrantKey, ConfigError> {
        ca_api::GrantKey::load(&self.grant_signing_key_file)
            .map_err(|e| ConfigError::Invalid(format!("grant_signing_key_file: {e}")))
    }

    /// The store: exactly one of `sqlite` and `postgres_url_file`.
    pub fn store(&self) -> Result<StoreLocation, ConfigError> {
        match (&self.sqlite, &self.postgres_url_file) {
            (Some(f), None) => Ok(StoreLocation::Sqlite(f.clone())),
            (None, Some(f)) => Ok(StoreLocation::PostgresUrlFile(f.clone())),
            _ => Err(ConfigError::Invalid(
                "set exactly one of `sqlite` and `postgres_url_file`".into(),
            )),
        }
    }

    /// The service settings, defaults filled in.
    pub fn service(&self) -> ServiceConfig {
        let d = DEFAULT_CHALLENGE_MINT_LIMIT;
        let r = &self.rate_limit;
        ServiceConfig {
            challenge_mint_limit: RateLimit {
                per_minute: r.challenges_per_minute.unwrap_or(d.per_minute),
                burst: r.challenges_burst.unwrap_or(d.burst).max(1),
                exempt_loopback: r.exempt_loopback.unwrap_or(d.exempt_loopback),
            },
            revocation_reasons: self.revocation_reasons.clone(),
            admin_renewal_window_percent: self
                .admin_renewal_window_percent
                .unwrap_or(DEFAULT_ADMIN_RENEWAL_WINDOW_PERCENT),
            ..ServiceConfig::default()
        }
    }

    /// The outbox settings, defaults filled in.
    pub fn outbox(&self) -> OutboxConfig {
        let mut c = OutboxConfig::default();
        let o = &self.outbox;
        if let Some(ms) = o.poll_interval_ms {
            c.poll_interval = Duration::from_millis(ms.max(1));
        }
        if let Some(s) = o.retry_base_secs {
            c.base_delay_secs = s;
        }
        if let Some(s) = o.retry_max_secs {
            c.max_delay_secs = s;
        }
        if let Some(s) = o.lease_secs {
            c.lease_secs = s;
        }
        c
    }
}

/// Reads a secret from a file: its first line, trimmed; an empty file is an error (an empty
/// bearer token would be a configuration mistake, not a credential).
pub fn read_secret(path: &Path) -> Result<Secret, ConfigError> {
    use foundation::secret::{SecretFileError, read_secret_file};
    read_secret_file(path).map_err(|e| match e {
        SecretFileError::Io { path, source } => ConfigError::Io { path, source },
        empty @ SecretFileError::Empty { .. } => ConfigError::Invalid(empty.to_string()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The sample with its `[outbox]` settings replaced by `settings`.
    fn with_outbox(settings: &str) -> Result<Config, ConfigError> {
        let sample_outbox = "[outbox]\npoll_interval_ms = 5000\nretry_base_secs = 5\n\
                             retry_max_secs = 600\nlease_secs = 60\n";
        assert!(
            SAMPLE.contains(sample_outbox),
            "the sample's [outbox] moved"
        );
        Config::from_toml(&SAMPLE.replace(sample_outbox, &format!("[outbox]\n{settings}\n")))
    }

    #[test]
    fn outbox_timings_out_of_range_are_refused_with_the_key_named() {
        for (extra, key) in [
            ("lease_secs = -1", "lease_secs"),
            ("lease_secs = 0", "lease_secs"),
            ("retry_base_secs = -5", "retry_base_secs"),
            ("retry_max_secs = 9223372036854775807", "retry_max_secs"),
            ("lease_secs = 86401", "lease_secs"),
        ] {
            let err = with_outbox(extra).unwrap_err().to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
        let err = with_outbox("retry_base_secs = 60\nretry_max_secs = 30")
            .unwrap_err()
            .to_string();
        assert!(err.contains("smaller than retry_base_secs"), "{err}");
        let ok = with_outbox("lease_secs = 120\nretry_max_secs = 900").unwrap();
        assert_eq!(ok.outbox().lease_secs, 120);
        assert_eq!(ok.outbox().max_delay_secs, 900);
    }

    #[test]
    fn the_committed_sample_parses_with_the_values_the_other_samples_expect() {
        let c = Config::from_toml(SAMPLE).unwrap();
        // ndes-proxy's sample calls the policy module here; ca-mock's sample listens on 8180.
        assert_eq!(c.listen.port(), 8280);
        assert_eq!(c.ca.url, "http://127.0.0.1:8180");
        assert_eq!(
            c.store().unwrap(),
            StoreLocation::Sqlite(PathBuf::from("data/policy.db"))
        );
        // The same file names as ca-mock's and ndes-proxy's samples (one shared secrets/).
        assert_eq!(c.ndes_token_file, Path::new("secrets/policy-ndes.token"));
        assert_eq!(c.ca.token_file, Path::new("secrets/ca-policy.token"));
        assert_eq!(c.outbox().poll_interval, Duration::from_secs(5));
        assert_eq!(
            c.service().challenge_mint_limit,
            DEFAULT_CHALLENGE_MINT_LIMIT
        );
        let dir = Path::new("/srv/lab");
        let r = c.resolve(dir);
        assert_eq!(r.admin_token_file, dir.join("secrets/policy-admin.token"));
    }

    #[test]
    fn the_challenge_minting_limit_is_configurable() {
        let text = SAMPLE
            .replace("challenges_per_minute = 60", "challenges_per_minute = 6")
            .replace("exempt_loopback = true", "exempt_loopback = false");
        let limit = Config::from_toml(&text)
            .unwrap()
            .service()
            .challenge_mint_limit;
        assert_eq!(
            limit,
            RateLimit {
                per_minute: 6,
                burst: 30,
                exempt_loopback: false
            }
        );
    }

    #[test]
    fn the_admin_renewal_window_is_configurable_within_1_to_100() {
        let sample = "admin_renewal_window_percent = 20";
        assert!(SAMPLE.contains(sample), "the sample's window moved");
        let window = |v: &str| {
            Config::from_toml(
                &SAMPLE.replace(sample, &format!("admin_renewal_window_percent = {v}")),
            )
            .map(|c| c.service().admin_renewal_window_percent)
        };
        assert_eq!(window("100").unwrap(), 100);
        assert_eq!(window("1").unwrap(), 1);
        for bad in ["0", "101"] {
            let err = window(bad).unwrap_err().to_string();
            assert!(err.contains("admin_renewal_window_percent"), "{bad}: {err}");
        }
        let unset = Config::from_toml(&SAMPLE.replace(sample, "")).unwrap();
        assert_eq!(
            unset.service().admin_renewal_window_percent,
            DEFAULT_ADMIN_RENEWAL_WINDOW_PERCENT
        );
    }

    #[test]
    fn unknown_keys_and_two_stores_are_refused() {
        let bad = format!("{SAMPLE}\ncolour = \"blue\"\n");
        assert!(Config::from_toml(&bad).is_err());
        let bad = SAMPLE.replace("[outbox]", "[outbox]\ncolour = 1");
        assert!(Config::from_toml(&bad).is_err());
        let both = SAMPLE.replace(
            "# postgres_url_file = ",
            "postgres_url_file = \"x\"\n# was: ",
        );
        let err = Config::from_toml(&both).unwrap_err().to_string();
        assert!(err.contains("exactly one"), "{err}");
        let neither = SAMPLE.replace("sqlite = ", "# sqlite = ");
        assert!(Config::from_toml(&neither).is_err());
    }

    #[test]
    fn secrets_come_from_files_and_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, "  s3cret-value \nignored\n").unwrap();
        assert_eq!(read_secret(&f).unwrap().expose(), "s3cret-value");
        std::fs::write(&f, "\n").unwrap();
        let err = read_secret(&f).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        assert!(read_secret(&dir.path().join("missing")).is_err());
    }
}
