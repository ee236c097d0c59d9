//! `scep-lab trace`: one enrollment's story (`GET /api/v1/transactions/{id}`) or one device's
//! history (`GET /api/v1/devices/{id}/history`) from a running lab's policy module, printed as
//! a timeline a person reads: one line per event with its RFC 3339 time, the service that
//! wrote it, the event and its key facts, between a header and the outcome. `--json` prints
//! the policy module's answer as it is.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use policy_api::trace::{DeviceHistory, Source, TraceEvent, TransactionTrace};
use reqwest::StatusCode;
use serde_json::Value;

/// What to trace and where the lab is.
#[derive(Debug, clap::Args)]
pub(crate) struct TraceArgs {
    /// The SCEP transactionID to trace.
    #[arg(required_unless_present = "device", conflicts_with = "device")]
    transaction_id: Option<String>,
    /// Instead: a device's history, newest first.
    #[arg(long)]
    device: Option<String>,
    /// With --device: older than this point (the `next_before` of the previous page).
    #[arg(long, requires = "device")]
    before: Option<i64>,
    /// With --device: most events.
    #[arg(long, requires = "device", default_value_t = 50)]
    limit: u32,
    /// Print the policy module's JSON answer as it is.
    #[arg(long)]
    json: bool,
    /// policy-module's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8280")]
    policy_url: String,
    /// Data directory of the lab (for its admin token).
    #[arg(long, env = "SCEP_LAB_DATA", default_value = "scep-lab-data")]
    data: PathBuf,
    /// File holding the policy-module admin token (default: <data>/secrets/policy-admin.token).
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// The CA certificate to pin for https URLs (default: <data>/tls/root.pem when the lab
    /// wrote one, i.e. runs with --tls).
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

/// Runs `scep-lab trace`, writing to `out`.
pub(crate) async fn run(a: &TraceArgs, out: &mut impl Write) -> Result<()> {
    let file = a
        .admin_token_file
        .clone()
        .unwrap_or_else(|| a.data.join("secrets/policy-admin.token"));
    let token = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "reading the admin token {} (is --data the lab's data directory?)",
            file.display()
        )
    })?;
    let http =
        scep_lab::tool_client::client(a.ca_file.as_deref(), &a.data, Duration::from_secs(30))?;
    let policy = Policy::new(
        &a.policy_url,
        token.lines().next().unwrap_or("").trim(),
        http,
    )?;
    let text = match (&a.transaction_id, &a.device) {
        (Some(tx), _) => {
            let Some(trace) = policy.transaction(tx).await? else {
                bail!(
                    "no transaction {tx:?} is known to the policy module at {}",
                    a.policy_url
                );
            };
            if a.json {
                serde_json::to_string_pretty(&trace)? + "\n"
            } else {
                format_trace(&trace)
            }
        }
        (None, Some(device)) => {
            let Some(history) = policy.history(device, a.before, a.limit).await? else {
                bail!(
                    "no device {device:?} is known to the policy module at {}",
                    a.policy_url
                );
            };
            if a.json {
                serde_json::to_string_pretty(&history)? + "\n"
            } else {
                format_history(&history)
            }
        }
        (None, None) => bail!("name a transactionID or --device"),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// The policy module's admin API, as far as tracing needs it.
pub(crate) struct Policy {
    http: reqwest::Client,
    base: reqwest::Url,
    token: String,
}

impl Policy {
    /// A client for the policy module at `base` with the admin `token`, over `http`.
    pub(crate) fn new(base: &str, token: &str, http: reqwest::Client) -> Result<Self> {
        let base = reqwest::Url::parse(base)
            .with_context(|| format!("{base:?} is not a URL of the policy module"))?;
        Ok(Self {
            http,
            base,
            token: token.to_owned(),
        })
    }

    /// The trace of one transaction; `None` when the policy module knows nothing of it.
    pub(crate) async fn transaction(&self, id: &str) -> Result<Option<TransactionTrace>> {
        self.get(&["api", "v1", "transactions", id], &[])
            .await?
            .map(|v| serde_json::from_value(v).context("the policy module's trace"))
            .transpose()
    }

    /// One page of a device's history; `None` when there is no such device.
    async fn history(
        &self,
        id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Option<DeviceHistory>> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(b) = before {
            query.push(("before", b.to_string()));
        }
        self.get(&["api", "v1", "devices", id, "history"], &query)
            .await?
            .map(|v| serde_json::from_value(v).context("the policy module's device history"))
            .transpose()
    }

    /// The JSON at `path`; `None` on 404.
    async fn get(&self, path: &[&str], query: &[(&str, String)]) -> Result<Option<Value>> {
        let mut url = self.base.clone();
        // Each part is one path segment, percent-encoded: a transactionID with `/` or `?`
        // stays a transactionID.
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("{} cannot be a base URL", self.base))?
            .pop_if_empty()
            .extend(path);
        let resp = self
            .http
            .get(url)
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| {
                // The innermost cause says why ("Connection refused"); reqwest's own text not.
                let mut cause: &dyn std::error::Error = &e;
                while let Some(inner) = cause.source() {
                    cause = inner;
                }
                anyhow::anyhow!(
                    "cannot reach the policy module at {} ({cause}); is the lab running (scep-lab serve)?",
                    self.base
                )
            })?;
        match resp.status() {
            StatusCode::OK => Ok(Some(resp.json().await.with_context(|| {
                format!(
                    "the policy module at {} answered unexpected JSON",
                    self.base
                )
            })?)),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => bail!(
                "the policy module at {} refused the admin token (is it this lab's?)",
                self.base
            ),
            status => {
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                let why = body["message"].as_str().unwrap_or("no reason given");
                bail!(
                    "the policy module at {} answered {status}: {why}",
                    self.base
                )
            }
        }
    }
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::PolicyModule => "policy-module",
        Source::NdesProxy => "ndes-proxy",
        Source::CaMock => "ca-mock",
    }
}

