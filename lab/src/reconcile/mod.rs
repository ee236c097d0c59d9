//! The reconciler behind `scep-lab audit`: checks the invariants of
//! reliability.md part 3 (c) across ca-mock's store, the published CRL file, OCSP,
//! policy-module's store and ndes-proxy's pending store, and reports every violation.
//!
//! It only reads. OCSP is asked in process (the same code path the HTTP endpoint serves) and
//! the CRL is the file on disk that relying parties download, not a freshly built one: the
//! point is to find what a crash or a lost write left behind, not to paper over it.
//!
//! | check | invariant |
//! |---|---|
//! | every `issue` line of the CA audit log, inventory serial and pending-store serial has a CA record | I1 |
//! | each record's DER parses, is signed by the issuing CA and carries the record's serial; no serial twice | I1, I2 |
//! | at most one certificate per challenge (policy requests ⋈ certificates) | I3 |
//! | no challenge burnt without a reason: reserved ⇒ its request is recorded, consumed ⇒ its certificate is | I3 |
//! | what the policy module and the pending store hold equals the CA's DER | I4 |
//! | every device certificate the CA issued is in the policy inventory (else a retire would miss it), unless ndes-proxy owes its Notify and has for at most [`OWED_NOTIFY_OVERDUE_SECS`] (a note) | I7 |
//! | revoked at CA ⇔ listed in the published CRL; OCSP agrees with the store; OCSP says unknown for a serial never issued | I6 |
//! | inventory "revoked" or "held" is revoked at the CA (held: on hold, not revoked for good); "revoking" and "releasing" have a pending outbox entry | I6 |
//! | no certificate of a blocked, retired or wiped device is still issued, including one issued after the action (docs/decisions.md #11) | I7 |
//! | SQLite integrity_check, WAL + synchronous=FULL; CRL signed, unexpired, number not ahead of the counter | I8 |
//! | every record's certificate passes ca-mock's RFC 5280 profile lint (`ca_mock::lint`) | P35 |
//! | every certificate issued under a grant matches a request the policy module granted: same request id, key and template (docs/decisions.md #10) | I9 |
//! | every state change has its audit record (a certificate its `notified`, a granted request its decision, a confirmed revocation or release its record) and no record names a serial or granted request that does not exist (docs/decisions.md #12) | I10 |
//!
//! I5 (a retransmission returns the same certificate) is a property of live traffic: the fault
//! tests check it by retrying, then run this reconciler.

mod ca;
mod cross;

pub use cross::OWED_NOTIFY_OVERDUE_SECS;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::Databases;

/// One of the invariants I1-I10, or the output hygiene of every certificate (P35).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// Every signed certificate has a durable record.
    I1,
    /// No serial issued twice.
    I2,
    /// At most one certificate per challenge.
    I3,
    /// Every certificate handed out corresponds to a committed issuance.
    I4,
    /// A retransmission returns the same certificate (checked by the fault tests).
    I5,
    /// Revocations reach the store, the CRL and OCSP.
    I6,
    /// Lifecycle transitions are durable and ordered.
    I7,
    /// Databases and the published CRL are intact.
    I8,
    /// The CA issued only what the policy module granted (docs/decisions.md #10).
    I9,
    /// Each state change has its audit record and each record its state change
    /// (docs/decisions.md #12).
    I10,
    /// Every issued certificate is lint-clean against the CA's RFC 5280 profile (reliability
    /// catalogue P35: serial, NotBefore backdate, issuer/AKI, extensions, key usage).
    P35,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A violation: which invariant, of what, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The invariant broken.
    pub invariant: Invariant,
    /// What it is about (a serial, a device, a database).
    pub subject: String,
    /// What is wrong.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.invariant, self.subject, self.detail)
    }
}

/// What the reconciler saw and found.
#[derive(Debug, Default)]
pub struct Report {
    /// Violations; empty means every checked invariant holds.
    pub findings: Vec<Finding>,
    /// Facts worth knowing that are not violations (work still queued, not yet published).
    pub notes: Vec<String>,
    /// Certificates recorded by the CA.
    pub ca_certificates: usize,
    /// Of which revoked or on hold.
    pub ca_revoked: usize,
    /// Certificates in the policy inventory.
    pub inventory_certificates: usize,
    /// Rows in the pending store.
    pub pending_rows: usize,
    /// The published CRL's number, if a CRL is published.
    pub crl_number: Option<i64>,
}

impl Report {
    /// True when no invariant is violated.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// How many findings each invariant has.
    pub fn counts(&self) -> BTreeMap<Invariant, usize> {
        let mut m = BTreeMap::new();
        for f in &self.findings {
            *m.entry(f.invariant).or_insert(0) += 1;
        }
        m
    }

    pub(crate) fn find(
        &mut self,
        invariant: Invariant,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.findings.push(Finding {
            invariant,
            subject: subject.into(),
            detail: detail.into(),
        });
    }

    /// Writes the report for people: a summary line, notes, then one line per finding.
    pub fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "CA: {} certificates ({} revoked or held); inventory: {}; pending store: {} rows; published CRL number: {}",
            self.ca_certificates,
            self.ca_revoked,
            self.inventory_certificates,
            self.pending_rows,
            self.crl_number
                .map_or_else(|| "none".to_owned(), |n| n.to_string())
        )?;
        for n in &self.notes {
            writeln!(out, "note: {n}")?;
        }
        for f in &self.findings {
            writeln!(out, "VIOLATION {f}")?;
        }
        if self.is_clean() {
            writeln!(out, "reconcile OK: I1-I4, I6-I10 and P35 hold")
        } else {
            writeln!(
                out,
                "reconcile FAILED: {} violation(s)",
                self.findings.len()
            )
        }
    }
}

