//! A service's `[tls]` configuration section and the reload of its certificate files
//! (issue 17 item 4): `cert_file`/`key_file` make its listener HTTPS, `ca_file` is the root it
//! pins when it calls another service; a renewed certificate written over the files is served
//! from the next handshake on (checked every minute by mtime), so renewal needs no restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::tls::{ClientTls, ServerTls, TlsError};

/// How often [`CertWatch::spawn`] looks at the certificate files.
pub const RELOAD_CHECK: Duration = Duration::from_secs(60);

/// `[tls]`: all keys optional; a server needs `cert_file` and `key_file` together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The server certificate, PEM, leaf first then the issuing CA.
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM (keep it 0600).
    pub key_file: Option<PathBuf>,
    /// The root pinned when calling another service over HTTPS (nothing else is trusted).
    pub ca_file: Option<PathBuf>,
}

/// Why a `[tls]` section could not be used. Names files, never what a key holds.
#[derive(Debug, thiserror::Error)]
pub enum TlsFilesError {
    /// One of cert_file/key_file without the other.
    #[error("[tls] needs cert_file and key_file together")]
    Incomplete,
    /// A file could not be read.
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// A file's content was refused.
    #[error("{0}: {1}")]
    Tls(PathBuf, TlsError),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFilesError> {
    std::fs::read(path).map_err(|e| TlsFilesError::Read(path.to_owned(), e))
}

impl TlsFiles {
    /// Makes relative paths relative to `base` (the configuration file's directory).
    pub fn resolve(&mut self, base: &Path) {
        for p in [&mut self.cert_file, &mut self.key_file, &mut self.ca_file]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The server certificate, watched for renewal; `None` when the section names none.
    pub fn server(&self) -> Result<Option<CertWatch>, TlsFilesError> {
        match (&self.cert_file, &self.key_file) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => CertWatch::load(cert, key).map(Some),
            _ => Err(TlsFilesError::Incomplete),
        }
    }

    /// The pin for calls to other services; `None` when the section names no `ca_file`.
    pub fn pin(&self) -> Result<Option<ClientTls>, TlsFilesError> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        ClientTls::pinned(&read(path)?)
            .map(Some)
            .map_err(|e| TlsFilesError::Tls(path.clone(), e))
    }
}

/// A served certificate and the files it came from, reloaded when they change.
#[derive(Debug)]
pub struct CertWatch {
    tls: Arc<ServerTls>,
    cert: PathBuf,
    key: PathBuf,
    seen: Option<SystemTime>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl CertWatch {
    /// Loads `cert` and `key` (they must match).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsFilesError> {
        let seen = modified(cert).max(modified(key));
        let tls = ServerTls::from_pem(&read(cert)?, &read(key)?)
            .map_err(|e| TlsFilesError::Tls(cert.to_owned(), e))?;
        Ok(Self {
            tls: Arc::new(tls),
            cert: cert.to_owned(),
            key: key.to_owned(),
            seen,
        })
    }

    /// What the listener serves.
    pub fn tls(&self) -> Arc<ServerTls> {
        self.tls.clone()
    }

    /// Reloads when either file's mtime moved since the last load; `Ok(true)` when it did.
    /// A pair that does not load (a renewal half written) keeps the certificate in use and is
    /// tried again at the next check.
    pub fn check(&mut self) -> Result<bool, TlsFilesError> {
        let now = modified(&self.cert).max(modified(&self.key));
        if now == self.seen {
            return Ok(false);
        }
        let (cert, key) = (read(&self.cert)?, read(&self.key)?);
        self.tls
            .reload(&cert, &key)
            .map_err(|e| TlsFilesError::Tls(self.cert.clone(), e))?;
        self.seen = now;
        Ok(true)
    }

    /// Checks every `every` until the returned task is aborted (or the runtime ends).
    pub fn spawn(mut self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match self.check() {
                    Ok(true) => {
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS certificate not reloaded; the one in use stays")
                    }
                }
            }
        })
    }
}

#[cfg(test)]
#[path = "tls_files_tests.rs"]
mod tests;