fn text<'a>(e: &'a TraceEvent, key: &str) -> Option<&'a str> {
    e.detail
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The reason an event names: its own field, or the CA record's `detail.reason`.
fn reason(e: &TraceEvent) -> Option<&str> {
    e.reason.as_deref().or_else(|| text(e, "reason"))
}

/// What the header already says, so lines do not repeat it: the transaction (a request id
/// equal to it is not repeated; in a device history each line names its transaction), and the
/// device and profile most events concern.
#[derive(Debug, Default, Clone, Copy)]
struct Known<'a> {
    tx: Option<&'a str>,
    device: Option<&'a str>,
    profile: Option<(&'a str, Option<i64>)>,
}

impl<'a> Known<'a> {
    /// The device and profile of the first event naming a device.
    fn of(tx: Option<&'a str>, events: &'a [TraceEvent]) -> Self {
        let first = events.iter().find(|e| e.device_id.is_some());
        Self {
            tx,
            device: first.and_then(|e| e.device_id.as_deref()),
            profile: first.and_then(|e| e.profile_id.as_deref().map(|p| (p, e.profile_version))),
        }
    }

    /// `device D, profile P vN`, as far as known.
    fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(d) = self.device {
            parts.push(format!("device {d}"));
        }
        match self.profile {
            Some((p, Some(v))) => parts.push(format!("profile {p} v{v}")),
            Some((p, None)) => parts.push(format!("profile {p}")),
            None => {}
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// The key facts of one event, in the order a reader asks for them, less what `known` says.
fn facts(e: &TraceEvent, known: Known<'_>) -> Vec<String> {
    let mut f = Vec::new();
    if known.tx.is_none()
        && let Some(t) = &e.transaction_id
    {
        f.push(format!("tx {t}"));
    }
    if let Some(d) = e.device_id.as_deref().filter(|d| Some(*d) != known.device) {
        f.push(format!("device {d}"));
    }
    let profile = e.profile_id.as_deref().map(|p| (p, e.profile_version));
    match profile.filter(|p| Some(*p) != known.profile) {
        Some((p, Some(v))) => f.push(format!("profile {p} v{v}")),
        Some((p, None)) => f.push(format!("profile {p}")),
        None => {}
    }
    if let Some(m) = text(e, "message_type") {
        f.push(m.to_owned());
    }
    if let Some(a) = text(e, "client_address") {
        f.push(format!("from {a}"));
    }
    if let Some(Value::Object(a)) = e.detail.get("algorithms") {
        let names: Vec<&str> = ["signature", "digest", "content_encryption"]
            .iter()
            .filter_map(|k| a.get(*k).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .collect();
        if !names.is_empty() {
            f.push(format!("algorithms {}", names.join("/")));
        }
    }
    if let Some(s) = text(e, "pki_status") {
        f.push(format!("pkiStatus {s}"));
    }
    if let Some(s) = text(e, "fail_info") {
        f.push(format!("failInfo {s}"));
    }
    if let Some(s) = &e.serial {
        f.push(format!("serial {s}"));
    }
    if let Some(t) = text(e, "template") {
        f.push(format!("template {t}"));
    }
    if let Some(s) = text(e, "renews_serial") {
        f.push(format!("renews {s}"));
    }
    if let Some(a) = text(e, "action") {
        f.push(format!("action {a}"));
    }
    if let Some(r) = reason(e) {
        f.push(format!("reason {r}"));
    }
    let tx = known.tx.or(e.transaction_id.as_deref());
    if let Some(r) = text(e, "request_id").filter(|r| Some(*r) != tx) {
        f.push(format!("request {r}"));
    }
    if let Some(u) = text(e, "issued_under") {
        f.push(format!("under {u}"));
    }
    if let Some(a) = &e.actor {
        f.push(format!("by {a}"));
    }
    f
}

fn line(out: &mut String, e: &TraceEvent, known: Known<'_>) {
    let text = format!(
        "  {:<20}  {:<13}  {:<21} {}",
        e.at,
        source_name(e.source),
        e.event,
        facts(e, known).join(", ")
    );
    let _ = writeln!(out, "{}", text.trim_end());
}

fn unavailable(out: &mut String, sources: &[Source]) {
    if !sources.is_empty() {
        let names: Vec<_> = sources.iter().map(|s| source_name(*s)).collect();
        let _ = writeln!(
            out,
            "unavailable: {} (could not be read; its events are missing above)",
            names.join(", ")
        );
    }
}

/// What became of the enrollment, from its events (oldest first).
fn outcome(t: &TransactionTrace) -> String {
    let find = |name: &str| t.events.iter().rev().find(|e| e.event == name);
    let reply = find("reply_sent");
    let status = reply.and_then(|e| text(e, "pki_status"));
    let mut s = if let Some(r) = find("request_rejected") {
        format!("rejected: {}", reason(r).unwrap_or("no reason recorded"))
    } else if let Some(serial) = ["issued", "replayed", "notified"]
        .iter()
        .find_map(|n| find(n).and_then(|e| e.serial.as_deref()))
    {
        format!("issued, certificate serial {serial}")
    } else if status == Some("PENDING") {
        "pending (manual approval)".to_owned()
    } else {
        "no certificate issued".to_owned()
    };
    if let Some(st) = status.filter(|s| *s != "SUCCESS" && *s != "PENDING") {
        let _ = write!(s, "; CertRep {st}");
        if let Some(fi) = reply.and_then(|e| text(e, "fail_info")) {
            let _ = write!(s, " failInfo {fi}");
        }
    }
    if let Some(old) = t.events.iter().find_map(|e| text(e, "renews_serial")) {
        let _ = write!(s, "; renews {old}");
    }
    // The certificate's state after the enrollment: the last revocation-side event.
    let later = t
        .events
        .iter()
        .rev()
        .find(|e| matches!(e.event.as_str(), "revoked" | "held" | "released"));
    match later {
        Some(e) if e.event == "released" => s.push_str("; later held, then released"),
        Some(e) => {
            let _ = write!(
                s,
                "; later {} ({})",
                e.event,
                reason(e).unwrap_or("no reason recorded")
            );
        }
        None => {}
    }
    s
}

/// A transaction's timeline: header, one line per event, outcome.
pub(crate) fn format_trace(t: &TransactionTrace) -> String {
    let mut out = String::new();
    let mut sources: Vec<&str> = Vec::new();
    for e in &t.events {
        let name = source_name(e.source);
        if !sources.contains(&name) {
            sources.push(name);
        }
    }
    let known = Known::of(Some(&t.transaction_id), &t.events);
    let about = known
        .describe()
        .map(|d| format!("{d}; "))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "transaction {}: {about}{} events from {}",
        t.transaction_id,
        t.events.len(),
        if sources.is_empty() {
            "no service".to_owned()
        } else {
            sources.join(", ")
        }
    );
    for e in &t.events {
        line(&mut out, e, known);
    }
    let _ = writeln!(out, "outcome: {}", outcome(t));
    unavailable(&mut out, &t.unavailable);
    out
}

/// A device's history, newest first, with how to read on.
pub(crate) fn format_history(h: &DeviceHistory) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "device {}: {} events, newest first",
        h.device_id,
        h.events.len()
    );
    let known = Known {
        device: Some(&h.device_id),
        ..Known::default()
    };
    for e in &h.events {
        line(&mut out, e, known);
    }
    if let Some(before) = h.next_before {
        let _ = writeln!(
            out,
            "older events: scep-lab trace --device {} --before {before}",
            h.device_id
        );
    }
    unavailable(&mut out, &h.unavailable);
    out
}

#[cfg(test)]
#[path = "trace_tests.rs"]
mod tests;
