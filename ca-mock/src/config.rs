//! The `ca-mock.toml` configuration and [`open`], which turns it into a running CA's state.
//! Relative paths in the file are relative to the file's directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use ca_api::GrantVerifier;

use crate::auth::{Caller, Callers, Operation, hash_token};
use crate::ca::{CaSettings, CertificateAuthority};
use crate::error::CaError;
use crate::hierarchy::CaMaterial;
use crate::keys::Passphrase;
use crate::state::AppState;
use crate::store::SqlStore;
use crate::template::Template;
use foundation::clock::SystemClock;

/// The sample configuration `init` writes (also parsed by the tests).
pub const SAMPLE_CONFIG: &str = include_str!("../config/ca-mock.toml");

/// Issuance tunables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuanceConfig {
    /// Backdating of NotBefore, seconds.
    #[serde(default = "default_skew")]
    pub not_before_skew_secs: i64,
}

/// CRL tunables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlConfig {
    /// nextUpdate - thisUpdate, hours.
    #[serde(default = "default_crl_validity")]
    pub validity_hours: i64,
    /// Scheduled regeneration interval, minutes.
    #[serde(default = "default_crl_refresh")]
    pub refresh_minutes: u64,
    /// File the CRL is written to (atomically); relative to the config directory.
    #[serde(default = "default_crl_file")]
    pub file: PathBuf,
}

/// OCSP tunables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcspConfig {
    /// nextUpdate - thisUpdate of responses, minutes.
    #[serde(default = "default_ocsp_validity")]
    pub validity_minutes: i64,
}

/// One API caller. Exactly one of `token_sha256` and `token_file` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerConfig {
    /// Identity name for the audit log.
    pub name: String,
    /// SHA-256 of the bearer token, hex (`ca-mock hash-token` prints it).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// A file holding the bearer token itself (mode 0600).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Templates it may use; `*` for all.
    pub templates: Vec<String>,
    /// Operations it may call.
    pub operations: Vec<Operation>,
    /// Plain mode's entitlement: issue without a signed grant from the policy module, and
    /// never with SANs (docs/decisions.md #10). Only for a standalone NDES with a static
    /// challenge; off by default.
    #[serde(default)]
    pub issue_without_grant: bool,
}

/// Whose signed grants the CA accepts (docs/decisions.md #10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsConfig {
    /// PEM public keys (Ed25519) of the policy modules whose grants are trusted
    /// (`policy-module grant-key` writes one). Empty: only plain-mode callers can issue.
    #[serde(default)]
    pub public_keys: Vec<PathBuf>,
    /// Longest grant lifetime accepted, seconds.
    #[serde(default = "default_grant_lifetime")]
    pub max_lifetime_secs: i64,
}

fn default_grant_lifetime() -> i64 {
    900
}

