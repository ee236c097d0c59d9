//! The TOML configuration of the `ndes-proxy` binary (unknown keys are rejected). Relative
//! paths are resolved against the configuration file's directory. Secrets (RA keys, tokens)
//! are read from files named here, never written into the file itself.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::pkey::PKey;
use openssl::x509::X509;
use serde::Deserialize;

use crate::auth::{BasicUsers, BearerToken};
use crate::ra::{KeyPair, RaIdentity};
use foundation::Secret;
use foundation::secret::{SecretFileError, read_secret_file};

use crate::{MscepAdmin, QueueSettings, Settings};

/// The committed sample (`ndes-proxy.sample.toml`), parsed by the tests so it cannot drift.
pub const SAMPLE: &str = include_str!("../ndes-proxy.sample.toml");

/// The file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the SCEP listener.
    pub listen: SocketAddr,
    /// This instance's name in transaction traces; `ndes-proxy@<listen>` when unset.
    #[serde(default)]
    pub instance: Option<String>,
    /// Refuse DES, 3DES and SHA-1.
    #[serde(default)]
    pub strict_algorithms: bool,
    /// Refuse requests whose signingTime is further than this from now, if set.
    #[serde(default)]
    pub signing_time_tolerance_secs: Option<i64>,
    /// Also accept UTF8String and IA5String where RFC 8894 requires PrintableString
    /// (messageType, transactionID, pkiStatus, failInfo), counting each in the metrics.
    #[serde(default)]
    pub lenient_attribute_strings: bool,
    /// FAILURE and PENDING replies without an eContent (strict RFC 8894 reading) instead of an
    /// empty one, which clients verifying with OpenSSL's PKCS7 API cannot read.
    #[serde(default)]
    pub absent_reply_content: bool,
    /// Largest PKIOperation POST body, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Deadline for a whole request (body included), in seconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// A client must send its request line and headers within this many seconds.
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Retry-After sent with 503 answers, in seconds.
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u32,
    /// PKIOperations in progress at once; beyond it 503 with Retry-After.
    #[serde(default = "default_max_concurrent_pki")]
    pub max_concurrent_pki_operations: usize,
    /// Admitted PKIOperations that run at once, the others waiting in arrival order; 0 (the
    /// default) is twice the cores.
    #[serde(default)]
    pub pki_workers: usize,
    /// Per-source rate limit of PKIOperation.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// The RA identity.
    pub ra: RaFiles,
    /// The CA (ca-mock) API.
    pub ca: Remote,
    /// The policy module's NDES contract API (exactly one of this and `[plain]`).
    #[serde(default)]
    pub policy: Option<Remote>,
    /// Plain mode: one fixed challenge instead of the policy module.
    #[serde(default)]
    pub plain: Option<PlainConfig>,
    /// Pending requests (manual approval, CA outages).
    #[serde(default)]
    pub pending: PendingConfig,
    /// The approval API under `/admin/v1/` (off unless configured).
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// `/certsrv/mscep_admin/` (off unless configured).
    #[serde(default)]
    pub mscep_admin: Option<MscepAdminConfig>,
    /// With `[tls]` `cert_file`/`key_file`: everything over HTTPS here, and `listen` serves
    /// plain-HTTP SCEP only (issue 17 item 4; mscep_admin's passwords never travel in clear).
    #[serde(default)]
    pub https_listen: Option<SocketAddr>,
    /// `[tls]`: the server certificate (reloaded when its files change) and `ca_file`, the
    /// root pinned when calling ca-mock and the policy module.
    #[serde(default)]
    pub tls: foundation::tls_files::TlsFiles,
}

