//! `ca-mock records`: the CA's records (what `GET /api/v1/records` answers) read offline from
//! the store. A read: nothing is written, no CRL is published.

use std::path::Path;

use anyhow::Result;
use ca_api::wire::{CaRecord, RecordQuery};
use ca_mock::Config;

/// Prints one line per record, oldest first, or the `RecordList` JSON.
pub(crate) async fn records(config: &Path, query: &RecordQuery, json: bool) -> Result<()> {
    let filter = ca_mock::records::filter_of(query)?;
    let state = ca_mock::open_without_publishing(&Config::load(config)?).await?;
    let list = ca_mock::records::read(state.ca.store().as_ref(), &filter, |_| true).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for r in &list.records {
        println!("{}", line(r));
    }
    if let Some(next) = list.next_after {
        eprintln!("more: --after {next}");
    }
    Ok(())
}

/// `2026-12-07T10:15:00Z  issued    0a01  tx-1  ndes  IPSECIntermediateOffline  issued_under=...`
fn line(r: &CaRecord) -> String {
    let detail: Vec<String> = r
        .detail
        .iter()
        .filter(|(k, _)| !k.ends_with("_unix"))
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    format!(
        "{}  {:<8} {}  {:<24} {:<8} {}  {}",
        r.at,
        r.action,
        r.serial,
        r.request_id,
        r.actor,
        r.template.as_deref().unwrap_or("-"),
        detail.join(" ")
    )
    .trim_end()
    .to_owned()
}
