//! The `access_tokens` table: sealed access tokens shared by every samgate instance.

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

/// A sealed access token.
#[derive(Clone, FromRow)]
pub struct StoredAccessToken {
    /// Sealed bytes (vault).
    pub sealed_token: Vec<u8>,
    /// Expiry.
    pub expires_at: OffsetDateTime,
}

/// The stored token for a key, if any.
pub async fn find(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    authority_tenant: Uuid,
    resource: &str,
) -> Result<Option<StoredAccessToken>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sealed_token, expires_at FROM access_tokens
         WHERE partner_id = $1 AND authority_tenant = $2 AND resource = $3",
    )
    .bind(partner_id)
    .bind(authority_tenant)
    .bind(resource)
    .fetch_optional(executor)
    .await
}

/// Stores (or replaces) the token for a key.
pub async fn store(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    authority_tenant: Uuid,
    resource: &str,
    sealed_token: &[u8],
    kek_id: i32,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO access_tokens (partner_id, authority_tenant, resource, sealed_token, kek_id, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (partner_id, authority_tenant, resource) DO UPDATE
           SET sealed_token = EXCLUDED.sealed_token, kek_id = EXCLUDED.kek_id, expires_at = EXCLUDED.expires_at",
    )
    .bind(partner_id)
    .bind(authority_tenant)
    .bind(resource)
    .bind(sealed_token)
    .bind(kek_id)
    .bind(expires_at)
    .execute(executor)
    .await?;
    Ok(())
}

/// Forgets a token Microsoft no longer accepts.
pub async fn delete(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    authority_tenant: Uuid,
    resource: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM access_tokens WHERE partner_id = $1 AND authority_tenant = $2 AND resource = $3")
        .bind(partner_id)
        .bind(authority_tenant)
        .bind(resource)
        .execute(executor)
        .await?;
    Ok(())
}

/// Forgets every token of a partner (consent lost, offboarding).
pub async fn delete_for_partner(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM access_tokens WHERE partner_id = $1")
        .bind(partner_id)
        .execute(executor)
        .await?;
    Ok(())
}