/// `[rate_limit]`: PKIOperations per source IP (token bucket). Defaults:
/// [`DEFAULT_PKI_RATE_LIMIT`](crate::DEFAULT_PKI_RATE_LIMIT).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests regained per minute; 0 turns the limit off.
    #[serde(default = "default_pki_per_minute")]
    pub pki_operations_per_minute: u32,
    /// Requests a source may make at once.
    #[serde(default = "default_pki_burst")]
    pub pki_operations_burst: u32,
    /// Loopback sources are not limited (the lab, benchmarks, a local reverse proxy).
    #[serde(default = "default_exempt_loopback")]
    pub exempt_loopback: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            pki_operations_per_minute: default_pki_per_minute(),
            pki_operations_burst: default_pki_burst(),
            exempt_loopback: default_exempt_loopback(),
        }
    }
}

fn default_pki_per_minute() -> u32 {
    crate::DEFAULT_PKI_RATE_LIMIT.per_minute
}

fn default_pki_burst() -> u32 {
    crate::DEFAULT_PKI_RATE_LIMIT.burst
}

fn default_exempt_loopback() -> bool {
    crate::DEFAULT_PKI_RATE_LIMIT.exempt_loopback
}

fn default_max_concurrent_pki() -> usize {
    crate::DEFAULT_MAX_CONCURRENT_PKI_OPERATIONS
}

/// Where pending requests are kept and how queued ones are retried.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingConfig {
    /// SQLite file (WAL, synchronous=FULL). Without it and without `postgres_url_file`,
    /// pending requests live in memory and a restart forgets them.
    #[serde(default)]
    pub sqlite: Option<PathBuf>,
    /// File holding a `postgres://` URL (it may carry a password), for several instances
    /// sharing one store.
    #[serde(default)]
    pub postgres_url_file: Option<PathBuf>,
    /// Templates whose requests wait for an administrator's approval.
    #[serde(default)]
    pub approval_templates: BTreeSet<String>,
    /// How often queued requests are looked at, in seconds.
    #[serde(default)]
    pub retry_tick_secs: Option<u64>,
    /// First retry delay, doubled per failed attempt, in seconds.
    #[serde(default)]
    pub retry_backoff_base_secs: Option<i64>,
    /// Largest retry delay, in seconds.
    #[serde(default)]
    pub retry_backoff_max_secs: Option<i64>,
}

/// The approval API.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// File with the bearer token (one line).
    pub token_file: PathBuf,
}

/// The NDES admin page.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MscepAdminConfig {
    /// The template challenges are generated for.
    pub template: String,
    /// File of `user:password` lines for HTTP Basic.
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// File with a bearer token for scripts.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// PEM files of the RA identity.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaFiles {
    /// RA signing certificate (digitalSignature).
    pub signing_cert: PathBuf,
    /// Its private key.
    pub signing_key: PathBuf,
    /// RA encryption certificate (keyEncipherment).
    pub encryption_cert: PathBuf,
    /// Its private key.
    pub encryption_key: PathBuf,
    /// The CA chain, issuing CA first.
    pub chain: PathBuf,
    /// After an RA rollover: the previous encryption certificate and key, still accepted on
    /// envelopes until `previous_encryption_until`, for clients that fetched GetCACert before.
    #[serde(default)]
    pub previous_encryption: Option<PreviousEncryption>,
    /// During a CA rollover: PEM file with the next CA certificates, announced by
    /// GetNextCACert (RFC 8894 §4.7) and advertised in GetCACaps.
    #[serde(default)]
    pub next_ca_chain: Option<PathBuf>,
}

/// The previous RA encryption pair and the end of its grace period.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousEncryption {
    /// The previous RA encryption certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// End of the grace period, RFC 3339 (e.g. `2027-01-31T00:00:00Z`).
    pub until: String,
}

/// A remote API and the file holding its bearer token.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remote {
    /// Base URL, e.g. `http://127.0.0.1:8180`.
    pub url: String,
    /// File with the bearer token (one line).
    pub token_file: PathBuf,
}

