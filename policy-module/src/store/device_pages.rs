//! The registered devices a page at a time (the console's Devices page and overview count,
//! issue 18): by id through the primary key, optionally matching a case-insensitive substring
//! of the id, name, serial number or owner.

use super::certificates::like_escape;
use super::inventory::DeviceRow;
use super::{Store, on_db};
use crate::error::StoreError;
use crate::model::Device;

/// Which devices, and which slice of them.
#[derive(Debug, Clone)]
pub struct DeviceSearch {
    /// Substring of id, name, serial number or owner (ASCII letters folded on SQLite, all
    /// letters on PostgreSQL).
    pub needle: Option<String>,
    pub offset: i64,
    pub limit: i64,
}

/// The filter: not deleted, and the needle (`$1`) in one of the four fields if given.
fn filter(postgres: bool, needle: bool) -> String {
    if !needle {
        return "state <> 'deleted'".into();
    }
    let (like, field): (&str, fn(&str) -> String) = if postgres {
        ("ILIKE", |f| format!("(body::json ->> '{f}')"))
    } else {
        ("LIKE", |f| format!("json_extract(body, '$.{f}')"))
    };
    let any: Vec<String> = ["id".to_owned()]
        .into_iter()
        .chain(["name", "serial_number", "owner_upn"].map(field))
        .map(|c| format!(r"{c} {like} $1 ESCAPE '\'"))
        .collect();
    format!("state <> 'deleted' AND ({})", any.join(" OR "))
}

/// The devices of one page, by id (a walk of the primary key that stops at the page's end).
pub(super) fn device_page_sql(postgres: bool, needle: bool) -> String {
    let (limit, offset) = if needle { ("$2", "$3") } else { ("$1", "$2") };
    format!(
        "SELECT body, state, created_at, updated_at FROM devices WHERE {} \
         ORDER BY id LIMIT {limit} OFFSET {offset}",
        filter(postgres, needle)
    )
}

impl Store {
    /// One page of devices and how many match in all. The count reads every matching row's
    /// key (and, with a needle, its body): linear in the devices, a few milliseconds at 10,000
    /// (BENCHMARKS.md, console).
    pub async fn search_devices(&self, q: &DeviceSearch) -> Result<(Vec<Device>, i64), StoreError> {
        let pg = self.is_postgres();
        let pattern = q.needle.as_deref().map(|n| format!("%{}%", like_escape(n)));
        let page_sql = device_page_sql(pg, pattern.is_some());
        let count_sql = format!(
            "SELECT COUNT(*) FROM devices WHERE {}",
            filter(pg, pattern.is_some())
        );
        let (rows, total) = on_db!(&self.db, |pool, _b| {
            let mut page = sqlx::query_as::<_, DeviceRow>(sqlx::AssertSqlSafe(page_sql));
            let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
            if let Some(p) = &pattern {
                page = page.bind(p.clone());
                count = count.bind(p.clone());
            }
            let rows = page.bind(q.limit).bind(q.offset).fetch_all(pool).await?;
            (rows, count.fetch_one(pool).await?)
        });
        Ok((
            rows.into_iter()
                .filter_map(DeviceRow::into_device)
                .collect(),
            total,
        ))
    }
}