impl Default for GrantsConfig {
    fn default() -> Self {
        Self {
            public_keys: Vec::new(),
            max_lifetime_secs: default_grant_lifetime(),
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address `serve` listens on.
    pub listen: SocketAddr,
    /// Base of the URLs put into certificates (AIA, CDP).
    pub public_base_url: String,
    /// A SQLite file path, a `sqlite:` URL, or a `postgres://` URL.
    #[serde(default = "default_database")]
    pub database: String,
    /// Directory holding the CA hierarchy.
    #[serde(default = "default_ca_dir")]
    pub ca_dir: PathBuf,
    /// File holding the CA key passphrase.
    #[serde(default)]
    pub key_passphrase_file: Option<PathBuf>,
    /// Environment variable holding the CA key passphrase.
    #[serde(default)]
    pub key_passphrase_env: Option<String>,
    /// Template files; empty means the built-in NDES templates.
    #[serde(default)]
    pub templates: Vec<PathBuf>,
    /// Issuance tunables.
    #[serde(default)]
    pub issuance: IssuanceConfig,
    /// CRL tunables.
    #[serde(default)]
    pub crl: CrlConfig,
    /// OCSP tunables.
    #[serde(default)]
    pub ocsp: OcspConfig,
    /// API callers.
    #[serde(default)]
    pub callers: Vec<CallerConfig>,
    /// Trusted grant signers.
    #[serde(default)]
    pub grants: GrantsConfig,
    /// With `[tls]` `cert_file`/`key_file`, `listen` serves HTTPS (issue 17 item 4) and this
    /// plain-HTTP address serves only what certificates point at (CA certificates, CRLs,
    /// OCSP, `/healthz`; [`crate::pki_plain`]), where `public_base_url` should point.
    #[serde(default)]
    pub plain_listen: Option<SocketAddr>,
    /// `[tls]`: the server certificate (reloaded when its files change).
    #[serde(default)]
    pub tls: foundation::tls_files::TlsFiles,
}

fn default_skew() -> i64 {
    300
}
fn default_crl_validity() -> i64 {
    168
}
fn default_crl_refresh() -> u64 {
    60
}
fn default_crl_file() -> PathBuf {
    PathBuf::from("issuing.crl")
}
fn default_ocsp_validity() -> i64 {
    60
}
fn default_database() -> String {
    "ca.db".into()
}
fn default_ca_dir() -> PathBuf {
    PathBuf::from(".")
}

impl Default for IssuanceConfig {
    fn default() -> Self {
        Self {
            not_before_skew_secs: default_skew(),
        }
    }
}
impl Default for CrlConfig {
    fn default() -> Self {
        Self {
            validity_hours: default_crl_validity(),
            refresh_minutes: default_crl_refresh(),
            file: default_crl_file(),
        }
    }
}
impl Default for OcspConfig {
    fn default() -> Self {
        Self {
            validity_minutes: default_ocsp_validity(),
        }
    }
}

impl Config {
    /// Parses the TOML text (unknown keys are errors).
    pub fn from_toml(text: &str) -> Result<Self, CaError> {
        let config: Self = toml::from_str(text).map_err(|e| CaError::Config(e.to_string()))?;
        let url = &config.public_base_url;
        // It goes into AIA/CDP as an IA5String URI: ASCII, with a scheme clients can fetch.
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || !url.is_ascii()
            || url.contains(char::is_whitespace)
        {
            return Err(CaError::Config(format!(
                "public_base_url {url:?} must be an ASCII http:// or https:// URL"
            )));
        }
        config.check_ranges()?;
        config.check_database()?;
        Ok(config)
    }

    /// The issuance store must be durable (docs/decisions.md #8: WAL with synchronous=FULL, set
    /// by the store on every connection). A SQLite URL could still undo that through its
    /// query: an in-memory database forgets every issuance at exit, and another VFS or
    /// `immutable=1` drops the locking and syncing the guarantee rests on. So a SQLite
    /// database is a file, with at most `mode=rw` or `mode=rwc`.
    fn check_database(&self) -> Result<(), CaError> {
        let db = self.database.as_str();
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            return Ok(());
        }
        let refuse = |why: &str| {
            Err(CaError::Config(format!(
                "database: {why}; the issuance store must be a SQLite file (WAL, synchronous=FULL)"
            )))
        };
        let (path, query) = db.split_once('?').unwrap_or((db, ""));
        if path.contains(":memory:") {
            return refuse("an in-memory database loses every issuance at exit");
        }
        for param in query.split('&').filter(|p| !p.is_empty()) {
            if !matches!(param, "mode=rw" | "mode=rwc") {
                return refuse(&format!("URL parameter {param:?} is not allowed"));
            }
        }
        Ok(())
    }

    /// Durations must be positive and small enough that the arithmetic on them (hours to
    /// seconds, `now + validity`) cannot overflow: found by the `ca_config` fuzz target.
    fn check_ranges(&self) -> Result<(), CaError> {
        const TEN_YEARS_HOURS: i64 = 10 * 366 * 24;
        let bad = |m: &str| Err(CaError::Config(m.to_owned()));
        if !(0..=TEN_YEARS_HOURS * 3600).contains(&self.issuance.not_before_skew_secs) {
            return bad("[issuance] not_before_skew_secs must be between 0 and ten years");
        }
        if !(1..=TEN_YEARS_HOURS).contains(&self.crl.validity_hours) {
            return bad("[crl] validity_hours must be between 1 and ten years");
        }
        if !(1..=TEN_YEARS_HOURS * 60).contains(&self.ocsp.validity_minutes) {
            return bad("[ocsp] validity_minutes must be between 1 and ten years");
        }
        if !(1..=86_400).contains(&self.grants.max_lifetime_secs) {
            return bad("[grants] max_lifetime_secs must be between 1 and 86400");
        }
        Ok(())
    }

    /// Reads a config file and makes its relative paths absolute.
    pub fn load(path: &Path) -> Result<Self, CaError> {
        let text = std::fs::read_to_string(path).map_err(|e| CaError::io(path, e))?;
        let config = Self::from_toml(&text)
            .map_err(|e| CaError::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Ok(config.resolve(base))
    }

    /// Makes relative paths relative to `base`.
    pub fn resolve(mut self, base: &Path) -> Self {
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        self.ca_dir = abs(&self.ca_dir);
        self.crl.file = abs(&self.crl.file);
        self.key_passphrase_file = self.key_passphrase_file.as_deref().map(abs);
        self.templates = self.templates.iter().map(|p| abs(p)).collect();
        for c in &mut self.callers {
            c.token_file = c.token_file.as_deref().map(abs);
        }
        self.grants.public_keys = self.grants.public_keys.iter().map(|p| abs(p)).collect();
        self.tls.resolve(base);
        let db = &self.database;
        if !db.starts_with("postgres://")
            && !db.starts_with("postgresql://")
            && !db.starts_with("sqlite:")
        {
            self.database = format!("sqlite://{}", abs(Path::new(db)).display());
        }
        self
    }

    /// The CA key passphrase from the file or environment variable, if configured.
    pub fn passphrase(&self) -> Result<Option<Passphrase>, CaError> {
        if let Some(f) = &self.key_passphrase_file {
            return Passphrase::from_file(f).map(Some);
        }
        if let Some(var) = &self.key_passphrase_env {
            let v = std::env::var(var)
                .map_err(|_| CaError::Config(format!("environment variable {var} is not set")))?;
            return Ok(Some(Passphrase::new(v)));
        }
        Ok(None)
    }

    /// The configured templates (built-ins when none are listed).
    pub fn load_templates(&self) -> Result<Vec<Template>, CaError> {
        if self.templates.is_empty() {
            return Template::builtin();
        }
        self.templates.iter().map(|p| Template::load(p)).collect()
    }

    /// The configured callers, reading token files.
    pub fn load_callers(&self) -> Result<Callers, CaError> {
        let mut out = Vec::new();
        for c in &self.callers {
            let hash = match (&c.token_sha256, &c.token_file) {
                (Some(h), None) => h.clone(),
                (None, Some(f)) => {
                    let token = std::fs::read_to_string(f).map_err(|e| CaError::io(f, e))?;
                    if token.trim().is_empty() {
                        return Err(CaError::Config(format!("{}: empty token", f.display())));
                    }
                    hash_token(token.trim())
                }
                _ => {
                    return Err(CaError::Config(format!(
                        "caller {:?}: set exactly one of token_sha256 and token_file",
                        c.name
                    )));
                }
            };
            let caller = Caller::new(&c.name, &hash, c.templates.clone(), c.operations.clone())?;
            out.push(if c.issue_without_grant {
                caller.plain_mode()
            } else {
                caller
            });
        }
        Callers::new(out)
    }

    /// The trusted grant signers, reading their key files.
    pub fn load_grant_verifier(&self) -> Result<GrantVerifier, CaError> {
        let mut pems = Vec::new();
        for path in &self.grants.public_keys {
            match std::fs::read(path) {
                Ok(pem) => pems.push(pem),
                // Fail closed but start: `ca-mock init` writes the sample before any policy
                // module has a key. Until the file exists, no grant verifies.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => tracing::warn!(
                    file = %path.display(),
                    "grant public key not found: grants are refused until it exists and the CA restarts"
                ),
                Err(e) => return Err(CaError::io(path, e)),
            }
        }
        GrantVerifier::from_pems(
            pems.iter().map(Vec::as_slice),
            self.grants.max_lifetime_secs,
        )
        .map_err(|e| CaError::Config(format!("[grants] public_keys: {e}")))
    }

    /// CA service settings from this config.
    pub fn settings(&self) -> CaSettings {
        let mut s = CaSettings::new(&self.public_base_url);
        s.not_before_skew_secs = self.issuance.not_before_skew_secs;
        s.crl_validity_secs = self.crl.validity_hours * 3600;
        s.ocsp_validity_secs = self.ocsp.validity_minutes * 60;
        s.crl_path = Some(self.crl.file.clone());
        s
    }
}

/// Opens everything a config names (hierarchy, templates, callers, store), publishes a first
/// CRL and returns the state `router`/`serve` take. Paths must already be resolved.
pub async fn open(config: &Config) -> Result<AppState, CaError> {
    let state = open_without_publishing(config).await?;
    state.ca.refresh_crl().await?;
    Ok(state)
}

/// The CA of `config` without publishing a CRL: for commands that only read (`ca-mock list`),
/// which must leave the CRL number and file of a running server as they are.
pub async fn open_without_publishing(config: &Config) -> Result<AppState, CaError> {
    let passphrase = config.passphrase()?;
    let material = CaMaterial::load(&config.ca_dir, passphrase.as_ref())?;
    let templates = config.load_templates()?;
    let callers = config.load_callers()?;
    let mut settings = config.settings();
    settings.grants = config.load_grant_verifier()?;
    let store = SqlStore::connect(&config.database).await?;
    let ca = CertificateAuthority::new(
        material,
        templates,
        Arc::new(store),
        Arc::new(SystemClock),
        settings,
    )?;
    Ok(AppState {
        ca: Arc::new(ca),
        callers: Arc::new(callers),
        crl_refresh: Duration::from_secs(
            config.crl.refresh_minutes.clamp(1, 10 * 366 * 24 * 60) * 60,
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn sample_config_parses_and_resolves() {
        let c = Config::from_toml(SAMPLE_CONFIG).unwrap();
        assert_eq!(c.callers.len(), 2);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let r = c.resolve(&dir);
        assert_eq!(r.ca_dir, dir);
        assert!(r.database.starts_with("sqlite://") && r.database.ends_with("ca.db"));
        // Every committed sample template parses and validates.
        let names: Vec<_> = r
            .load_templates()
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(
            names,
            [
                "IPSECIntermediateOffline",
                "EnrollmentAgentOffline",
                "CEPEncryption"
            ]
        );
        let tokens = r
            .callers
            .iter()
            .filter_map(|c| c.token_file.as_ref())
            .count();
        assert_eq!(tokens, 2);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = format!("{SAMPLE_CONFIG}\n[crl]\nvalidity_hours = 1\ncolour = 1\n");
        assert!(Config::from_toml(&text).is_err());
        let text = SAMPLE_CONFIG.replacen("\nlisten =", "\nlisten_addr = \"x\"\nlisten =", 1);
        let err = Config::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("listen_addr"), "{err}");
        let text = SAMPLE_CONFIG.replace("\"http://127.0.0.1:8180\"", "\"ftp://ca\"");
        assert!(Config::from_toml(&text).is_err(), "bad public_base_url");
    }

    #[test]
    fn a_database_that_would_lower_durability_is_rejected() {
        let with = |db: &str| SAMPLE_CONFIG.replace("database = \"ca.db\"", db);
        for (db, named) in [
            ("database = \"sqlite::memory:\"", "in-memory"),
            ("database = \"sqlite://ca.db?mode=memory\"", "mode=memory"),
            ("database = \"sqlite://ca.db?vfs=unix-none\"", "vfs"),
            ("database = \"sqlite://ca.db?immutable=1\"", "immutable"),
            (
                "database = \"sqlite://ca.db?mode=rwc&cache=shared\"",
                "cache",
            ),
        ] {
            let err = Config::from_toml(&with(db)).unwrap_err().to_string();
            assert!(err.contains(named), "{db}: {err}");
        }
        for db in [
            "database = \"data/ca.db\"",
            "database = \"sqlite://ca.db?mode=rwc\"",
            "database = \"postgres://ca@localhost/ca?sslmode=disable\"",
        ] {
            Config::from_toml(&with(db)).unwrap();
        }
    }

    #[test]
    fn durations_out_of_range_are_rejected() {
        for (from, to) in [
            (
                "validity_hours = 168",
                "validity_hours = 9223372036854775807",
            ),
            ("validity_hours = 168", "validity_hours = 0"),
            ("validity_minutes = 60", "validity_minutes = -5"),
            ("skew_secs = 300", "skew_secs = -9223372036854775808"),
        ] {
            let text = SAMPLE_CONFIG.replace(from, to);
            assert_ne!(text, SAMPLE_CONFIG);
            let err = Config::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains("ten years"), "{to}: {err}");
        }
        let text = SAMPLE_CONFIG.replace("validity_hours = 168", "validity_hours = 48");
        let settings = Config::from_toml(&text).unwrap().settings();
        assert_eq!(settings.crl_validity_secs, 48 * 3600);
    }
}