/// Everything the reconciler reads. Open a lab's with [`Sources::open`].
pub struct Sources {
    /// ca-mock over its store (OCSP is answered in process; it never publishes a CRL here).
    pub ca: Arc<ca_mock::CertificateAuthority>,
    /// The same store, for the checks only the SQL store offers.
    pub ca_store: ca_mock::store::SqlStore,
    /// policy-module's store.
    pub policy: policy_module::store::Store,
    /// ndes-proxy's pending store.
    pub pending: ndes_proxy::SqlPendingStore,
    /// The CRL file ca-mock publishes.
    pub crl_path: PathBuf,
    /// Templates whose certificates go to devices (and so must be in the policy inventory).
    pub device_templates: Vec<String>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("crl_path", &self.crl_path)
            .finish_non_exhaustive()
    }
}

impl Sources {
    /// Opens the stores of the lab in `data` (which may be running: every check only reads).
    pub async fn open(data: &Path, dbs: &Databases) -> Result<Self> {
        let dir = data.join("ca");
        let material = ca_mock::CaMaterial::load(&dir, None).context("loading the CA hierarchy")?;
        // Issuing CAs retired by a rollover still answer for what they issued.
        let retired = ca_mock::rollover::load_retired(&dir, &material.root, None)
            .context("loading the issuing CAs retired by a rollover")?;
        let ca_store = crate::open_ca_store(data, dbs).await?;
        let ca = ca_mock::CertificateAuthority::new(
            material,
            ca_mock::template::Template::builtin()?,
            Arc::new(ca_store.clone()),
            Arc::new(foundation::clock::SystemClock),
            ca_mock::CaSettings::new("http://127.0.0.1"),
        )?
        .with_retired(retired)?;
        let policy = crate::open_policy_store(data, dbs, Arc::new(foundation::SystemClock)).await?;
        let pending = crate::open_pending_store(data, dbs).await?;
        Ok(Self {
            ca: Arc::new(ca),
            ca_store,
            policy,
            pending,
            crl_path: dir.join("issuing.crl"),
            device_templates: crate::DEVICE_TEMPLATES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        })
    }

    /// Opens the stores named by the configuration files of a deployment of separate
    /// processes (`ca-mock serve --config`, `policy-module serve --config`,
    /// `ndes-proxy serve --config`; any one instance's file for a service with several).
    pub async fn from_configs(ca: &Path, policy: &Path, ndes: &Path) -> Result<Self> {
        let ca_cfg = ca_mock::Config::load(ca)?;
        let material = ca_mock::CaMaterial::load(&ca_cfg.ca_dir, ca_cfg.passphrase()?.as_ref())
            .context("loading the CA hierarchy")?;
        let ca_store = ca_mock::store::SqlStore::connect(&ca_cfg.database)
            .await
            .context("opening the CA store")?;
        let mut settings = ca_cfg.settings();
        // Read the published CRL; never write one.
        let crl_path = settings
            .crl_path
            .take()
            .context("ca-mock's configuration publishes no CRL file")?;
        let ca = ca_mock::CertificateAuthority::new(
            material,
            ca_cfg.load_templates()?,
            Arc::new(ca_store.clone()),
            Arc::new(foundation::clock::SystemClock),
            settings,
        )?;
        let policy_cfg = policy_module::config::Config::load(policy)?;
        let clock = Arc::new(foundation::clock::SystemClock);
        let policy = match policy_cfg.store()? {
            policy_module::config::StoreLocation::Sqlite(path) => {
                policy_module::store::Store::open_sqlite(&path, clock).await
            }
            policy_module::config::StoreLocation::PostgresUrlFile(file) => {
                let url = policy_module::config::read_secret(&file)?;
                policy_module::store::Store::connect_postgres(url.expose(), clock).await
            }
        }
        .context("opening the policy store")?;
        let ndes_cfg = ndes_proxy::config::Config::load(ndes)?;
        let pending = match (
            &ndes_cfg.pending.sqlite,
            &ndes_cfg.pending.postgres_url_file,
        ) {
            (Some(path), _) => ndes_proxy::SqlPendingStore::sqlite_file(path).await,
            (None, Some(file)) => {
                let url = ndes_proxy::config::read_secret(file)?.expose().to_owned();
                ndes_proxy::SqlPendingStore::postgres(url.trim()).await
            }
            (None, None) => {
                anyhow::bail!("ndes-proxy's configuration keeps pending requests in memory")
            }
        }
        .context("opening the pending store")?;
        Ok(Self {
            ca: Arc::new(ca),
            ca_store,
            policy,
            pending,
            crl_path,
            device_templates: crate::DEVICE_TEMPLATES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        })
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.ca_store.close().await;
        self.policy.close().await;
        self.pending.close().await;
    }
}

/// Runs every check at time `now` (unix seconds).
pub async fn reconcile(sources: &Sources, now: i64) -> Result<Report> {
    let mut report = Report::default();
    let ca_view = ca::check(sources, now, &mut report).await?;
    cross::check(sources, &ca_view, now, &mut report).await?;
    Ok(report)
}
