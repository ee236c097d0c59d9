//! One PostgreSQL URL for the whole lab (`[store] postgres_url` of `scep-lab serve --config`):
//! the lab creates, if missing, one database per service, `<prefix>_ca`, `<prefix>_policy` and
//! `<prefix>_pending` (their table names overlap and each keeps its own migration history, so
//! they cannot share one), and each store migrates its own on open.
//!
//! The URL may carry a password: it is held as a [`Secret`] and never logged or shown in errors.

use anyhow::{Context, Result, bail, ensure};
use foundation::secret::Secret;
use foundation::sql::{Db, PoolOptions};

use crate::Databases;

/// The prefix when the configuration names none.
pub const DEFAULT_PREFIX: &str = "scep_lab";

/// The databases of the three services under `url`'s server, created when missing.
pub async fn provision(url: &Secret, prefix: &str) -> Result<Databases> {
    let names = database_names(prefix)?;
    let admin = Db::connect_postgres(url.expose(), PoolOptions::default())
        .await
        .map_err(|e| {
            anyhow::anyhow!("connecting to PostgreSQL to create the lab's databases: {e}")
        })?;
    let Db::Postgres(pool) = &admin else {
        bail!("not a PostgreSQL URL");
    };
    for name in &names {
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
                .with_context(|| format!("looking for database {name}"))?;
        if exists.is_none() {
            // The name is checked to [a-z0-9_] above, so quoting it is enough. Another lab
            // starting at the same moment may win the race: its database is as good as ours.
            let create = format!("CREATE DATABASE \"{name}\"");
            let created = sqlx::query(sqlx::AssertSqlSafe(create)).execute(pool).await;
            if let Err(e) = created {
                let duplicate = e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "42P04");
                if !duplicate {
                    return Err(e).with_context(|| format!("creating database {name}"));
                }
            }
            tracing::info!(database = %name, "created PostgreSQL database");
        }
    }
    admin.close().await;
    let [ca, policy, pending] = names.map(|n| with_database(url.expose(), &n));
    Ok(Databases::Postgres {
        ca: ca?,
        policy: policy?,
        pending: pending?,
    })
}

/// `<prefix>_ca`, `<prefix>_policy`, `<prefix>_pending`.
pub fn database_names(prefix: &str) -> Result<[String; 3]> {
    ensure!(
        !prefix.is_empty()
            && prefix.len() <= 40
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !prefix.starts_with(|c: char| c.is_ascii_digit()),
        "[store] database_prefix: 1 to 40 of [a-z0-9_], not starting with a digit"
    );
    Ok(["ca", "policy", "pending"].map(|s| format!("{prefix}_{s}")))
}

/// `url` with its database (the path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .context("[store] postgres_url: not a URL")?;
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_service_gets_its_database_on_the_same_server() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x_ca").unwrap(),
            "postgres://u:p@h:5432/x_ca?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://u@h", "x_ca").unwrap(),
            "postgresql://u@h/x_ca"
        );
        assert_eq!(
            database_names("lab1").unwrap(),
            ["lab1_ca", "lab1_policy", "lab1_pending"]
        );
        for bad in ["", "Lab", "a-b", "1a", "a\"b"] {
            assert!(database_names(bad).is_err(), "{bad}");
        }
    }
}
