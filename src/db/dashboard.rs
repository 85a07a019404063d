//! Read models of the admin dashboard's grant-use tiles: grants never used, and grants whose
//! refresh token is near Microsoft's 90-day inactivity limit.

use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::db::staff::PartnerRow;

/// Live partners (not offboarded) whose grant was never used through the proxy.
pub async fn count_never_used(executor: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM grants g JOIN partners p ON p.id = g.partner_id
         WHERE g.last_used_at IS NULL AND p.status <> 'offboarded'",
    )
    .fetch_one(executor)
    .await
}

/// Live partners whose grant was neither refreshed nor used since `since`, oldest activity
/// first, with the total count.
pub async fn unused_since(
    executor: impl PgExecutor<'_> + Copy,
    since: OffsetDateTime,
    limit: i64,
) -> Result<(i64, Vec<PartnerRow>), sqlx::Error> {
    const WHERE: &str = "p.status <> 'offboarded' AND g.refreshed_at < $1
         AND (g.last_used_at IS NULL OR g.last_used_at < $1)";
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM grants g JOIN partners p ON p.id = g.partner_id WHERE {WHERE}"
    ))
    .bind(since)
    .fetch_one(executor)
    .await?;
    let rows = sqlx::query_as(&format!(
        "SELECT p.id, p.tenant_id, p.display_name, p.domain, p.status, p.status_reason,
                p.status_code, p.status_changed_at, g.refreshed_at, g.last_used_at
         FROM grants g JOIN partners p ON p.id = g.partner_id WHERE {WHERE}
         ORDER BY GREATEST(g.refreshed_at, COALESCE(g.last_used_at, g.refreshed_at)), p.id
         LIMIT $2"
    ))
    .bind(since)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    Ok((total, rows))
}
