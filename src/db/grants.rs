//! The `grants` table: one live grant per partner, its refresh token sealed by the vault.

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

/// A stored grant (the sealed bytes stay sealed here).
#[derive(Clone, FromRow)]
pub struct Grant {
    /// The partner.
    pub partner_id: Uuid,
    /// The vault's sealed refresh token.
    pub sealed_refresh_token: Vec<u8>,
    /// KEK that wraps it.
    pub kek_id: i32,
    /// Rotation counter.
    pub version: i64,
    /// The CPV app the token belongs to.
    pub app_id: Uuid,
    /// Cloud label.
    pub cloud: String,
    /// Consenting user.
    pub consented_by_oid: Uuid,
    /// Their name.
    pub consented_by_name: Option<String>,
    /// Their UPN.
    pub consented_by_upn: Option<String>,
    /// When.
    pub consented_at: OffsetDateTime,
    /// Where MFA was seen (`id_token.amr` or `access_token.amr`).
    pub mfa_evidence: String,
    /// Last successful refresh.
    pub refreshed_at: OffsetDateTime,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("partner_id", &self.partner_id)
            .field("kek_id", &self.kek_id)
            .field("version", &self.version)
            .field("sealed_refresh_token", &"[sealed]")
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "partner_id, sealed_refresh_token, kek_id, version, app_id, cloud, consented_by_oid, \
                       consented_by_name, consented_by_upn, consented_at, mfa_evidence, refreshed_at";

/// A grant written at consent.
#[derive(Debug)]
pub struct NewGrant<'a> {
    /// The partner.
    pub partner_id: Uuid,
    /// Sealed refresh token.
    pub sealed_refresh_token: &'a [u8],
    /// KEK id inside the sealed value.
    pub kek_id: i32,
    /// App id.
    pub app_id: Uuid,
    /// Cloud.
    pub cloud: &'a str,
    /// Consenting user.
    pub consented_by_oid: Uuid,
    /// Name.
    pub consented_by_name: Option<&'a str>,
    /// UPN.
    pub consented_by_upn: Option<&'a str>,
    /// MFA evidence.
    pub mfa_evidence: &'a str,
}

/// Stores the grant of a consent, replacing the partner's previous grant in place.
pub async fn replace(
    executor: impl PgExecutor<'_>,
    grant: &NewGrant<'_>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO grants (partner_id, sealed_refresh_token, kek_id, version, app_id, cloud, consented_by_oid,
                             consented_by_name, consented_by_upn, consented_at, mfa_evidence, refreshed_at)
         VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, $10, $9)
         ON CONFLICT (partner_id) DO UPDATE SET
            sealed_refresh_token = EXCLUDED.sealed_refresh_token, kek_id = EXCLUDED.kek_id,
            version = grants.version + 1, app_id = EXCLUDED.app_id, cloud = EXCLUDED.cloud,
            consented_by_oid = EXCLUDED.consented_by_oid, consented_by_name = EXCLUDED.consented_by_name,
            consented_by_upn = EXCLUDED.consented_by_upn, consented_at = EXCLUDED.consented_at,
            mfa_evidence = EXCLUDED.mfa_evidence, refreshed_at = EXCLUDED.refreshed_at,
            last_error_code = NULL, last_error_at = NULL",
    )
    .bind(grant.partner_id)
    .bind(grant.sealed_refresh_token)
    .bind(grant.kek_id)
    .bind(grant.app_id)
    .bind(grant.cloud)
    .bind(grant.consented_by_oid)
    .bind(grant.consented_by_name)
    .bind(grant.consented_by_upn)
    .bind(now)
    .bind(grant.mfa_evidence)
    .execute(executor)
    .await?;
    Ok(())
}

/// The partner's grant.
pub async fn find(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
) -> Result<Option<Grant>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM grants WHERE partner_id = $1"
    ))
    .bind(partner_id)
    .fetch_optional(executor)
    .await
}

/// The partner's grant, locked for update (one refresher at a time across instances).
pub async fn lock(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
) -> Result<Option<Grant>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM grants WHERE partner_id = $1 FOR UPDATE"
    ))
    .bind(partner_id)
    .fetch_optional(executor)
    .await
}

