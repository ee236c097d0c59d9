//! The admin path's name policies, one per template (stored as JSON; the service parses and
//! validates them, see `crate::name_policy`).

use super::{Store, on_db};
use crate::error::StoreError;

/// A stored name policy.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NamePolicyRow {
    pub template: String,
    /// JSON of `crate::name_policy::NamePolicy`.
    pub body: String,
    pub updated_at: i64,
}

impl Store {
    /// The policy of one template.
    pub async fn get_name_policy(
        &self,
        template: &str,
    ) -> Result<Option<NamePolicyRow>, StoreError> {
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, NamePolicyRow>(
                "SELECT template, body, updated_at FROM name_policies WHERE template = $1",
            )
            .bind(template)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Every policy, by template.
    pub async fn list_name_policies(&self) -> Result<Vec<NamePolicyRow>, StoreError> {
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query_as::<_, NamePolicyRow>(
                "SELECT template, body, updated_at FROM name_policies ORDER BY template",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Creates or replaces a template's policy; with `only_if_absent`, an existing one is
    /// kept (returns false).
    pub async fn put_name_policy(
        &self,
        template: &str,
        body: &str,
        only_if_absent: bool,
    ) -> Result<bool, StoreError> {
        let now = self.now().await?;
        let sql = if only_if_absent {
            "INSERT INTO name_policies (template, body, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (template) DO NOTHING"
        } else {
            "INSERT INTO name_policies (template, body, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (template) DO UPDATE SET body = excluded.body, \
             updated_at = excluded.updated_at"
        };
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query(sql)
                .bind(template)
                .bind(body)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// Removes a template's policy (the admin path stops serving it); false if none.
    pub async fn delete_name_policy(&self, template: &str) -> Result<bool, StoreError> {
        Ok(on_db!(&self.db, |pool, _b| {
            sqlx::query("DELETE FROM name_policies WHERE template = $1")
                .bind(template)
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }
}
