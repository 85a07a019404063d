//! Grant lifecycle SQL: keep-alive leases, transient-failure counting, offboarding deletes,
//! invitation expiry and retention pruning.

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

/// A grant claimed for a keep-alive refresh, with what the broker needs about its partner.
#[derive(Debug, Clone, FromRow)]
pub struct ClaimedGrant {
    /// The partner.
    pub partner_id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its name.
    pub display_name: String,
    /// Its health state at claim time.
    pub status: crate::domain::PartnerStatus,
    /// Microsoft code behind the state.
    pub status_code: Option<String>,
    /// Advice behind the state.
    pub status_reason: Option<String>,
}

/// Leases up to `limit` grants last refreshed before `refreshed_before` whose partner is live
/// (`healthy` or `degraded`) and whose lease has run out at `now`; with `tenant`, only that
/// partner's grant, in any state but offboarded, leased or not (an operator asked for it). Rows another worker is claiming right now are skipped, and the lease
/// outlives this statement, so no other worker claims them again until it expires.
pub async fn claim_for_keep_alive(
    executor: impl PgExecutor<'_>,
    refreshed_before: OffsetDateTime,
    tenant: Option<Uuid>,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: i64,
) -> Result<Vec<ClaimedGrant>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS (
             SELECT g.partner_id FROM grants g JOIN partners p ON p.id = g.partner_id
             WHERE g.refreshed_at < $1
               AND ($2::uuid IS NOT NULL OR g.keepalive_lease_until IS NULL
                    OR g.keepalive_lease_until <= $3)
               AND CASE WHEN $2::uuid IS NULL THEN p.status IN ('healthy', 'degraded')
                        ELSE p.tenant_id = $2 AND p.status <> 'offboarded' END
             ORDER BY g.refreshed_at LIMIT $5
             FOR UPDATE OF g SKIP LOCKED)
         UPDATE grants g SET keepalive_lease_until = $4
         FROM due, partners p
         WHERE g.partner_id = due.partner_id AND p.id = g.partner_id
         RETURNING g.partner_id, p.tenant_id, p.display_name, p.status, p.status_code, p.status_reason",
    )
    .bind(refreshed_before)
    .bind(tenant)
    .bind(now)
    .bind(lease_until)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Counts a transient refresh failure; returns the failures in a row including this one. A
/// success since the previous failure (which clears `last_error_at`) restarts the count.
pub async fn count_transient_failure(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    now: OffsetDateTime,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE grants SET
            refresh_failures = CASE WHEN last_error_at IS NULL THEN 1 ELSE refresh_failures + 1 END,
            last_error_at = $2
         WHERE partner_id = $1 RETURNING refresh_failures",
    )
    .bind(partner_id)
    .bind(now)
    .fetch_optional(executor)
    .await
}

/// Clears the failure count after a successful refresh.
pub async fn clear_failures(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE grants SET refresh_failures = 0, last_error_at = NULL, last_error_code = NULL
         WHERE partner_id = $1",
    )
    .bind(partner_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// The partner's status, locked for update (state transitions read and write it atomically).
pub async fn lock_status(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
) -> Result<Option<crate::domain::PartnerStatus>, sqlx::Error> {
    sqlx::query_scalar("SELECT status FROM partners WHERE id = $1 FOR UPDATE")
        .bind(partner_id)
        .fetch_optional(executor)
        .await
}

/// What deleting a partner's secrets removed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shredded {
    /// Grant rows (sealed refresh token and its wrapped data key).
    pub grants: u64,
    /// Shared access-token rows (sealed).
    pub access_tokens: u64,
}

/// Deletes the partner's grant and access tokens: the sealed bytes and the wrapped data keys in
/// them go, so nothing that could open the refresh token is left (crypto-shredding).
pub async fn shred_grant(
    conn: &mut sqlx::PgConnection,
    partner_id: Uuid,
) -> Result<Shredded, sqlx::Error> {
    let access_tokens = sqlx::query("DELETE FROM access_tokens WHERE partner_id = $1")
        .bind(partner_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let grants = sqlx::query("DELETE FROM grants WHERE partner_id = $1")
        .bind(partner_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(Shredded {
        grants,
        access_tokens,
    })
}

/// Revokes every pending invitation for the partner (re-consents, and new-consent links bound to
/// its tenant); returns their ids.
pub async fn revoke_partner_invitations(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    tenant_id: Uuid,
    now: OffsetDateTime,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE invitations SET revoked_at = $3
         WHERE (partner_id = $1 OR expected_tenant = $2::text)
           AND used_at IS NULL AND revoked_at IS NULL
         RETURNING id",
    )
    .bind(partner_id)
    .bind(tenant_id)
    .bind(now)
    .fetch_all(executor)
    .await
}

/// Marks the partner offboarded.
pub async fn mark_offboarded(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE partners SET status = 'offboarded', status_reason = NULL, status_code = NULL,
                status_changed_at = $2, offboarded_at = $2
         WHERE id = $1",
    )
    .bind(partner_id)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// An invitation whose expiry was just announced.
#[derive(Debug, Clone, FromRow)]
pub struct ExpiredInvitation {
    /// Id.
    pub id: Uuid,
    /// Who it was for.
    pub partner_name: String,
    /// The re-consent target, if any.
    pub partner_id: Option<Uuid>,
    /// That partner's tenant.
    pub partner_tenant_id: Option<Uuid>,
    /// When it expired.
    pub expires_at: OffsetDateTime,
}

/// Marks up to `limit` pending invitations past their expiry as announced, returning them (once
/// each: a second run finds them marked). Skips rows a consent completion holds.
pub async fn mark_expired_invitations(
    executor: impl PgExecutor<'_>,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<ExpiredInvitation>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS (
             SELECT id FROM invitations
             WHERE used_at IS NULL AND revoked_at IS NULL AND expired_at IS NULL AND expires_at <= $1
             ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         UPDATE invitations i SET expired_at = $1 FROM due
         WHERE i.id = due.id
         RETURNING i.id, i.partner_name, i.partner_id,
                   (SELECT tenant_id FROM partners p WHERE p.id = i.partner_id) AS partner_tenant_id,
                   i.expires_at",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Deletes up to `limit` proxy call records older than `before`; returns how many.
pub async fn prune_proxy_calls(
    executor: impl PgExecutor<'_>,
    before: OffsetDateTime,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM proxy_calls WHERE id IN (
             SELECT id FROM proxy_calls WHERE occurred_at < $1 ORDER BY occurred_at LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes up to `limit` sessions that expired before `now` (the session store never does).
pub async fn prune_sessions(
    executor: impl PgExecutor<'_>,
    now: OffsetDateTime,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM tower_sessions.session WHERE id IN (
             SELECT id FROM tower_sessions.session WHERE expiry_date < $1 LIMIT $2)",
    )
    .bind(now)
    .bind(limit)
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}