/// Plain mode (a standalone NDES with a fixed password): every request carrying the
/// challenge is issued under `template` with the CSR's subject.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainConfig {
    /// File holding the challenge password (first line).
    pub challenge_file: PathBuf,
    /// The CA template certificates are issued under.
    pub template: String,
    /// Validity of the certificates, in days (at most the template's).
    #[serde(default = "default_plain_validity")]
    pub validity_days: u32,
}

fn default_plain_validity() -> u32 {
    365
}

fn default_max_body() -> usize {
    scep::limits::MAX_MESSAGE_SIZE
}

fn default_timeout() -> u64 {
    30
}

fn default_header_timeout() -> u64 {
    10
}

fn default_max_connections() -> usize {
    1024
}

fn default_retry_after() -> u32 {
    30
}

/// Why the configuration could not be used; names the file, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading a file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The TOML is invalid or has unknown keys.
    #[error("parsing the configuration: {0}")]
    Toml(#[from] toml::de::Error),
    /// A PEM file does not hold what it should.
    #[error("{path}: not a valid {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
    },
    /// The RA identity is inconsistent.
    #[error("RA identity: {0}")]
    Ra(#[from] crate::ra::RaError),
    /// A setting is out of range or settings contradict each other.
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl Config {
    /// Parse a configuration text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// Read and parse a file, resolving relative paths against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read(path)?;
        let mut c = Self::from_toml(&String::from_utf8_lossy(&text))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut paths = vec![
            &mut c.ra.signing_cert,
            &mut c.ra.signing_key,
            &mut c.ra.encryption_cert,
            &mut c.ra.encryption_key,
            &mut c.ra.chain,
            &mut c.ca.token_file,
        ];
        paths.extend(c.policy.as_mut().map(|p| &mut p.token_file));
        paths.extend(c.plain.as_mut().map(|p| &mut p.challenge_file));
        if let Some(prev) = c.ra.previous_encryption.as_mut() {
            paths.push(&mut prev.cert);
            paths.push(&mut prev.key);
        }
        paths.extend(c.ra.next_ca_chain.as_mut());
        paths.extend(c.pending.sqlite.as_mut());
        paths.extend(c.pending.postgres_url_file.as_mut());
        paths.extend(c.admin.as_mut().map(|a| &mut a.token_file));
        if let Some(m) = c.mscep_admin.as_mut() {
            paths.extend(m.users_file.as_mut());
            paths.extend(m.token_file.as_mut());
        }
        for p in paths {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        c.tls.resolve(base);
        Ok(c)
    }

    /// Check what serde cannot: ranges and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.pending.sqlite.is_some() && self.pending.postgres_url_file.is_some() {
            return bad("[pending] takes sqlite or postgres_url_file, not both");
        }
        let serves_tls = self.tls.cert_file.is_some() || self.tls.key_file.is_some();
        if serves_tls != self.https_listen.is_some() {
            return bad("https_listen and [tls] cert_file/key_file go together");
        }
        if self.policy.is_some() == self.plain.is_some() {
            return bad("configure exactly one of [policy] and [plain]");
        }
        if self.plain.is_some() && self.mscep_admin.is_some() {
            return bad(
                "[mscep_admin] needs the policy module; plain mode has one fixed challenge",
            );
        }
        if self.plain.as_ref().is_some_and(|p| p.validity_days == 0) {
            return bad("[plain] validity_days must be at least 1");
        }
        if self.max_connections == 0 || self.max_concurrent_pki_operations == 0 {
            return bad("max_connections and max_concurrent_pki_operations must be at least 1");
        }
        if self.rate_limit.pki_operations_per_minute > 0
            && self.rate_limit.pki_operations_burst == 0
        {
            return bad("[rate_limit] pki_operations_burst must be at least 1");
        }
        if self.header_read_timeout_secs == 0 || self.request_timeout_secs == 0 {
            return bad("timeouts must be at least 1 second");
        }
        if self
            .mscep_admin
            .as_ref()
            .is_some_and(|m| m.users_file.is_none() && m.token_file.is_none())
        {
            return bad("[mscep_admin] needs users_file or token_file");
        }
        let q = &self.pending;
        if q.retry_backoff_base_secs.is_some_and(|b| b < 0)
            || q.retry_backoff_max_secs.is_some_and(|m| m < 1)
            || q.retry_tick_secs == Some(0)
        {
            return bad("[pending] retry settings must be positive");
        }
        Ok(())
    }

    /// The endpoint settings.
    pub fn settings(&self) -> Settings {
        let d = QueueSettings::default();
        let q = &self.pending;
        Settings {
            strict_algorithms: self.strict_algorithms,
            signing_time_tolerance: self.signing_time_tolerance_secs,
            attribute_strings: if self.lenient_attribute_strings {
                scep::AttributeStrings::AlsoUtf8AndIa5
            } else {
                scep::AttributeStrings::Rfc8894
            },
            no_envelope_content: if self.absent_reply_content {
                scep::server::NoEnvelopeContent::Absent
            } else {
                scep::server::NoEnvelopeContent::Empty
            },
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            retry_after_secs: self.retry_after_secs,
            approval_templates: q.approval_templates.clone(),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            max_connections: self.max_connections,
            pki_rate_limit: foundation::rate_limit::RateLimit {
                per_minute: self.rate_limit.pki_operations_per_minute,
                burst: self.rate_limit.pki_operations_burst,
                exempt_loopback: self.rate_limit.exempt_loopback,
            },
            max_concurrent_pki_operations: self.max_concurrent_pki_operations,
            pki_workers: match self.pki_workers {
                0 => crate::default_pki_workers(),
                n => n,
            },
            queue: QueueSettings {
                tick: q.retry_tick_secs.map_or(d.tick, Duration::from_secs),
                backoff_base_secs: q.retry_backoff_base_secs.unwrap_or(d.backoff_base_secs),
                backoff_max_secs: q.retry_backoff_max_secs.unwrap_or(d.backoff_max_secs),
                batch: d.batch,
            },
            instance: self
                .instance
                .clone()
                .unwrap_or_else(|| format!("ndes-proxy@{}", self.listen)),
        }
    }

    /// The admin API token, if configured (an empty token file is an error, not an open API).
    pub fn admin_token(&self) -> Result<Option<BearerToken>, ConfigError> {
        let Some(a) = &self.admin else {
            return Ok(None);
        };
        token(&a.token_file).map(Some)
    }

    /// The mscep_admin page, if configured.
    pub fn mscep_admin(&self) -> Result<Option<MscepAdmin>, ConfigError> {
        let Some(m) = &self.mscep_admin else {
            return Ok(None);
        };
        let users = match &m.users_file {
            None => BasicUsers::default(),
            Some(path) => {
                let text = read(path)?;
                BasicUsers::parse(&String::from_utf8_lossy(&text)).map_err(|line| {
                    ConfigError::Invalid(format!(
                        "{}: line {line} is not user:password",
                        path.display()
                    ))
                })?
            }
        };
        let token = m.token_file.as_deref().map(token).transpose()?;
        Ok(Some(MscepAdmin {
            template: m.template.clone(),
            users,
            token,
        }))
    }

    /// Load the RA identity from the PEM files.
    pub fn ra_identity(&self) -> Result<RaIdentity, ConfigError> {
        let pair = |cert: &Path, key: &Path| -> Result<KeyPair, ConfigError> {
            let cert = X509::from_pem(&read(cert)?).map_err(|_| pem(cert, "certificate"))?;
            let key =
                PKey::private_key_from_pem(&read(key)?).map_err(|_| pem(key, "private key"))?;
            Ok(KeyPair { cert, key })
        };
        let signing = pair(&self.ra.signing_cert, &self.ra.signing_key)?;
        let encryption = pair(&self.ra.encryption_cert, &self.ra.encryption_key)?;
        let chain = X509::stack_from_pem(&read(&self.ra.chain)?)
            .map_err(|_| pem(&self.ra.chain, "certificate chain"))?;
        let mut ra = RaIdentity::new(signing, encryption, chain)?;
        if let Some(prev) = &self.ra.previous_encryption {
            let until = time::OffsetDateTime::parse(
                &prev.until,
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|_| {
                ConfigError::Invalid(
                    "[ra.previous_encryption] until is not an RFC 3339 time".into(),
                )
            })?
            .unix_timestamp();
            ra = ra.with_previous_encryption(pair(&prev.cert, &prev.key)?, until)?;
        }
        if let Some(next) = &self.ra.next_ca_chain {
            let certs =
                X509::stack_from_pem(&read(next)?).map_err(|_| pem(next, "certificate chain"))?;
            ra = ra.with_next_ca(&certs)?;
        }
        Ok(ra)
    }
}

