//! The HTTP client of the lab's own tools (`payload`, `trace`, `profile import/export`) against
//! a running lab: against a `serve --tls` lab it pins the lab's root, and nothing else, as the
//! services do between themselves (issue 17 item 4).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use foundation::tls::ClientTls;

/// The root the tools pin: `ca_file` when given, else `<data>/tls/root.pem` when the lab wrote
/// one (it ran with TLS), else none (plain HTTP and the system's roots, as before TLS).
pub fn root_file(ca_file: Option<&Path>, data: &Path) -> Option<PathBuf> {
    match ca_file {
        Some(f) => Some(f.to_owned()),
        None => Some(data.join("tls").join("root.pem")).filter(|p| p.is_file()),
    }
}

/// A client with `timeout`, pinned to [`root_file`]'s root when there is one.
pub fn client(ca_file: Option<&Path>, data: &Path, timeout: Duration) -> Result<reqwest::Client> {
    let pin = match root_file(ca_file, data) {
        Some(path) => {
            let pem = std::fs::read(&path)
                .with_context(|| format!("reading the root to pin, {}", path.display()))?;
            Some(
                ClientTls::pinned(&pem)
                    .with_context(|| format!("{}: no CA certificate to pin", path.display()))?,
            )
        }
        None => None,
    };
    Ok(foundation::tls::client_builder(pin.as_ref())?
        .timeout(timeout)
        .build()?)
}
