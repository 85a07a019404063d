//! Housekeeping: announces expired invitations (`invitation.expired`, once each, with the
//! marking in the same transaction), rolls complete hours of proxy call records up into hourly
//! counts for the activity pages, and prunes call records, their hours and delivered webhooks
//! older than their retention, in small batches so no long lock is held.

use time::OffsetDateTime;

use crate::app::App;
use crate::db;
use crate::domain::Actor;
use crate::webhooks::{self, EventType};

const BATCH: i64 = 1000;

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Invitations announced as expired.
    pub invitations_expired: u64,
    /// Proxy call records deleted.
    pub proxy_calls_pruned: u64,
    /// Rows of hourly call counts written (`proxy_call_hours`).
    pub call_hours_rolled: u64,
    /// Delivered webhooks deleted.
    pub deliveries_pruned: u64,
    /// Customer app consents whose stale/current state changed with the configured grants.
    pub consents_reconciled: u64,
    /// Expired sessions deleted.
    pub sessions_pruned: u64,
}

/// One housekeeping pass (idempotent).
pub async fn run_once(app: &App, now: OffsetDateTime) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    loop {
        let mut tx = app.pool.begin().await?;
        let expired = db::lifecycle::mark_expired_invitations(&mut *tx, now, BATCH).await?;
        for invitation in &expired {
            let data = serde_json::json!({
                "invitation_id": invitation.id,
                "partner_name": invitation.partner_name,
                "reconsent": invitation.partner_id.is_some(),
                "expires_at": invitation.expires_at.unix_timestamp(),
            });
            db::audit::record(
                &mut *tx,
                &Actor::System,
                "invitation.expired",
                invitation.partner_tenant_id,
                data.clone(),
                now,
            )
            .await?;
            webhooks::enqueue(
                &mut *tx,
                EventType::InvitationExpired,
                invitation.partner_tenant_id,
                data,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        summary.invitations_expired += expired.len() as u64;
        if (expired.len() as i64) < BATCH {
            break;
        }
    }
    let calls_before = now - app.config.lifecycle.proxy_call_retention;
    loop {
        let pruned = db::lifecycle::prune_proxy_calls(&app.pool, calls_before, BATCH).await?;
        summary.proxy_calls_pruned += pruned;
        if pruned < BATCH as u64 {
            break;
        }
    }
    let mut tx = app.pool.begin().await?;
    summary.call_hours_rolled = db::activity::roll_up_hours(&mut tx, now, calls_before).await?;
    tx.commit().await?;
    db::activity::prune_hours(&app.pool, calls_before).await?;
    let deliveries_before = now - app.config.lifecycle.webhook_retention;
    loop {
        let pruned = db::webhooks::prune_delivered(&app.pool, deliveries_before, BATCH).await?;
        summary.deliveries_pruned += pruned;
        if pruned < BATCH as u64 {
            break;
        }
    }
    loop {
        let pruned = db::lifecycle::prune_sessions(&app.pool, now, BATCH).await?;
        summary.sessions_pruned += pruned;
        if pruned < BATCH as u64 {
            break;
        }
    }
    // SAMGATE_APP_CONSENT_GRANTS may have changed since consents were granted.
    summary.consents_reconciled = crate::health::customer::reconcile_consents(
        &app.pool,
        &crate::app_consents::configured_grants(app),
        now,
    )
    .await?;
    Ok(summary)
}