/// Replaces the sealed token only if the row is still at `version`; true when it was.
pub async fn rotate(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    version: i64,
    sealed_refresh_token: &[u8],
    kek_id: i32,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE grants SET sealed_refresh_token = $3, kek_id = $4, version = version + 1,
                refreshed_at = $5, last_error_code = NULL, last_error_at = NULL
         WHERE partner_id = $1 AND version = $2",
    )
    .bind(partner_id)
    .bind(version)
    .bind(sealed_refresh_token)
    .bind(kek_id)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Re-wrapped bytes under another KEK, same token, same version (key rotation).
pub async fn rewrap(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    version: i64,
    sealed_refresh_token: &[u8],
    kek_id: i32,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE grants SET sealed_refresh_token = $3, kek_id = $4 WHERE partner_id = $1 AND version = $2",
    )
    .bind(partner_id)
    .bind(version)
    .bind(sealed_refresh_token)
    .bind(kek_id)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A sealed token with what its associated data needs.
#[derive(FromRow)]
pub struct SealedRow {
    /// The partner.
    pub partner_id: Uuid,
    /// The partner's tenant (the vault row binding).
    pub tenant_id: Uuid,
    /// Rotation counter.
    pub version: i64,
    /// The sealed bytes.
    pub sealed_refresh_token: Vec<u8>,
}

/// Up to `limit` grants not under `kek_id`, locked and skipping rows others hold.
pub async fn claim_for_rewrap(
    executor: impl PgExecutor<'_>,
    kek_id: i32,
    limit: i64,
) -> Result<Vec<SealedRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT g.partner_id, p.tenant_id, g.version, g.sealed_refresh_token
         FROM grants g JOIN partners p ON p.id = g.partner_id
         WHERE g.kek_id <> $1 ORDER BY g.partner_id LIMIT $2 FOR UPDATE OF g SKIP LOCKED",
    )
    .bind(kek_id)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// How many sealed values each KEK wraps, per kind (`grants`, `webhook secrets`, `access tokens`,
/// `staff TOTP secrets`).
pub async fn sealed_by_kek(
    executor: impl PgExecutor<'_>,
) -> Result<Vec<(String, i32, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT 'grants', kek_id, count(*) FROM grants GROUP BY kek_id
         UNION ALL SELECT 'webhook secrets', kek_id, count(*) FROM webhook_secrets GROUP BY kek_id
         UNION ALL SELECT 'access tokens', kek_id, count(*) FROM access_tokens GROUP BY kek_id
         UNION ALL SELECT 'staff TOTP secrets', kek_id, count(*) FROM staff_mfa GROUP BY kek_id
         ORDER BY 2, 1",
    )
    .fetch_all(executor)
    .await
}

/// What a stored sealed value is, as far as the vault's binding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SealedKind {
    /// A partner's refresh token (`grants`), bound to the partner's tenant id.
    RefreshToken,
    /// A webhook endpoint's signing secret (`webhook_secrets`), bound to the secret's id.
    WebhookSecret,
    /// A staff member's TOTP secret (`staff_mfa`), bound to the staff id.
    StaffTotpSecret,
}

impl SealedKind {
    /// The plural words [`sealed_by_kek`] counts them under.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshToken => "grants",
            Self::WebhookSecret => "webhook secrets",
            Self::StaffTotpSecret => "staff TOTP secrets",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::RefreshToken,
            Self::WebhookSecret,
            Self::StaffTotpSecret,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// One stored sealed value with the row it is bound to (cached access tokens are left out: they
/// are re-minted on demand, and an unopenable one is simply dropped).
#[derive(Clone)]
pub struct SealedValue {
    /// What it is.
    pub kind: SealedKind,
    /// The vault row binding (tenant id or row id as text).
    pub row: String,
    /// The sealed bytes.
    pub sealed: Vec<u8>,
}

/// Every sealed refresh token, webhook secret and staff TOTP secret, streamed (no locks taken).
pub fn sealed_values(
    pool: &sqlx::PgPool,
) -> impl futures_util::Stream<Item = Result<SealedValue, sqlx::Error>> + '_ {
    use futures_util::StreamExt;
    sqlx::query_as::<_, (String, String, Vec<u8>)>(
        "SELECT 'grants', p.tenant_id::text, g.sealed_refresh_token
         FROM grants g JOIN partners p ON p.id = g.partner_id
         UNION ALL SELECT 'webhook secrets', id::text, sealed_secret FROM webhook_secrets
         UNION ALL SELECT 'staff TOTP secrets', staff_id::text, sealed_secret FROM staff_mfa",
    )
    .fetch(pool)
    .map(|row| -> Result<SealedValue, sqlx::Error> {
        let (kind, row, sealed) = row?;
        let kind = SealedKind::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown sealed kind {kind}").into()))?;
        Ok(SealedValue { kind, row, sealed })
    })
}