fn pem(path: &Path, what: &'static str) -> ConfigError {
    ConfigError::Pem {
        path: path.to_owned(),
        what,
    }
}

/// Read a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })
}

fn token(path: &Path) -> Result<BearerToken, ConfigError> {
    BearerToken::from_secret(&read_secret(path)?)
        .ok_or_else(|| ConfigError::Invalid(format!("{}: empty token", path.display())))
}

/// The plain-mode challenge (an empty file is an error, never a password everyone knows).
pub fn read_challenge(path: &Path) -> Result<Secret, ConfigError> {
    read_secret(path)
}

/// A secret file's first line, trimmed (the foundation's reading, with this crate's error).
pub fn read_secret(path: &Path) -> Result<Secret, ConfigError> {
    read_secret_file(path).map_err(|e| match e {
        SecretFileError::Io { path, source } => ConfigError::Io { path, source },
        empty @ SecretFileError::Empty { .. } => ConfigError::Invalid(empty.to_string()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_sample_config_parses() {
        let c = Config::from_toml(SAMPLE).unwrap();
        c.validate().unwrap();
        assert_eq!(c.listen.port(), 8080);
        // ca-mock's and policy-module's samples listen there and read the same token files.
        assert_eq!(c.ca.url, "http://127.0.0.1:8180");
        assert_eq!(c.ca.token_file, Path::new("secrets/ca-ndes.token"));
        let policy = c.policy.as_ref().unwrap();
        assert_eq!(policy.url, "http://127.0.0.1:8280");
        assert_eq!(policy.token_file, Path::new("secrets/policy-ndes.token"));
        let s = c.settings();
        assert_eq!(s.max_body_bytes, scep::limits::MAX_MESSAGE_SIZE);
        assert_eq!(s.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.max_connections, 1024);
        assert!(s.approval_templates.contains("ManualApprovalTemplate"));
        assert_eq!(s.queue.backoff_max_secs, 600);
        assert_eq!(
            c.pending.sqlite.as_deref(),
            Some(Path::new("data/pending.db"))
        );
        assert!(c.admin.is_some());
        assert_eq!(
            c.mscep_admin.as_ref().map(|m| m.template.as_str()),
            Some("IPSECIntermediateOffline")
        );
    }

    #[test]
    fn replies_without_envelope_carry_an_empty_content_unless_the_strict_switch_is_on() {
        use scep::server::NoEnvelopeContent;
        let sample = Config::from_toml(SAMPLE).unwrap();
        assert!(!sample.absent_reply_content, "off in the sample");
        assert_eq!(
            sample.settings().no_envelope_content,
            NoEnvelopeContent::Empty
        );
        let unset = SAMPLE.replace("absent_reply_content = false\n", "");
        assert_ne!(unset, SAMPLE);
        let unset = Config::from_toml(&unset).unwrap().settings();
        assert_eq!(unset.no_envelope_content, NoEnvelopeContent::Empty);
        let on = SAMPLE.replace(
            "absent_reply_content = false",
            "absent_reply_content = true",
        );
        assert_eq!(
            Config::from_toml(&on)
                .unwrap()
                .settings()
                .no_envelope_content,
            NoEnvelopeContent::Absent
        );
    }

    #[test]
    fn attribute_strings_follow_rfc_8894_unless_the_switch_is_on() {
        let sample = Config::from_toml(SAMPLE).unwrap();
        assert!(!sample.lenient_attribute_strings, "off in the sample");
        assert_eq!(
            sample.settings().attribute_strings,
            scep::AttributeStrings::Rfc8894
        );
        let unset = SAMPLE.replace("lenient_attribute_strings = false\n", "");
        assert_ne!(unset, SAMPLE);
        assert_eq!(
            Config::from_toml(&unset)
                .unwrap()
                .settings()
                .attribute_strings,
            scep::AttributeStrings::Rfc8894,
            "off by default"
        );
        let on = SAMPLE.replace(
            "lenient_attribute_strings = false",
            "lenient_attribute_strings = true",
        );
        assert_eq!(
            Config::from_toml(&on).unwrap().settings().attribute_strings,
            scep::AttributeStrings::AlsoUtf8AndIa5
        );
    }

    #[test]
    fn load_resolves_paths_and_reads_credentials() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("secrets")).unwrap();
        std::fs::write(dir.path().join("secrets/ndes-admin.token"), "tok\n").unwrap();
        std::fs::write(dir.path().join("secrets/mscep-admin.users"), "u:p\n").unwrap();
        std::fs::write(dir.path().join("secrets/mscep-admin.token"), "\n").unwrap();
        let file = dir.path().join("ndes.toml");
        std::fs::write(&file, SAMPLE).unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(
            c.pending.sqlite.as_deref(),
            Some(dir.path().join("data/pending.db").as_path())
        );
        assert!(c.admin_token().unwrap().unwrap().matches("tok"));
        // An empty token file is refused rather than accepting an empty token.
        assert!(matches!(c.mscep_admin(), Err(ConfigError::Invalid(_))));
        std::fs::write(dir.path().join("secrets/mscep-admin.token"), "t\n").unwrap();
        let m = c.mscep_admin().unwrap().unwrap();
        assert!(!m.users.is_empty());
    }

    #[test]
    fn contradictions_are_rejected() {
        let both = SAMPLE.replace(
            "[pending]",
            "[pending]\npostgres_url_file = \"secrets/pg.url\"",
        );
        let c = Config::from_toml(&both).unwrap();
        assert!(c.validate().is_err());
        let zero = SAMPLE.replace("max_connections = 1024", "max_connections = 0");
        assert!(Config::from_toml(&zero).unwrap().validate().is_err());
    }

    /// The sample with `[policy]` swapped for `[plain]` and without `[mscep_admin]`.
    fn plain_sample() -> String {
        let policy = "[policy]\nurl = \"http://127.0.0.1:8280\"\ntoken_file = \"secrets/policy-ndes.token\"\n";
        assert!(SAMPLE.contains(policy));
        let cut = SAMPLE.find("[mscep_admin]").unwrap();
        SAMPLE[..cut].replace(
            policy,
            "[plain]\nchallenge_file = \"secrets/challenge\"\ntemplate = \"IPSECIntermediateOffline\"\n",
        )
    }

    #[test]
    fn plain_mode_replaces_the_policy_module_and_reads_its_challenge() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ndes.toml");
        std::fs::write(&file, plain_sample()).unwrap();
        let c = Config::load(&file).unwrap();
        c.validate().unwrap();
        let plain = c.plain.as_ref().unwrap();
        assert_eq!(plain.challenge_file, dir.path().join("secrets/challenge"));
        assert_eq!(plain.validity_days, 365);
        std::fs::create_dir(dir.path().join("secrets")).unwrap();
        std::fs::write(&plain.challenge_file, "\n").unwrap();
        assert!(matches!(
            read_challenge(&plain.challenge_file),
            Err(ConfigError::Invalid(_))
        ));
        std::fs::write(&plain.challenge_file, "pw\n").unwrap();
        assert_eq!(
            read_challenge(&plain.challenge_file).unwrap().expose(),
            "pw"
        );
        // Both, neither, or plain with the challenge page: refused.
        let both = format!(
            "{}\n[policy]\nurl = \"http://x\"\ntoken_file = \"t\"\n",
            plain_sample()
        );
        assert!(Config::from_toml(&both).unwrap().validate().is_err());
        let neither = plain_sample().replace(
            "[plain]\nchallenge_file = \"secrets/challenge\"\ntemplate = \"IPSECIntermediateOffline\"\n",
            "",
        );
        assert!(Config::from_toml(&neither).unwrap().validate().is_err());
        let with_page = format!(
            "{}\n[mscep_admin]\ntemplate = \"T\"\ntoken_file = \"t\"\n",
            plain_sample()
        );
        assert!(Config::from_toml(&with_page).unwrap().validate().is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let bad = format!("{SAMPLE}\nunknown_key = 1\n");
        assert!(Config::from_toml(&bad).is_err());
        for section in ["[ra]", "[pending]", "[admin]", "[mscep_admin]"] {
            let bad = SAMPLE.replace(section, &format!("{section}\ncolour = \"blue\""));
            assert!(Config::from_toml(&bad).is_err(), "{section}");
        }
    }

    /// Self-signed RSA certificate + key PEM files named `<name>.pem` / `<name>.key` in `dir`.
    fn write_pair(dir: &Path, name: &str) {
        let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut n = openssl::x509::X509Name::builder().unwrap();
        n.append_entry_by_text("CN", name).unwrap();
        let n = n.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&n).unwrap();
        b.set_issuer_name(&n).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), b.build().to_pem().unwrap()).unwrap();
        std::fs::write(
            dir.join(format!("{name}.key")),
            key.private_key_to_pem_pkcs8().unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn rollover_settings_load_into_the_ra_identity() {
        let dir = tempfile::tempdir().unwrap();
        let ra = dir.path().join("ra");
        std::fs::create_dir(&ra).unwrap();
        for name in ["signing", "encryption", "encryption-old", "next-ca"] {
            write_pair(&ra, name);
        }
        std::fs::copy(ra.join("signing.pem"), ra.join("chain.pem")).unwrap();
        let text = SAMPLE
            .replace(
                "# next_ca_chain = \"ra/next-ca.pem\"",
                "next_ca_chain = \"ra/next-ca.pem\"",
            )
            .replace("# [ra.previous_encryption]", "[ra.previous_encryption]")
            .replace(
                "# cert = \"ra/encryption-old.pem\"",
                "cert = \"ra/encryption-old.pem\"",
            )
            .replace(
                "# key = \"ra/encryption-old.key\"",
                "key = \"ra/encryption-old.key\"",
            )
            .replace(
                "# until = \"2027-01-31T00:00:00Z\"",
                "until = \"2027-01-31T00:00:00Z\"",
            );
        let file = dir.path().join("ndes.toml");
        std::fs::write(&file, &text).unwrap();
        let identity = Config::load(&file).unwrap().ra_identity().unwrap();
        assert!(identity.next_ca_response().is_some());
        let until = 1_801_353_600; // 2027-01-31T00:00:00Z
        assert_eq!(
            identity.decryption_keys(until).len(),
            2,
            "previous key within its grace period"
        );
        assert_eq!(
            identity.decryption_keys(until + 1).len(),
            1,
            "and not after"
        );
        std::fs::write(&file, text.replace("2027-01-31T00:00:00Z", "next month")).unwrap();
        assert!(matches!(
            Config::load(&file).unwrap().ra_identity(),
            Err(ConfigError::Invalid(_))
        ));
    }
}
