//! The CA's records as its API tells them (`GET /api/v1/records`, `ca-mock records`): each
//! issuance, revocation, hold and release, read from the audit trail the CA wrote in the same
//! transaction as the change, so the policy module and `scep-lab trace` can tell a
//! transaction's story without the CA's database file.

use ca_api::RevocationReason;
use ca_api::wire::{CaRecord, RecordList, RecordQuery};
use foundation::Serial;
use foundation::time::{parse_rfc3339, rfc3339};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::CaError;
use crate::store::{CertStore, MAX_RECORDS, RecordFilter, RecordRow};

/// Page size when the query names none.
pub const DEFAULT_RECORDS: u32 = 100;

/// The query string as sent: [`RecordQuery`]'s fields and no others, so a misspelt filter is
/// refused rather than silently ignored (which would answer with every record).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordParams {
    serial: Option<String>,
    request_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

impl From<RecordParams> for RecordQuery {
    fn from(p: RecordParams) -> Self {
        Self {
            serial: p.serial,
            request_id: p.request_id,
            since: p.since,
            until: p.until,
            after: p.after,
            limit: p.limit,
        }
    }
}

/// Why a records query was refused; each has its own wire code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordQueryError {
    /// `serial` is not hex of a positive integer of at most 20 octets.
    #[error("serial is not a certificate serial in hex")]
    Serial,
    /// `since` or `until` is not RFC 3339.
    #[error("{0} is not an RFC 3339 time (e.g. 2026-12-07T10:15:00Z)")]
    Time(&'static str),
    /// `limit=0`.
    #[error("limit must be at least 1 (at most {MAX_RECORDS} are returned)")]
    Limit,
    /// `since` after `until`.
    #[error("since is after until")]
    Range,
}

impl RecordQueryError {
    /// The `error` code of the 400 answer.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Serial => "invalid_serial",
            Self::Time(_) => "invalid_time",
            Self::Limit => "invalid_limit",
            Self::Range => "invalid_range",
        }
    }
}

/// The store filter for a query, checked: the serial in canonical form, times as unix seconds,
/// the limit defaulted and capped.
pub fn filter_of(q: &RecordQuery) -> Result<RecordFilter, RecordQueryError> {
    let serial = match &q.serial {
        None => None,
        Some(s) => Some(
            Serial::from_hex(s)
                .map_err(|_| RecordQueryError::Serial)?
                .to_hex(),
        ),
    };
    let time = |text: &Option<String>, field| match text {
        None => Ok(None),
        Some(t) => parse_rfc3339(t)
            .map(Some)
            .ok_or(RecordQueryError::Time(field)),
    };
    let since = time(&q.since, "since")?;
    let until = time(&q.until, "until")?;
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(RecordQueryError::Range);
    }
    let limit = match q.limit {
        Some(0) => return Err(RecordQueryError::Limit),
        Some(n) => n.min(MAX_RECORDS),
        None => DEFAULT_RECORDS,
    };
    Ok(RecordFilter {
        serial,
        request_id: q.request_id.clone(),
        since,
        until,
        after: q.after,
        limit,
    })
}

/// One page of records, oldest first, keeping those `visible` says the caller may see (by
/// template); `next_after` is set whenever the page was full, even if some rows were hidden.
pub async fn read(
    store: &dyn CertStore,
    filter: &RecordFilter,
    visible: impl Fn(Option<&str>) -> bool,
) -> Result<RecordList, CaError> {
    let rows = store.records(filter).await?;
    let full = u32::try_from(rows.len()).is_ok_and(|n| n >= filter.limit);
    let next_after = rows.last().filter(|_| full).map(|r| r.id);
    let records = rows
        .iter()
        .filter(|r| visible(r.template.as_deref()))
        .map(record_of)
        .collect();
    Ok(RecordList {
        records,
        next_after,
    })
}

/// The wire form of one audit line: the stored action in the past tense (`issued`, `revoked`,
/// `held`, `released`), the certificate's template, and the detail as named fields.
pub fn record_of(row: &RecordRow) -> CaRecord {
    let e = &row.entry;
    let mut detail = Map::new();
    let action = match e.action.as_str() {
        "issue" => {
            if let Some(under) = &row.issued_under {
                detail.insert("issued_under".into(), Value::from(under.as_str()));
            }
            if let Some(subject) = &row.subject {
                detail.insert("subject".into(), Value::from(subject.as_str()));
            }
            if let Some(n) = row.not_after {
                detail.insert("not_after".into(), Value::from(rfc3339(n)));
                detail.insert("not_after_unix".into(), Value::from(n));
            }
            "issued".to_owned()
        }
        "revoke" => {
            detail.insert("reason".into(), Value::from(e.detail.as_str()));
            if RevocationReason::parse(&e.detail) == Some(RevocationReason::CertificateHold) {
                "held".to_owned()
            } else {
                "revoked".to_owned()
            }
        }
        "release" => {
            detail.insert("released".into(), Value::from("certificateHold"));
            "released".to_owned()
        }
        other => {
            detail.insert("note".into(), Value::from(e.detail.as_str()));
            other.to_owned()
        }
    };
    // An issue line's own detail is the template: the fallback if the certificate row is gone.
    let template = row
        .template
        .clone()
        .or_else(|| (e.action == "issue").then(|| e.detail.clone()));
    CaRecord {
        id: row.id,
        at: rfc3339(e.at),
        at_unix: e.at,
        action,
        serial: e.serial.clone(),
        request_id: e.request_id.clone(),
        actor: e.actor.clone(),
        template,
        detail,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn queries_are_checked_and_canonical() {
        let q = RecordQuery {
            serial: Some("0A01".into()),
            since: Some("2026-12-07T00:00:00+01:00".into()),
            until: Some("2026-12-07T00:00:00Z".into()),
            limit: Some(5000),
            ..RecordQuery::default()
        };
        let f = filter_of(&q).unwrap();
        assert_eq!(f.serial.as_deref(), Some("0a01"));
        assert_eq!(f.until.unwrap() - f.since.unwrap(), 3600);
        assert_eq!(f.limit, MAX_RECORDS);
        assert_eq!(
            filter_of(&RecordQuery::default()).unwrap().limit,
            DEFAULT_RECORDS
        );
        let bad = |q: RecordQuery| filter_of(&q).unwrap_err().code();
        let q = RecordQuery::default;
        assert_eq!(
            bad(RecordQuery {
                serial: Some("xyz".into()),
                ..q()
            }),
            "invalid_serial"
        );
        assert_eq!(
            bad(RecordQuery {
                since: Some("1796599009".into()),
                ..q()
            }),
            "invalid_time"
        );
        assert_eq!(
            bad(RecordQuery {
                limit: Some(0),
                ..q()
            }),
            "invalid_limit"
        );
        assert_eq!(
            bad(RecordQuery {
                since: Some("2026-12-08T00:00:00Z".into()),
                until: Some("2026-12-07T00:00:00Z".into()),
                ..q()
            }),
            "invalid_range"
        );
    }
}
