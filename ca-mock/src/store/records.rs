//! Reading the audit trail (`GET /api/v1/records`): the lines the CA wrote in the same
//! transaction as each issuance, revocation, hold and release, joined with the certificate
//! they concern.

use foundation::on_db;
use foundation::sql::Db;
use sqlx::Row;

use super::{AuditEntry, MAX_RECORDS, RecordFilter, RecordRow, StoreError};

/// Which filters a query has, in placeholder order (serial, request id, since, until, after;
/// the limit is always last).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Shape {
    pub serial: bool,
    pub request_id: bool,
    pub since: bool,
    pub until: bool,
    pub after: bool,
}

impl Shape {
    fn of(f: &RecordFilter) -> Self {
        Self {
            serial: f.serial.is_some(),
            request_id: f.request_id.is_some(),
            since: f.since.is_some(),
            until: f.until.is_some(),
            after: f.after.is_some(),
        }
    }
}

/// The query for one shape. As in `list_sql`, only the filters given become conditions, so
/// the planner sees the column each one tests and uses its index (reliability catalogue L7).
pub(super) fn records_sql(shape: Shape) -> String {
    let wanted = [
        (shape.serial, "audit_log.serial = "),
        (shape.request_id, "audit_log.request_id = "),
        (shape.since, "audit_log.at >= "),
        (shape.until, "audit_log.at < "),
        (shape.after, "audit_log.id > "),
    ];
    let mut conditions = Vec::new();
    for (on, condition) in wanted {
        if on {
            conditions.push(format!("{condition}${}", conditions.len() + 1));
        }
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    format!(
        "SELECT audit_log.id, audit_log.at, audit_log.action, audit_log.serial, \
         audit_log.request_id, audit_log.actor, audit_log.detail, certificates.template, \
         certificates.issued_under, certificates.subject, certificates.not_after \
         FROM audit_log LEFT JOIN certificates ON certificates.serial = audit_log.serial \
         {filter}ORDER BY audit_log.id LIMIT ${}",
        conditions.len() + 1
    )
}

/// Runs the query for `f` on either backend.
pub(super) async fn select(db: &Db, f: &RecordFilter) -> Result<Vec<RecordRow>, StoreError> {
    let sql = records_sql(Shape::of(f));
    let limit = i64::from(f.limit.clamp(1, MAX_RECORDS));
    on_db!(db, |p, _begin| {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(serial) = &f.serial {
            q = q.bind(serial.as_str());
        }
        if let Some(id) = &f.request_id {
            q = q.bind(id.as_str());
        }
        for n in [f.since, f.until, f.after].into_iter().flatten() {
            q = q.bind(n);
        }
        let rows = q.bind(limit).fetch_all(p).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(RecordRow {
                id: row.try_get(0)?,
                entry: AuditEntry {
                    at: row.try_get(1)?,
                    action: row.try_get(2)?,
                    serial: row.try_get(3)?,
                    request_id: row.try_get(4)?,
                    actor: row.try_get(5)?,
                    detail: row.try_get(6)?,
                },
                template: row.try_get(7)?,
                issued_under: row.try_get(8)?,
                subject: row.try_get(9)?,
                not_after: row.try_get(10)?,
            });
        }
        Ok(out)
    })
}
