//! The TOML configuration of the `ndes-proxy` binary (unknown keys are rejected). Relative
//! paths are resolved against the configuration file's directory. Secrets (RA keys, tokens)
//! are read from files named here, never written into the file itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::pkey::PKey;
use openssl::x509::X509;
use serde::Deserialize;

use crate::Settings;
use crate::ra::{KeyPair, RaIdentity};

/// The file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the SCEP listener.
    pub listen: SocketAddr,
    /// Refuse DES, 3DES and SHA-1.
    #[serde(default)]
    pub strict_algorithms: bool,
    /// Refuse requests whose signingTime is further than this from now, if set.
    #[serde(default)]
    pub signing_time_tolerance_secs: Option<i64>,
    /// Largest PKIOperation POST body, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Deadline for a whole request, in seconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// The RA identity.
    pub ra: RaFiles,
    /// The CA (ca-mock) API.
    pub ca: Remote,
    /// The policy module's NDES contract API.
    pub policy: Remote,
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

fn default_max_body() -> usize {
    scep::limits::MAX_MESSAGE_SIZE
}

fn default_timeout() -> u64 {
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
        for p in [
            &mut c.ra.signing_cert,
            &mut c.ra.signing_key,
            &mut c.ra.encryption_cert,
            &mut c.ra.encryption_key,
            &mut c.ra.chain,
            &mut c.ca.token_file,
            &mut c.policy.token_file,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(c)
    }

    /// The endpoint settings.
    pub fn settings(&self) -> Settings {
        Settings {
            strict_algorithms: self.strict_algorithms,
            signing_time_tolerance: self.signing_time_tolerance_secs,
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            ..Settings::default()
        }
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
        Ok(RaIdentity::new(signing, encryption, chain)?)
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

/// Read a token file (first line, trimmed).
pub fn read_token(path: &Path) -> Result<String, ConfigError> {
    let text = read(path)?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SAMPLE: &str = include_str!("../ndes-proxy.sample.toml");

    #[test]
    fn the_sample_config_parses() {
        let c = Config::from_toml(SAMPLE).unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.settings().max_body_bytes, scep::limits::MAX_MESSAGE_SIZE);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let bad = format!("{SAMPLE}\nunknown_key = 1\n");
        assert!(Config::from_toml(&bad).is_err());
        let bad = SAMPLE.replace("[ra]", "[ra]\ncolour = \"blue\"");
        assert!(Config::from_toml(&bad).is_err());
    }
}
