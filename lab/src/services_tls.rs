//! HTTPS for the separate processes of `scep-lab services` (issue 17 item 4), on by default:
//! one server certificate per service from the CA the directory holds (the lab's
//! [`crate::tls::SERVER_TEMPLATE`], SANs 127.0.0.1 and localhost) under `tls/`, with
//! `tls/root.pem` the root every caller pins; the configurations are the samples with their
//! commented `[tls]` lines switched on. ca-mock's API moves to HTTPS while a plain listener
//! keeps serving what certificates point at (CRL, OCSP, CA certificates); ndes-proxy keeps
//! plain-HTTP SCEP and serves everything over HTTPS on its own port. [`renew_due`] re-issues
//! the certificates with a third of their lifetime left; each running service reloads its
//! files when they change (foundation::tls_files).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::{Context, Result};
use foundation::Clock;

/// The ports TLS adds beside the plain ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicesTls {
    /// ca-mock's plain-HTTP listener (CRL, OCSP, CA certificates), named in certificates.
    pub ca_plain_port: u16,
    /// One HTTPS port per ndes-proxy instance (SCEP, mscep_admin, the admin API).
    pub ndes_https_ports: Vec<u16>,
}

impl ServicesTls {
    /// The samples' ports: 8181, and 8443 on for `instances` ndes-proxy instances.
    pub fn sample(instances: u16) -> Self {
        Self {
            ca_plain_port: 8181,
            ndes_https_ports: (0..instances).map(|i| 8443 + i).collect(),
        }
    }
}

/// The template file ca-mock loads so that `renew_due` (in process) can issue under it.
pub(super) const TEMPLATE_FILE: &str = "LabTlsServer.toml";

/// `# key = ...` lines of a sample switched on.
fn uncomment(lines: &[&'static str]) -> Vec<(&'static str, String)> {
    lines
        .iter()
        .map(|l| (*l, l.trim_start_matches("# ").to_owned()))
        .collect()
}

/// ca-mock's edits: the plain listener, `[tls]`, the server template.
pub(super) fn ca_edits(plain: SocketAddr) -> Vec<(&'static str, String)> {
    let mut e = uncomment(&[
        "# [tls]",
        "# cert_file = \"tls/ca-mock.crt.pem\"",
        "# key_file = \"tls/ca-mock.key.pem\"",
    ]);
    e.push((
        "# plain_listen = \"127.0.0.1:8181\"",
        format!("plain_listen = \"{plain}\""),
    ));
    e.push((
        "    \"templates/CEPEncryption.toml\",",
        format!("    \"templates/CEPEncryption.toml\",\n    \"templates/{TEMPLATE_FILE}\","),
    ));
    e
}

/// policy-module's edits: `[tls]` with the pin.
pub(super) fn policy_edits() -> Vec<(&'static str, String)> {
    uncomment(&[
        "# [tls]",
        "# cert_file = \"tls/policy-module.crt.pem\"",
        "# key_file = \"tls/policy-module.key.pem\"",
        "# ca_file = \"tls/root.pem\"",
    ])
}

/// ndes-proxy's edits: its HTTPS listener and `[tls]` with the pin.
pub(super) fn ndes_edits(https: SocketAddr) -> Vec<(&'static str, String)> {
    let mut e = uncomment(&[
        "# [tls]",
        "# cert_file = \"tls/ndes-proxy.crt.pem\"",
        "# key_file = \"tls/ndes-proxy.key.pem\"",
        "# ca_file = \"tls/root.pem\"",
    ]);
    e.push((
        "# https_listen = \"127.0.0.1:8443\"",
        format!("https_listen = \"{https}\""),
    ));
    e
}

/// Writes `tls/root.pem` and issues every service's certificate under `dir/tls`.
pub(super) async fn issue_all(ca: &ca_mock::CertificateAuthority, dir: &Path) -> Result<()> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).with_context(|| format!("creating {}", tls.display()))?;
    std::fs::write(tls.join("root.pem"), ca.material().root.to_pem()?)
        .context("writing tls/root.pem")?;
    let now = foundation::SystemClock.now();
    for name in crate::tls::SERVICES {
        crate::tls::issue(
            ca,
            &tls,
            name,
            crate::tls::Kind::Server,
            Ipv4Addr::LOCALHOST.into(),
            now,
        )
        .await?;
    }
    Ok(())
}

/// Re-issues, in a directory [`super::prepare`] wrote, each certificate with a third or less
/// of its lifetime left (or missing); returns the services renewed. The running services
/// pick the new files up within a minute.
pub async fn renew_due(dir: &Path) -> Result<Vec<&'static str>> {
    let config = ca_mock::Config::load(&dir.join("ca-mock.toml")).context("ca-mock.toml")?;
    let state = ca_mock::open_without_publishing(&config)
        .await
        .context("opening the CA")?;
    let tls = dir.join("tls");
    let now = foundation::SystemClock.now();
    let mut renewed = Vec::new();
    for name in crate::tls::SERVICES {
        if crate::tls::due(
            &crate::tls::paths(&tls, name, crate::tls::Kind::Server).0,
            now,
        ) {
            crate::tls::issue(
                &state.ca,
                &tls,
                name,
                crate::tls::Kind::Server,
                Ipv4Addr::LOCALHOST.into(),
                now,
            )
            .await?;
            renewed.push(name);
        }
    }
    Ok(renewed)
}