/// Access tokens under another KEK than `kek_id` are dropped, not re-wrapped: they live an hour
/// and are re-minted on demand.
pub async fn delete_access_tokens_not_under(
    executor: impl PgExecutor<'_>,
    kek_id: i32,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM access_tokens WHERE kek_id <> $1")
        .bind(kek_id)
        .execute(executor)
        .await?
        .rows_affected())
}

/// Webhook secrets not under `kek_id`, locked and skipping rows others hold.
pub async fn claim_webhook_secrets_for_rewrap(
    executor: impl PgExecutor<'_>,
    kek_id: i32,
    limit: i64,
) -> Result<Vec<(Uuid, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, sealed_secret FROM webhook_secrets WHERE kek_id <> $1
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(kek_id)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Stores a re-wrapped webhook secret.
pub async fn rewrap_webhook_secret(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    sealed_secret: &[u8],
    kek_id: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webhook_secrets SET sealed_secret = $2, kek_id = $3 WHERE id = $1")
        .bind(id)
        .bind(sealed_secret)
        .bind(kek_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// How many grants each KEK wraps.
pub async fn count_by_kek(executor: impl PgExecutor<'_>) -> Result<Vec<(i32, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT kek_id, count(*) FROM grants GROUP BY kek_id ORDER BY kek_id")
        .fetch_all(executor)
        .await
}

/// Records the Microsoft code of a failed refresh.
pub async fn record_error(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    code: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE grants SET last_error_code = $2, last_error_at = $3 WHERE partner_id = $1")
        .bind(partner_id)
        .bind(code)
        .bind(now)
        .execute(executor)
        .await?;
    Ok(())
}

/// Notes that the grant was used by a proxied call (batched by the caller).
pub async fn touch_last_used(
    executor: impl PgExecutor<'_>,
    partner_ids: &[Uuid],
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE grants SET last_used_at = $2 WHERE partner_id = ANY($1)")
        .bind(partner_ids)
        .bind(now)
        .execute(executor)
        .await?;
    Ok(())
}

/// A partner's grant facts as staff see them (never the sealed bytes).
#[derive(Debug, Clone, FromRow)]
pub struct GrantFacts {
    /// The CPV app.
    pub app_id: Uuid,
    /// Cloud label.
    pub cloud: String,
    /// Consenting user's object id.
    pub consented_by_oid: Uuid,
    /// Their name.
    pub consented_by_name: Option<String>,
    /// Their UPN.
    pub consented_by_upn: Option<String>,
    /// When.
    pub consented_at: OffsetDateTime,
    /// Where MFA was seen.
    pub mfa_evidence: String,
    /// Last refresh.
    pub refreshed_at: OffsetDateTime,
    /// Last use.
    pub last_used_at: Option<OffsetDateTime>,
    /// Last refresh error code.
    pub last_error_code: Option<String>,
    /// When it happened.
    pub last_error_at: Option<OffsetDateTime>,
}

/// The grant facts of a partner.
pub async fn facts(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
) -> Result<Option<GrantFacts>, sqlx::Error> {
    sqlx::query_as(
        "SELECT app_id, cloud, consented_by_oid, consented_by_name, consented_by_upn, consented_at,
                mfa_evidence, refreshed_at, last_used_at, last_error_code, last_error_at
         FROM grants WHERE partner_id = $1",
    )
    .bind(partner_id)
    .fetch_optional(executor)
    .await
}
