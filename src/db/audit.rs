//! The append-only `audit_events` table (the database refuses updates and deletes).

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Actor;

/// One audit record.
#[derive(Debug, Clone, FromRow)]
pub struct AuditEvent {
    /// Sequence.
    pub id: i64,
    /// When.
    pub occurred_at: OffsetDateTime,
    /// Who.
    pub actor: Actor,
    /// What, e.g. `partner.consented`.
    pub action: String,
    /// Which partner.
    pub partner_tenant_id: Option<Uuid>,
    /// Details (never secrets).
    pub details: serde_json::Value,
}

/// Appends an event.
pub async fn record(
    executor: impl PgExecutor<'_>,
    actor: &Actor,
    action: &str,
    partner_tenant_id: Option<Uuid>,
    details: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events (occurred_at, actor, action, partner_tenant_id, details) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(now)
    .bind(actor)
    .bind(action)
    .bind(partner_tenant_id)
    .bind(details)
    .execute(executor)
    .await?;
    Ok(())
}

/// The newest events, optionally for one partner.
pub async fn list(
    executor: impl PgExecutor<'_>,
    partner_tenant_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, occurred_at, actor, action, partner_tenant_id, details FROM audit_events
         WHERE $1::uuid IS NULL OR partner_tenant_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(partner_tenant_id)
    .bind(limit)
    .fetch_all(executor)
    .await
}
