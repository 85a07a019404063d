//! The `partners` table.

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::PartnerStatus;

/// A CSP partner.
#[derive(Debug, Clone, FromRow)]
pub struct Partner {
    /// samgate's id.
    pub id: Uuid,
    /// The partner's Microsoft tenant.
    pub tenant_id: Uuid,
    /// The organisation name (from Partner Center).
    pub display_name: String,
    /// The default domain.
    pub domain: Option<String>,
    /// The MPN id.
    pub mpn_id: Option<String>,
    /// Health state.
    pub status: PartnerStatus,
    /// Why the status is what it is.
    pub status_reason: Option<String>,
    /// The Microsoft error code behind the status.
    pub status_code: Option<String>,
    /// When the status last changed.
    pub status_changed_at: OffsetDateTime,
    /// When the partner was first seen.
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str = "id, tenant_id, display_name, domain, mpn_id, status, status_reason, \
                       status_code, status_changed_at, created_at";

/// The partner with this tenant id.
pub async fn find_by_tenant(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
) -> Result<Option<Partner>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM partners WHERE tenant_id = $1"
    ))
    .bind(tenant_id)
    .fetch_optional(executor)
    .await
}

/// The partner with this id.
pub async fn find(executor: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Partner>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM partners WHERE id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await
}

/// The partner with this id, locked for update.
pub async fn lock(executor: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Partner>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM partners WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// Fields written when a consent completes.
#[derive(Debug)]
pub struct ConsentedPartner<'a> {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Organisation name.
    pub display_name: &'a str,
    /// Default domain.
    pub domain: Option<&'a str>,
    /// MPN id.
    pub mpn_id: Option<&'a str>,
}

/// Creates the partner, or refreshes its profile and marks it healthy; returns its id.
pub async fn upsert_consented(
    executor: impl PgExecutor<'_>,
    partner: &ConsentedPartner<'_>,
    now: OffsetDateTime,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO partners (id, tenant_id, display_name, domain, mpn_id, status, status_changed_at, created_at)
         VALUES ($1, $2, $3, $4, $5, 'healthy', $6, $6)
         ON CONFLICT ON CONSTRAINT partners_tenant_id_key DO UPDATE
            SET display_name = EXCLUDED.display_name,
                domain = EXCLUDED.domain,
                mpn_id = COALESCE(EXCLUDED.mpn_id, partners.mpn_id),
                status = 'healthy', status_reason = NULL, status_code = NULL,
                status_changed_at = CASE WHEN partners.status = 'healthy' THEN partners.status_changed_at ELSE $6 END,
                offboarded_at = NULL
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(partner.tenant_id)
    .bind(partner.display_name)
    .bind(partner.domain)
    .bind(partner.mpn_id)
    .bind(now)
    .fetch_one(executor)
    .await
}

/// Sets a partner's health state with its reason and Microsoft code.
pub async fn set_status(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    status: PartnerStatus,
    reason: Option<&str>,
    code: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE partners SET status = $2, status_reason = $3, status_code = $4,
                status_changed_at = CASE WHEN status = $2 THEN status_changed_at ELSE $5 END
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(reason)
    .bind(code)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// All partners, newest first (small estates; the admin UI pages with keysets).
pub async fn list(executor: impl PgExecutor<'_>, limit: i64) -> Result<Vec<Partner>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM partners ORDER BY created_at DESC, id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Moves a partner from `from` to `to`; true when it was in `from`.
pub async fn set_status_if(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    from: PartnerStatus,
    to: PartnerStatus,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE partners SET status = $3, status_reason = NULL, status_code = NULL, status_changed_at = $4
         WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A partner with its grant's facts (never the sealed token).
#[derive(Debug, Clone, FromRow)]
pub struct PartnerWithGrant {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Name.
    pub display_name: String,
    /// Domain.
    pub domain: Option<String>,
    /// MPN id.
    pub mpn_id: Option<String>,
    /// Status.
    pub status: PartnerStatus,
    /// Code.
    pub status_code: Option<String>,
    /// Advice.
    pub status_reason: Option<String>,
    /// Since.
    pub status_changed_at: OffsetDateTime,
    /// Consent time.
    pub consented_at: Option<OffsetDateTime>,
    /// Consenting UPN.
    pub consented_by_upn: Option<String>,
    /// MFA evidence.
    pub mfa_evidence: Option<String>,
    /// App id.
    pub app_id: Option<Uuid>,
    /// Cloud.
    pub cloud: Option<String>,
    /// Last refresh.
    pub refreshed_at: Option<OffsetDateTime>,
    /// Last use.
    pub last_used_at: Option<OffsetDateTime>,
    /// Last error code.
    pub last_error_code: Option<String>,
}

/// Partners (optionally only these tenants) after `after` by tenant id, with their grants.
pub async fn list_with_grants(
    executor: impl PgExecutor<'_>,
    only: Option<&[Uuid]>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<PartnerWithGrant>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.tenant_id, p.display_name, p.domain, p.mpn_id, p.status, p.status_code, p.status_reason,
                p.status_changed_at, g.consented_at, g.consented_by_upn, g.mfa_evidence, g.app_id, g.cloud,
                g.refreshed_at, g.last_used_at, g.last_error_code
         FROM partners p LEFT JOIN grants g ON g.partner_id = p.id
         WHERE ($1::uuid[] IS NULL OR p.tenant_id = ANY($1))
           AND ($2::uuid IS NULL OR p.tenant_id > $2)
         ORDER BY p.tenant_id LIMIT $3",
    )
    .bind(only)
    .bind(after)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// How many partners are in each status.
pub async fn count_by_status(
    executor: impl PgExecutor<'_>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, count(*) FROM partners GROUP BY status")
        .fetch_all(executor)
        .await
}
