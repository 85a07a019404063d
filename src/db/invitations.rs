//! The `invitations` table. Tokens are looked up by their SHA-256 only.

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Actor;

/// An invitation to consent.
#[derive(Debug, Clone, FromRow)]
pub struct Invitation {
    /// Id.
    pub id: Uuid,
    /// Who the link is for (as staff typed it).
    pub partner_name: String,
    /// Tenant GUID or domain the admin must belong to.
    pub expected_tenant: Option<String>,
    /// Account to pre-fill at sign-in.
    pub login_hint: Option<String>,
    /// The partner being re-consented, if any.
    pub partner_id: Option<Uuid>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Expiry.
    pub expires_at: OffsetDateTime,
    /// When it was used.
    pub used_at: Option<OffsetDateTime>,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, partner_name, expected_tenant, login_hint, partner_id, created_at, expires_at, used_at, revoked_at";

/// A new invitation's fields.
#[derive(Debug)]
pub struct NewInvitation<'a> {
    /// SHA-256 of the link token.
    pub token_hash: &'a [u8],
    /// Partner name.
    pub partner_name: &'a str,
    /// Expected tenant.
    pub expected_tenant: Option<&'a str>,
    /// Login hint.
    pub login_hint: Option<&'a str>,
    /// Re-consent target.
    pub partner_id: Option<Uuid>,
    /// Who created it (e.g. `cli`, `staff:<id>`).
    pub created_by: &'a Actor,
    /// Expiry.
    pub expires_at: OffsetDateTime,
}

/// Inserts an invitation.
pub async fn insert(
    executor: impl PgExecutor<'_>,
    new: &NewInvitation<'_>,
    now: OffsetDateTime,
) -> Result<Invitation, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO invitations (id, token_hash, partner_name, expected_tenant, login_hint, partner_id, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(new.token_hash)
    .bind(new.partner_name)
    .bind(new.expected_tenant)
    .bind(new.login_hint)
    .bind(new.partner_id)
    .bind(new.created_by)
    .bind(now)
    .bind(new.expires_at)
    .fetch_one(executor)
    .await
}

/// The invitation whose token hashes to `token_hash`.
pub async fn find_by_token_hash(
    executor: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> Result<Option<Invitation>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invitations WHERE token_hash = $1"
    ))
    .bind(token_hash)
    .fetch_optional(executor)
    .await
}

/// The invitation with this id, locked for update (consent completion).
pub async fn lock(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<Invitation>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invitations WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// Marks an invitation used by `oid`, and binds it to the partner it onboarded.
pub async fn mark_used(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    partner_id: Uuid,
    oid: Uuid,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE invitations SET used_at = $2, used_by_oid = $3, partner_id = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(oid)
    .bind(partner_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Revokes a pending invitation; false when it was not pending.
pub async fn revoke(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE invitations SET revoked_at = $2 WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Invitations, newest first.
pub async fn list(
    executor: impl PgExecutor<'_>,
    limit: i64,
) -> Result<Vec<Invitation>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invitations ORDER BY created_at DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// The invitation with this id.
pub async fn find_by_id(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<Invitation>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM invitations WHERE id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await
}
